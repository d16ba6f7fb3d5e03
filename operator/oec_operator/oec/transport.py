"""An HTTP transport that keeps cancellations and waits out of httpx's connection pool.

httpcore's pool (httpx's transport) can lose a connection slot for good when a request is cancelled
while it waits for a connection, or times out there (``PoolTimeout``); once every slot is lost, each
later request fails with ``PoolTimeout`` although the server is healthy, until the process restarts
(encode/httpcore#1093, open for httpcore 1.0.9). Any burst larger than the pool (a thousand
creates at once, say) can end that way.

:class:`BoundedTransport` therefore

* lets at most ``max_connections`` requests into the pool, so none has to wait there; the others
  wait for a slot outside it (cancellable, untimed, like a wait for the rate limiter);
* shields a request from its caller's cancellation once it is in the pool: a cancelled caller
  returns at once, while the request runs to its answer (bounded by the client's timeouts) and
  gives its connection back the normal way;
* reads the whole body inside that shield (the API's answers are small JSON documents).
"""

from __future__ import annotations

import asyncio

import httpx


class BoundedTransport(httpx.AsyncHTTPTransport):
    """``httpx.AsyncHTTPTransport`` with at most ``limits.max_connections`` requests in its pool,
    none of them cancelled from outside.

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
        """Wait for a slot (cancellable), then send ``request`` and read its answer shielded.

        Raises:
            httpx.TransportError: as ``httpx.AsyncHTTPTransport`` (connect, read, write timeouts,
                refused and reset connections).
            asyncio.CancelledError: the caller was cancelled (the request, if sent, still ends).
        """
        await self._slots.acquire()
        try:
            exchange = asyncio.ensure_future(self._exchange(request))
        except BaseException:
            self._slots.release()
            raise
        # A caller cancelled while the exchange runs never reads its outcome: retrieve it here.
        exchange.add_done_callback(lambda done: done.cancelled() or done.exception())
        return await asyncio.shield(exchange)

    async def _exchange(self, request: httpx.Request) -> httpx.Response:
        """Send, read the whole body, give the connection back; then free the slot."""
        try:
            response = await super().handle_async_request(request)
            try:
                body = b"".join([chunk async for chunk in response.stream])  # type: ignore[union-attr]
            finally:
                await response.aclose()
        finally:
            self._slots.release()
        return httpx.Response(response.status_code, headers=response.headers, content=body,
                              extensions={k: v for k, v in response.extensions.items() if k != "network_stream"})
