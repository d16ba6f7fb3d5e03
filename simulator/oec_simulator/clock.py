"""Clocks for the simulator: every time-dependent rule reads ``clock.now()`` (epoch seconds, float).

The lazy lifecycle (docs/oec-api.md §10, §1 rows 12/21), rate-limit windows (§6), the idempotency TTL (§7)
and the brute-force block (§4) all use an injected :class:`Clock`, so they are testable without
sleeping (:class:`ManualClock`) and skippable in demos (``POST /_sim/clock``).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime


class Clock:
    """Wall clock with an adjustable offset: ``now() = time.time() + offset`` (seconds)."""

    def __init__(self) -> None:
        self._offset = 0.0

    @property
    def offset(self) -> float:
        """Seconds added to the wall clock by :meth:`advance`."""
        return self._offset

    def now(self) -> float:
        """Current simulated time, epoch seconds."""
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        """Jump ``seconds`` (≥ 0) into the future."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self._offset += seconds


class ManualClock(Clock):
    """Clock that stands still until :meth:`advance` is called; ``start`` is epoch seconds."""

    def __init__(self, start: float = 1_767_225_610.0) -> None:
        super().__init__()
        self._start = start

    def now(self) -> float:
        """``start + offset``, epoch seconds."""
        return self._start + self._offset


def iso(ts: float | None) -> str | None:
    """Epoch seconds → ISO 8601 UTC with a ``Z`` suffix and microseconds; ``None`` stays ``None``."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
