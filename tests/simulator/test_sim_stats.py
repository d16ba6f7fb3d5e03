"""``GET /_sim/stats`` request counters and the bounded request log."""

from __future__ import annotations

from typing import Any

from oec_simulator import ManualClock

from .sim_helpers import RO, RW, Sim, StartSim, auth


async def _key_ids(sim: Sim) -> dict[str, str]:
    """Tier → key id of the org-scoped test keys."""
    keys: list[dict[str, Any]] = (await sim.admin.get("/keys")).json()
    return {k["tier"]: k["key_id"] for k in keys if k["scope"] == "org"}


async def test_stats_count_reads_writes_429s_per_route_and_key(sim: Sim, clock: ManualClock) -> None:
    await sim.patch_config(read_limit=3)
    env_id = (await sim.create_env())["id"]  # write, 201
    for _ in range(3):
        await sim.api.get(f"/environments/{env_id}")  # reads 1-3, 200
    assert (await sim.api.get(f"/environments/{env_id}")).status_code == 429
    assert (await sim.api.post(f"/environments/{env_id}/deploy")).status_code == 409  # task in progress
    await sim.api.get("/projects", headers=auth(RO))  # ro key, own bucket
    await sim.api.get("/projects", headers={"Authorization": "Bearer nope"})  # 401, no key entry
    await sim.api.get("/no/such/route")
    await sim.admin.get("/environments")  # admin requests are never counted

    stats = (await sim.admin.get("/stats")).json()
    ids = await _key_ids(sim)
    assert stats == {
        "requests": 9,
        "reads": 7,
        "writes": 2,
        "rate_limited": 1,
        "by_route": {
            "create_environment": {"201": 1},
            "get_environment": {"200": 3, "429": 1},
            "deploy": {"409": 1},
            "list_projects": {"200": 1, "401": 1},
            "unknown": {"404": 1},
        },
        "by_key": {
            ids["rw"]: {"reads": 4, "writes": 2, "rate_limited": 1},
            ids["ro"]: {"reads": 1, "writes": 0, "rate_limited": 0},
        },
        "time": clock.now(),
    }
    assert RW not in str(stats) and RO not in str(stats)


async def test_stats_survive_reset_and_clear_on_delete(sim: Sim) -> None:
    await sim.api.get("/projects")
    await sim.admin.post("/reset")
    assert (await sim.admin.get("/stats")).json()["requests"] == 1
    assert (await sim.admin.delete("/stats")).json() == {"cleared": 1}
    cleared = (await sim.admin.get("/stats")).json()
    assert (cleared["requests"], cleared["by_route"], cleared["by_key"]) == (0, {}, {})
    await sim.api.get("/projects")
    assert (await sim.admin.get("/stats")).json()["by_route"] == {"list_projects": {"200": 1}}


async def test_request_log_keeps_the_newest_entries_and_seq_keeps_counting(start_sim: StartSim) -> None:
    sim = await start_sim(request_log_limit=3)
    for _ in range(5):
        await sim.api.get("/projects")
    entries = (await sim.admin.get("/requests")).json()
    assert [e["seq"] for e in entries] == [3, 4, 5]
    assert [e["seq"] for e in (await sim.admin.get("/requests", params={"since": 4})).json()] == [5]
    assert (await sim.admin.get("/health")).json()["requests"] == 3
    assert (await sim.admin.get("/stats")).json()["requests"] == 5  # counters are not bounded
    await sim.admin.delete("/requests")
    await sim.api.get("/projects")
    assert [e["seq"] for e in (await sim.admin.get("/requests")).json()] == [6]
    assert (await sim.admin.get("/requests", params={"since": "x"})).status_code == 400


async def test_stats_stay_cheap_after_many_requests(sim: Sim) -> None:
    stats = sim.state.stats
    for index in range(100_000):
        stats.record(method="GET" if index % 4 else "POST", route="get_environment", outcome=200, key_id="k")
    snapshot = (await sim.admin.get("/stats")).json()
    assert (snapshot["requests"], snapshot["reads"], snapshot["writes"]) == (100_000, 75_000, 25_000)
    assert snapshot["by_key"] == {"k": {"reads": 75_000, "writes": 25_000, "rate_limited": 0}}
