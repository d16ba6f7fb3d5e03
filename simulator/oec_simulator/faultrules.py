"""Shapes of injected faults and outages (docs/oec-api.md §1 rows 8, 19, 29; §5.3, §5.4; §6; §7).

A :class:`FaultRule` is what ``POST /_sim/faults``, ``--fault`` and the config field ``faults``
accept. Every rule has a ``kind``:

* ``error`` — answer ``status`` (400-599) with error ``code`` (default per status: 500
  ``internal_error``, 502 ``server_unreachable``, 503 ``enqueue_failed``, 504 ``docker_timeout``,
  402 ``subscription_blocked``) and optional ``retry_after`` (s; ``Retry-After`` header and body).
* ``reset`` — close the TCP connection with a reset (RST) and no answer.
* ``timeout`` — hold the request ``hold_seconds`` (wall-clock seconds, default 35: longer than the
  vendor client's 30 s timeout, §3), then close the connection without an answer.
* ``rate_limit`` — 429 ``rate_limit_exceeded`` in one of the three documented forms (``hint``):
  ``full`` = ``Retry-After`` + ``X-RateLimit-Limit``/``-Remaining: 0``/``-Window: 60`` + body
  ``retry_after``; ``body_only`` = body ``retry_after``, no headers; ``none`` = no hint at all.
  ``retry_after`` (s) defaults to what is left of the rule's window, else 1. The request does not
  consume the key's budget (as a real 429).
* ``conflict`` — 409 ``task_in_progress`` (body ``task_id``: the given one, else the environment's
  active task, else a made-up UUID) or 409 ``concurrent_action`` (``code``).

``when``: ``before`` (default) answers instead of running the handler, nothing changes;
``after`` (``error``, ``reset``, ``timeout`` only) runs the handler first, so the change happens
(an environment is created, an idempotent answer is cached, §7) but the client never sees its answer.

Which requests: ``route`` (logical route name, e.g. ``create_environment``, ``deploy``,
``environment_status``; see ``endpoints.ENDPOINTS``) and ``method``; unset = any. How many: ``count`` (≥ 1,
remaining uses; decremented when the rule fires), ``share`` (probability 0..1 per matching request,
drawn from a RNG seeded by the fault seed and the rule id, so runs are reproducible), and a window
(``start``/``until`` epoch seconds of the simulator clock, or ``after_seconds``/``seconds`` relative to
when the rule is installed). With none of ``count``, ``share``, ``seconds``, ``until`` a rule fires
once (``count: 1``, the original ``/_sim/faults`` behaviour); with a share or a window and no count it
fires until the window ends or the rule is deleted.

Faults apply to authenticated public-API requests after the key's rate limit (§6), so other keys'
and admin requests are never affected. An :class:`OutageSpec` (``POST /_sim/outage``,
``--outage-seconds``) instead answers *every* public-API request 503 (or resets it) for a window,
before authentication. State survives every fault: it is the answer that is lost, not the data.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .endpoints import ROUTE_NAMES

FaultKind = Literal["error", "reset", "timeout", "rate_limit", "conflict"]
HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]

#: Default error code per injected status (§5.3, §5.4).
DEFAULT_CODES = {
    402: "subscription_blocked",
    500: "internal_error",
    502: "server_unreachable",
    503: "enqueue_failed",
    504: "docker_timeout",
}
#: Fields that only make sense for one kind: field → kinds allowing it.
_KIND_FIELDS: dict[str, tuple[str, ...]] = {
    "status": ("error",),
    "message": ("error", "conflict", "rate_limit"),
    "retry_after": ("error", "rate_limit"),
    "hint": ("rate_limit",),
    "task_id": ("conflict",),
    "hold_seconds": ("timeout",),
    "code": ("error", "conflict"),
}
_CONFLICT_CODES = ("task_in_progress", "concurrent_action")


class _Window(BaseModel):
    """A time window: absolute ``start``/``until`` (epoch s, simulator clock) or ``after_seconds``/
    ``seconds`` relative to installation; :meth:`resolve` turns the relative form into the absolute one."""

    after_seconds: float | None = Field(None, ge=0)
    seconds: float | None = Field(None, gt=0)
    start: float | None = None
    until: float | None = None

    @model_validator(mode="after")
    def _one_form(self) -> Self:
        if self.start is not None and self.after_seconds is not None:
            raise ValueError("give start (epoch seconds) or after_seconds (from now), not both")
        if self.until is not None and self.seconds is not None:
            raise ValueError("give until (epoch seconds) or seconds (duration), not both")
        if self.start is not None and self.until is not None and self.until <= self.start:
            raise ValueError("until must be after start")
        return self

    def resolve(self, now: float) -> None:
        """Fix ``start``/``until`` from ``now`` (epoch s); relative fields are cleared."""
        if self.start is None:
            self.start = now + (self.after_seconds or 0.0)
        if self.until is None and self.seconds is not None:
            self.until = self.start + self.seconds
        self.after_seconds = None
        self.seconds = None

    def in_window(self, now: float) -> bool:
        """Whether ``now`` lies in ``[start, until)`` (after :meth:`resolve`)."""
        return (self.start is None or now >= self.start) and (self.until is None or now < self.until)


class FaultRule(_Window):
    """One fault rule (module docstring). ``id`` and ``fired`` are set by the simulator."""

    model_config = ConfigDict(extra="forbid")

    id: int | None = None
    kind: FaultKind = "error"
    when: Literal["before", "after"] = "before"
    route: str | None = None
    method: HttpMethod | None = None
    count: int | None = Field(None, ge=1)
    share: float | None = Field(None, ge=0, le=1)
    status: int | None = Field(None, ge=400, le=599)
    code: str | None = Field(None, min_length=1, max_length=100)
    message: str | None = Field(None, max_length=1000)
    retry_after: int | None = Field(None, ge=0)
    hint: Literal["full", "body_only", "none"] | None = None
    task_id: uuid.UUID | None = None
    hold_seconds: float | None = Field(None, ge=0, le=3600)
    fired: int = 0

    @field_validator("method", mode="before")
    @classmethod
    def _upper_method(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("route")
    @classmethod
    def _known_route(cls, value: str | None) -> str | None:
        if value is not None and value not in ROUTE_NAMES:
            known = ", ".join(sorted(ROUTE_NAMES))
            raise ValueError(f"unknown route {value!r}; known routes: {known}")
        return value

    @model_validator(mode="after")
    def _fields_fit_kind(self) -> Self:
        for name, kinds in _KIND_FIELDS.items():
            if getattr(self, name) is not None and self.kind not in kinds:
                raise ValueError(f"{name} does not apply to kind={self.kind} (only {', '.join(kinds)})")
        if self.kind == "error" and self.status is None:
            raise ValueError("kind=error needs a status (400-599)")
        if self.kind == "conflict" and self.code is not None and self.code not in _CONFLICT_CODES:
            raise ValueError(f"kind=conflict code must be one of {', '.join(_CONFLICT_CODES)}")
        if self.when == "after" and self.kind not in ("error", "reset", "timeout"):
            raise ValueError("when=after applies to kind error, reset and timeout only")
        if self.count is None and self.share is None and self.seconds is None and self.until is None:
            self.count = 1
        return self

    def matches(self, route: str | None, method: str) -> bool:
        """Whether this rule's filters select a request of ``route`` name and ``method``."""
        return (self.route is None or self.route == route) and (self.method is None or self.method == method)


#: The original name of a fault (``POST /_sim/faults`` bodies without ``kind`` are ``error`` rules).
Fault = FaultRule


class OutageSpec(_Window):
    """An API outage: for the window (``seconds`` from now or after ``after_seconds``, or ``start``/
    ``until`` epoch seconds) every public-API request answers 503 ``service_unavailable`` *(sim)*
    (with ``Retry-After`` if ``retry_after`` is set) or, with ``mode: "reset"``, has its connection
    reset. Needs ``seconds`` or ``until``."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["503", "reset"] = "503"
    retry_after: int | None = Field(None, ge=0)

    @field_validator("mode", mode="before")
    @classmethod
    def _mode_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

    @model_validator(mode="after")
    def _bounded(self) -> Self:
        if self.seconds is None and self.until is None:
            raise ValueError("an outage needs seconds (duration) or until (epoch seconds)")
        if self.mode == "reset" and self.retry_after is not None:
            raise ValueError("retry_after applies to mode 503 only")
        return self
