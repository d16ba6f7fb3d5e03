"""Fault injection for public-API requests (oec-api.md §1 row 29: 402, 5xx produced by fault injection).

A :class:`Fault` answers the next ``count`` matching API requests (after authentication and rate
limiting) with ``status`` and error ``code`` instead of running the handler. Matching is by route name
(see :class:`~oec_operator.simulator.config.SimulatorConfig` ``latency``) and/or HTTP method; unset
means any.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .errors import ApiError

_DEFAULT_CODES = {
    402: "subscription_blocked",
    500: "internal_error",
    502: "server_unreachable",
    503: "enqueue_failed",
    504: "docker_timeout",
}


class Fault(BaseModel):
    """One injected failure: ``status`` (400-599), ``code`` (default per status), ``message``,
    ``count`` (≥ 1 requests), optional ``route``/``method`` filters, optional ``retry_after`` (s,
    sent as ``Retry-After`` header and body ``retry_after``)."""

    model_config = ConfigDict(extra="forbid")

    status: int = Field(ge=400, le=599)
    code: str | None = None
    message: str = "Injected failure."
    count: int = Field(1, ge=1)
    route: str | None = None
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] | None = None
    retry_after: int | None = Field(None, ge=0)

    def matches(self, route: str | None, method: str) -> bool:
        """Whether this fault applies to a request of ``route`` name and ``method``."""
        return (self.route is None or self.route == route) and (self.method is None or self.method == method)

    def to_error(self) -> ApiError:
        """The :class:`ApiError` this fault answers with."""
        code = self.code or _DEFAULT_CODES.get(self.status, "injected_error")
        extras: dict[str, object] = {}
        headers: dict[str, str] = {}
        if self.retry_after is not None:
            extras["retry_after"] = self.retry_after
            headers["Retry-After"] = str(self.retry_after)
        return ApiError(self.status, code, self.message, extras=extras, headers=headers)


class FaultInjector:
    """Queue of pending faults, consumed first-match-first."""

    def __init__(self) -> None:
        self.pending: list[Fault] = []

    def add(self, fault: Fault) -> None:
        """Queue a fault."""
        self.pending.append(fault)

    def clear(self) -> None:
        """Drop every pending fault."""
        self.pending.clear()

    def take(self, route: str | None, method: str) -> ApiError | None:
        """Consume one use of the first matching fault and return its error, or ``None``."""
        for fault in self.pending:
            if fault.matches(route, method):
                fault.count -= 1
                if fault.count <= 0:
                    self.pending.remove(fault)
                return fault.to_error()
        return None
