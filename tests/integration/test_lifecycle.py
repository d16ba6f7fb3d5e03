"""The main job end to end: kubectl -> real apiserver -> operator process -> simulator over HTTP."""

from __future__ import annotations

import time
from typing import Any

import pytest

from .conftest import RW_KEY, Cluster, OperatorProcess, Simulator, environment, wait_for

pytestmark = pytest.mark.integration

#: Deploy time (s) of tests that must see the ``deploying`` phase through kubectl polls: long
#: enough for an operator write and a kubectl read that each take a second or more under load.
DEPLOY_SEEN_SECONDS = 8.0
#: Latency (s) given to the simulator's create in the tests that SIGKILL the operator while its
#: POST is in flight. The kill lands after the test has seen ``status.createRequest`` (one or two
#: kubectl reads, 1-2 s each on a loaded machine) and 0.5 s more; the POST must still be held then.
CREATE_HELD_SECONDS = 6.0


def test_apply_creates_one_environment_that_reaches_running(
    cluster: Cluster, simulator: Simulator, operator: OperatorProcess
) -> None:
    project = simulator.new_project("apply")
    cluster.apply(environment("shop", project, name="Shop Dev", branch="feature-x", environmentType="staging"))

    obj = cluster.wait_ready("shop")

    envs = simulator.environments(project)
    assert len(envs) == 1
    env = envs[0]
    assert (env["name"], env["branch"], env.get("environment_type", "staging")) == ("Shop Dev", "feature-x", "staging")
    status = obj["status"]
    assert status["environmentId"] == env["id"]
    assert status["phase"] == "running"
    assert status["url"].startswith("https://")
    assert status["branch"] == "feature-x"
    assert status["health"] == {"containerRunning": True, "dbReady": True, "httpOk": True, "phase": "running"}
    assert status["lastDeploy"]["status"] == "completed"
    assert status["lastDeploy"]["id"]
    assert status["lastDeploy"]["completedAt"]
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "Available" and ready["observedGeneration"] == obj["metadata"]["generation"]
    assert not any(c["type"] in ("Reconciling", "Stalled") for c in status["conditions"])
    # The printer columns show the truth.
    table = cluster.kubectl("get", "odooenv", "shop").stdout
    assert "running" in table and "True" in table and status["url"] in table and "staging" in table
    posts = simulator.requests("POST", f"/projects/{project}/environments")
    assert len(posts) == 1 and posts[0]["x_idempotency_key"]


def test_status_says_reconciling_while_the_environment_deploys(
    cluster: Cluster, simulator: Simulator, operator: OperatorProcess
) -> None:
    project = simulator.new_project("progress")
    # The deploying phase must last long enough to be seen: with the fixture's 2 s, a slow
    # operator write plus a slow kubectl poll on a loaded machine can miss the whole phase.
    simulator.configure(deploy_seconds=DEPLOY_SEEN_SECONDS)
    try:
        cluster.apply(environment("progress", project))

        def deploying() -> dict[str, Any] | None:
            obj = cluster.get("progress") or {}
            status = obj.get("status", {})
            return status if status.get("phase") == "deploying" else None

        status = wait_for(deploying, timeout=30, interval=0.1, what="phase deploying")
        by_type = {c["type"]: c for c in status["conditions"]}
        assert by_type["Ready"]["status"] == "False"
        assert by_type["Reconciling"]["status"] == "True"
        assert "observedGeneration" not in status  # kstatus: InProgress, not Current
        cluster.wait_ready("progress")
    finally:
        simulator.configure(deploy_seconds=2.0)


def test_branch_change_is_one_patch_and_kubectl_wait_waits_for_it(
    cluster: Cluster, simulator: Simulator, operator: OperatorProcess
) -> None:
    project = simulator.new_project("update")
    cluster.apply(environment("upd", project, branch="main"))
    cluster.wait_ready("upd")
    env_id = simulator.environments(project)[0]["id"]
    simulator.configure(latency={"patch_environment": 2.0})
    try:
        cluster.apply(environment("upd", project, branch="release-2"))
        waited = cluster.kubectl("wait", "--for=condition=Ready", "--timeout=60s", "odooenvironment/upd")
        assert waited.returncode == 0
        # kubectl wait returned, so the Ready it saw must already describe the new generation.
        obj = cluster.get("upd") or {}
    finally:
        simulator.configure(latency={})
    status = obj["status"]
    assert status["branch"] == "release-2"
    assert status["observedGeneration"] == obj["metadata"]["generation"] == 2
    patches = simulator.requests("PATCH", f"/environments/{env_id}")
    assert [p["body"] for p in patches] == [{"branch": "release-2"}]
    assert simulator.environments(project)[0]["branch"] == "release-2"


