"""An HTTP transport that never lets requests queue inside httpx's connection pool.

httpcore's pool (httpx's transport) can lose a connection slot for good when a request is cancelled
or times out (``PoolTimeout``) while it waits for a connection under contention; once every slot
is lost, each later request fails with ``PoolTimeout`` although the server is healthy, until the
process restarts (encode/httpcore#1093, open for httpcore 1.0.9). ``make bench`` hit exactly this:
1000 creates at once on the default 100 connections, and after a minute the operator sent nothing
at all, only ``PoolTimeout`` errors.

:class:`BoundedTransport` holds a request outside the pool until one of the pool's
``max_connections`` is free, so the pool never has a waiting request: a burst beyond the pool waits
(cancellable, untimed, like a wait for the rate limiter) instead of failing or leaking. A slot is
given back when the response's body is closed, which is when httpx gives the connection back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import httpx


class _ReleasingStream(httpx.AsyncByteStream):
    """A response body that gives the transport's slot back once, when it is closed."""

    def __init__(self, stream: httpx.AsyncByteStream, release: Callable[[], None]) -> None:
        self._stream = stream
        self._release: Callable[[], None] | None = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()


class BoundedTransport(httpx.AsyncHTTPTransport):
    """``httpx.AsyncHTTPTransport`` with at most ``limits.max_connections`` requests in its pool.

    Args:
        limits: the pool's limits; ``max_connections`` (required, >= 1) bounds the requests in
            flight, the rest wait in arrival order.
        **kwargs: passed to ``httpx.AsyncHTTPTransport`` (``trust_env``, ``verify``, ...).

    Raises:
        ValueError: ``limits.max_connections`` is not set or below 1.
    """

    def __init__(self, *, limits: httpx.Limits, **kwargs: object) -> None:
        if not limits.max_connections or limits.max_connections < 1:
            raise ValueError("BoundedTransport needs limits.max_connections >= 1")
        super().__init__(limits=limits, **kwargs)  # type: ignore[arg-type]  # httpx's own keywords
        self._slots = asyncio.Semaphore(limits.max_connections)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await self._slots.acquire()
        try:
            response = await super().handle_async_request(request)
        except BaseException:
            self._slots.release()
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _ReleasingStream(response.stream, self._slots.release)
        return response
