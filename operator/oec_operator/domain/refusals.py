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
from collections.abc import Mapping
from typing import Any

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


def held_back(known: RefusedWrite | None, print_: str) -> OecError | None:
    """The remembered refusal to raise instead of sending the write with fingerprint ``print_``,
    or ``None`` when the write may be sent (nothing refused, or something changed since)."""
    if known is None or known.fingerprint != print_:
        return None
    return error_for(known.status, known.code, known.message, known.field)


def refusal(exc: OecError, request: str, print_: str, now: str) -> RefusedWrite | None:
    """The record of ``exc`` when it refuses the write for good, else ``None`` (a transient
    failure, a 404 or a 409 about a running task are not kept)."""
    kept = isinstance(exc, FOR_GOOD) or (isinstance(exc, OecConflictError) and exc.code == "invalid_state")
    if not kept or exc.status is None:
        return None
    field = exc.field if isinstance(exc, OecValidationError) else None
    return RefusedWrite(request=request, fingerprint=print_, status=exc.status, code=exc.code,
                        message=exc.message, field=field, refused_at=now)