def test_delete_holds_the_resource_until_the_environment_is_gone(
    cluster: Cluster, simulator: Simulator, operator: OperatorProcess
) -> None:
    project = simulator.new_project("delete")
    simulator.configure(destroy_seconds=3.0)
    try:
        cluster.apply(environment("gone", project))
        cluster.wait_ready("gone")
        env_id = simulator.environments(project)[0]["id"]
        cluster.kubectl("delete", "odooenv", "gone", "--wait=false")

        def destroying() -> bool:
            envs = simulator.environments(project, include_deleted=True)
            return bool(envs) and envs[0]["status"] == "destroying"

        wait_for(destroying, timeout=20, interval=0.1, what="environment destroying")
        held = cluster.get("gone")
        assert held is not None and held["metadata"].get("deletionTimestamp")
        assert "oec.sh/finalizer" in held["metadata"]["finalizers"]
        wait_for(lambda: cluster.get("gone") is None, timeout=30, what="resource removed")
    finally:
        simulator.configure(destroy_seconds=1.5)
    # When the resource disappeared the environment was already gone from the API.
    assert simulator.admin.get(f"/api/public/v1/environments/{env_id}").status_code in (401, 404)
    assert simulator.environments(project) == []
    deletes = simulator.requests("DELETE", f"/environments/{env_id}")
    assert len(deletes) == 1
    assert deletes[0]["confirm_delete"] == "true"


def test_apiserver_refuses_invalid_manifests_naming_the_field(cluster: Cluster, simulator: Simulator) -> None:
    project = "3f0c9a52-7a1e-4c1b-9d2e-5b8f6a4e2c10"
    cases: list[tuple[dict[str, Any], str]] = [
        (environment("bad-type", project, environmentType="qa"), "spec.environmentType"),
        (environment("bad-name", project, name="x" * 256), "spec.name"),
        (environment("bad-project", "not-a-uuid"), "spec.projectId"),
        (environment("bad-branch", project, branch="b" * 256), "spec.branch"),
    ]
    for manifest, field in cases:
        result = cluster.apply(manifest, check=False)
        assert result.returncode != 0, manifest
        assert field in result.stderr, result.stderr
        assert cluster.get(manifest["metadata"]["name"]) is None

    cluster.apply(environment("immutable", project, environmentType="staging"))
    other = "0b7d3c1e-2f4a-4d5b-8c6e-7f8091a2b3c4"
    refused = cluster.apply(environment("immutable", other, environmentType="staging"), check=False)
    assert refused.returncode != 0
    assert "spec.projectId" in refused.stderr and "immutable" in refused.stderr
    refused = cluster.apply(environment("immutable", project, environmentType="production"), check=False)
    assert refused.returncode != 0
    assert "spec.environmentType" in refused.stderr and "immutable" in refused.stderr


def test_operator_killed_mid_create_does_not_create_a_second_environment(
    cluster: Cluster, simulator: Simulator, operator_factory: Any
) -> None:
    project = simulator.new_project("crash")
    simulator.configure(latency={"create_environment": CREATE_HELD_SECONDS})
    try:
        first = operator_factory()
        cluster.apply(environment("crash", project))
        # The create request is recorded right before the POST, which the latency now holds.
        wait_for(lambda: (cluster.get("crash") or {}).get("status", {}).get("createRequest"),
                 timeout=30, what="the create request recorded")
        time.sleep(0.5)
        first.kill()
        status = (cluster.get("crash") or {}).get("status", {})
        assert "environmentId" not in status, "the kill came too late to interrupt the create"
        # The interrupted POST still completes on the API side.
        wait_for(lambda: len(simulator.environments(project)) == 1, timeout=CREATE_HELD_SECONDS + 15,
                 what="first environment")
        simulator.configure(latency={})
        operator_factory()
        obj = cluster.wait_ready("crash")
    finally:
        simulator.configure(latency={})
    envs = simulator.environments(project)
    assert len(envs) == 1
    assert obj["status"]["environmentId"] == envs[0]["id"]
    keys = {p["x_idempotency_key"] for p in simulator.requests("POST", f"/projects/{project}/environments")}
    assert len(keys) == 1


def test_resource_credentials_from_a_secret(cluster: Cluster, simulator: Simulator, operator: OperatorProcess) -> None:
    project = simulator.new_project("secret")
    cluster.apply(environment("creds", project, credentialsSecretRef={"name": "oec-key"}))
    stalled = wait_for(lambda: (c := cluster.condition("creds", "Stalled")) and c["status"] == "True" and c,
                       timeout=30, what="Stalled for the missing Secret")
    assert stalled["reason"] == "CredentialsNotFound"
    assert "oec-key" in stalled["message"]
    assert simulator.environments(project) == []

    cluster.kubectl("create", "secret", "generic", "oec-key", f"--from-literal=apiKey={RW_KEY}")
    obj = cluster.wait_ready("creds", timeout=60)
    assert obj["status"]["environmentId"] == simulator.environments(project)[0]["id"]
    assert RW_KEY not in cluster.kubectl("describe", "odooenv", "creds").stdout


