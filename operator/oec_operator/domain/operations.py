"""Day-2 state in the status: power state, the running task, a pending size, the custom domain and
writes refused per field, on top of what :func:`oec_operator.domain.assess.assess` made of the
phase (``docs/status-contract.md`` §3). Pure functions.

- A task of the operator's running (start, stop, restart, quick update): ``Ready=False`` and
  ``Reconciling=True`` with ``Starting``/``Stopping``/``Restarting``/``Updating``.
- An ``OdooRestore`` of the environment running: ``Ready=False`` and ``Reconciling=True`` reason
  ``Restoring`` (``docs/backups.md`` §3).
- Stopped as ``spec.powerState: Stopped`` asks: ``Ready=True`` reason ``Stopped`` (kstatus Current,
  Argo CD Healthy). Running while it asks for ``Stopped`` (or the reverse): not ready yet.
- ``paused`` is set by OEC.sh, not by the user: ``Ready=False`` reason ``PlatformPaused``.
- A size sent that applies on restart: ``Ready=False``/``Reconciling=True`` reason ``Resizing``; one
  that applies at the next deploy: ``ResizePending=True``.
- ``DomainVerified`` from ``custom_domain_verified``; another resource claiming the same domain:
  ``Stalled`` reason ``Conflict``.
- Writes refused per field: ``Stalled`` reason ``FieldRefused`` (``InvalidSpec`` for a request the
  operator refuses itself), the other fields still applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from oec_operator.domain.outcome import Event, Outcome
from oec_operator.domain.resources import mirrored_size
from oec_operator.models import conditions as cond
from oec_operator.models.conditions import Condition
from oec_operator.models.spec import OdooEnvironmentSpec
from oec_operator.models.status import PendingResources, Status, TaskRef
from oec_operator.oec.models import Environment

RESIZE_PENDING = "ResizePending"
DOMAIN_VERIFIED = "DomainVerified"

#: ``Ready``/``Reconciling`` reason while each of the operator's tasks runs.
TASK_REASONS = {"start": "Starting", "stop": "Stopping", "restart": "Restarting", "quick_update": "Updating",
                "other": "TaskRunning"}
#: ``status.powerState`` while a task runs, else by phase.
TASK_POWER = {"start": "Starting", "stop": "Stopping", "restart": "Restarting"}
PHASE_POWER = {"running": "Running", "stopped": "Stopped", "paused": "Paused"}


@dataclass(frozen=True)
class Day2:
    """What one reconcile settled of the day-2 fields.

    Attributes:
        task: ``status.task`` after the reconcile (a task still running), or ``None``.
        pending: ``status.pendingResources`` after the reconcile, or ``None``.
        refused: the message of writes refused per field, or ``None``.
        invalid: the message of requests the operator refused itself, or ``None``.
        domain_claimed_by: ``namespace/name`` of the resource that has the domain, or ``None``.
        domain_refused: the API refused the domain PATCH (``status.refusedFields``).
        restoring: what restores the environment now (an ``OdooRestore``), or ``None``.
    """

    task: TaskRef | None = None
    pending: PendingResources | None = None
    refused: str | None = None
    invalid: str | None = None
    domain_claimed_by: str | None = None
    domain_refused: bool = False
    restoring: str | None = None


def power_state(env: Environment, task: TaskRef | None) -> str | None:
    """``status.powerState``: ``Starting``/``Stopping``/``Restarting`` while that task runs, else
    ``Running``/``Stopped``/``Paused`` by phase, else ``None`` (removed)."""
    if task is not None and task.action in TASK_POWER:
        return TASK_POWER[task.action]
    return PHASE_POWER.get(env.status)


def _ready(outcome: Outcome) -> Condition | None:
    return next((c for c in outcome.conditions if c.type == cond.READY), None)


def _not_ready(outcome: Outcome, reason: str, message: str, *, reconciling: bool, fast: float) -> None:
    outcome.conditions = [c for c in outcome.conditions if c.type not in (cond.READY, cond.RECONCILING)]
    outcome.conditions.append(Condition(cond.READY, "False", reason, message))
    if reconciling:
        outcome.conditions.append(Condition(cond.RECONCILING, "True", reason, message))
        outcome.remove = tuple(t for t in (*outcome.remove, cond.STALLED) if t != cond.RECONCILING)
        outcome.observed = False
        outcome.next_poll = min(outcome.next_poll, fast)
    else:
        outcome.remove = tuple({*outcome.remove, cond.RECONCILING, cond.STALLED})


def _power(spec: OdooEnvironmentSpec, env: Environment, day2: Day2, outcome: Outcome, fast: float) -> None:
    """Ready and Reconciling for the power state, a running task and a size waiting for a restart."""
    ready = _ready(outcome)
    if ready is not None and day2.restoring and env.status not in ("deleted", "destroying"):
        _not_ready(outcome, "Restoring", f"{day2.restoring} is restoring a backup into the environment; "
                   "nothing else is sent to it meanwhile", reconciling=True, fast=fast)
        return
    if ready is None or ready.reason not in ("Available", "Unavailable"):
        return  # the phase says more (in flight, failed, deleted, a deploy owed)
    task, phase = day2.task, env.status
    if task is not None:
        _not_ready(outcome, TASK_REASONS.get(task.action, "TaskRunning"),
                   f"task {task.id} is running: {task.reason}", reconciling=True, fast=fast)
    elif phase == "paused":
        _not_ready(outcome, "PlatformPaused", "OEC.sh paused the environment (the platform, e.g. a quota or billing "
                   "limit, not spec.powerState); resolve it in the OEC.sh dashboard; the operator does not start it",
                   reconciling=False, fast=fast)
    elif spec.observe_only:
        return
    elif phase == "stopped" and spec.power_state == "Stopped":
        outcome.conditions = [c for c in outcome.conditions if c.type != cond.READY]
        outcome.conditions.append(Condition(cond.READY, "True", "Stopped",
                                            "environment is stopped, as spec.powerState asks"))
    elif phase == "stopped":
        _not_ready(outcome, "Starting", "environment is stopped; starting it (spec.powerState: Running)",
                   reconciling=True, fast=fast)
    elif phase == "running" and spec.power_state == "Stopped":
        _not_ready(outcome, "Stopping", "environment is running; stopping it (spec.powerState: Stopped)",
                   reconciling=True, fast=fast)
    elif day2.pending is not None and day2.pending.applies_on == "Restart":
        _not_ready(outcome, "Resizing", "the new size applies when the environment restarts", reconciling=True,
                   fast=fast)


def _domain(spec: OdooEnvironmentSpec, env: Environment, day2: Day2, outcome: Outcome) -> None:
    """``DomainVerified`` while ``spec.domain`` names a custom domain; removed otherwise."""
    want = spec.domain
    if not want:
        outcome.remove = (*outcome.remove, DOMAIN_VERIFIED)
        return
    if day2.domain_claimed_by:
        outcome.conditions.append(Condition(DOMAIN_VERIFIED, "False", "Conflict",
                                            f"{want} is claimed by OdooEnvironment {day2.domain_claimed_by}"))
    elif env.custom_domain != want and day2.domain_refused:
        outcome.conditions.append(Condition(DOMAIN_VERIFIED, "False", "Refused",
                                            f"OEC.sh refused to set {want} (see the Stalled condition)"))
    elif env.custom_domain == want and env.custom_domain_verified:
        outcome.conditions.append(Condition(DOMAIN_VERIFIED, "True", "Verified", f"{want} points at the environment"))
    else:
        host = urlsplit(env.url or "").hostname or "the environment's platform host (status.url)"
        outcome.conditions.append(Condition(
            DOMAIN_VERIFIED, "False", "AwaitingDNS",
            f"create a DNS record CNAME {want} -> {host} at the domain's DNS provider; "
            "OEC.sh verifies it by itself"))


def _resize(day2: Day2, outcome: Outcome) -> None:
    pending = day2.pending
    if pending is not None and pending.applies_on == "NextDeploy":
        sizes = ", ".join(f"{k} {v}" for k, v in pending.model_dump(include={"cpu_cores", "ram_mb", "disk_gb"},
                                                                   exclude_none=True).items())
        outcome.conditions.append(Condition(RESIZE_PENDING, "True", "NextDeploy",
                                            f"sent {sizes}; it applies when the environment is next deployed, "
                                            "restarted or started (spec.resizePolicy: NextDeploy)"))
    else:
        outcome.remove = (*outcome.remove, RESIZE_PENDING)


def _stalls(day2: Day2, outcome: Outcome) -> None:
    """A domain claimed by another resource, or writes refused per field: ``Stalled`` with the
    reason, unless the phase already stalled the resource."""
    if any(c.type == cond.STALLED and c.status == "True" for c in outcome.conditions):
        return
    if day2.domain_claimed_by:
        reason, message = "Conflict", (f"spec.domain is already claimed by OdooEnvironment {day2.domain_claimed_by}; "
                                       "only one resource may set a domain; the other fields are applied")
    elif day2.invalid:
        reason, message = "InvalidSpec", day2.invalid
    elif day2.refused:
        reason, message = "FieldRefused", day2.refused
    else:
        return
    outcome.conditions = [c for c in outcome.conditions if c.type not in (cond.READY, cond.RECONCILING)]
    outcome.conditions += cond.stalled(reason, message)
    outcome.events.append(Event("Warning", reason, message))  # not repeated while Ready says the same
    outcome.remove = tuple(t for t in {*outcome.remove, cond.RECONCILING} if t != cond.STALLED)
    outcome.observed = True


def assess_day2(spec: OdooEnvironmentSpec, previous: Status, env: Environment, day2: Day2, outcome: Outcome,
                fast: float) -> None:
    """Add the day-2 fields and conditions to ``outcome`` (see the module docstring)."""
    outcome.status = outcome.status.merged(mirrored_size(previous, env, day2.pending)).merged(Status(
        power_state=power_state(env, day2.task), custom_domain=env.custom_domain or None,
        custom_domain_verified=env.custom_domain_verified if env.custom_domain else None))
    _power(spec, env, day2, outcome, fast)
    _domain(spec, env, day2, outcome)
    _resize(day2, outcome)
    _stalls(day2, outcome)
