"""How failures become conditions and retry delays (``docs/status-contract.md`` §3, ``docs/oec-api.md`` §5, §6).

Transient failures (429, 5xx, timeouts, connection errors, 409 conflicts) are retried: a 429 waits
exactly as long as the API says, the others back off exponentially with jitter. Failures that need
a user change (bad credentials, validation, plan limits, ownership conflicts) stall the resource.
"""

from __future__ import annotations

import random

from oec_operator.domain.outcome import Event, Outcome
from oec_operator.models import conditions as cond
from oec_operator.models.conditions import Condition
from oec_operator.oec.errors import (
    OecAuthError,
    OecBadRequestError,
    OecConflictError,
    OecError,
    OecPaymentRequiredError,
    OecPermissionError,
    OecRateLimitError,
    OecValidationError,
)

#: Longest wait between retries of transient failures, in seconds.
MAX_BACKOFF_SECONDS = 300.0


def backoff(base: float, failures: int) -> float:
    """``base`` seconds doubled per consecutive failure after the first, capped at 300 s (no
    overflow however long an outage lasts)."""
    return min(MAX_BACKOFF_SECONDS, base * 2.0 ** min(max(0, failures - 1), 30))


def retry_delay(exc: OecError, failures: int, base: float) -> float:
    """Seconds before retrying after a transient error.

    A 429 waits what the API said (``docs/oec-api.md`` §6), plus up to 10 % (at most 3 s) so that
    resources limited together do not all retry in the same second; anything else grows from
    ``base`` by doubling per consecutive failure (``failures`` >= 1), capped at 300 s, with +-20 %
    jitter.
    """
    if isinstance(exc, OecRateLimitError):
        return exc.retry_after + random.uniform(0, min(3.0, exc.retry_after * 0.1))  # noqa: S311
    delay = backoff(base, failures)
    return float(delay * random.uniform(0.8, 1.2))  # noqa: S311 - jitter, not cryptography


def classify(exc: OecError, credentials_hint: str) -> tuple[bool, str, str]:
    """Sort an API failure: ``(transient, reason, message)``.

    Messages name the API's status and code and say what to do, never a body or a key.
    """
    what = f"OEC.sh answered {exc.status} {exc.code}" if exc.status else f"OEC.sh unreachable ({exc.code})"
    detail = exc.message.rstrip(". ")  # joined to advice with "; "
    if isinstance(exc, OecAuthError):
        return False, "AuthFailed", f"{what}: the API key was refused; fix {credentials_hint}"
    if isinstance(exc, OecPermissionError):
        if exc.code == "plan_feature_required":
            return False, "PlanLimit", f"{what}: the OEC.sh plan does not include the public API"
        return False, "AuthFailed", f"{what}: the API key may not do this; use a full-access key in {credentials_hint}"
    if isinstance(exc, OecPaymentRequiredError):
        return False, "PlanLimit", f"{what}: the OEC.sh subscription is blocked; settle it in the dashboard"
    if isinstance(exc, OecValidationError):
        if exc.code == "quota_exceeded":
            return False, "PlanLimit", f"{what}: {detail}; raise the plan's quota or remove environments"
        where = f" (field {exc.field})" if exc.field else ""
        return False, "InvalidSpec", f"{what}{where}: {detail}; fix the spec"
    if isinstance(exc, OecBadRequestError):
        return False, "InvalidSpec", f"{what}: {detail}"
    if isinstance(exc, OecRateLimitError):
        return True, "RateLimited", f"{what}: rate limited, retrying in {exc.retry_after:.0f}s"
    if isinstance(exc, OecConflictError):
        return True, "ApiError", f"{what}: {detail}; retrying"
    return True, "ApiError", f"{what}: {detail}; retrying with backoff"


#: Said of a write refused for good (``docs/reconciliation.md``, Refused writes).
NOT_AGAIN = ("; this write is not sent again until the API key, the spec, the project's environments or the "
             "annotation oec.sh/reconcile-requested-at changes")


def error_outcome(
    exc: OecError, *, had_ready: bool, credentials_hint: str, failures: int, fast_poll: float, slow_poll: float,
    refused_write: bool = False,
) -> Outcome:
    """Conditions and next poll for a reconcile ended by ``exc`` (``docs/status-contract.md`` §3).

    Transient: ``Reconciling=True`` (``RateLimited``/``ProgressingWithRetry``), Ready untouched
    unless it was never written (then ``Ready=False``), next poll by :func:`retry_delay` with
    ``failures`` (consecutive transient failures, including this one). Permanent: ``Ready=False``
    and ``Stalled=True`` with the same reason, the generation counts as observed, and the next
    poll is a steady one (``slow_poll`` seconds) so fixed credentials are picked up;
    ``refused_write``: ``exc`` refused a write that is held back now, the message says until when.
    """
    transient, reason, message = classify(exc, credentials_hint)
    if not transient:
        return stalled_outcome(reason, message + (NOT_AGAIN if refused_write else ""), next_poll=slow_poll)
    outcome = Outcome(failed=True, transient=True, next_poll=retry_delay(exc, failures, fast_poll))
    reconciling_reason = "RateLimited" if reason == "RateLimited" else "ProgressingWithRetry"
    outcome.conditions.append(Condition(cond.RECONCILING, "True", reconciling_reason, message))
    if not had_ready:
        outcome.conditions.append(Condition(cond.READY, "False", reason, message))
    outcome.remove = (cond.STALLED,)
    return outcome


def stalled_outcome(reason: str, message: str, *, next_poll: float = 60.0) -> Outcome:
    """A reconcile that cannot go on until the user changes something: ``Ready=False`` and
    ``Stalled=True`` with ``reason``, a Warning Event, next look in ``next_poll`` seconds."""
    return Outcome(
        next_poll=next_poll,
        conditions=cond.stalled(reason, message),
        remove=(cond.RECONCILING,),
        observed=True,
        events=[Event("Warning", reason, message)],
        failed=True,
    )
