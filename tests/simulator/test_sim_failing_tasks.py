"""Deploys that fail with given log lines and slow destroys (``PATCH /_sim/environments/{id}``, config
``fail_next_deploys``/``fail_deploy_log``/``fail_deploy_step``)."""

from __future__ import annotations

from oec_simulator import ManualClock

from .sim_helpers import Sim


async def test_failed_deploy_shows_the_given_log_lines(sim: Sim, clock: ManualClock) -> None:
    env_id = (await sim.create_env())["id"]
    clock.advance(5)
    patched = await sim.admin.patch(
        f"/environments/{env_id}",
        json={"fail_log": ["odoo.modules: module sale_custom: missing dependency", "exit 3"], "fail_message": "boom"},
    )
    assert patched.status_code == 200 and patched.json()["fail_next_deploy"] is True
    task_id = (await sim.api.post(f"/environments/{env_id}/deploy")).json()["task_id"]
    clock.advance(5)
    task = (await sim.api.get(f"/deployments/{task_id}")).json()
    assert (task["status"], task["error_message"]) == ("failed", "boom")
    log = (await sim.api.get(f"/environments/{env_id}/logs", params={"task_id": task_id})).json()["log"]
    assert "odoo.modules: module sale_custom: missing dependency" in log and "exit 3" in log
    assert "pip install" not in log
    # One-shot: the next deploy succeeds.
    await sim.api.post(f"/environments/{env_id}/deploy")
    clock.advance(5)
    assert (await sim.api.get(f"/environments/{env_id}")).json()["status"] == "running"


async def test_configured_deploy_failures_use_the_configured_lines_and_step(sim: Sim, clock: ManualClock) -> None:
    await sim.patch_config(fail_next_deploys=1, fail_deploy_log=["migration 42 failed"], fail_deploy_step="migrate")
    env_id = (await sim.create_env())["id"]
    clock.advance(5)
    status = (await sim.api.get(f"/environments/{env_id}/status")).json()
    task = (await sim.api.get(f"/deployments/{status['last_deploy']['id']}")).json()
    assert (status["status"], task["current_step"]) == ("failed", "migrate")
    assert "[migrate] migration 42 failed" in (await sim.api.get(f"/environments/{env_id}/logs")).json()["log"]


async def test_slow_destroy_per_environment(sim: Sim, clock: ManualClock) -> None:
    slow = (await sim.create_env(name="slow"))["id"]
    fast = (await sim.create_env(name="fast"))["id"]
    clock.advance(5)
    await sim.admin.patch(f"/environments/{slow}", json={"destroy_seconds": 60})
    confirm = {"X-Confirm-Delete": "true"}
    assert (await sim.api.delete(f"/environments/{slow}", headers=confirm)).status_code == 202
    assert (await sim.api.delete(f"/environments/{fast}", headers=confirm)).status_code == 202
    clock.advance(3)
    assert (await sim.api.get(f"/environments/{fast}")).status_code == 404
    assert (await sim.api.get(f"/environments/{slow}")).json()["status"] == "destroying"
    clock.advance(57)
    assert (await sim.api.get(f"/environments/{slow}")).status_code == 404
