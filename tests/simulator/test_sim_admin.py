"""Admin API under /_sim: inspection, dashboard-side edits, config, reset, clock and faults."""

from __future__ import annotations

from oec_simulator import ManualClock

from .sim_helpers import API, PROJECT_A, RO, RW, SCOPED_A, Sim, StartSim, auth


async def test_health(sim: Sim) -> None:
    response = await sim.admin.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


async def test_request_log_records_requests_in_order_without_keys(sim: Sim) -> None:
    env = await sim.create_env(name="logged")
    await sim.api.get(f"/projects/{PROJECT_A}/environments", params={"status": "running"}, headers=auth(RO))
    await sim.api.delete(f"/environments/{env['id']}", headers={"X-Confirm-Delete": "nope"})
    await sim.api.post(f"/environments/{env['id']}/deploy", headers={"Idempotency-Key": "dep-1"})
    await sim.admin.get("/environments")  # admin calls are not logged
    entries = (await sim.admin.get("/requests")).json()
    assert [e["seq"] for e in entries] == [1, 2, 3, 4]
    assert set(entries[0]) == {
        "seq",
        "time",
        "method",
        "path",
        "query",
        "status",
        "idempotency_key",
        "x_idempotency_key",
        "confirm_delete",
        "confirm_restore",
        "body",
    }
    assert (entries[0]["method"], entries[0]["path"], entries[0]["status"]) == (
        "POST",
        f"{API}/projects/{PROJECT_A}/environments",
        201,
    )
    assert entries[0]["body"] == {"name": "logged"}
    assert entries[1]["query"] == {"status": "running"} and entries[1]["body"] is None
    assert (entries[2]["status"], entries[2]["confirm_delete"]) == (400, "nope")
    assert (entries[3]["status"], entries[3]["idempotency_key"], entries[3]["x_idempotency_key"]) == (
        409,
        "dep-1",
        None,
    )
    text = (await sim.admin.get("/requests")).text
    assert RW not in text and RO not in text
    cleared = await sim.admin.delete("/requests")
    assert cleared.json() == {"cleared": 4}
    assert (await sim.admin.get("/requests")).json() == []


async def test_admin_is_never_rate_limited(sim: Sim) -> None:
    await sim.patch_config(read_limit=1)
    await sim.api.get("/projects")
    assert (await sim.api.get("/projects")).status_code == 429
    for _ in range(5):
        assert (await sim.admin.get("/environments")).status_code == 200


async def test_dashboard_edits_show_up_in_the_public_api(sim: Sim, clock: ManualClock) -> None:
    env_id = (await sim.create_env())["id"]
    clock.advance(5)
    edited = await sim.admin.patch(
        f"/environments/{env_id}", json={"name": "renamed", "branch": "hotfix", "status": "error"}
    )
    assert edited.status_code == 200
    public = (await sim.api.get(f"/environments/{env_id}")).json()
    assert (public["name"], public["branch"], public["status"]) == ("renamed", "hotfix", "error")
    health = (await sim.api.get(f"/environments/{env_id}/status")).json()
    assert health["http_ok"] is False and health["container_running"] is True
    assert (await sim.api.post(f"/environments/{env_id}/deploy")).status_code == 202
    invalid = await sim.admin.patch(f"/environments/{env_id}", json={"status": "deleted"})
    assert invalid.status_code == 422


async def test_removing_an_environment_outside_kubernetes(sim: Sim) -> None:
    env_id = (await sim.create_env())["id"]
    deploy_id = (await sim.api.get(f"/environments/{env_id}/status")).json()["last_deploy"]["id"]
    removed = await sim.admin.delete(f"/environments/{env_id}")
    assert removed.status_code == 200 and removed.json()["deleted"] is True
    assert (await sim.api.get(f"/environments/{env_id}")).status_code == 404
    assert (await sim.api.get(f"/deployments/{deploy_id}")).json()["status"] == "cancelled"
    assert (await sim.admin.delete(f"/environments/{env_id}")).status_code == 404
    listed = (await sim.admin.get("/environments")).json()
    assert [(e["id"], e["deleted"]) for e in listed] == [(env_id, True)]


