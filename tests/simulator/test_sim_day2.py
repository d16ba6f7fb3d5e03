"""Day-2 calls of the simulator over HTTP: sizes, custom domain, what actions were asked, and the
state machine around ``paused`` (docs/oec-api.md §9.1, §11.2, §11.3; §1 rows 19, 31-35)."""

from __future__ import annotations

from typing import Any

import pytest

from oec_simulator import ManualClock
from oec_simulator.__main__ import build_config, build_parser

from .sim_helpers import Sim, StartSim

SIZES = ("cpu_cores", "ram_mb", "disk_gb")


async def _running(sim: Sim, clock: ManualClock, **body: Any) -> str:
    """A development environment (1 CPU, 2048 MB, 10 GB unless given) whose first deploy completed."""
    env_id = (await sim.create_env(**body))["id"]
    clock.advance(5)
    return str(env_id)


async def _get(sim: Sim, env_id: str) -> dict[str, Any]:
    response = await sim.api.get(f"/environments/{env_id}")
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def _admin(sim: Sim, env_id: str) -> dict[str, Any]:
    [env] = [e for e in (await sim.admin.get("/environments")).json() if e["id"] == env_id]
    data: dict[str, Any] = env
    return data


async def _patch(sim: Sim, env_id: str, **body: Any) -> tuple[int, dict[str, Any]]:
    response = await sim.api.patch(f"/environments/{env_id}", json=body)
    data: dict[str, Any] = response.json()
    return response.status_code, data


async def _act(sim: Sim, env_id: str, action: str, body: Any = None) -> tuple[int, dict[str, Any]]:
    response = await sim.api.post(f"/environments/{env_id}/{action}", json=body)
    data: dict[str, Any] = response.json()
    return response.status_code, data


