"""Fault rules (``POST /_sim/faults``): 5xx shares, resets, timeouts, 429 forms and 409 conflicts, placed
before or after the handler, over real HTTP to the simulator."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from oec_simulator import ManualClock

from .sim_helpers import PROJECT_A, Sim, StartSim

CREATE = f"/projects/{PROJECT_A}/environments"
RATE_HEADERS = {"retry-after", "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-window"}


async def _add(sim: Sim, **rule: Any) -> list[dict[str, Any]]:
    response = await sim.admin.post("/faults", json=rule)
    assert response.status_code == 201, response.text
    rules: list[dict[str, Any]] = response.json()
    return rules


async def _env_names(sim: Sim) -> list[str]:
    return [e["name"] for e in (await sim.admin.get("/environments")).json()]


async def _pattern(sim: Sim, requests: int = 40) -> list[int]:
    return [(await sim.api.get("/projects")).status_code for _ in range(requests)]


async def test_error_share_is_reproducible_with_a_seed(start_sim: StartSim) -> None:
    rule = {"kind": "error", "status": 503, "share": 0.5, "route": "list_projects"}
    first = await start_sim(fault_seed=7, faults=[rule])
    again = await start_sim(fault_seed=7, faults=[rule])
    other = await start_sim(fault_seed=8, faults=[rule])
    pattern = await _pattern(first)
    assert set(pattern) == {200, 503}
    assert await _pattern(again) == pattern
    assert await _pattern(other) != pattern
    assert (await first.admin.get("/faults/seed")).json() == {"seed": 7}
    [listed] = (await first.admin.get("/faults")).json()
    assert listed["fired"] == pattern.count(503) and listed["count"] is None
    # Other routes are not affected by a route-filtered rule.
    assert [(await first.api.get(f"/projects/{PROJECT_A}")).status_code for _ in range(10)] == [200] * 10


async def test_reseeding_restarts_the_draws(sim: Sim) -> None:
    await sim.admin.post("/faults/seed", json={"seed": 3})
    await _add(sim, status=500, share=0.3, route="list_projects")
    pattern = await _pattern(sim, 30)
    assert 500 in pattern and 200 in pattern
    await sim.admin.post("/faults/seed", json={"seed": 3})
    assert await _pattern(sim, 30) == pattern


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_error_before_changes_nothing(sim: Sim, status: int) -> None:
    await _add(sim, kind="error", status=status, route="create_environment", count=1)
    failed = await sim.api.post(CREATE, json={"name": "lost"})
    assert failed.status_code == status
    assert await _env_names(sim) == []
    assert (await sim.api.post(CREATE, json={"name": "kept"})).status_code == 201


async def test_error_after_keeps_the_change_and_a_retry_replays_it(sim: Sim) -> None:
    await _add(sim, kind="error", status=502, when="after", route="create_environment")
    key = {"X-Idempotency-Key": "create-1"}
    failed = await sim.api.post(CREATE, json={"name": "shop"}, headers=key)
    assert failed.status_code == 502 and failed.json()["detail"]["error"] == "server_unreachable"
    assert await _env_names(sim) == ["shop"]
    retry = await sim.api.post(CREATE, json={"name": "shop"}, headers=key)
    assert retry.status_code == 201
    assert [e["id"] for e in (await sim.admin.get("/environments")).json()] == [retry.json()["id"]]


async def test_reset_before_drops_the_connection_and_changes_nothing(sim: Sim) -> None:
    await _add(sim, kind="reset", route="create_environment", method="POST")
    with pytest.raises(httpx.ReadError):
        await sim.api.post(CREATE, json={"name": "lost"})
    assert await _env_names(sim) == []
    [entry] = (await sim.admin.get("/requests")).json()
    assert entry["status"] is None
    assert (await sim.admin.get("/stats")).json()["by_route"] == {"create_environment": {"reset": 1}}
    assert (await sim.api.post(CREATE, json={"name": "kept"})).status_code == 201


async def test_reset_after_created_the_environment(sim: Sim) -> None:
    await _add(sim, kind="reset", when="after", route="create_environment")
    key = {"X-Idempotency-Key": "create-2"}
    with pytest.raises(httpx.ReadError):
        await sim.api.post(CREATE, json={"name": "shop"}, headers=key)
    assert await _env_names(sim) == ["shop"]
    retry = await sim.api.post(CREATE, json={"name": "shop"}, headers=key)
    assert retry.status_code == 201 and await _env_names(sim) == ["shop"]


async def test_timeout_after_created_the_environment_and_an_idempotent_retry_returns_it(sim: Sim) -> None:
    await _add(sim, kind="timeout", when="after", hold_seconds=1, route="create_environment")
    key = {"X-Idempotency-Key": "create-3"}
    with pytest.raises(httpx.ReadTimeout):
        await sim.api.post(CREATE, json={"name": "shop"}, headers=key, timeout=0.3)
    [created] = (await sim.admin.get("/environments")).json()
    assert created["name"] == "shop"
    retry = await sim.api.post(CREATE, json={"name": "shop"}, headers=key)
    assert retry.status_code == 201 and retry.json()["id"] == created["id"]
    assert len(await _env_names(sim)) == 1


async def test_timeout_before_holds_then_drops_without_a_change(sim: Sim) -> None:
    await _add(sim, kind="timeout", hold_seconds=0.3, route="create_environment")
    with pytest.raises(httpx.RemoteProtocolError):
        await sim.api.post(CREATE, json={"name": "lost"}, timeout=5)
    assert await _env_names(sim) == []
    assert (await sim.admin.get("/stats")).json()["by_route"]["create_environment"] == {"timeout": 1}


async def test_rate_limit_full_form(sim: Sim) -> None:
    await _add(sim, kind="rate_limit", hint="full", retry_after=7, route="list_projects", count=1)
    refused = await sim.api.get("/projects")
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "7"
    assert refused.headers["X-RateLimit-Limit"] == "120"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert refused.headers["X-RateLimit-Window"] == "60"
    detail = refused.json()["detail"]
    assert (detail["error"], detail["retry_after"]) == ("rate_limit_exceeded", 7)
    # The injected 429 did not consume the key's budget.
    assert (await sim.api.get("/projects")).headers["X-RateLimit-Remaining"] == "119"


async def test_rate_limit_body_only_form(sim: Sim) -> None:
    await _add(sim, kind="rate_limit", hint="body_only", retry_after=9)
    refused = await sim.api.get("/projects")
    assert refused.status_code == 429
    assert RATE_HEADERS.isdisjoint(name.lower() for name in refused.headers)
    detail = refused.json()["detail"]
    assert (detail["error"], detail["retry_after"]) == ("rate_limit_exceeded", 9)


async def test_rate_limit_without_any_hint(sim: Sim) -> None:
    await _add(sim, kind="rate_limit", hint="none")
    refused = await sim.api.get("/projects")
    assert refused.status_code == 429
    assert RATE_HEADERS.isdisjoint(name.lower() for name in refused.headers)
    detail = refused.json()["detail"]
    assert detail["error"] == "rate_limit_exceeded" and "retry_after" not in detail


async def test_rate_limit_burst_for_a_window(sim: Sim, clock: ManualClock) -> None:
    await _add(sim, kind="rate_limit", seconds=20)
    first = await sim.api.get("/projects")
    assert first.status_code == 429 and first.headers["Retry-After"] == "20"
    clock.advance(15)
    later = await sim.api.post(CREATE, json={"name": "x"})
    assert later.status_code == 429 and later.json()["detail"]["retry_after"] == 5
    assert later.headers["X-RateLimit-Limit"] == "20"  # the write bucket
    clock.advance(5)
    assert (await sim.api.get("/projects")).status_code == 200
    assert (await sim.admin.get("/faults")).json() == []


async def test_rate_limit_burst_for_n_requests(sim: Sim) -> None:
    await _add(sim, kind="rate_limit", count=3)
    assert [(await sim.api.get("/projects")).status_code for _ in range(4)] == [429, 429, 429, 200]
    assert (await sim.admin.get("/stats")).json()["rate_limited"] == 3


async def test_conflicts_on_actions_and_delete_change_nothing(sim: Sim, clock: ManualClock) -> None:
    env_id = (await sim.create_env())["id"]
    clock.advance(5)
    made_up = "0d9e8f7a-1111-4222-8333-444455556666"
    await _add(sim, kind="conflict", route="deploy", task_id=made_up)
    await _add(sim, kind="conflict", route="delete_environment")
    await _add(sim, kind="conflict", code="concurrent_action", route="restart")
    deploy = await sim.api.post(f"/environments/{env_id}/deploy")
    assert deploy.status_code == 409
    assert deploy.json()["detail"] == {
        "error": "task_in_progress",
        "message": "Another task is already queued or running for this environment.",
        "task_id": made_up,
    }
    delete = await sim.api.delete(f"/environments/{env_id}", headers={"X-Confirm-Delete": "true"})
    assert delete.status_code == 409 and delete.json()["detail"]["error"] == "task_in_progress"
    assert delete.json()["detail"]["task_id"] != made_up
    restart = await sim.api.post(f"/environments/{env_id}/restart")
    assert restart.status_code == 409 and restart.json()["detail"]["error"] == "concurrent_action"
    assert (await sim.api.get(f"/environments/{env_id}")).json()["status"] == "running"
    assert len((await sim.api.get(f"/environments/{env_id}/deployments")).json()["data"]) == 1


async def test_conflict_names_the_active_task(sim: Sim) -> None:
    env_id = (await sim.create_env())["id"]
    deploy_id = (await sim.api.get(f"/environments/{env_id}/status")).json()["last_deploy"]["id"]
    await _add(sim, kind="conflict", route="patch_environment")
    patched = await sim.api.patch(f"/environments/{env_id}", json={"name": "renamed"})
    assert patched.status_code == 409 and patched.json()["detail"]["task_id"] == deploy_id
    assert (await sim.api.get(f"/environments/{env_id}")).json()["name"] == "env"


async def test_rules_can_be_listed_and_deleted_one_by_one(sim: Sim) -> None:
    rules = await _add(sim, kind="reset", share=0.2, route="get_environment")
    rules = await _add(sim, status=503, count=2)
    assert [(r["id"], r["kind"], r["count"]) for r in rules] == [(1, "reset", None), (2, "error", 2)]
    assert (await sim.admin.delete("/faults/1")).json() == {"deleted": 1}
    assert (await sim.admin.delete("/faults/1")).status_code == 404
    assert [r["id"] for r in (await sim.admin.get("/faults")).json()] == [2]
    several = await sim.admin.post("/faults", json=[{"kind": "reset"}, {"kind": "rate_limit", "hint": "none"}])
    assert [r["id"] for r in several.json()] == [2, 3, 4]


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"kind": "error"}, "needs a status"),
        ({"kind": "reset", "route": "create_env"}, "unknown route 'create_env'"),
        ({"kind": "rate_limit", "when": "after"}, "when=after applies to kind error, reset and timeout"),
        ({"kind": "reset", "status": 503}, "status does not apply to kind=reset"),
        ({"kind": "error", "status": 503, "share": 1.5}, "less than or equal to 1"),
        ({"kind": "conflict", "code": "nope"}, "task_in_progress, concurrent_action"),
        ({"kind": "teapot"}, "'error', 'reset', 'timeout', 'rate_limit' or 'conflict'"),
        ({"kind": "error", "status": 503, "seconds": 5, "until": 9}, "not both"),
    ],
)
async def test_invalid_rules_answer_400_and_install_nothing(sim: Sim, rule: dict[str, Any], expected: str) -> None:
    response = await sim.admin.post("/faults", json=rule)
    assert response.status_code == 400
    assert response.json()["error"] == "validation_error" and expected in response.text
    assert (await sim.admin.get("/faults")).json() == []


async def test_invalid_json_and_seed_answer_400(sim: Sim) -> None:
    assert (await sim.admin.post("/faults", content=b"{nope")).json()["error"] == "invalid_json"
    assert (await sim.admin.post("/faults/seed", json={"seed": "x"})).status_code == 400


async def test_no_rules_means_no_faults(sim: Sim) -> None:
    statuses = [(await sim.api.get("/projects")).status_code for _ in range(50)]
    assert statuses == [200] * 50
    assert (await sim.admin.get("/faults")).json() == []
