"""Environment lifecycle over HTTP: create, deploy, patch, actions, delete (docs/oec-api.md §2, §9-§11)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from oec_simulator import ManualClock

from .sim_helpers import API, PROJECT_A, PROJECT_B, PROJECT_NOSERVER, SERVER_A, Sim, StartSim

ENV_FIELDS = {
    "id",
    "name",
    "status",
    "url",
    "odoo_version",
    "branch",
    "last_commit",
    "cpu_cores",
    "ram_mb",
    "disk_gb",
    "project_id",
    "server_id",
    "created_at",
    "updated_at",
    "custom_domain",
    "custom_domain_verified",
}
TASK_FIELDS = {
    "id",
    "type",
    "status",
    "environment_id",
    "progress_percent",
    "current_step",
    "steps_completed",
    "total_steps",
    "started_at",
    "completed_at",
    "duration_seconds",
    "error_message",
}
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


async def _health(sim: Sim, env_id: str) -> dict[str, Any]:
    response = await sim.api.get(f"/environments/{env_id}/status")
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def test_create_deploys_and_becomes_running(sim: Sim, clock: ManualClock) -> None:
    env = await sim.create_env(name="Shop Staging!", environment_type="staging")
    assert set(env) == ENV_FIELDS
    assert env["status"] == "deploying"
    assert env["branch"] == "develop"  # the project's default_branch
    assert env["odoo_version"] == "17.0"
    assert env["project_id"] == PROJECT_A
    assert env["server_id"] == SERVER_A
    assert env["last_commit"] is None
    assert (env["cpu_cores"], env["ram_mb"], env["disk_gb"]) == (2.0, 4096, 20)
    assert env["url"] == f"https://shop-staging-{env['id'][:8]}.apps.oec.sh"
    assert ISO.match(env["created_at"]) and env["created_at"] == env["updated_at"]

    health = await _health(sim, env["id"])
    assert health["status"] == "deploying"
    assert health["http_ok"] is False
    task_id = health["last_deploy"]["id"]
    assert health["last_deploy"]["status"] == "queued"

    clock.advance(2.5)
    task = (await sim.api.get(f"/deployments/{task_id}")).json()
    assert set(task) == TASK_FIELDS
    assert task["type"] == "deploy" and task["status"] == "running"
    assert task["environment_id"] == env["id"]
    assert 0 < task["progress_percent"] < 100
    assert task["current_step"] in ("pull", "build", "migrate")
    assert task["total_steps"] == 6 and task["completed_at"] is None

    clock.advance(2.5)
    health = await _health(sim, env["id"])
    assert health == {
        "environment_id": env["id"],
        "status": "running",
        "url": env["url"],
        "container_running": True,
        "db_ready": True,
        "http_ok": True,
        "last_deploy": {
            "id": task_id,
            "status": "completed",
            "started_at": health["last_deploy"]["started_at"],
            "completed_at": health["last_deploy"]["completed_at"],
        },
    }
    task = (await sim.api.get(f"/deployments/{task_id}")).json()
    assert task["status"] == "completed" and task["progress_percent"] == 100
    assert task["duration_seconds"] == 4.5  # 5 s minus 0.5 s in the queue
    fetched = (await sim.api.get(f"/environments/{env['id']}")).json()
    assert fetched["status"] == "running"
    assert fetched["updated_at"] > env["updated_at"]

    logs = (await sim.api.get(f"/environments/{env['id']}/logs")).json()
    assert logs["task_id"] == task_id
    assert "Pulling branch 'develop'" in logs["log"]
    assert logs["log"].splitlines()[-1].endswith("[done] deploy completed")
    assert logs["lines"] == len(logs["log"].splitlines()) and logs["truncated"] is False
    tail = (await sim.api.get(f"/environments/{env['id']}/logs", params={"lines": 2})).json()
    assert tail["lines"] == 2 and tail["truncated"] is True
    assert tail["log"].splitlines() == logs["log"].splitlines()[-2:]


async def test_project_without_server_stays_pending_until_deployed(sim: Sim, clock: ManualClock) -> None:
    env = await sim.create_env(PROJECT_NOSERVER)
    assert env["status"] == "pending"
    assert env["server_id"] is None
    assert env["branch"] == "main"
    health = await _health(sim, env["id"])
    assert health["last_deploy"] is None
    assert health["container_running"] is False
    logs = (await sim.api.get(f"/environments/{env['id']}/logs")).json()
    assert logs == {"task_id": None, "log": "", "lines": 0, "truncated": False}
    clock.advance(60)
    assert (await _health(sim, env["id"]))["status"] == "pending"
    deploy = await sim.api.post(f"/environments/{env['id']}/deploy")
    assert deploy.status_code == 202
    assert (await _health(sim, env["id"]))["status"] == "deploying"


async def test_patch_stores_branch_without_redeploy(sim: Sim, clock: ManualClock) -> None:
    env = await sim.create_env(branch="feature/x")
    assert env["branch"] == "feature/x"
    clock.advance(5)
    before = (await sim.api.get(f"/environments/{env['id']}")).json()
    clock.advance(1)
    patched = await sim.api.patch(f"/environments/{env['id']}", json={"branch": "release/2.0"})
    assert patched.status_code == 200
    body = patched.json()
    assert body["branch"] == "release/2.0" and body["name"] == "env"
    assert body["status"] == "running"
    assert body["updated_at"] > before["updated_at"]
    deployments = (await sim.api.get(f"/environments/{env['id']}/deployments")).json()
    assert len(deployments["data"]) == 1  # no redeploy queued
    assert (await sim.api.get(f"/environments/{env['id']}")).json()["branch"] == "release/2.0"
    # The next deploy uses the new branch.
    await sim.api.post(f"/environments/{env['id']}/deploy")
    clock.advance(5)
    logs = (await sim.api.get(f"/environments/{env['id']}/logs")).json()
    assert "Pulling branch 'release/2.0'" in logs["log"]


async def test_delete_needs_confirmation_then_destroys(sim: Sim, clock: ManualClock) -> None:
    env = await sim.create_env()
    env_id = env["id"]
    clock.advance(5)
    for headers in ({}, {"X-Confirm-Delete": "false"}, {"X-Confirm-Delete": "TRUE"}):
        refused = await sim.api.delete(f"/environments/{env_id}", headers=headers)
        assert refused.status_code == 400
        assert refused.json()["detail"]["error"] == "confirmation_required"
    accepted = await sim.api.delete(f"/environments/{env_id}", headers={"X-Confirm-Delete": "true"})
    assert accepted.status_code == 202
    body = accepted.json()
    task_id = body["task_id"]
    assert body == {
        "task_id": task_id,
        "status": "queued",
        "environment_id": env_id,
        "poll_url": f"{API}/deployments/{task_id}",
    }
    assert (await _health(sim, env_id))["status"] == "destroying"
    again = await sim.api.delete(f"/environments/{env_id}", headers={"X-Confirm-Delete": "true"})
    assert again.status_code == 409
    assert again.json()["detail"] == {
        "error": "task_in_progress",
        "message": again.json()["detail"]["message"],
        "task_id": task_id,
    }
    clock.advance(3)
    for method, path in [
        ("GET", f"/environments/{env_id}"),
        ("GET", f"/environments/{env_id}/status"),
        ("GET", f"/environments/{env_id}/logs"),
        ("GET", f"/environments/{env_id}/deployments"),
        ("PATCH", f"/environments/{env_id}"),
        ("DELETE", f"/environments/{env_id}"),
        ("POST", f"/environments/{env_id}/deploy"),
    ]:
        response = await sim.api.request(
            method, path, json={"name": "n"} if method == "PATCH" else None, headers={"X-Confirm-Delete": "true"}
        )
        assert response.status_code == 404, (method, path)
        assert response.json()["detail"]["error"] == "not_found"
    assert (await sim.api.get(f"/projects/{PROJECT_A}/environments")).json() == []
    task = (await sim.api.get(body["poll_url"].removeprefix(API))).json()
    assert task["type"] == "destroy" and task["status"] == "completed"
    gone = (await sim.admin.get("/environments")).json()
    assert [(e["id"], e["deleted"], e["project_id"]) for e in gone] == [(env_id, True, PROJECT_A)]


async def test_delete_during_the_initial_deploy_is_task_in_progress(sim: Sim) -> None:
    env = await sim.create_env()
    deploy_id = (await _health(sim, env["id"]))["last_deploy"]["id"]
    response = await sim.api.delete(f"/environments/{env['id']}", headers={"X-Confirm-Delete": "true"})
    assert response.status_code == 409
    assert response.json()["detail"]["task_id"] == deploy_id
    second = await sim.api.post(f"/environments/{env['id']}/deploy")
    assert second.status_code == 409
    assert second.json()["detail"]["task_id"] == deploy_id


async def test_action_state_machine(sim: Sim, clock: ManualClock) -> None:
    env_id = (await sim.create_env())["id"]
    clock.advance(5)

    async def act(action: str) -> tuple[int, dict[str, Any]]:
        response = await sim.api.post(f"/environments/{env_id}/{action}")
        return response.status_code, response.json()

    status, body = await act("start")
    assert (status, body["detail"]["error"]) == (409, "invalid_state")
    status, body = await act("stop")
    assert status == 202 and body["status"] == "queued"
    stop_task = body["task_id"]
    status, body = await act("deploy")
    assert (status, body["detail"]["error"], body["detail"]["task_id"]) == (409, "task_in_progress", stop_task)
    clock.advance(2)
    assert (await _health(sim, env_id))["status"] == "stopped"
    status, body = await act("restart")
    assert (status, body["detail"]["error"]) == (409, "invalid_state")
    status, body = await act("start")
    assert status == 202
    clock.advance(2)
    assert (await _health(sim, env_id))["status"] == "running"
    status, body = await act("restart")
    assert status == 202
    clock.advance(2)
    status, body = await act("quick-update")
    assert status == 202
    clock.advance(2)
    tasks = (await sim.api.get(f"/environments/{env_id}/deployments")).json()
    assert [t["type"] for t in tasks["data"]] == ["quick_update", "restart", "start", "stop", "deploy"]
    assert all(t["status"] == "completed" for t in tasks["data"])
    assert tasks["pagination"] == {"has_more": False, "next_cursor": None, "total": 5}
    page = (await sim.api.get(f"/environments/{env_id}/deployments", params={"limit": 2})).json()
    assert [t["type"] for t in page["data"]] == ["quick_update", "restart"]
    assert page["pagination"]["has_more"] is True
    nxt = await sim.api.get(
        f"/environments/{env_id}/deployments", params={"limit": 2, "cursor": page["pagination"]["next_cursor"]}
    )
    assert [t["type"] for t in nxt.json()["data"]] == ["start", "stop"]


async def test_failed_deploy_sets_failed_with_error_lines(sim: Sim, clock: ManualClock) -> None:
    await sim.patch_config(fail_next_deploys=1)
    env_id = (await sim.create_env())["id"]
    clock.advance(5)
    health = await _health(sim, env_id)
    assert health["status"] == "failed"
    assert health["last_deploy"]["status"] == "failed"
    task = (await sim.api.get(f"/deployments/{health['last_deploy']['id']}")).json()
    assert task["status"] == "failed" and task["current_step"] == "build"
    assert task["error_message"] and task["progress_percent"] < 100
    logs = (await sim.api.get(f"/environments/{env_id}/logs")).json()
    assert "ERROR" in logs["log"]
    assert (await sim.admin.get("/config")).json()["fail_next_deploys"] == 0
    # Deploy is allowed again from failed, and now succeeds.
    assert (await sim.api.post(f"/environments/{env_id}/deploy")).status_code == 202
    clock.advance(5)
    assert (await _health(sim, env_id))["status"] == "running"


async def test_failed_deploy_variant_sets_error(sim: Sim, clock: ManualClock) -> None:
    env_id = (await sim.create_env())["id"]
    clock.advance(5)
    await sim.patch_config(failed_deploy_status="error")
    assert (await sim.admin.patch(f"/environments/{env_id}", json={"fail_next_deploy": True})).status_code == 200
    await sim.api.post(f"/environments/{env_id}/deploy")
    clock.advance(5)
    assert (await _health(sim, env_id))["status"] == "error"


async def test_list_is_oldest_first_with_case_insensitive_status_filter(sim: Sim, clock: ManualClock) -> None:
    first = await sim.create_env(name="first")
    clock.advance(5)
    second = await sim.create_env(name="second")
    await sim.create_env(PROJECT_B, name="elsewhere")
    listed = (await sim.api.get(f"/projects/{PROJECT_A}/environments")).json()
    assert [e["name"] for e in listed] == ["first", "second"]
    assert all(set(e) == ENV_FIELDS for e in listed)
    running = await sim.api.get(f"/projects/{PROJECT_A}/environments", params={"status": "RUNNING"})
    assert [e["id"] for e in running.json()] == [first["id"]]
    deploying = await sim.api.get(f"/projects/{PROJECT_A}/environments", params={"status": "Deploying"})
    assert [e["id"] for e in deploying.json()] == [second["id"]]
    cloning = await sim.api.get(f"/projects/{PROJECT_A}/environments", params={"status": "cloning"})
    assert cloning.json() == []
    bogus = await sim.api.get(f"/projects/{PROJECT_A}/environments", params={"status": "sleeping"})
    assert bogus.status_code == 422
    assert bogus.json()["detail"][0]["loc"] == ["query", "status"]


async def test_projects_pagination_and_environment_count(sim: Sim) -> None:
    await sim.create_env(PROJECT_A)
    await sim.create_env(PROJECT_A)
    page = (await sim.api.get("/projects", params={"limit": 2})).json()
    assert [p["name"] for p in page["data"]] == ["alpha", "beta"]
    assert page["data"][0]["environment_count"] == 2
    assert page["pagination"]["has_more"] is True and page["pagination"]["total"] == 3
    rest = (await sim.api.get("/projects", params={"cursor": page["pagination"]["next_cursor"]})).json()
    assert [p["name"] for p in rest["data"]] == ["serverless"]
    assert rest["pagination"] == {"has_more": False, "next_cursor": None, "total": 3}
    bad = await sim.api.get("/projects", params={"cursor": "!!"})
    assert bad.status_code == 422


async def test_quota_and_name_uniqueness(sim: Sim) -> None:
    await sim.patch_config(max_environments=1, name_uniqueness=True)
    await sim.create_env(name="one")
    over = await sim.api.post(f"/projects/{PROJECT_A}/environments", json={"name": "two"})
    assert over.status_code == 422
    assert over.json()["detail"]["error"] == "quota_exceeded"
    await sim.patch_config(max_environments=None)
    clash = await sim.api.post(f"/projects/{PROJECT_A}/environments", json={"name": "one"})
    assert clash.status_code == 409
    assert clash.json()["detail"]["error"] == "name_conflict"
    # Same name in another project is fine.
    assert (await sim.api.post(f"/projects/{PROJECT_B}/environments", json={"name": "one"})).status_code == 201


async def test_list_hides_inactive_variant(sim: Sim, clock: ManualClock) -> None:
    env_id = (await sim.create_env())["id"]
    clock.advance(5)
    await sim.api.post(f"/environments/{env_id}/stop")
    clock.advance(2)
    assert len((await sim.api.get(f"/projects/{PROJECT_A}/environments")).json()) == 1
    await sim.patch_config(list_hides_inactive=True)
    assert (await sim.api.get(f"/projects/{PROJECT_A}/environments")).json() == []
    assert (await sim.api.get(f"/environments/{env_id}")).json()["status"] == "stopped"


async def test_project_create_patch_delete(sim: Sim, clock: ManualClock) -> None:
    created = await sim.api.post("/projects", json={"name": "gamma", "server_id": SERVER_A, "odoo_version": "18.0"})
    assert created.status_code == 201
    project = created.json()
    assert project["default_branch"] == "main" and project["environment_count"] == 0
    patched = await sim.api.patch(f"/projects/{project['id']}", json={"default_branch": "prod"})
    assert patched.json()["default_branch"] == "prod"
    env = await sim.create_env(project["id"])
    assert env["branch"] == "prod" and env["odoo_version"] == "18.0"
    busy = await sim.api.delete(f"/projects/{project['id']}", headers={"X-Confirm-Delete": "true"})
    assert busy.status_code == 409
    assert busy.json()["detail"]["error"] == "project_has_active_environments"
    clock.advance(5)
    await sim.api.post(f"/environments/{env['id']}/stop")
    clock.advance(2)
    done = await sim.api.delete(f"/projects/{project['id']}", headers={"X-Confirm-Delete": "true"})
    assert done.status_code == 204
    assert (await sim.api.get(f"/projects/{project['id']}")).status_code == 404


async def test_real_clock_lifecycle_with_short_delays(start_sim: StartSim) -> None:
    # Deploy 1 s: the first read must come before it ends, which 0.2 s did not leave a loaded
    # machine room for; the loop waits on a deadline, not on a number of 20 ms steps.
    sim = await start_sim(deploy_seconds=1.0, destroy_seconds=0.2)
    env_id = (await sim.create_env())["id"]
    statuses = []
    deadline = asyncio.get_running_loop().time() + 10
    while asyncio.get_running_loop().time() < deadline:
        statuses.append((await sim.api.get(f"/environments/{env_id}")).json()["status"])
        if statuses[-1] == "running":
            break
        await asyncio.sleep(0.02)
    assert statuses[0] == "deploying" and statuses[-1] == "running"
    await sim.api.delete(f"/environments/{env_id}", headers={"X-Confirm-Delete": "true"})
    await asyncio.sleep(0.25)
    assert (await sim.api.get(f"/environments/{env_id}")).status_code == 404
