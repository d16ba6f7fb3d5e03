"""Domain logic: make one OEC.sh environment match one ``OdooEnvironment`` and describe the result.

Knows nothing of Kubernetes or kopf (the handlers translate an :class:`Outcome` into a status
patch and Events) and nothing of HTTP (it calls :class:`~oec_operator.oec.client.OecClient` and
decides on the typed errors of :mod:`oec_operator.oec.errors`).

Flow of :func:`reconcile` (level-based, safe to repeat at any time):

1. no environment id known -> ``POST /projects/{id}/environments`` with an idempotency key derived
   from the resource UID (a repeat after a crash replays the first answer: never a second
   environment, ``oec-api.md`` §7); otherwise ``GET /environments/{id}``;
2. ``PATCH`` the fields (``name``, ``branch``) whose API value differs from the spec;
3. ``GET /environments/{id}/status`` for health and the last deploy;
4. map the environment's status onto the conditions of ``status-contract.md``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from oec_operator import conditions as cond
from oec_operator.conditions import Condition
from oec_operator.oec.client import OecClient
from oec_operator.oec.errors import (
    OecAuthError,
    OecBadRequestError,
    OecConflictError,
    OecError,
    OecNotFoundError,
    OecPaymentRequiredError,
    OecPermissionError,
    OecRateLimitError,
    OecValidationError,
)
from oec_operator.oec.models import TRANSITIONAL_STATES, Environment, EnvironmentHealth
from oec_operator.spec import OdooEnvironmentSpec

#: Longest wait between retries of transient failures, in seconds.
MAX_BACKOFF_SECONDS = 300.0


@dataclass(frozen=True)
class ResourceRef:
    """Identity of the ``OdooEnvironment`` being reconciled."""

    namespace: str
    name: str
    uid: str
    generation: int


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post: ``type`` Normal/Warning, CamelCase ``reason``, human message."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass
class Outcome:
    """What one reconcile found and decided.

    Attributes:
        status: status fields to merge (camelCase; a ``None`` value deletes the field).
        conditions: conditions to set; ``remove``: condition types to delete.
        observed: True when this generation reached Ready=True or Stalled=True, so
            ``status.observedGeneration`` may be set (``status-contract.md`` §1 rule 4).
        events: Events to post.
        next_poll: seconds until the next reconcile is wanted.
        failed: True when an API error (transient or permanent) ended the reconcile.
        transient: True when that error is worth retrying without a user change.
    """

    status: dict[str, Any] = field(default_factory=dict)
    conditions: list[Condition] = field(default_factory=list)
    remove: tuple[str, ...] = ()
    observed: bool = False
    events: list[Event] = field(default_factory=list)
    next_poll: float = 60.0
    failed: bool = False
    transient: bool = False


def idempotency_key(uid: str) -> str:
    """``X-Idempotency-Key`` of the create for the resource with this UID (1-255 characters)."""
    return f"oec-operator-create-{uid}"


def desired_changes(spec: OdooEnvironmentSpec, metadata_name: str, env: Environment) -> dict[str, str]:
    """Fields to PATCH so that ``env`` matches the spec: ``{"name": ..., "branch": ...}`` subsets.

    ``branch`` is enforced only when the spec sets it (``oec-api.md`` §2: PATCH takes name and
    branch; the environment type cannot change).
    """
    changes: dict[str, str] = {}
    name = spec.display_name(metadata_name)
    if env.name != name:
        changes["name"] = name
    if spec.branch is not None and env.branch != spec.branch:
        changes["branch"] = spec.branch
    return changes


def observed_status(env: Environment, health: EnvironmentHealth | None, now: str) -> dict[str, Any]:
    """Status fields mirrored from the API (``oec-api.md`` §9.1, §9.2) in the CRD's camelCase."""
    status: dict[str, Any] = {
        "environmentId": env.id,
        "phase": env.status,
        "url": env.url,
        "odooVersion": env.odoo_version,
        "branch": env.branch,
        "lastCommit": env.last_commit,
        "cpuCores": env.cpu_cores,
        "ramMb": env.ram_mb,
        "diskGb": env.disk_gb,
        "serverId": env.server_id,
        "createdAt": env.created_at,
        "updatedAt": env.updated_at,
        "lastSyncTime": now,
    }
    if health is not None:
        status["health"] = {
            "containerRunning": health.container_running,
            "dbReady": health.db_ready,
            "httpOk": health.http_ok,
        }
        deploy = health.last_deploy
        status["lastDeploy"] = (
            None
            if deploy is None
            else {
                "id": deploy.id,
                "status": deploy.status,
                "startedAt": deploy.started_at,
                "completedAt": deploy.completed_at,
            }
        )
    return status


