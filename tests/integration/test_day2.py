"""Day-2 operations (issue 12) as a user sees them through kubectl: real apiserver, operator process,
simulator process. One operator and one namespace serve the whole module; each test has its own
OEC.sh project and names. (The reconcile rules themselves are tested in
``tests/controller/test_day2.py``; here: the CRD keeps every new status field, the printer column,
``kubectl wait``, and what the simulator was asked.)"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from oec_testkit.manifests import condition, is_ready, ready_for_generation

from .conftest import Cluster, OperatorProcess, Simulator, environment, wait_for

pytestmark = pytest.mark.integration

RESTART = "oec.sh/restart-requested-at"
#: Duration (s) of a restart while the test watches the size switch over: long enough for several
#: kubectl reads (up to a second each on a loaded machine) while it runs.
RESTART_SEEN_SECONDS = 6.0
#: The session simulator's duration of a start, stop, restart or quick update (its default).
ACTION_SECONDS = 2.0


def _status(cluster: Cluster, name: str) -> dict[str, Any]:
    return dict((cluster.get(name) or {}).get("status", {}))


def _ready(obj: dict[str, Any] | None) -> tuple[str, str]:
    ready = condition(obj, "Ready") or {}
    return ready.get("status", ""), ready.get("reason", "")


def _running(cluster: Cluster, name: str, project: str, **spec: Any) -> str:
    """Apply a resource, wait until it is Ready; return its environment id."""
    cluster.apply(environment(name, project, **spec))
    return str(cluster.wait_ready(name)["status"]["environmentId"])


def _kubectl_wait_ready(cluster: Cluster, name: str) -> dict[str, Any]:
    """``kubectl wait --for=condition=Ready`` after an apply: it waits for the new generation."""
    cluster.kubectl("wait", "--for=condition=Ready", "--timeout=90s", f"odooenvironment/{name}", timeout=120)
    obj = cluster.get(name)
    assert obj is not None and ready_for_generation(obj), obj
    return obj


def _wait_events(cluster: Cluster, name: str, reasons: set[str]) -> None:
    """Until the object has Events with each of ``reasons`` (kopf posts them from a queue of its
    own, so one may land just after the status)."""
    wait_for(lambda: reasons <= {e["reason"] for e in cluster.events(name)}, timeout=20,
             what=f"Events {sorted(reasons)} of {name}")


def _columns(cluster: Cluster, name: str) -> dict[str, str]:
    """The printer columns of ``kubectl get odooenv NAME``, by header."""
    header, row = cluster.kubectl("get", "odooenv", name).stdout.splitlines()[:2]
    return dict(zip(header.split(), row.split(), strict=True))


def test_a_deploy_request_deploys_the_new_commit_once_with_its_modules(
    module_cluster: Cluster, simulator: Simulator, module_operator: OperatorProcess
) -> None:
    cluster = module_cluster
    project = simulator.new_project("deploy-request")
    env_id = _running(cluster, "ship", project, deploy={"updateModules": ["sale_custom"]})
    deploys_before = len(simulator.tasks(env_id, "deploy"))

    # A CI pipeline commits a new request id into Git; the branch is unchanged.
    request = {"id": "3f9c2e1", "updateModules": ["account_custom"]}
    cluster.apply(environment("ship", project, deploy={"updateModules": ["sale_custom"], "request": request}))
    obj = _kubectl_wait_ready(cluster, "ship")

    assert obj["status"]["lastHandledDeployRequest"] == "3f9c2e1"
    assert "pendingDeploy" not in obj["status"]
    deploys = simulator.tasks(env_id, "deploy")[deploys_before:]
    assert [(t["update_modules"], t["status"]) for t in deploys] == [(["account_custom"], "completed")]
    assert obj["status"]["lastDeploy"]["id"] == deploys[0]["id"]

    # The same request applied again (e.g. a resync) deploys nothing more; a new id deploys once
    # more, with spec.deploy.updateModules.
    cluster.apply(environment("ship", project, deploy={"updateModules": ["sale_custom"], "request": request}))
    cluster.apply(environment("ship", project, deploy={"updateModules": ["sale_custom"], "request": {"id": "4a0b1c2"}}))
    obj = _kubectl_wait_ready(cluster, "ship")
    assert obj["status"]["lastHandledDeployRequest"] == "4a0b1c2"
    deploys = simulator.tasks(env_id, "deploy")[deploys_before:]
    assert [t["update_modules"] for t in deploys] == [["account_custom"], ["sale_custom"]]


def test_stop_and_start_from_the_spec(
    module_cluster: Cluster, simulator: Simulator, module_operator: OperatorProcess
) -> None:
    cluster = module_cluster
    project = simulator.new_project("power")
    env_id = _running(cluster, "night", project)
    assert _columns(cluster, "night")["POWER"] == "Running"

    cluster.apply(environment("night", project, powerState="Stopped"))
    obj = _kubectl_wait_ready(cluster, "night")  # a stopped environment on purpose is healthy
    assert _ready(obj) == ("True", "Stopped")
    assert obj["status"]["powerState"] == "Stopped" and obj["status"]["phase"] == "stopped"
    assert "task" not in obj["status"]
    assert simulator.environment(env_id)["status"] == "stopped"  # type: ignore[index]
    columns = _columns(cluster, "night")
    assert (columns["POWER"], columns["READY"]) == ("Stopped", "True")

    cluster.apply(environment("night", project, powerState="Running"))
    obj = _kubectl_wait_ready(cluster, "night")
    assert _ready(obj) == ("True", "Available") and obj["status"]["powerState"] == "Running"
    assert simulator.environment(env_id)["status"] == "running"  # type: ignore[index]
    assert _columns(cluster, "night")["POWER"] == "Running"
    assert [(t["type"], t["status"]) for t in simulator.tasks(env_id) if t["type"] in ("start", "stop")] == [
        ("stop", "completed"), ("start", "completed")]
    _wait_events(cluster, "night", {"StopRequested", "Stopped", "StartRequested", "Started"})
    # Each action spent one write of the key's budget (20 a minute): not sent again once it ended.
    posts = [(r["path"].rsplit("/", 1)[-1], r["idempotency_key"][-16:], r["status"])
             for r in simulator.requests("POST", f"/environments/{env_id}/")]
    assert [p[0] for p in posts] == ["stop", "start"], posts


def _restarted(cluster: Cluster, name: str, token: str) -> dict[str, Any] | None:
    """The object once the restart of ``token`` was handled and ended (Ready, no task running)."""
    obj = cluster.get(name)
    status = (obj or {}).get("status", {})
    done = status.get("lastHandledRestartAt") == token and "task" not in status and is_ready(obj)
    return obj if done else None


def test_one_restart_per_token_also_when_the_operator_is_killed_waiting_for_its_answer(
    module_cluster: Cluster, simulator: Simulator, module_operator: OperatorProcess
) -> None:
    cluster = module_cluster
    project = simulator.new_project("restart")
    env_id = _running(cluster, "bounce", project)

    cluster.annotate("bounce", RESTART, "2026-12-04T20:00:00Z")
    wait_for(lambda: _restarted(cluster, "bounce", "2026-12-04T20:00:00Z"), timeout=60, what="the first restart")
    assert [t["status"] for t in simulator.tasks(env_id, "restart")] == ["completed"]
    _wait_events(cluster, "bounce", {"RestartRequested", "Restarted"})

    # The next restart's answer never comes back (the API started the task, then holds the
    # connection); the operator is killed while it waits, before it could record anything.
    simulator.inject(kind="timeout", when="after", route="restart", count=1, hold_seconds=60)
    try:
        cluster.annotate("bounce", RESTART, "2026-12-04T21:00:00Z")
        wait_for(lambda: len(simulator.tasks(env_id, "restart")) == 2, timeout=30, interval=0.1,
                 what="the second restart task")
        module_operator.kill()
        assert _status(cluster, "bounce").get("lastHandledRestartAt") == "2026-12-04T20:00:00Z"
        since = simulator.last_seq()
        module_operator.start()
        # The new process asks again under the same idempotency key: the API answers with the
        # task it already started.
        wait_for(lambda: _restarted(cluster, "bounce", "2026-12-04T21:00:00Z"), timeout=60,
                 what="the second restart handled by the new operator process")
    finally:
        simulator.clear_faults()
    assert [t["status"] for t in simulator.tasks(env_id, "restart")] == ["completed", "completed"]
    replayed = simulator.requests("POST", f"/environments/{env_id}/restart", since=since)
    assert [r["status"] for r in replayed] == [202]


def test_a_resize_shows_the_running_size_until_the_restart_applied_it(
    module_cluster: Cluster, simulator: Simulator, module_operator: OperatorProcess
) -> None:
    cluster = module_cluster
    project = simulator.new_project("resize")
    env_id = _running(cluster, "grow", project)
    assert _status(cluster, "grow")["ramMb"] == simulator.environment(env_id)["applied"]["ram_mb"] == 2048  # type: ignore[index]

    simulator.configure(action_seconds=RESTART_SEEN_SECONDS)
    try:
        cluster.apply(environment("grow", project, resources={"ramMb": 4096}))  # resizePolicy: Restart
        pending_seen: list[dict[str, Any]] = []

        def resized() -> dict[str, Any] | None:
            obj = cluster.get("grow") or {}
            status = obj.get("status", {})
            restarts = simulator.tasks(env_id, "restart")  # read after the object
            if status.get("ramMb") == 4096:
                # kubectl never showed the new size before the environment ran with it.
                assert [t["status"] for t in restarts] == ["completed"], status
                return obj if ready_for_generation(obj) else None
            assert status.get("ramMb") == 2048, status
            if (status.get("pendingResources") or {}).get("ramMb") == 4096:
                pending_seen.append(obj)
            return None

        obj = wait_for(resized, timeout=60, what="the new size running")
    finally:
        simulator.configure(action_seconds=ACTION_SECONDS)
    assert pending_seen, "the pending size never showed while the restart ran"
    assert _ready(pending_seen[-1])[0] == "False"
    assert pending_seen[-1]["status"]["pendingResources"]["appliesOn"] == "Restart"
    assert "pendingResources" not in obj["status"] and _ready(obj) == ("True", "Available")
    env = simulator.environment(env_id) or {}
    assert env["requested"]["ram_mb"] == env["applied"]["ram_mb"] == 4096
    restarts = simulator.tasks(env_id, "restart")
    assert len(restarts) == 1 and restarts[0]["applied_sizes"]["ram_mb"] == 4096
    assert len(simulator.requests("POST", f"/environments/{env_id}/restart")) == 1
    patches = simulator.requests("PATCH", f"/environments/{env_id}")
    assert [p["body"] for p in patches] == [{"ram_mb": 4096}]


def test_a_custom_domain_is_verified_and_a_second_claim_stalls_without_a_patch(
    module_cluster: Cluster, simulator: Simulator, module_operator: OperatorProcess
) -> None:
    cluster = module_cluster
    project = simulator.new_project("domain")
    domain = f"erp-{uuid.uuid4().hex[:8]}.example.com"
    _running(cluster, "site", project)
    cluster.apply(environment("site", project, domain=domain))
    awaiting = cluster.wait_condition("site", "DomainVerified", "False", "AwaitingDNS", timeout=30)
    assert f"CNAME {domain}" in awaiting["message"]
    # The simulator verifies a custom domain by itself 5 s after it was set (docs/oec-api.md §1 row 35).
    cluster.wait_condition("site", "DomainVerified", "True", "Verified", timeout=30)
    status = _status(cluster, "site")
    assert (status["customDomain"], status["customDomainVerified"]) == (domain, True)

    cluster.apply(environment("copy", project, domain=domain))
    stalled = cluster.wait_condition("copy", "Stalled", "True", "Conflict", timeout=60)
    assert f"{cluster.namespace}/site" in stalled["message"]
    second = wait_for(lambda: _status(cluster, "copy").get("environmentId"), timeout=30, what="the second environment")
    assert condition(cluster.get("copy"), "DomainVerified")["reason"] == "Conflict"  # type: ignore[index]
    patched = [p["body"] for p in simulator.requests("PATCH", f"/environments/{second}")]
    assert not any("domain" in (body or {}) for body in patched), patched
    assert not (simulator.environment(second) or {}).get("custom_domain")
    assert _ready(cluster.get("site")) == ("True", "Available")


def test_a_size_the_plan_refuses_stalls_that_field_while_the_branch_change_is_deployed(
    module_cluster: Cluster, simulator: Simulator, module_operator: OperatorProcess
) -> None:
    cluster = module_cluster
    project = simulator.new_project("refused")
    simulator.configure(max_ram_mb=4096)  # the plan's largest environment (docs/oec-api.md §1 row 34)
    try:
        env_id = _running(cluster, "capped", project, branch="main")
        cluster.apply(environment("capped", project, branch="release", resources={"ramMb": 8192}))
        stalled = cluster.wait_condition("capped", "Stalled", "True", "FieldRefused", timeout=60)
        assert "ram_mb" in stalled["message"] and "max_ram_mb" in stalled["message"]

        def deployed() -> dict[str, Any] | None:
            status = _status(cluster, "capped")
            deploys = simulator.tasks(env_id, "deploy")
            done = status.get("branch") == "release" and deploys[-1]["status"] == "completed" and len(deploys) == 2
            return status if done else None

        status = wait_for(deployed, timeout=60, what="the branch change deployed all the same")
        assert (simulator.environment(env_id) or {})["branch"] == "release"
        assert [r["request"] for r in status["refusedFields"]] == [f"PATCH /environments/{env_id} ram_mb"]
        assert status["ramMb"] == 2048
        assert _ready(cluster.get("capped"))[1] == "FieldRefused"
        ram_patches = [p for p in simulator.requests("PATCH", f"/environments/{env_id}") if "ram_mb" in p["body"]]
        assert [p["status"] for p in ram_patches] == [422]  # not sent again

        # Within the plan: the size applies and the stall is gone.
        cluster.apply(environment("capped", project, branch="release", resources={"ramMb": 4096}))
        obj = wait_for(lambda: (o := cluster.get("capped")) and ready_for_generation(o)
                       and o["status"].get("ramMb") == 4096 and o, timeout=60, what="the size within the plan")
    finally:
        simulator.configure(max_ram_mb=None)
    assert condition(obj, "Stalled") is None and "refusedFields" not in obj["status"]


def test_a_platform_pause_is_reported_and_not_undone(
    module_cluster: Cluster, simulator: Simulator, module_operator: OperatorProcess
) -> None:
    cluster = module_cluster
    project = simulator.new_project("paused")
    env_id = _running(cluster, "quota", project)
    simulator.edit(env_id, status="paused")  # OEC.sh paused it (e.g. a quota), not the user

    ready = cluster.wait_condition("quota", "Ready", "False", "PlatformPaused", timeout=30)
    assert "dashboard" in ready["message"]
    assert _status(cluster, "quota")["powerState"] == "Paused"
    assert _columns(cluster, "quota")["POWER"] == "Paused"
    # Two more polls of the project: still nothing sent to wake it up.
    since = simulator.last_seq()
    wait_for(lambda: len(simulator.requests("GET", f"/projects/{project}/environments", since=since)) >= 2,
             timeout=30, what="two more polls of the project")
    actions = [r["path"] for r in simulator.requests("POST", f"/environments/{env_id}/")]
    assert actions == [], actions
    assert (simulator.environment(env_id) or {})["status"] == "paused"
