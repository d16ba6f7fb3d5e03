"""Request validation shapes (docs/oec-api.md §5.2) and the remaining §1 variant switches."""

from __future__ import annotations

from typing import Any

import httpx

from oec_simulator import ManualClock

from .sim_helpers import PROJECT_A, SERVER_A, Sim

CREATE = f"/projects/{PROJECT_A}/environments"


async def test_missing_name_is_a_pydantic_shaped_422(sim: Sim) -> None:
    response = await sim.api.post(CREATE, json={"branch": "main"})
    assert response.status_code == 422
    assert response.json() == {"detail": [{"loc": ["body", "name"], "msg": "Field required", "type": "missing"}]}


async def test_field_limits_and_enums(sim: Sim) -> None:
    cases: list[tuple[dict[str, Any], list[str], str]] = [
        ({"name": "x" * 256}, ["body", "name"], "string_too_long"),
        ({"name": "ok", "branch": "b" * 256}, ["body", "branch"], "string_too_long"),
        ({"name": "ok", "environment_type": "qa"}, ["body", "environment_type"], "literal_error"),
        ({"name": 5}, ["body", "name"], "string_type"),
        ({"name": "ok", "ram_mb": 1}, ["body", "ram_mb"], "greater_than_equal"),
    ]
    for body, loc, type_ in cases:
        response = await sim.api.post(CREATE, json=body)
        assert response.status_code == 422, body
        errors = response.json()["detail"]
        assert [(e["loc"], e["type"]) for e in errors] == [(loc, type_)], body
    assert (await sim.api.post(CREATE, json={"name": "x" * 255, "branch": "b" * 255})).status_code == 201


async def test_malformed_json_and_non_object_bodies(sim: Sim) -> None:
    broken = await sim.api.post(CREATE, content=b"{not json", headers={"Content-Type": "application/json"})
    assert broken.status_code == 400
    assert broken.json()["detail"]["error"] == "invalid_json"
    array = await sim.api.post(CREATE, json=["name"])
    assert array.status_code == 422 and array.json()["detail"][0]["loc"] == ["body"]
    empty = await sim.api.post(CREATE)
    assert empty.status_code == 422 and empty.json()["detail"][0]["type"] == "missing"


async def test_patch_validation_and_path_and_query_parameters(sim: Sim) -> None:
    env_id = (await sim.create_env())["id"]
    long_branch = await sim.api.patch(f"/environments/{env_id}", json={"branch": "b" * 256})
    assert long_branch.status_code == 422
    assert long_branch.json()["detail"][0]["loc"] == ["body", "branch"]
    bad_id = await sim.api.get("/environments/not-a-uuid")
    assert bad_id.status_code == 422 and bad_id.json()["detail"][0]["loc"] == ["path", "env_id"]
    unknown = await sim.api.get("/environments/00000000-0000-4000-8000-000000000000")
    assert unknown.status_code == 404
    for lines in ("0", "5001", "many"):
        response = await sim.api.get(f"/environments/{env_id}/logs", params={"lines": lines})
        assert response.status_code == 422, lines
        assert response.json()["detail"][0]["loc"] == ["query", "lines"]
    assert (await sim.api.get(f"/environments/{env_id}/logs", params={"lines": 5000})).status_code == 200


async def test_unknown_routes_and_methods(sim: Sim) -> None:
    async with httpx.AsyncClient(base_url=sim.api.base_url) as anonymous:
        missing = await anonymous.get("/environments/x/clone")
    assert missing.status_code == 404
    assert missing.json() == {"detail": {"error": "not_found", "message": "Resource not found."}}
    method = await sim.api.put(f"/projects/{PROJECT_A}/environments", json={})
    assert method.status_code == 405


async def test_unknown_create_fields_ignored_by_default_rejected_in_strict_variant(sim: Sim) -> None:
    lenient = await sim.api.post(
        CREATE, json={"name": "a", "server_id": "00000000-0000-4000-8000-000000000000", "color": "red"}
    )
    assert lenient.status_code == 201
    assert lenient.json()["server_id"] == SERVER_A
    await sim.patch_config(unknown_fields="reject")
    strict = await sim.api.post(CREATE, json={"name": "a", "color": "red"})
    assert strict.status_code == 422
    assert strict.json()["detail"][0]["loc"] == ["body", "color"]
    assert strict.json()["detail"][0]["type"] == "extra_forbidden"


