"""API outage windows (``/_sim/outage``, config ``outage``): every public-API request fails, then the
API is back with its state intact."""

from __future__ import annotations

import httpx
import pytest

from oec_simulator import ManualClock

from .sim_helpers import PROJECT_A, Sim, StartSim


async def test_outage_answers_503_for_its_window_then_recovers_with_state_intact(
    sim: Sim, clock: ManualClock
) -> None:
    env_id = (await sim.create_env(name="kept"))["id"]
    started = await sim.admin.post("/outage", json={"seconds": 30, "retry_after": 10})
    assert started.status_code == 201 and started.json()["active"] is True
    for call in (
        sim.api.get(f"/environments/{env_id}"),
        sim.api.post(f"/projects/{PROJECT_A}/environments", json={"name": "lost"}),
        sim.api.get("/projects", headers={"Authorization": "Bearer not-even-a-key"}),
    ):
        answer = await call
        assert answer.status_code == 503 and answer.headers["Retry-After"] == "10"
        assert answer.json()["detail"]["error"] == "service_unavailable"
    assert (await sim.admin.get("/health")).status_code == 200  # admin API stays up
    clock.advance(29)
    assert (await sim.api.get("/projects")).status_code == 503
    clock.advance(1)
    back = await sim.api.get(f"/environments/{env_id}")
    assert back.status_code == 200 and back.json()["status"] == "running"  # the deploy went on
    assert [e["name"] for e in (await sim.admin.get("/environments")).json()] == ["kept"]
    assert (await sim.admin.get("/outage")).json()["active"] is False


async def test_outage_between_two_times_and_ended_early(sim: Sim, clock: ManualClock) -> None:
    now = clock.now()
    await sim.admin.post("/outage", json={"start": now + 10, "until": now + 20})
    assert (await sim.api.get("/projects")).status_code == 200
    clock.advance(10)
    assert (await sim.api.get("/projects")).status_code == 503
    assert (await sim.admin.delete("/outage")).json() == {"ended": True}
    assert (await sim.api.get("/projects")).status_code == 200
    assert (await sim.admin.delete("/outage")).json() == {"ended": False}


async def test_outage_in_reset_mode_drops_every_connection(sim: Sim, clock: ManualClock) -> None:
    await sim.admin.post("/outage", json={"seconds": 5, "mode": "reset"})
    with pytest.raises(httpx.ReadError):
        await sim.api.get("/projects")
    clock.advance(5)
    assert (await sim.api.get("/projects")).status_code == 200
    assert (await sim.admin.get("/stats")).json()["by_route"]["list_projects"] == {"reset": 1, "200": 1}


async def test_outage_from_the_start_config(start_sim: StartSim, clock: ManualClock) -> None:
    sim = await start_sim(clock=clock, outage={"after_seconds": 5, "seconds": 10})
    assert (await sim.api.get("/projects")).status_code == 200
    clock.advance(5)
    assert (await sim.api.get("/projects")).status_code == 503
    clock.advance(10)
    assert (await sim.api.get("/projects")).status_code == 200


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"mode": "503"}, "needs seconds"),
        ({"seconds": 0}, "greater than 0"),
        ({"seconds": 5, "mode": "reset", "retry_after": 3}, "mode 503 only"),
        ({"seconds": 5, "mode": "down"}, "'503' or 'reset'"),
    ],
)
async def test_invalid_outage_answers_400(sim: Sim, body: dict[str, object], expected: str) -> None:
    response = await sim.admin.post("/outage", json=body)
    assert response.status_code == 400 and expected in response.text
    assert (await sim.admin.get("/outage")).json()["outage"] is None