def test_api_refusal_stalls_with_the_reason(cluster: Cluster, simulator: Simulator, operator: OperatorProcess) -> None:
    unknown_project = "9d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6"
    cluster.apply(environment("lost", unknown_project))
    stalled = wait_for(lambda: (c := cluster.condition("lost", "Stalled")) and c["status"] == "True" and c,
                       timeout=30, what="Stalled")
    assert stalled["reason"] == "InvalidSpec"
    assert unknown_project in stalled["message"]
    obj = cluster.get("lost") or {}
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    # kopf posts Events from a queue of its own, so the Warning may land just after the status.
    wait_for(lambda: "InvalidSpec" in cluster.kubectl("get", "events", "--field-selector",
                                                      "involvedObject.name=lost", "-o", "json").stdout,
             timeout=20, what="the InvalidSpec Warning Event")


def test_operator_log_never_contains_the_api_key(
    cluster: Cluster, simulator: Simulator, operator: OperatorProcess
) -> None:
    project = simulator.new_project("leak")
    cluster.apply(environment("leak", project))
    cluster.wait_ready("leak")
    obj = cluster.get("leak") or {}
    assert RW_KEY not in str(obj)
    assert RW_KEY not in operator.output()


def test_resource_deleted_after_a_lost_create_leaves_no_environment(
    cluster: Cluster, simulator: Simulator, operator_factory: Any
) -> None:
    project = simulator.new_project("lost-create")
    simulator.configure(latency={"create_environment": CREATE_HELD_SECONDS})
    try:
        first = operator_factory()
        cluster.apply(environment("lost", project))
        # The intent is recorded before the POST, which the latency now holds in flight.
        wait_for(lambda: (cluster.get("lost") or {}).get("status", {}).get("createRequest"),
                 timeout=30, what="the create request recorded")
        time.sleep(0.5)
        first.kill()
        assert "environmentId" not in (cluster.get("lost") or {}).get("status", {})
        wait_for(lambda: len(simulator.environments(project)) == 1, timeout=CREATE_HELD_SECONDS + 15,
                 what="the lost create to land")
        cluster.kubectl("delete", "odooenv", "lost", "--wait=false")
        simulator.configure(latency={})
        operator_factory()
        wait_for(lambda: cluster.get("lost") is None, timeout=60, what="resource removed")
    finally:
        simulator.configure(latency={})
    assert simulator.environments(project) == []
    assert len(simulator.environments(project, include_deleted=True)) == 1


def test_deleting_while_the_first_deploy_runs_sends_one_delete(
    cluster: Cluster, simulator: Simulator, operator: OperatorProcess
) -> None:
    project = simulator.new_project("delete-deploying")
    simulator.configure(deploy_seconds=DEPLOY_SEEN_SECONDS)  # the delete must land while it deploys
    try:
        cluster.apply(environment("early", project))
        wait_for(lambda: (cluster.get("early") or {}).get("status", {}).get("phase") == "deploying",
                 timeout=20, interval=0.1, what="deploying")
        env_id = simulator.environments(project)[0]["id"]
        cluster.kubectl("delete", "odooenv", "early", "--wait=false")
        wait_for(lambda: cluster.get("early") is None, timeout=60, what="resource removed")
    finally:
        simulator.configure(deploy_seconds=2.0)
    deletes = simulator.requests("DELETE", f"/environments/{env_id}")
    assert [d["status"] for d in deletes] == [202]
    assert simulator.environments(project) == []


def test_api_key_never_leaks_on_error_paths(
    cluster: Cluster, simulator: Simulator, operator_factory: Any
) -> None:
    operator = operator_factory()
    project = simulator.new_project("leak-errors")
    wrong = "oec_live_rw_" + "W" * 43  # well-formed, unknown to the API -> 401
    cluster.kubectl("create", "secret", "generic", "wrong", f"--from-literal=apiKey={wrong}")
    cluster.apply(environment("refused", project, credentialsSecretRef={"name": "wrong"}))
    wait_for(lambda: (c := cluster.condition("refused", "Stalled")) and c["reason"] == "AuthFailed",
             timeout=30, what="AuthFailed")
    simulator.admin.post("/_sim/faults", json={"status": 503, "count": 3}).raise_for_status()
    simulator.admin.post("/_sim/faults", json={"status": 429, "count": 1, "retry_after": 1}).raise_for_status()
    cluster.apply(environment("flaky", project))
    cluster.wait_ready("flaky", timeout=60)
    everything = "\n".join([
        operator.output(),
        cluster.kubectl("get", "events", "-o", "json").stdout,
        cluster.kubectl("get", "odooenv", "-o", "json").stdout,
    ])
    for key in (RW_KEY, wrong):
        assert key not in everything
    assert "AuthFailed" in everything and "503" in everything
