"""Day-2 writes that stall only their own field: a size, the domain, a power action, a restart or
a requested deploy (``docs/reconciliation.md``, Refused writes).

A name or branch PATCH, a create or a deploy the API refuses for good ends the reconcile
(:meth:`oec_operator.domain.reconcile.Context.attempt`). The day-2 writes do not: an older API
that does not know ``domain``, or a plan that caps RAM, must not keep the branch from being
deployed. Each such write is sent through :class:`FieldWrites`: a refusal for good
(:func:`oec_operator.domain.refusals.for_good`, or 409 ``domain_in_use``) is kept in
``status.refusedFields`` (one entry per write, with the same fingerprint rules as
``status.refusedWrite``), the write is not sent again until something changes, and the reconcile
goes on; the resource reports ``Stalled`` with reason ``FieldRefused`` and the API's message.
A 409 ``domain_in_use`` depends on another environment, which may let the domain go without
anything changing here: it is sent again once ``retry_after`` seconds (the steady interval)
passed since it was refused, at most one write per interval.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from oec_operator.domain import refusals
from oec_operator.models.conditions import seconds_since
from oec_operator.models.requests import Requests
from oec_operator.models.status import RefusedWrite
from oec_operator.oec.errors import OecConflictError, OecError

T = TypeVar("T")

#: 409 codes that refuse a day-2 write until something changes (``docs/oec-api.md`` §5.4).
KEPT_CONFLICTS = frozenset({"domain_in_use"})


@dataclass
class FieldWrites:
    """The day-2 writes of one reconcile and their refusals.

    Attributes:
        remembered: ``status.refusedFields`` as the reconcile found it.
        key_id / generation / requests: what a write's fingerprint covers besides the write
            (:func:`oec_operator.domain.refusals.fingerprint`).
        now: RFC 3339 time of the reconcile (``refusedAt`` of a new refusal).
        refused: the writes refused in this reconcile, new or held back, by request.
        invalid: requests the operator refused itself (a missing confirmation), as messages.
        retry_after: seconds after which a :data:`KEPT_CONFLICTS` refusal is sent again
            (``None``: only after a change).
    """

    remembered: tuple[RefusedWrite, ...]
    key_id: str
    generation: int
    requests: Requests
    now: str
    refused: dict[str, RefusedWrite] = field(default_factory=dict)
    invalid: list[str] = field(default_factory=list)
    retry_after: float | None = None

    async def send(self, request: str, body: Mapping[str, Any], send: Callable[[], Awaitable[T]]) -> T | None:
        """Send one write (``send()``) unless the same write was refused for good with nothing
        changed since.

        Args:
            request: what the write is, e.g. ``"PATCH /environments/{id} ram_mb"`` (one per field).
            body: the rest of what identifies it (its body, the phase it was sent in).

        Returns:
            The API's answer, or ``None`` when the write is refused (now or, held back, before).

        Raises:
            OecError: any other failure (transient ones end the reconcile and are retried).
        """
        print_ = refusals.prints(request, body, self.key_id, self.generation, self.requests)
        known = next((r for r in self.remembered if r.request == request), None)
        if known is not None and refusals.held_back(known, print_) is not None and not self._lapsed(known):
            self.refused[request] = known
            return None
        try:
            return await send()
        except OecError as exc:
            kept = refusals.refusal(exc, request, print_, self.now)
            if kept is None and isinstance(exc, OecConflictError) and exc.code in KEPT_CONFLICTS and exc.status:
                kept = RefusedWrite(request=request, fingerprint=print_.plain, status=exc.status, code=exc.code,
                                    message=exc.message, refused_at=self.now)
            if kept is None:
                raise
            self.refused[request] = kept
            return None

    def _lapsed(self, known: RefusedWrite) -> bool:
        """Whether a refusal that depends on other environments is old enough to try again."""
        age = seconds_since(known.refused_at)
        return (known.code in KEPT_CONFLICTS and self.retry_after is not None and age is not None
                and age >= self.retry_after)

    def remembers(self, request: str) -> bool:
        """Whether a refusal of ``request`` is remembered from an earlier reconcile."""
        return any(r.request == request for r in self.remembered)

    def hold(self, request: str, body: Mapping[str, Any], status: int, code: str, message: str) -> None:
        """Keep ``request`` with ``body`` from being sent until something changes, as if refused
        with this answer (e.g. the task it would start again just ended failed)."""
        print_ = refusals.prints(request, body, self.key_id, self.generation, self.requests)
        self.refused[request] = RefusedWrite(request=request, fingerprint=print_.plain, status=status, code=code,
                                             message=message, refused_at=self.now)

    def status(self) -> tuple[RefusedWrite, ...] | None:
        """``status.refusedFields`` after this reconcile (``None``: none refused)."""
        return tuple(self.refused.values()) or None

    def message(self) -> str | None:
        """What the API said of each refused write, for the ``FieldRefused`` condition."""
        if not self.refused:
            return None
        parts = [f"{r.request}: OEC.sh answered {r.status} {r.code}" + (f" ({r.message.rstrip('. ')})" if r.message
                                                                          else "")
                 for r in self.refused.values()]
        return ("; ".join(parts) + "; the other fields are applied. Change the spec (or the API key or plan); "
                "a refused write is not sent again until something changes")