async def test_admin_projects_and_keys(sim: Sim) -> None:
    created = await sim.admin.post("/projects", json={"name": "bare", "server_id": None, "default_branch": "trunk"})
    assert created.status_code == 201
    project = created.json()
    assert project["server_id"] is None
    env = await sim.create_env(project["id"])
    assert (env["status"], env["branch"]) == ("pending", "trunk")
    duplicate = await sim.admin.post("/projects", json={"id": project["id"], "name": "again"})
    assert duplicate.status_code == 409

    key = "oec_live_ro_" + "p" * 25
    added = await sim.admin.post("/keys", json={"key": key, "scope": "project", "project_id": project["id"]})
    assert added.status_code == 201
    assert added.json()["tier"] == "ro" and key not in added.text
    visible = await sim.api.get("/projects", headers=auth(key))
    assert [p["id"] for p in visible.json()["data"]] == [project["id"]]
    bad = await sim.admin.post("/keys", json={"key": "not-a-key"})
    assert bad.status_code == 422 and "not-a-key" not in bad.text
    keys = (await sim.admin.get("/keys")).text
    assert all(k not in keys for k in (key, RW, RO, SCOPED_A))


async def test_config_read_and_patch(sim: Sim) -> None:
    config = (await sim.admin.get("/config")).json()
    assert config["deploy_seconds"] == 5.0 and config["delete_status"] == 202
    assert "keys" not in config and "projects" not in config
    patched = await sim.admin.patch("/config", json={"write_limit": 7, "latency": {"*": 0.01}})
    assert patched.json()["write_limit"] == 7
    created = await sim.api.post(f"/projects/{PROJECT_A}/environments", json={"name": "x"})
    assert created.headers["X-RateLimit-Limit"] == "7"
    invalid = await sim.admin.patch("/config", json={"write_limit": 0, "read_limit": 5})
    assert invalid.status_code == 422
    assert (await sim.admin.get("/config")).json()["read_limit"] == 120  # nothing applied
    assert (await sim.admin.patch("/config", json={"keys": []})).status_code == 422


async def test_reset_keeps_projects_and_keys(sim: Sim) -> None:
    await sim.patch_config(read_limit=2)
    await sim.create_env(name="a")
    await sim.api.get("/projects")
    await sim.api.get("/projects")
    assert (await sim.api.get("/projects")).status_code == 429
    assert (await sim.admin.post("/reset")).json() == {"status": "reset"}
    assert (await sim.admin.get("/environments")).json() == []
    assert (await sim.admin.get("/requests")).json() == []
    after = await sim.api.get("/projects")
    assert after.status_code == 200 and after.json()["pagination"]["total"] == 3


async def test_clock_endpoint_moves_a_wall_clock_simulator(start_sim: StartSim) -> None:
    sim = await start_sim()  # wall clock, deploy 5 s
    env_id = (await sim.create_env())["id"]
    before = (await sim.admin.get("/clock")).json()
    moved = await sim.admin.post("/clock", json={"advance_seconds": 6})
    assert moved.json()["offset"] == 6.0 and moved.json()["now"] >= before["now"] + 6
    assert (await sim.api.get(f"/environments/{env_id}")).json()["status"] == "running"
    assert (await sim.admin.post("/clock", json={"advance_seconds": -1})).status_code == 422


async def test_fault_injection(sim: Sim) -> None:
    added = await sim.admin.post(
        "/faults", json={"status": 503, "route": "create_environment", "retry_after": 7, "count": 1}
    )
    assert added.status_code == 201
    assert (await sim.api.get("/projects")).status_code == 200  # other routes unaffected
    failed = await sim.api.post(f"/projects/{PROJECT_A}/environments", json={"name": "x"})
    assert failed.status_code == 503
    assert failed.headers["Retry-After"] == "7"
    assert failed.json()["detail"]["error"] == "enqueue_failed"
    assert (await sim.api.post(f"/projects/{PROJECT_A}/environments", json={"name": "x"})).status_code == 201
    await sim.admin.post("/faults", json={"status": 402, "count": 2})
    blocked = await sim.api.get("/projects")
    assert blocked.status_code == 402
    assert blocked.json()["detail"]["reason"] == "subscription_blocked"
    assert (await sim.admin.get("/faults")).json()[0]["count"] == 1
    assert (await sim.admin.delete("/faults")).json() == {"cleared": 1}
    assert (await sim.api.get("/projects")).status_code == 200