def assess(env: Environment, health: EnvironmentHealth | None, outcome: Outcome, fast: float, slow: float) -> None:
    """Set ``outcome``'s conditions and next poll from the environment's status (§10).

    Mapping (``status-contract.md`` §3): pending/deploying/cloning -> Ready=False Provisioning +
    Reconciling; running -> Ready=True Available; failed/error -> Ready=False + Stalled DeployFailed;
    stopped/paused -> Ready=False Unavailable; destroying (not requested by us) -> Stalled
    NotFoundExternally; anything else -> Ready=Unknown.
    """
    phase = env.status
    task = health.last_deploy.id if health and health.last_deploy else None
    if phase in TRANSITIONAL_STATES and phase != "destroying":
        detail = f" (task {task})" if task else ""
        outcome.conditions += [
            Condition(cond.READY, "False", "Provisioning", f"OEC.sh environment is {phase}{detail}"),
            Condition(cond.RECONCILING, "True", "Progressing", f"waiting for the environment to leave {phase}"),
        ]
        outcome.remove = (cond.STALLED,)
        outcome.next_poll = fast
    elif phase == "running":
        outcome.conditions.append(
            Condition(cond.READY, "True", "Available", f"environment is running at {env.url or 'its URL'}")
        )
        outcome.remove = (cond.RECONCILING, cond.STALLED)
        outcome.observed = True
        outcome.next_poll = slow
    elif phase in ("failed", "error"):
        message = (
            f"the last deploy of the environment {phase}"
            + (f" (task {task})" if task else "")
            + "; fix the branch or code and redeploy it from OEC.sh"
        )
        outcome.conditions += [
            Condition(cond.READY, "False", "DeployFailed", message),
            Condition(cond.STALLED, "True", "DeployFailed", message),
        ]
        outcome.remove = (cond.RECONCILING,)
        outcome.observed = True
        outcome.next_poll = slow
    elif phase in ("stopped", "paused"):
        outcome.conditions.append(
            Condition(cond.READY, "False", "Unavailable", f"environment is {phase} in OEC.sh; start it there")
        )
        outcome.remove = (cond.RECONCILING, cond.STALLED)
        outcome.next_poll = slow
    elif phase in ("destroying", "deleted"):
        message = f"the environment is {phase} in OEC.sh, outside Kubernetes; delete this resource"
        outcome.conditions += [
            Condition(cond.READY, "False", "NotFoundExternally", message),
            Condition(cond.STALLED, "True", "NotFoundExternally", message),
        ]
        outcome.remove = (cond.RECONCILING,)
        outcome.observed = True
        outcome.next_poll = slow
    else:
        outcome.conditions.append(
            Condition(cond.READY, "Unknown", "UnknownPhase", f"OEC.sh reports an unknown status {phase!r}")
        )
        outcome.remove = (cond.STALLED,)
        outcome.next_poll = fast


def transition_events(previous_phase: str | None, env: Environment, health: EnvironmentHealth | None) -> list[Event]:
    """Events for a change of the environment's status between two reconciles."""
    if previous_phase == env.status:
        return []
    task = health.last_deploy.id if health and health.last_deploy else "unknown"
    if env.status == "running":
        return [Event("Normal", "Deployed", f"environment is running at {env.url} (task {task})")]
    if env.status in ("failed", "error"):
        return [Event("Warning", "DeployFailed", f"deploy task {task} ended with status {env.status}")]
    return []


def retry_delay(exc: OecError, failures: int, base: float) -> float:
    """Seconds before retrying after a transient error.

    A 429 waits exactly what the API said (``oec-api.md`` §6); anything else grows from ``base``
    by doubling per consecutive failure (``failures`` >= 1), capped at 300 s, with +-20 % jitter.
    """
    if isinstance(exc, OecRateLimitError):
        return exc.retry_after
    delay = min(MAX_BACKOFF_SECONDS, base * 2 ** max(0, failures - 1))
    return float(delay * random.uniform(0.8, 1.2))  # noqa: S311 - jitter, not cryptography


