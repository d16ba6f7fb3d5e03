"""The wall clock that backup schedules run on (``docs/backups.md`` §2).

Schedules fire at wall-clock times, so they read this module instead of :func:`time.time` and
sleep through :func:`sleep_until`: one place where the time comes from. A sleep re-reads the
clock at least every :data:`recheck_seconds`, because the wall clock can jump while the process
sleeps on the monotonic clock (NTP corrections, a suspended VM), and a long ``asyncio.sleep``
would then wake late.

:func:`install` replaces the source (a harness that runs the operator on a controlled clock);
the operator itself never calls it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime

#: Where the time comes from: seconds since the epoch.
_source: Callable[[], float] = time.time
#: Longest sleep (s) before the clock is read again.
recheck_seconds: float = 60.0


def now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.fromtimestamp(_source(), tz=UTC)


def install(source: Callable[[], float], *, recheck: float) -> None:
    """Take the time from ``source`` (seconds since the epoch) and read it again at least every
    ``recheck`` seconds while sleeping."""
    global _source, recheck_seconds
    _source, recheck_seconds = source, recheck


async def sleep_until(when: datetime, wake: asyncio.Event | None = None) -> bool:
    """Sleep until :func:`now` reaches ``when`` or ``wake`` is set, whichever comes first.

    Returns:
        ``True`` when woken by ``wake`` (the event is cleared), ``False`` when ``when`` came.
    """
    while True:
        left = (when - now()).total_seconds()
        if left <= 0:
            return False
        step = min(left, recheck_seconds)
        if wake is None:
            await asyncio.sleep(step)
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=step)
        if wake.is_set():
            wake.clear()
            return True
