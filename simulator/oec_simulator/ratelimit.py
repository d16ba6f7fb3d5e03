"""Per-key rate limiting (docs/oec-api.md §6, §1 rows 7-8).

* ``split`` (default, current API per MCP): every key has a read bucket (``read_limit`` per calendar
  minute); rw keys also have a separate write bucket (``write_limit`` per calendar minute). Windows
  reset at the next full minute.
* ``single`` (REF / older API): one bucket per key counting every method, limit ``read_limit`` for
  ro keys and ``write_limit`` for rw keys, rolling 60 s window.

Refused (429) requests do not consume budget. ``retry_after`` is whole seconds (≥ 1) until a request
will succeed.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Literal

from .clock import Clock

WINDOW_SECONDS = 60


@dataclass(frozen=True)
class RateDecision:
    """Outcome of a rate-limit check: ``allowed``, ``limit``, ``remaining``, ``retry_after`` (s, when
    refused), ``used`` (requests counted in the window) and ``bucket`` (read, write or all)."""

    allowed: bool
    limit: int
    remaining: int
    retry_after: int
    used: int
    bucket: str

    def headers(self) -> dict[str, str]:
        """``X-RateLimit-Limit``, ``X-RateLimit-Remaining``, ``X-RateLimit-Window: 60``."""
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Window": str(WINDOW_SECONDS),
        }


class RateLimiter:
    """Counters per (key id, bucket). Call :meth:`consume` once per authenticated API request."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._fixed: dict[tuple[str, str], tuple[int, int]] = {}
        self._rolling: dict[str, deque[float]] = {}

    def reset(self) -> None:
        """Forget every counter."""
        self._fixed.clear()
        self._rolling.clear()

    def consume(
        self,
        key_id: str,
        tier: Literal["ro", "rw"],
        is_write: bool,
        *,
        mode: Literal["split", "single"],
        read_limit: int,
        write_limit: int,
        dry_run: bool = False,
    ) -> RateDecision:
        """Count one request (unless refused or ``dry_run``) and return the decision."""
        if mode == "single":
            limit = read_limit if tier == "ro" else write_limit
            return self._rolling_check(key_id, limit, dry_run)
        bucket = "write" if is_write else "read"
        limit = write_limit if is_write else read_limit
        return self._fixed_check(key_id, bucket, limit, dry_run)

    def _fixed_check(self, key_id: str, bucket: str, limit: int, dry_run: bool) -> RateDecision:
        now = self._clock.now()
        window = int(now // WINDOW_SECONDS)
        stored_window, used = self._fixed.get((key_id, bucket), (window, 0))
        if stored_window != window:
            used = 0
        if used >= limit:
            wait = max(1, math.ceil((window + 1) * WINDOW_SECONDS - now))
            return RateDecision(False, limit, 0, wait, used, bucket)
        if not dry_run:
            used += 1
            self._fixed[(key_id, bucket)] = (window, used)
        return RateDecision(True, limit, max(0, limit - used), 0, used, bucket)

    def _rolling_check(self, key_id: str, limit: int, dry_run: bool) -> RateDecision:
        now = self._clock.now()
        stamps = self._rolling.setdefault(key_id, deque())
        while stamps and stamps[0] <= now - WINDOW_SECONDS:
            stamps.popleft()
        if len(stamps) >= limit:
            wait = max(1, math.ceil(stamps[0] + WINDOW_SECONDS - now))
            return RateDecision(False, limit, 0, wait, len(stamps), "all")
        if not dry_run:
            stamps.append(now)
        return RateDecision(True, limit, max(0, limit - len(stamps)), 0, len(stamps), "all")