def classify(exc: OecError, credentials_hint: str) -> tuple[bool, str, str]:
    """Sort an API failure: ``(transient, reason, message)``.

    Permanent failures need a user change (``Stalled=True``); transient ones are retried.
    Messages name the API's status and code and say what to do, never a body or a key.
    """
    what = f"OEC.sh answered {exc.status} {exc.code}" if exc.status else f"OEC.sh unreachable ({exc.code})"
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
            return False, "PlanLimit", f"{what}: {exc.message}; raise the plan's quota or remove environments"
        where = f" (field {exc.field})" if exc.field else ""
        return False, "InvalidSpec", f"{what}{where}: {exc.message}; fix the spec"
    if isinstance(exc, OecBadRequestError):
        return False, "InvalidSpec", f"{what}: {exc.message}"
    if isinstance(exc, OecRateLimitError):
        return True, "RateLimited", f"{what}: rate limited, retrying in {exc.retry_after:.0f}s"
    if isinstance(exc, OecConflictError):
        return True, "ApiError", f"{what}: {exc.message}; retrying"
    return True, "ApiError", f"{what}: {exc.message}; retrying with backoff"


def error_outcome(
    exc: OecError, *, had_ready: bool, credentials_hint: str, failures: int, fast_poll: float, slow_poll: float
) -> Outcome:
    """Conditions and next poll for a reconcile ended by ``exc`` (``status-contract.md`` §3).

    Transient: ``Reconciling=True`` (``RateLimited``/``ProgressingWithRetry``), Ready untouched
    unless it was never written (then ``Ready=False``), next poll by :func:`retry_delay` with
    ``failures`` (consecutive transient failures, including this one). Permanent: ``Ready=False``
    and ``Stalled=True`` with the same reason, the generation counts as observed, and the next
    poll is a steady one (``slow_poll`` seconds) so fixed credentials are picked up.
    """
    transient, reason, message = classify(exc, credentials_hint)
    next_poll = retry_delay(exc, failures, fast_poll) if transient else slow_poll
    outcome = Outcome(failed=True, transient=transient, next_poll=next_poll)
    if transient:
        reconciling_reason = "RateLimited" if reason == "RateLimited" else "ProgressingWithRetry"
        outcome.conditions.append(Condition(cond.RECONCILING, "True", reconciling_reason, message))
        if not had_ready:
            outcome.conditions.append(Condition(cond.READY, "False", reason, message))
        outcome.remove = (cond.STALLED,)
    else:
        outcome.conditions += [
            Condition(cond.READY, "False", reason, message),
            Condition(cond.STALLED, "True", reason, message),
        ]
        outcome.remove = (cond.RECONCILING,)
        outcome.observed = True
        outcome.events.append(Event("Warning", reason, message))
    return outcome


def stalled_outcome(reason: str, message: str, *, next_poll: float = 60.0) -> Outcome:
    """A reconcile that cannot go on until the user changes something (e.g. missing credentials);
    ``next_poll`` seconds until the next look."""
    return Outcome(
        next_poll=next_poll,
        conditions=[
            Condition(cond.READY, "False", reason, message),
            Condition(cond.STALLED, "True", reason, message),
        ],
        remove=(cond.RECONCILING,),
        observed=True,
        events=[Event("Warning", reason, message)],
        failed=True,
    )


