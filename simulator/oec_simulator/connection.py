"""Dropping a client connection without an answer (fault kinds ``reset`` and ``timeout``).

aiohttp keeps serving other connections; writing the (discarded) response to a closed transport is a
no-op, so a handler may simply return after calling these.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

from aiohttp import web


def reset(request: web.Request) -> None:
    """Close the request's TCP connection with a reset (RST, ``SO_LINGER`` 0): the client sees
    "connection reset by peer" and no HTTP answer."""
    transport = request.transport
    if transport is None or transport.is_closing():
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def hold_then_close(request: web.Request, seconds: float) -> None:
    """Keep the request unanswered for ``seconds`` (wall clock), then close the connection without
    an answer. A client that gave up earlier has closed it already; nothing more happens then."""
    await asyncio.sleep(seconds)
    transport = request.transport
    if transport is not None and not transport.is_closing():
        transport.abort()
