"""Idempotency keys (docs/oec-api.md §7, §1 rows 4-5)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from oec_simulator import ManualClock

from .sim_helpers import PROJECT_A, PROJECT_B, Sim

CREATE = f"/projects/{PROJECT_A}/environments"


async def _envs(sim: Sim) -> list[dict[str, object]]:
    data: list[dict[str, object]] = (await sim.admin.get("/environments")).json()
    return data


async def test_same_key_replays_status_and_body_whatever_the_new_body(sim: Sim, clock: ManualClock) -> None:
    first = await sim.api.post(CREATE, json={"name": "one"}, headers={"X-Idempotency-Key": "k-1"})
    assert first.status_code == 201
    clock.advance(10)  # the environment is running by now; the replay still shows the cached answer
    again = await sim.api.post(CREATE, json={"name": "other"}, headers={"X-Idempotency-Key": "k-1"})
    assert again.status_code == 201
    assert again.content == first.content
    assert again.json()["status"] == "deploying"
    assert len(await _envs(sim)) == 1
    fresh = await sim.api.post(CREATE, json={"name": "one"}, headers={"X-Idempotency-Key": "k-2"})
    assert fresh.status_code == 201
    assert fresh.json()["id"] != first.json()["id"]
    assert len(await _envs(sim)) == 2
    # Scope includes the path: the same key on another project's create is a new request.
    other = await sim.api.post(
        f"/projects/{PROJECT_B}/environments", json={"name": "one"}, headers={"X-Idempotency-Key": "k-1"}
    )
    assert other.status_code == 201 and other.json()["project_id"] == PROJECT_B
    assert len(await _envs(sim)) == 3


async def test_keyless_creates_are_not_deduplicated_and_wrong_header_is_ignored(sim: Sim) -> None:
    await sim.api.post(CREATE, json={"name": "a"})
    await sim.api.post(CREATE, json={"name": "a"})
    await sim.api.post(CREATE, json={"name": "a"}, headers={"Idempotency-Key": "same"})
    await sim.api.post(CREATE, json={"name": "a"}, headers={"Idempotency-Key": "same"})
    assert len(await _envs(sim)) == 4


async def test_only_2xx_answers_are_cached(sim: Sim) -> None:
    bad = await sim.api.post(CREATE, json={"name": ""}, headers={"X-Idempotency-Key": "k"})
    assert bad.status_code == 422
    good = await sim.api.post(CREATE, json={"name": "ok"}, headers={"X-Idempotency-Key": "k"})
    assert good.status_code == 201
    assert len(await _envs(sim)) == 1


async def test_entries_expire_after_the_ttl(sim: Sim, clock: ManualClock) -> None:
    first = await sim.api.post(CREATE, json={"name": "a"}, headers={"X-Idempotency-Key": "k"})
    clock.advance(86399)
    assert (await sim.api.post(CREATE, json={"name": "a"}, headers={"X-Idempotency-Key": "k"})).json()[
        "id"
    ] == first.json()["id"]
    clock.advance(2)
    late = await sim.api.post(CREATE, json={"name": "a"}, headers={"X-Idempotency-Key": "k"})
    assert late.status_code == 201 and late.json()["id"] != first.json()["id"]


async def test_key_length_is_checked(sim: Sim) -> None:
    response = await sim.api.post(CREATE, json={"name": "a"}, headers={"X-Idempotency-Key": "x" * 256})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["header", "X-Idempotency-Key"]
    empty = await sim.api.post(CREATE, json={"name": "a"}, headers={"X-Idempotency-Key": ""})
    assert empty.status_code == 422
    assert (await sim.api.post(CREATE, json={"name": "a"}, headers={"X-Idempotency-Key": "x" * 255})).status_code == 201
    assert len(await _envs(sim)) == 1


async def test_strict_variant_rejects_a_different_body(sim: Sim) -> None:
    await sim.patch_config(idempotency_mode="strict")
    first = await sim.api.post(CREATE, json={"name": "a", "branch": "b"}, headers={"X-Idempotency-Key": "k"})
    same = await sim.api.post(CREATE, content=b'{"branch": "b",  "name": "a"}', headers={"X-Idempotency-Key": "k"})
    assert same.status_code == 201 and same.content == first.content
    different = await sim.api.post(CREATE, json={"name": "z"}, headers={"X-Idempotency-Key": "k"})
    assert different.status_code == 422
    assert different.json()["detail"]["error"] == "idempotency_key_mismatch"
    assert len(await _envs(sim)) == 1


async def test_concurrent_same_key_creates_make_one_environment(sim: Sim) -> None:
    await sim.patch_config(latency={"create_environment": 0.3})
    responses = await asyncio.gather(
        *(sim.api.post(CREATE, json={"name": "race"}, headers={"X-Idempotency-Key": "race"}) for _ in range(3))
    )
    assert [r.status_code for r in responses] == [201, 201, 201]
    assert len({r.json()["id"] for r in responses}) == 1
    assert len(await _envs(sim)) == 1


async def test_concurrent_action_variant_answers_409(sim: Sim) -> None:
    await sim.patch_config(latency={"create_environment": 1.0}, idempotency_inflight="conflict")
    first, second = await asyncio.gather(
        sim.api.post(CREATE, json={"name": "race"}, headers={"X-Idempotency-Key": "race"}),
        _post_while_in_flight(sim),
    )
    assert first.status_code == 201
    assert second.status_code == 409
    assert second.json()["detail"]["error"] == "concurrent_action"
    replay = await sim.api.post(CREATE, json={"name": "race"}, headers={"X-Idempotency-Key": "race"})
    assert replay.json()["id"] == first.json()["id"]


async def _in_flight(sim: Sim) -> None:
    """Wait until a request holds an idempotency scope (is inside the create's latency): a fixed
    head start can lose the race on a loaded machine and send the second request first."""
    deadline = asyncio.get_running_loop().time() + 10
    while not sim.state.idempotency._locks:
        assert asyncio.get_running_loop().time() < deadline, "the first request never got in flight"
        await asyncio.sleep(0.005)


async def _post_while_in_flight(sim: Sim) -> httpx.Response:
    await _in_flight(sim)
    return await sim.api.post(CREATE, json={"name": "race"}, headers={"X-Idempotency-Key": "race"})


async def test_action_replay_uses_idempotency_key_header(sim: Sim, clock: ManualClock) -> None:
    env_id = (await sim.create_env())["id"]
    clock.advance(5)
    first = await sim.api.post(f"/environments/{env_id}/deploy", headers={"Idempotency-Key": "d1"})
    assert first.status_code == 202
    replay = await sim.api.post(f"/environments/{env_id}/deploy", headers={"Idempotency-Key": "d1"})
    assert replay.status_code == 202 and replay.json() == first.json()
    ignored = await sim.api.post(f"/environments/{env_id}/deploy", headers={"X-Idempotency-Key": "d1"})
    assert ignored.status_code == 409
    assert ignored.json()["detail"]["task_id"] == first.json()["task_id"]


async def test_either_header_variant(sim: Sim, clock: ManualClock) -> None:
    await sim.patch_config(idempotency_headers="either")
    env_id = (await sim.create_env())["id"]
    clock.advance(5)
    first = await sim.api.post(f"/environments/{env_id}/deploy", headers={"X-Idempotency-Key": "d1"})
    replay = await sim.api.post(f"/environments/{env_id}/deploy", headers={"X-Idempotency-Key": "d1"})
    assert first.status_code == replay.status_code == 202
    assert replay.json()["task_id"] == first.json()["task_id"]
    created = await sim.api.post(CREATE, json={"name": "x"}, headers={"Idempotency-Key": "c1"})
    replayed = await sim.api.post(CREATE, json={"name": "x"}, headers={"Idempotency-Key": "c1"})
    assert created.json()["id"] == replayed.json()["id"]


async def test_create_completes_when_the_client_gives_up(sim: Sim) -> None:
    await sim.patch_config(latency={"create_environment": 1.0})
    await sim.api.get("/projects")  # an open connection: the short timeout can only be the answer's
    with pytest.raises(httpx.ReadTimeout):
        await sim.api.post(CREATE, json={"name": "slow"}, headers={"X-Idempotency-Key": "slow"}, timeout=0.3)
    deadline = asyncio.get_running_loop().time() + 10
    while True:  # the create finishes after its latency, whenever that is on a loaded machine
        envs = await _envs(sim)
        if envs or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.05)
    assert [e["name"] for e in envs] == ["slow"]
    retry = await sim.api.post(CREATE, json={"name": "slow"}, headers={"X-Idempotency-Key": "slow"})
    assert retry.status_code == 201 and retry.json()["id"] == envs[0]["id"]