async def reconcile(
    api: OecClient,
    spec: OdooEnvironmentSpec,
    ref: ResourceRef,
    *,
    environment_id: str | None,
    previous_phase: str | None,
    fast_poll: float,
    slow_poll: float,
    now: str,
) -> Outcome:
    """Create or update the environment so that it matches ``spec``, then observe it.

    Args:
        api: client bound to the resource's credentials.
        spec: the parsed spec.
        ref: the resource's identity (the UID keys the create's idempotency).
        environment_id: the OEC id already recorded for this resource, or ``None``.
        previous_phase: ``status.phase`` before this reconcile (for transition Events).
        fast_poll: seconds to the next poll while work is in flight.
        slow_poll: seconds to the next poll when steady.
        now: RFC 3339 time of this reconcile (``status.lastSyncTime``).

    Returns:
        The :class:`Outcome`. A 404 becomes a stalled outcome (unknown project on create,
        ``NotFoundExternally`` for a recorded environment); a failed health read leaves the
        health fields as they were.

    Raises:
        OecError: any other API failure of creating, reading or patching the environment; the
            caller turns it into conditions with :func:`error_outcome`.
    """
    events: list[Event] = []
    if environment_id is None:
        try:
            env = await api.create_environment(
                spec.project_id,
                name=spec.display_name(ref.name),
                environment_type=spec.environment_type,
                branch=spec.branch,
                idempotency_key=idempotency_key(ref.uid),
            )
        except OecNotFoundError:
            return stalled_outcome(
                "InvalidSpec",
                f"OEC.sh project {spec.project_id} does not exist or is not visible to this API key; "
                "fix spec.projectId or the credentials",
                next_poll=slow_poll,
            )
        events.append(Event("Normal", "Created", f"created OEC.sh environment {env.id} ({env.name})"))
    else:
        try:
            env = await api.get_environment(environment_id)
        except OecNotFoundError:
            return environment_gone_outcome(environment_id, next_poll=slow_poll)
    changes = desired_changes(spec, ref.name, env)
    if changes and env.status not in ("destroying", "deleted"):
        env = await api.update_environment(env.id, **changes)
        listed = ", ".join(f"{k}={v}" for k, v in sorted(changes.items()))
        events.append(Event("Normal", "Updated", f"updated OEC.sh environment {env.id}: {listed}"))
    health: EnvironmentHealth | None
    try:
        health = await api.get_environment_status(env.id)
    except OecNotFoundError:
        return environment_gone_outcome(env.id, next_poll=slow_poll)
    except OecError:
        health = None  # health is informative; the environment itself was read fine
    outcome = Outcome(status=observed_status(env, health, now))
    assess(env, health, outcome, fast_poll, slow_poll)
    outcome.events = events + transition_events(previous_phase, env, health)
    return outcome


def environment_gone_outcome(environment_id: str, *, next_poll: float = 60.0) -> Outcome:
    """The recorded environment answers 404: it was deleted outside Kubernetes.

    It is not recreated silently (that could resurrect an environment someone meant to delete);
    the resource stalls with reason ``NotFoundExternally``.
    """
    message = (
        f"OEC.sh environment {environment_id} no longer exists (deleted outside Kubernetes); "
        "delete and re-apply this resource to create a new one"
    )
    outcome = stalled_outcome("NotFoundExternally", message, next_poll=next_poll)
    outcome.status = {"phase": "deleted", "health": None}
    return outcome


async def finalize(api: OecClient, environment_id: str) -> bool:
    """One step of deleting the environment; call until it returns True.

    Reads the environment first so a repeated call never sends a second DELETE while the destroy
    task runs: 404 -> gone (True); ``destroying`` -> still going (False); otherwise
    ``DELETE`` with ``X-Confirm-Delete: true`` (False). A 404 answer to the DELETE means gone; a
    ``409 task_in_progress`` (e.g. the first deploy still runs) means "not yet", and the next
    step tries again (``oec-api.md`` §1 decisions 3 and 19).

    Raises:
        OecError: any other API failure.
    """
    try:
        env = await api.get_environment(environment_id)
    except OecNotFoundError:
        return True
    if env.status == "destroying":
        return False
    try:
        await api.delete_environment(environment_id)
    except OecNotFoundError:
        return True
    except OecConflictError as exc:
        if exc.code != "task_in_progress":
            raise
    return False


def merge_status(
    previous: Mapping[str, Any], outcome: Outcome, generation: int, now: str
) -> dict[str, Any]:
    """The status patch for an outcome: observed fields, merged conditions, observedGeneration."""
    patch = dict(outcome.status)
    patch["conditions"] = cond.merge_conditions(
        previous.get("conditions"), outcome.conditions, generation=generation, now=now, remove=outcome.remove
    )
    if outcome.observed:
        patch["observedGeneration"] = generation
    return patch
