"""Cumulative request counters of the public API, served by ``GET /_sim/stats`` (for benchmarks).

Counted: every request under ``/api/public/v1`` (admin ``/_sim`` requests never), once, when it has
been answered (or dropped by a fault). ``reads`` are GET requests, ``writes`` every other method;
``rate_limited`` are 429 answers (the key's limit, the IP block and injected 429s alike). Per route
(logical route name of ``endpoints.ENDPOINTS``, ``unknown`` for unmatched paths) the answers are counted per
status: the HTTP status as a string, or ``"reset"`` / ``"timeout"`` for connections a fault closed
without an answer. Per key the counters use the key id (``auth.Principal.key_id``), never the key;
requests refused before a key was recognised (401, IP block, outage) have no key entry.

Recording is O(1) per request (plain counters), so a snapshot stays cheap after 100k requests.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any


class _KeyCounters:
    __slots__ = ("rate_limited", "reads", "writes")

    def __init__(self) -> None:
        self.reads = 0
        self.writes = 0
        self.rate_limited = 0


class RequestStats:
    """Counters since creation or the last :meth:`clear` (``DELETE /_sim/stats``)."""

    def __init__(self) -> None:
        self.requests = 0
        self.reads = 0
        self.writes = 0
        self.rate_limited = 0
        self._by_route: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._by_key: defaultdict[str, _KeyCounters] = defaultdict(_KeyCounters)

    def _zero(self) -> None:
        self.requests = self.reads = self.writes = self.rate_limited = 0
        self._by_route.clear()
        self._by_key.clear()

    def record(self, *, method: str, route: str, outcome: int | str, key_id: str | None) -> None:
        """Count one finished request: ``outcome`` is the HTTP status or ``"reset"``/``"timeout"``."""
        is_read = method == "GET"
        limited = outcome == 429
        self.requests += 1
        if is_read:
            self.reads += 1
        else:
            self.writes += 1
        if limited:
            self.rate_limited += 1
        self._by_route[route][str(outcome)] += 1
        if key_id is not None:
            counters = self._by_key[key_id]
            if is_read:
                counters.reads += 1
            else:
                counters.writes += 1
            if limited:
                counters.rate_limited += 1

    def clear(self) -> int:
        """Zero every counter; returns how many requests had been counted."""
        count = self.requests
        self._zero()
        return count

    def snapshot(self, now: float) -> dict[str, Any]:
        """``{requests, reads, writes, rate_limited, by_route: {route: {status: n}},
        by_key: {key_id: {reads, writes, rate_limited}}, time}``; ``time`` = ``now`` (epoch s)."""
        return {
            "requests": self.requests,
            "reads": self.reads,
            "writes": self.writes,
            "rate_limited": self.rate_limited,
            "by_route": {route: dict(statuses) for route, statuses in self._by_route.items()},
            "by_key": {
                key_id: {"reads": c.reads, "writes": c.writes, "rate_limited": c.rate_limited}
                for key_id, c in self._by_key.items()
            },
            "time": now,
        }
