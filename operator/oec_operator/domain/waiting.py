"""Saying how long a request queued behind the API key's budget waits, and keeping it true while
it waits (``docs/status-contract.md``, a create waiting for the write budget)."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def until(seconds: float) -> str:
    """The wall-clock time ``seconds`` from now, ``HH:MM:SS UTC`` (an absolute time stays true
    after the message is written, a duration does not)."""
    at = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds)
    return at.strftime("%H:%M:%S UTC")


async def announced(send: Awaitable[T], *, estimate: Callable[[bool], float],
                    say: Callable[[float], Awaitable[object]], threshold: float, every: float) -> T:
    """Await ``send`` (a request queued for the key's budget) and keep saying when it will go.

    ``estimate(queued)`` is the wait in seconds as the limiter sees it now (``queued``: the
    request is already waiting, after the first check). ``say(seconds)`` is called
    when that exceeds ``threshold`` seconds at the start, and then, checked every ``every``
    seconds while the request still waits, whenever the time last said has passed or the wait
    now ends more than ``every`` seconds (or a tenth of the wait) later than said.

    Raises:
        Whatever ``send`` or ``say`` raises; ``send`` is cancelled if ``say`` fails.
    """
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(send)
    said: float | None = None  # loop time at which the last message said the wait ends
    queued = False  # the first estimate is taken before the request joins the queue
    try:
        while True:
            wait, now, queued = estimate(queued), loop.time(), True
            late = said is not None and (now >= said or now + wait > said + max(every, wait / 10))
            if wait > threshold and (said is None or late):
                await say(wait)
                said = now + wait
            done, _ = await asyncio.wait({task}, timeout=every)
            if done:
                return task.result()
    finally:
        if not task.done():
            task.cancel()
