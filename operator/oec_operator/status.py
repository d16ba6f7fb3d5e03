"""From what the API reports to the resource's ``status`` (``oec-api.md`` §9-§10,
``status-contract.md`` §3). Pure functions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from oec_operator import conditions as cond
from oec_operator.conditions import Condition
from oec_operator.oec.models import TRANSITIONAL_STATES, Environment, EnvironmentHealth
from oec_operator.outcome import Event, Outcome


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
            "phase": health.status or env.status,
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
            + "; fix the branch or code, then redeploy (annotation oec.sh/redeploy-requested-at)"
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


def _stall(outcome: Outcome, reason: str, message: str, slow: float) -> None:
    outcome.conditions += cond.stalled(reason, message)
    outcome.remove = (cond.RECONCILING,)
    outcome.observed = True
    outcome.next_poll = slow


def phase_events(previous_phase: str | None, env: Environment, health: EnvironmentHealth | None,
                 log_tail: str | None) -> list[Event]:
    """Events for a change of the environment's status since the previous reconcile."""
    if previous_phase == env.status:
        return []
    task = health.last_deploy.id if health and health.last_deploy else "unknown"
    if env.status == "running":
        return [Event("Normal", "Deployed", f"environment is running at {env.url} (task {task})")]
    if env.status in ("failed", "error"):
        tail = f"; last log lines: {log_tail}" if log_tail else ""
        return [Event("Warning", "DeployFailed", f"deploy task {task} ended with status {env.status}{tail}")]
    return []


def merge_status(
    previous: Mapping[str, Any], outcome: Outcome, generation: int, now: str, *, paused: bool = False
) -> dict[str, Any]:
    """The status patch for an outcome: observed fields, merged conditions, observedGeneration.

    The ``Paused`` condition is dropped unless ``paused``.
    """
    patch = dict(outcome.status)
    remove = outcome.remove if paused else (*outcome.remove, cond.PAUSED)
    patch["conditions"] = cond.merge_conditions(
        previous.get("conditions"), outcome.conditions, generation=generation, now=now, remove=remove
    )
    if outcome.observed:
        patch["observedGeneration"] = generation
    return patch
