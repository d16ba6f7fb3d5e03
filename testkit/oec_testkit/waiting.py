"""Waiting for a condition by polling: :func:`wait_until`. Times are seconds."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["WaitTimeout", "wait_until"]

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """A wait ran out of time (an AssertionError, so a test that waits in vain fails)."""


def wait_until(predicate: Callable[[], T | None], timeout: float = 60.0, interval: float = 0.2, what: str = "", *,
               ignore: tuple[type[BaseException], ...] = ()) -> T:
    """Call ``predicate`` every ``interval`` s until it returns a truthy value and return that value.

    Raises :class:`WaitTimeout` (naming ``what`` and the last value) after ``timeout`` s. An
    exception of a type in ``ignore`` (e.g. from an apiserver being restarted) counts as a falsy
    answer; any other propagates at once.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = predicate()
        except ignore as exc:
            last = exc
        else:
            if value:
                return value
            last = value
        if time.monotonic() > deadline:
            raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what or predicate} (last value: {last!r})")
        time.sleep(interval)
