"""Record of every public-API request, served by ``GET /_sim/requests``.

Entries: ``{seq, time, method, path, query, status, idempotency_key, x_idempotency_key,
confirm_delete, confirm_restore, body}``: ``seq`` numbers requests in arrival order (from 1),
``time`` is the arrival time (ISO 8601 UTC), ``query`` a dict (last value wins), ``status`` the
answered HTTP status, the four header fields the raw values of ``Idempotency-Key``,
``X-Idempotency-Key``, ``X-Confirm-Delete`` and ``X-Confirm-Restore`` (or null), ``body`` the parsed
JSON body or null. Authorization and X-API-Key values are never recorded (nor any answer body, so
no backup download link). ``status`` is null for a request a fault dropped without an answer
(connection reset or timeout).

The log is bounded: it keeps the newest ``limit`` finished entries (config ``request_log_limit``,
CLI ``--request-log-limit``, default 100000) and drops the oldest. ``seq`` keeps counting across
drops and clears, so ``seq > since`` filters stay valid.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from .clock import Clock, iso


def parse_body(raw: bytes) -> Any:
    """Parsed JSON of ``raw``, or ``None`` if empty or not JSON."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None


class RequestLog:
    """Bounded list of request entries; :meth:`begin` at arrival, :meth:`finish` with the status.

    ``limit`` returns the current maximum number of kept entries (read on every :meth:`finish`).
    """

    def __init__(self, clock: Clock, limit: Callable[[], int] = lambda: 100_000) -> None:
        self._clock = clock
        self._limit = limit
        self._seq = 0
        self._entries: deque[dict[str, Any]] = deque()

    def begin(
        self, method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str], raw_body: bytes
    ) -> dict[str, Any]:
        """Create the entry for an arriving request (not yet listed) and return it."""
        self._seq += 1
        return {
            "seq": self._seq,
            "time": iso(self._clock.now()),
            "method": method,
            "path": path,
            "query": dict(query),
            "status": None,
            "idempotency_key": headers.get("Idempotency-Key"),
            "x_idempotency_key": headers.get("X-Idempotency-Key"),
            "confirm_delete": headers.get("X-Confirm-Delete"),
            "confirm_restore": headers.get("X-Confirm-Restore"),
            "body": parse_body(raw_body),
        }

    def finish(self, entry: dict[str, Any], status: int | None) -> None:
        """Set the answered status (``None``: dropped without an answer), list the entry and drop the
        oldest entries beyond the limit."""
        entry["status"] = status
        self._entries.append(entry)
        limit = self._limit()
        while len(self._entries) > limit:
            self._entries.popleft()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def last_seq(self) -> int:
        """The ``seq`` given to the newest arrived request (0 before the first)."""
        return self._seq

    def entries(self, since: int = 0) -> list[dict[str, Any]]:
        """Finished entries with ``seq > since``, ordered by ``seq``."""
        return sorted((e for e in self._entries if e["seq"] > since), key=lambda e: e["seq"])

    def clear(self) -> None:
        """Drop every entry (sequence numbers keep counting)."""
        self._entries.clear()
