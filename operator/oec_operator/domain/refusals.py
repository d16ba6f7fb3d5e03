"""A write the API refused for good is not sent again until something changes
(``docs/reconciliation.md``, Refused writes).

A 401, 402 or 403 (a read-only key, a blocked subscription, a plan limit), a 400 or a 422 answer
to a create, PATCH or deploy does not change by itself, and neither does a 409 ``invalid_state``
while the environment stays in the same phase: sending the same write again only spends the key's
write budget. The refusal is kept in ``status.refusedWrite`` (so it survives a restart) with a
fingerprint of the write (method, path, body, the environment's phase) and of what could make it
succeed: a digest of the API key (never the key), the spec's generation and the request
annotations. While a reconcile would send a write with the same fingerprint, the write is held
back and the remembered answer is raised again, so the resource keeps the same condition and
reads go on; any change makes a new fingerprint, and the write is sent once more.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from oec_operator.models.requests import Requests
from oec_operator.models.status import RefusedWrite
from oec_operator.oec.errors import (
    OecAuthError,
    OecBadRequestError,
    OecConflictError,
    OecError,
    OecPaymentRequiredError,
    OecPermissionError,
    OecValidationError,
    error_for,
)

T = TypeVar("T")

#: Answers that a repeat of the same write gets again (``docs/oec-api.md`` §5.3).
FOR_GOOD = (OecAuthError, OecPaymentRequiredError, OecPermissionError, OecBadRequestError, OecValidationError)


def fingerprint(request: str, body: Mapping[str, Any], key_id: str, generation: int, requests: Requests) -> str:
    """A digest of one write and of what could make a refused one succeed.

    Args:
        request: method and path, e.g. ``"POST /environments/env-1/deploy"``.
        body: what else identifies the write (its body, the environment's phase).
        key_id: :attr:`oec_operator.oec.client.OecClient.key_id` (a digest, never the key).
        generation: the resource's ``metadata.generation``.
        requests: its request annotations (reconcile, redeploy and recreate tokens count).
    """
    parts = [request, json.dumps(body, sort_keys=True, default=str), key_id, str(generation),
             requests.reconcile_token or "", requests.redeploy_token or "", requests.recreate_token or ""]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


#: Refusals that a read can show lifted: a quota freed shows in the project's environments.
SITUATIONAL = frozenset({"quota_exceeded"})


@dataclass(frozen=True)
class Prints:
    """The fingerprints of one write: ``plain`` (:func:`fingerprint`) and, when the caller knows
    what the API's situation looked like (the project's environments before a create),
    ``situational``, which also covers that. A :data:`SITUATIONAL` refusal is remembered by the
    situational one, so a change there lets the write go out again; any other by the plain one,
    so a read-only key is not tried again because an unrelated environment appeared."""

    plain: str
    situational: str | None = None

    def matches(self, known: str) -> bool:
        """Whether a refusal remembered with fingerprint ``known`` applies to this write."""
        return known in (self.plain, self.situational)

    def of(self, exc: OecError) -> str:
        """The fingerprint to remember ``exc`` by."""
        return self.situational if self.situational and exc.code in SITUATIONAL else self.plain


def prints(request: str, body: Mapping[str, Any], key_id: str, generation: int, requests: Requests,
           situation: Any = None) -> Prints:
    """:class:`Prints` of a write; ``situation`` (JSON-able) is what a read showed, ``None``: nothing."""
    plain = fingerprint(request, body, key_id, generation, requests)
    if situation is None:
        return Prints(plain)
    return Prints(plain, fingerprint(request, {"write": body, "situation": situation}, key_id, generation, requests))


def held_back(known: RefusedWrite | None, print_: Prints) -> OecError | None:
    """The remembered refusal to raise instead of sending the write with fingerprints ``print_``,
    or ``None`` when the write may be sent (nothing refused, or something changed since)."""
    if known is None or not print_.matches(known.fingerprint):
        return None
    return error_for(known.status, known.code, known.message, known.field)


def for_good(exc: OecError) -> bool:
    """Whether ``exc`` refuses a write for good: a repeat gets the same answer until something
    changes (a 401, 402, 403, 400 or 422, or a 409 ``invalid_state`` in the same phase)."""
    kept = isinstance(exc, FOR_GOOD) or (isinstance(exc, OecConflictError) and exc.code == "invalid_state")
    return kept and exc.status is not None


def refusal(exc: OecError, request: str, print_: Prints, now: str) -> RefusedWrite | None:
    """The record of ``exc`` when it refuses the write for good, else ``None`` (a transient
    failure, a 404 or a 409 about a running task are not kept)."""
    if not for_good(exc):
        return None
    assert exc.status is not None  # for_good answers are HTTP answers
    field = exc.field if isinstance(exc, OecValidationError) else None
    return RefusedWrite(request=request, fingerprint=print_.of(exc), status=exc.status, code=exc.code,
                        message=exc.message, field=field, refused_at=now)


async def send_unless_refused(known: RefusedWrite | None, print_: Prints, request: str, now: str,
                              send: Callable[[], Awaitable[T]],
                              record: Callable[[RefusedWrite], Awaitable[object]]) -> T:
    """Send a write (``send()``) unless ``known`` refused the same fingerprint ``print_``; a new
    refusal for good is handed to ``record`` (which keeps it in ``status.refusedWrite``) before it
    is raised.

    Raises:
        OecError: the API's answer, or the remembered one (nothing sent).
    """
    remembered = held_back(known, print_)
    if remembered is not None:
        raise remembered
    try:
        return await send()
    except OecError as exc:
        refused = refusal(exc, request, print_, now)
        if refused is not None:
            await record(refused)
        raise