async def test_toplevel_envelope(sim: Sim) -> None:
    await sim.patch_config(error_envelope="toplevel")
    missing = await sim.api.get("/environments/00000000-0000-4000-8000-000000000000")
    assert missing.json() == {"error": "not_found", "message": "Resource not found."}
    invalid = await sim.api.post(CREATE, json={})
    assert invalid.status_code == 422
    body = invalid.json()
    assert body["error"] == "validation_error"
    assert body["detail"] == [{"field": "name", "message": "Field required"}]
    env_id = (await sim.create_env())["id"]
    busy = await sim.api.post(f"/environments/{env_id}/deploy")
    assert busy.status_code == 409
    assert busy.json()["error"] == "task_in_progress" and "task_id" in busy.json()


async def test_delete_204_variant(sim: Sim, clock: ManualClock) -> None:
    await sim.patch_config(delete_status=204)
    env_id = (await sim.create_env())["id"]
    clock.advance(5)
    response = await sim.api.delete(f"/environments/{env_id}", headers={"X-Confirm-Delete": "true"})
    assert response.status_code == 204 and response.content == b""
    assert (await sim.api.get(f"/environments/{env_id}")).json()["status"] == "destroying"
    clock.advance(3)
    assert (await sim.api.get(f"/environments/{env_id}")).status_code == 404


async def test_confirm_422_variant(sim: Sim) -> None:
    await sim.patch_config(confirm_status=422)
    env_id = (await sim.create_env())["id"]
    response = await sim.api.delete(f"/environments/{env_id}")
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {"loc": ["header", "x-confirm-delete"], "msg": "Field required", "type": "missing"}
    ]


async def test_action_alias_variant(sim: Sim, clock: ManualClock) -> None:
    env_id = (await sim.create_env())["id"]
    clock.advance(5)
    assert (await sim.api.post(f"/environments/{env_id}/actions/redeploy")).status_code == 404
    await sim.patch_config(action_aliases=True)
    redeploy = await sim.api.post(f"/environments/{env_id}/actions/redeploy")
    assert redeploy.status_code == 202
    task = (await sim.api.get(f"/deployments/{redeploy.json()['task_id']}")).json()
    assert task["type"] == "deploy"


async def test_logs_max_lines_variant(sim: Sim) -> None:
    await sim.patch_config(logs_max_lines=1000)
    env_id = (await sim.create_env())["id"]
    assert (await sim.api.get(f"/environments/{env_id}/logs", params={"lines": 1000})).status_code == 200
    assert (await sim.api.get(f"/environments/{env_id}/logs", params={"lines": 1001})).status_code == 422


async def test_deployments_list_deploy_only_variant(sim: Sim, clock: ManualClock) -> None:
    env_id = (await sim.create_env())["id"]
    clock.advance(5)
    await sim.api.post(f"/environments/{env_id}/restart")
    clock.advance(2)
    assert len((await sim.api.get(f"/environments/{env_id}/deployments")).json()["data"]) == 2
    await sim.patch_config(deployments_list="deploy_only")
    only = (await sim.api.get(f"/environments/{env_id}/deployments")).json()["data"]
    assert [t["type"] for t in only] == ["deploy"]


async def test_mcp_status_filter_variant(sim: Sim) -> None:
    assert (await sim.api.get(CREATE, params={"status": "failed"})).status_code == 200
    await sim.patch_config(status_filter="mcp")
    assert (await sim.api.get(CREATE, params={"status": "failed"})).status_code == 422
    assert (await sim.api.get(CREATE, params={"status": "Cloning"})).status_code == 200


async def test_detail_routes_lag_behind_a_create(sim: Sim, clock: ManualClock) -> None:
    """§1 row 30: with ``detail_lag_seconds`` the GET detail routes answer 404 for that long after
    the create while the project's list already shows the environment; writes are not delayed."""
    await sim.patch_config(detail_lag_seconds=10)
    env_id = (await sim.create_env())["id"]
    details = [f"/environments/{env_id}", f"/environments/{env_id}/status", f"/environments/{env_id}/logs",
               f"/environments/{env_id}/deployments"]
    for path in details:
        assert (await sim.api.get(path)).status_code == 404, path
    assert [e["id"] for e in (await sim.api.get(CREATE)).json()] == [env_id]
    renamed = await sim.api.patch(f"/environments/{env_id}", json={"name": "renamed"})
    assert renamed.status_code == 200
    clock.advance(9.9)
    assert (await sim.api.get(f"/environments/{env_id}")).status_code == 404
    clock.advance(0.1)
    for path in details:
        assert (await sim.api.get(path)).status_code == 200, path
    assert (await sim.api.get(f"/environments/{env_id}")).json()["name"] == "renamed"
    await sim.patch_config(detail_lag_seconds=0)
    assert (await sim.api.get(f"/environments/{env_id}/status")).status_code == 200
