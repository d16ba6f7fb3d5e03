"""Record of every public-API request, served by ``GET /_sim/requests``.

Entries: ``{seq, time, method, path, query, status, idempotency_key, x_idempotency_key,
confirm_delete, body}``: ``seq`` numbers requests in arrival order (from 1), ``time`` is the arrival
time (ISO 8601 UTC), ``query`` a dict (last value wins), ``status`` the answered HTTP status, the
three header fields the raw values of ``Idempotency-Key``, ``X-Idempotency-Key`` and
``X-Confirm-Delete`` (or null), ``body`` the parsed JSON body or null. Authorization and X-API-Key
values are never recorded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
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
    """Append-only list of request entries; :meth:`begin` at arrival, :meth:`finish` with the status."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._seq = 0
        self._entries: list[dict[str, Any]] = []

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
            "body": parse_body(raw_body),
        }

    def finish(self, entry: dict[str, Any], status: int) -> None:
        """Set the answered status and list the entry."""
        entry["status"] = status
        self._entries.append(entry)

    def entries(self) -> list[dict[str, Any]]:
        """Finished entries ordered by ``seq``."""
        return sorted(self._entries, key=lambda e: e["seq"])

    def clear(self) -> None:
        """Drop every entry (sequence numbers keep counting)."""
        self._entries.clear()