def _sizes(obj: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(obj[name] for name in SIZES)


# ---------------------------------------------------------------------------- sizes


async def test_patched_sizes_are_requested_at_once_and_run_after_the_restart(sim: Sim, clock: ManualClock) -> None:
    env_id = await _running(sim, clock)
    status, env = await _patch(sim, env_id, cpu_cores=2.5, ram_mb=4096, disk_gb=20)
    assert status == 200 and _sizes(env) == (2.5, 4096, 20)  # size_view=requested (default)
    admin = await _admin(sim, env_id)
    assert _sizes(admin["applied"]) == (1.0, 2048, 10) and admin["sizes_pending"] is True
    assert _sizes(admin["requested"]) == (2.5, 4096, 20)

    status, accepted = await _act(sim, env_id, "restart")
    assert status == 202
    clock.advance(1)
    assert (await _admin(sim, env_id))["sizes_pending"] is True  # not while the restart runs
    clock.advance(1)
    admin = await _admin(sim, env_id)
    assert _sizes(admin["applied"]) == (2.5, 4096, 20) and admin["sizes_pending"] is False
    [restart, _deploy] = (await sim.admin.get(f"/environments/{env_id}/tasks")).json()
    assert restart["id"] == accepted["task_id"] and restart["status"] == "completed"
    assert restart["applied_sizes"] == {"cpu_cores": 2.5, "ram_mb": 4096, "disk_gb": 20}


async def test_applied_view_shows_the_running_size_until_a_start_not_a_stop(
    start_sim: StartSim, clock: ManualClock
) -> None:
    sim = await start_sim(clock=clock, size_view="applied")
    env_id = await _running(sim, clock)
    status, env = await _patch(sim, env_id, ram_mb=8192)
    assert status == 200 and env["ram_mb"] == 2048
    assert (await _admin(sim, env_id))["requested"]["ram_mb"] == 8192

    assert (await _act(sim, env_id, "stop"))[0] == 202
    clock.advance(2)
    env = await _get(sim, env_id)
    assert env["status"] == "stopped" and env["ram_mb"] == 2048  # a stop leaves the size pending
    assert (await _act(sim, env_id, "start"))[0] == 202
    clock.advance(2)
    env = await _get(sim, env_id)
    assert env["status"] == "running" and env["ram_mb"] == 8192


async def test_a_deploy_applies_sizes_a_failed_deploy_does_not(sim: Sim, clock: ManualClock) -> None:
    env_id = await _running(sim, clock)
    await _patch(sim, env_id, cpu_cores=2)
    await sim.admin.patch(f"/environments/{env_id}", json={"fail_next_deploy": True})
    assert (await _act(sim, env_id, "deploy"))[0] == 202
    clock.advance(5)
    admin = await _admin(sim, env_id)
    assert admin["status"] == "failed" and admin["applied"]["cpu_cores"] == 1.0
    assert (await _act(sim, env_id, "deploy"))[0] == 202
    clock.advance(5)
    admin = await _admin(sim, env_id)
    assert admin["status"] == "running" and admin["applied"]["cpu_cores"] == 2.0


async def test_quick_update_applies_sizes(sim: Sim, clock: ManualClock) -> None:
    env_id = await _running(sim, clock)
    await _patch(sim, env_id, disk_gb=30)
    assert (await _act(sim, env_id, "quick-update", {"mode": "pull_restart"}))[0] == 202
    clock.advance(2)
    assert (await _admin(sim, env_id))["applied"]["disk_gb"] == 30


async def test_create_with_sizes_and_domain_applies_them(sim: Sim, clock: ManualClock) -> None:
    env = await sim.create_env(cpu_cores=0.5, ram_mb=1024, disk_gb=5, domain="erp.example.com")
    assert _sizes(env) == (0.5, 1024, 5)
    assert (env["custom_domain"], env["custom_domain_verified"]) == ("erp.example.com", False)
    admin = await _admin(sim, env["id"])
    assert _sizes(admin["applied"]) == (0.5, 1024, 5) and admin["sizes_pending"] is False


async def test_disk_never_shrinks_by_default(sim: Sim, clock: ManualClock) -> None:
    env_id = await _running(sim, clock)
    status, body = await _patch(sim, env_id, disk_gb=9, cpu_cores=2)
    assert status == 422
    [error] = body["detail"]
    assert error["loc"] == ["body", "disk_gb"] and "cannot shrink" in error["msg"]
    assert _sizes(await _get(sim, env_id)) == (1.0, 2048, 10)  # nothing of the body was stored
    assert (await _patch(sim, env_id, disk_gb=10))[0] == 200


async def test_disk_shrink_allowed_by_the_switch(start_sim: StartSim, clock: ManualClock) -> None:
    sim = await start_sim(clock=clock, disk_shrink="allow")
    env_id = await _running(sim, clock)
    status, env = await _patch(sim, env_id, disk_gb=5)
    assert status == 200 and env["disk_gb"] == 5


@pytest.mark.parametrize(
    ("field", "value"),
    [("cpu_cores", 0.1), ("cpu_cores", 33), ("ram_mb", 255), ("ram_mb", 131073), ("disk_gb", 0), ("disk_gb", 1001)],
)
async def test_sizes_out_of_range_name_the_field(sim: Sim, clock: ManualClock, field: str, value: float) -> None:
    env_id = await _running(sim, clock)
    status, body = await _patch(sim, env_id, **{field: value})
    assert status == 422 and body["detail"][0]["loc"] == ["body", field]


async def test_plan_limits_refuse_bigger_sizes_naming_the_limit(start_sim: StartSim, clock: ManualClock) -> None:
    sim = await start_sim(clock=clock, max_cpu_cores=4, max_ram_mb=8192, max_disk_gb=100)
    env_id = await _running(sim, clock)
    status, body = await _patch(sim, env_id, name="renamed", cpu_cores=8)
    assert status == 422
    detail = body["detail"]
    assert (detail["error"], detail["field"], detail["limit"]) == ("quota_exceeded", "cpu_cores", 4)
    assert "max_cpu_cores" in detail["message"] and "4" in detail["message"]
    env = await _get(sim, env_id)
    assert (env["name"], env["cpu_cores"]) == ("env", 1.0)  # refused as a whole
    assert (await _patch(sim, env_id, cpu_cores=4, ram_mb=8192, disk_gb=100))[0] == 200
    status, body = await _patch(sim, env_id, ram_mb=16384)
    assert status == 422 and "max_ram_mb" in body["detail"]["message"]
    response = await sim.api.post(f"/projects/{env['project_id']}/environments", json={"name": "big", "disk_gb": 200})
    assert response.status_code == 422 and response.json()["detail"]["field"] == "disk_gb"


async def test_older_api_refuses_each_day2_field_but_not_name_and_branch(
    start_sim: StartSim, clock: ManualClock
) -> None:
    sim = await start_sim(clock=clock, patch_fields="seed")
    env_id = await _running(sim, clock)
    status, body = await _patch(sim, env_id, name="renamed", ram_mb=4096)
    assert status == 422
    assert [(e["loc"], e["type"]) for e in body["detail"]] == [(["body", "ram_mb"], "extra_forbidden")]
    status, body = await _patch(sim, env_id, domain="erp.example.com")
    assert status == 422 and body["detail"][0]["loc"] == ["body", "domain"]
    status, env = await _patch(sim, env_id, name="renamed", branch="release")
    assert status == 200 and (env["name"], env["branch"], env["ram_mb"]) == ("renamed", "release", 2048)


async def test_admin_edits_sizes_like_the_dashboard(sim: Sim, clock: ManualClock) -> None:
    env_id = await _running(sim, clock)
    response = await sim.admin.patch(f"/environments/{env_id}", json={"ram_mb": 4096, "disk_gb": 5})
    assert response.status_code == 200
    admin = response.json()
    assert admin["ram_mb"] == 4096 and admin["disk_gb"] == 5  # no shrink check for the dashboard
    assert admin["sizes_pending"] is True and admin["applied"]["ram_mb"] == 2048
    admin = (await sim.admin.patch(f"/environments/{env_id}", json={"apply_sizes": True})).json()
    assert admin["sizes_pending"] is False and admin["applied"]["ram_mb"] == 4096


# ---------------------------------------------------------------------------- custom domain


async def test_domain_is_set_unverified_verifies_by_itself_and_is_removed_with_empty(
    sim: Sim, clock: ManualClock
) -> None:
    env_id = await _running(sim, clock)
    status, env = await _patch(sim, env_id, domain="erp.example.com")
    assert status == 200 and (env["custom_domain"], env["custom_domain_verified"]) == ("erp.example.com", False)
    assert (await _admin(sim, env_id))["domain_verify_at"] is not None
    clock.advance(4.9)
    assert (await _get(sim, env_id))["custom_domain_verified"] is False
    clock.advance(0.1)
    env = await _get(sim, env_id)
    assert env["custom_domain_verified"] is True
    listed = (await sim.api.get(f"/projects/{env['project_id']}/environments")).json()
    assert listed[0]["custom_domain_verified"] is True

    status, env = await _patch(sim, env_id, domain="*.shop.example.com")  # a new domain: unverified again
    assert status == 200 and (env["custom_domain"], env["custom_domain_verified"]) == ("*.shop.example.com", False)
    status, env = await _patch(sim, env_id, domain="")
    assert status == 200 and (env["custom_domain"], env["custom_domain_verified"]) == (None, False)


@pytest.mark.parametrize(
    "domain", ["not a domain", "http://erp.example.com", "erp", "-a.example.com", "a" * 250 + ".com"]
)
async def test_invalid_domain_is_a_validation_error(sim: Sim, clock: ManualClock, domain: str) -> None:
    env_id = await _running(sim, clock)
    status, body = await _patch(sim, env_id, domain=domain)
    assert status == 422 and body["detail"][0]["loc"] == ["body", "domain"]


async def test_domain_without_automatic_verification_waits_for_the_admin(
    start_sim: StartSim, clock: ManualClock
) -> None:
    sim = await start_sim(clock=clock, domain_verify_seconds=None)
    env_id = await _running(sim, clock)
    await _patch(sim, env_id, domain="erp.example.com")
    clock.advance(3600)
    assert (await _get(sim, env_id))["custom_domain_verified"] is False
    response = await sim.admin.patch(f"/environments/{env_id}", json={"custom_domain_verified": True})
    assert response.status_code == 200
    assert (await _get(sim, env_id))["custom_domain_verified"] is True


async def test_admin_unverify_sticks_and_admin_sets_domain(sim: Sim, clock: ManualClock) -> None:
    env_id = await _running(sim, clock)
    admin = (await sim.admin.patch(f"/environments/{env_id}", json={"domain": "erp.example.com"})).json()
    assert (admin["custom_domain"], admin["custom_domain_verified"]) == ("erp.example.com", False)
    clock.advance(5)
    assert (await _get(sim, env_id))["custom_domain_verified"] is True
    await sim.admin.patch(f"/environments/{env_id}", json={"custom_domain_verified": False})  # DNS record removed
    clock.advance(60)
    assert (await _get(sim, env_id))["custom_domain_verified"] is False


async def test_a_domain_belongs_to_one_live_environment(sim: Sim, clock: ManualClock) -> None:
    first = await _running(sim, clock, name="one")
    second = await _running(sim, clock, name="two")
    assert (await _patch(sim, first, domain="erp.example.com"))[0] == 200
    assert (await _patch(sim, first, domain="erp.example.com"))[0] == 200  # its own domain again
    status, body = await _patch(sim, second, domain="ERP.example.com")
    assert status == 409 and body["detail"]["error"] == "domain_in_use"
    env = await _get(sim, first)
    response = await sim.api.post(
        f"/projects/{env['project_id']}/environments", json={"name": "three", "domain": "erp.example.com"}
    )
    assert response.status_code == 409 and response.json()["detail"]["error"] == "domain_in_use"
    await sim.admin.delete(f"/environments/{first}")
    assert (await _patch(sim, second, domain="erp.example.com"))[0] == 200  # free once the first is gone


# ---------------------------------------------------------------------------- actions


async def test_tasks_record_what_they_were_asked(sim: Sim, clock: ManualClock) -> None:
    env_id = await _running(sim, clock)
    assert (await _act(sim, env_id, "deploy", {"update_modules": ["sale_custom", "stock"]}))[0] == 202
    clock.advance(5)
    body = {"mode": "update_specific", "modules": ["sale_custom"]}
    assert (await _act(sim, env_id, "quick-update", body))[0] == 202
    clock.advance(2)
    assert (await _act(sim, env_id, "restart"))[0] == 202
    tasks = (await sim.admin.get(f"/environments/{env_id}/tasks")).json()
    asked = [(t["type"], t["update_modules"], t["mode"], t["modules"]) for t in tasks]
    assert asked == [
        ("restart", None, None, None),
        ("quick_update", None, "update_specific", ["sale_custom"]),
        ("deploy", ["sale_custom", "stock"], None, None),
        ("deploy", None, None, None),
    ]
    public = (await sim.api.get(f"/deployments/{tasks[1]['id']}")).json()
    assert "mode" not in public and "update_modules" not in public  # the §9.3 object stays as it is
    assert (await sim.admin.get("/environments/00000000-0000-4000-8000-000000000000/tasks")).status_code == 404


async def test_bad_action_bodies_are_refused(sim: Sim, clock: ManualClock) -> None:
    env_id = await _running(sim, clock)
    status, body = await _act(sim, env_id, "deploy", {"update_modules": ["Bad-Name"]})
    assert status == 422 and body["detail"][0]["loc"][:2] == ["body", "update_modules"]
    status, body = await _act(sim, env_id, "quick-update", {"mode": "update_specific"})
    assert status == 422


async def test_paused_can_be_stopped_but_not_started_or_restarted(sim: Sim, clock: ManualClock) -> None:
    env_id = await _running(sim, clock)
    await sim.admin.patch(f"/environments/{env_id}", json={"status": "paused"})
    for action in ("start", "restart", "quick-update"):
        status, body = await _act(sim, env_id, action)
        assert (status, body["detail"]["error"], body["detail"]["status"]) == (409, "invalid_state", "paused")
    assert (await _act(sim, env_id, "stop"))[0] == 202
    clock.advance(2)
    assert (await _get(sim, env_id))["status"] == "stopped"
    assert (await _act(sim, env_id, "start"))[0] == 202


def test_cli_variants_set_the_new_switches() -> None:
    argv = ["--variant", "size_view=applied", "--variant", "disk_shrink=allow", "--variant", "patch_fields=seed",
            "--variant", "domain_verify_seconds=null", "--variant", "max_cpu_cores=4"]
    config = build_config(build_parser().parse_args(argv))
    assert (config.size_view, config.disk_shrink, config.patch_fields) == ("applied", "allow", "seed")
    assert config.domain_verify_seconds is None and config.max_cpu_cores == 4
