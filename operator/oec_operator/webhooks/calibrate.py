"""Which signature scheme OEC.sh really uses, learnt from a ``ping`` (``docs/webhooks.md`` §3).

The registration calls ``POST /webhooks/{id}/test`` (``docs/oec-api.md`` §11.6); OEC.sh then posts
a ``ping`` to the receiver, which hands every ping to :meth:`Calibrator.observe`, verified or not
(before calibration the configured scheme may be the wrong one). :meth:`Calibrator.calibrate`
then finds the scheme that ping was signed with by the webhook's secret
(:func:`~oec_operator.webhooks.scheme.calibrate`). A forged ping cannot pass: it is not signed by
the secret under any scheme.

Usage (the registration)::

    mark = calibrator.cursor()
    await api.test_webhook(webhook_id)
    scheme = await calibrator.calibrate(webhook_id, secret, seconds=10.0, since=mark)
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from oec_operator.webhooks.scheme import SignatureScheme, calibrate, lower

#: Pings kept per webhook id, and webhook ids kept (forged pings cannot grow memory without bound).
KEEP_PER_WEBHOOK = 8
KEEP_WEBHOOKS = 64


@dataclass(frozen=True)
class Ping:
    """One ``ping`` as received: header names lower-case, the raw body, its sequence number."""

    seq: int
    headers: dict[str, str]
    body: bytes

    def __repr__(self) -> str:  # never the signature
        return f"Ping(seq={self.seq}, size={len(self.body)})"


def webhook_of(body: bytes) -> str | None:
    """The ``webhook_id`` of a ``ping`` body, ``None`` when ``body`` is no ping."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(payload, dict) or payload.get("event") != "ping":
        return None
    webhook_id = payload.get("webhook_id")
    return webhook_id if isinstance(webhook_id, str) and webhook_id else None


class Calibrator:
    """The recent pings per webhook id, and waiting for them.

    Args:
        wall: the wall clock (Unix seconds) time stamps are checked against.
    """

    def __init__(self, wall: Callable[[], float] = time.time) -> None:
        self._wall = wall
        self._pings: OrderedDict[str, deque[Ping]] = OrderedDict()
        self._seq = 0
        self._arrived = asyncio.Event()

    def cursor(self) -> int:
        """A mark: :meth:`wait_ping` and :meth:`calibrate` with ``since=`` it only take pings
        observed after this call."""
        return self._seq

    def observe(self, headers: Mapping[str, str], body: bytes) -> bool:
        """Keep a ping (any other body is ignored); True when it was one."""
        webhook_id = webhook_of(body)
        if webhook_id is None:
            return False
        self._seq += 1
        held = self._pings.pop(webhook_id, None) or deque(maxlen=KEEP_PER_WEBHOOK)
        held.append(Ping(self._seq, lower(headers), body))
        self._pings[webhook_id] = held
        while len(self._pings) > KEEP_WEBHOOKS:
            self._pings.popitem(last=False)
        arrived, self._arrived = self._arrived, asyncio.Event()
        arrived.set()
        return True

    def _after(self, webhook_id: str, since: int) -> list[Ping]:
        return [ping for ping in self._pings.get(webhook_id, ()) if ping.seq > since]

    async def _next(self, webhook_id: str, since: int, deadline: float) -> Ping | None:
        """The first ping of ``webhook_id`` after ``since``, waiting until ``deadline`` (monotonic)."""
        loop = asyncio.get_running_loop()
        while True:
            pings = self._after(webhook_id, since)
            if pings:
                return pings[0]
            left = deadline - loop.time()
            if left <= 0:
                return None
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except TimeoutError:
                return None

    async def wait_ping(self, webhook_id: str, seconds: float, *,
                        since: int = 0) -> tuple[dict[str, str], bytes] | None:
        """The headers (names lower-case) and body of the first ping of ``webhook_id`` observed
        after the mark ``since`` (:meth:`cursor`), waiting up to ``seconds``; ``None``
        when none came."""
        ping = await self._next(webhook_id, since, asyncio.get_running_loop().time() + seconds)
        return None if ping is None else (ping.headers, ping.body)

    async def calibrate(self, webhook_id: str, secret: str, seconds: float, *, since: int = 0,
                        default: SignatureScheme | None = None, tolerance: float = 300.0) -> SignatureScheme | None:
        """The scheme of the first ping of ``webhook_id`` after ``since`` that ``secret`` signed
        (``default`` first when it fits), waiting up to ``seconds``; ``None`` when no such
        ping came (not delivered, another secret, an unknown scheme)."""
        deadline = asyncio.get_running_loop().time() + seconds
        while (ping := await self._next(webhook_id, since, deadline)) is not None:
            scheme = calibrate(secret, ping.headers, ping.body, self._wall(), default=default, tolerance=tolerance)
            if scheme is not None:
                return scheme
            since = ping.seq
        return None
