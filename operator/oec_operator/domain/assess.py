"""From what the API reports to the resource's ``status``: mirrored fields, conditions, Events
(``docs/oec-api.md`` §9-§10, ``docs/status-contract.md`` §3). Pure functions."""

from __future__ import annotations

from oec_operator.domain.outcome import Event, Outcome
from oec_operator.models import conditions as cond
from oec_operator.models.conditions import Condition
from oec_operator.models.status import Health, LastDeploy, PendingDeploy, Status
from oec_operator.oec.models import TRANSITIONAL_STATES, Environment, EnvironmentHealth

#: The reasons :func:`assess` gives the ``Ready`` condition. It runs only after the spec was applied
#: (PATCH and deploy sent) in the same reconcile, so a ``Ready`` condition of a generation with one
#: of these reasons shows that generation was reconciled; a failure before that (a 5xx, a refused
#: write, a 404 not confirmed yet) leaves another reason or the previous generation.
ASSESSED_REASONS = frozenset({"Provisioning", "Available", "Unavailable", "DeployFailed", "ExternallyDeleted",
                              "UnknownPhase", "DeployPending",
                              # day-2 reasons (domain/operations.py), also written after the spec was applied
                              "Stopped", "Starting", "Stopping", "Restarting", "Updating", "TaskRunning",
                              "PlatformPaused", "Resizing", "FieldRefused"})


def observed_status(env: Environment, health: EnvironmentHealth | None, now: str) -> Status:
    """The status update mirrored from the API (``docs/oec-api.md`` §9.1, §9.2); ``health`` and
    ``lastDeploy`` only when the status endpoint was read."""
    status = Status(
        environment_id=env.id, phase=env.status, url=env.url, odoo_version=env.odoo_version, branch=env.branch,
        last_commit=env.last_commit, cpu_cores=env.cpu_cores, ram_mb=env.ram_mb, disk_gb=env.disk_gb,
        server_id=env.server_id, created_at=env.created_at, updated_at=env.updated_at, last_sync_time=now,
    )
    if health is None:
        return status
    deploy = health.last_deploy
    return status.merged(Status(
        health=Health(container_running=health.container_running, db_ready=health.db_ready,
                      http_ok=health.http_ok, phase=health.status or env.status),
        last_deploy=None if deploy is None else LastDeploy(
            id=deploy.id, status=deploy.status, started_at=deploy.started_at, completed_at=deploy.completed_at),
    ))


def assess(env: Environment, health: EnvironmentHealth | None, outcome: Outcome, fast: float, slow: float) -> None:
    """Set ``outcome``'s conditions and next poll from the environment's status (§10).

    pending/deploying/cloning -> Ready=False Provisioning + Reconciling; running -> Ready=True
    Available; failed/error -> Ready=False + Stalled DeployFailed; stopped/paused -> Ready=False
    Unavailable; destroying (not requested by us) -> Stalled ExternallyDeleted; else Ready=Unknown.
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
            + "; fix the branch or code, then redeploy (a new spec.deploy.request.id, or the annotation "
            "oec.sh/redeploy-requested-at)"
        )
        _stall(outcome, "DeployFailed", message, slow)
    elif phase in ("stopped", "paused"):
        outcome.conditions.append(
            Condition(cond.READY, "False", "Unavailable", f"environment is {phase} in OEC.sh; start it there")
        )
        outcome.remove = (cond.RECONCILING, cond.STALLED)
        outcome.observed = True  # the spec is applied; only the OEC-side state keeps it from Ready
        outcome.next_poll = slow
    elif phase in ("destroying", "deleted"):
        message = (
            f"the environment is {phase} in OEC.sh, outside Kubernetes; set the annotation "
            "oec.sh/recreate-requested-at to create a new one, or delete this resource"
        )
        _stall(outcome, "ExternallyDeleted", message, slow)
    else:
        outcome.conditions.append(
            Condition(cond.READY, "Unknown", "UnknownPhase", f"OEC.sh reports an unknown status {phase!r}")
        )
        outcome.remove = (cond.STALLED,)
        outcome.next_poll = fast


def owe_deploy(outcome: Outcome, pending: PendingDeploy) -> None:
    """A deploy the operator still owes (``status.pendingDeploy``, waiting for a running task):
    the environment does not run the spec yet, so an outcome :func:`assess` judged ``Ready=True``
    becomes ``Ready=False`` and ``Reconciling=True`` with reason ``DeployPending``, and the
    generation does not count as observed (``kubectl wait`` and kstatus keep waiting,
    ``docs/status-contract.md`` §3). Other outcomes already say why the resource is not ready."""
    if not any(c.type == cond.READY and c.status == "True" for c in outcome.conditions):
        return
    task = f"task {pending.blocked_by}" if pending.blocked_by else "the running task"
    message = f"a deploy is owed ({pending.reason}); it is sent once {task} ended"
    outcome.conditions = [c for c in outcome.conditions if c.type not in (cond.READY, cond.RECONCILING)] + [
        Condition(cond.READY, "False", "DeployPending", message),
        Condition(cond.RECONCILING, "True", "DeployPending", message),
    ]
    outcome.remove = tuple(t for t in (*outcome.remove, cond.STALLED) if t != cond.RECONCILING)
    outcome.observed = False


def _stall(outcome: Outcome, reason: str, message: str, slow: float) -> None:
    outcome.conditions += cond.stalled(reason, message)
    outcome.remove = (cond.RECONCILING,)
    outcome.observed = True
    outcome.next_poll = slow


#: Phases a deploy passes through: reaching ``running`` from one of them is a finished deploy.
DEPLOYING = frozenset({None, "pending", "deploying", "cloning", "failed", "error"})


def phase_events(previous_phase: str | None, env: Environment, health: EnvironmentHealth | None,
                 log_tail: str | None) -> list[Event]:
    """Events for a change of the environment's status since the previous reconcile."""
    if previous_phase == env.status:
        return []
    task = health.last_deploy.id if health and health.last_deploy else "unknown"
    if env.status == "running" and previous_phase in DEPLOYING:  # a start, an unpause: no deploy
        return [Event("Normal", "Deployed", f"environment is running at {env.url} (task {task})")]
    if env.status in ("failed", "error"):
        tail = f"; last log lines: {log_tail}" if log_tail else ""
        return [Event("Warning", "DeployFailed", f"deploy task {task} ended with status {env.status}{tail}")]
    return []


def merge_status(previous: Status, outcome: Outcome, generation: int, now: str, *, paused: bool = False) -> Status:
    """The status update for an outcome: its fields, the merged conditions and, when the
    generation counts as observed, ``observedGeneration``. The ``Paused`` condition is dropped
    unless ``paused``."""
    remove = outcome.remove if paused else (*outcome.remove, cond.PAUSED)
    conditions = cond.merge_conditions(previous.conditions, outcome.conditions, generation=generation, now=now,
                                       remove=remove)
    update = outcome.status.merged(Status(conditions=tuple(conditions)))
    return update.merged(Status(observed_generation=generation)) if outcome.observed else update
