"""``metav1.Condition`` bookkeeping for ``status.conditions`` (``docs/status-contract.md`` §5).

Pure functions over plain dicts, so that the same code serves handlers and tests.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, overload

READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"
PAUSED = "Paused"


def now_rfc3339() -> str:
    """Current UTC time as RFC 3339 with second precision, e.g. ``2026-11-30T10:00:00Z``."""
    return rfc3339(datetime.datetime.now(datetime.UTC))


@overload
def rfc3339(value: datetime.datetime) -> str: ...
@overload
def rfc3339(value: datetime.datetime | None) -> str | None: ...
def rfc3339(value: datetime.datetime | None) -> str | None:
    """``value`` as RFC 3339 UTC with second precision, the form of every time in status (a naive
    one is taken as UTC); ``None`` stays ``None``."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    return value.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str | datetime.datetime | None) -> datetime.datetime | None:
    """An RFC 3339 time (or a ``datetime``) as an aware ``datetime``, a naive one taken as UTC;
    ``None`` when ``value`` is absent or unreadable."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return value.replace(tzinfo=datetime.UTC) if value.tzinfo is None else value


def seconds_since(value: str | None) -> float | None:
    """Seconds from an RFC 3339 time (a naive one taken as UTC) to now; ``None`` when ``value`` is
    absent or unreadable."""
    parsed = parse_time(value)
    return None if parsed is None else (datetime.datetime.now(datetime.UTC) - parsed).total_seconds()


@dataclass(frozen=True)
class Condition:
    """One desired condition: ``type``, ``status`` (``"True"``/``"False"``/``"Unknown"``),
    a CamelCase ``reason`` and a human ``message`` (no API bodies, no secrets)."""

    type: str
    status: str
    reason: str
    message: str


def stalled(reason: str, message: str) -> list[Condition]:
    """``Ready=False`` and ``Stalled=True`` with one reason and message: the user must act."""
    return [Condition(READY, "False", reason, message), Condition(STALLED, "True", reason, message)]


def merge_conditions(
    previous: Iterable[Mapping[str, Any]] | None,
    desired: Iterable[Condition],
    *,
    generation: int | None,
    now: str | None = None,
    remove: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """Merge desired conditions into the previous list.

    ``lastTransitionTime`` is kept when a condition's status did not change; every written
    condition gets ``observedGeneration = generation``. Conditions named in ``remove`` are dropped
    (kstatus: abnormal-true conditions are absent when not abnormal); others are kept unchanged.

    Args:
        previous: the current ``status.conditions`` list (may be ``None``).
        desired: conditions to set.
        generation: ``metadata.generation`` the conditions were computed for.
        now: RFC 3339 timestamp to use for transitions (defaults to the current time).
        remove: condition types to delete.

    Returns:
        The new list, ordered Ready, Reconciling, Stalled, then any other type.
    """
    now = now or now_rfc3339()
    by_type: dict[str, dict[str, Any]] = {str(c.get("type")): dict(c) for c in previous or [] if c.get("type")}
    for cond in desired:
        old = by_type.get(cond.type)
        changed = old is None or old.get("status") != cond.status
        entry: dict[str, Any] = {
            "type": cond.type,
            "status": cond.status,
            "reason": cond.reason,
            "message": cond.message[:32768],
            "lastTransitionTime": now if changed or old is None else old.get("lastTransitionTime", now),
        }
        if generation is not None:
            entry["observedGeneration"] = generation
        by_type[cond.type] = entry
    for name in remove:
        by_type.pop(name, None)
    order = {READY: 0, RECONCILING: 1, STALLED: 2, PAUSED: 3}
    return sorted(by_type.values(), key=lambda c: (order.get(c["type"], 9), c["type"]))


def find(conditions: Iterable[Mapping[str, Any]] | None, type_: str) -> Mapping[str, Any] | None:
    """The condition of the given type, or ``None``."""
    return next((c for c in conditions or [] if c.get("type") == type_), None)
