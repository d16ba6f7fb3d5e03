"""Day-2 operations from the spec (issue 12): power state, the restart annotation, deploy requests
with module updates and quick updates, size and custom domain, and writes refused per field;
the real controller and OEC client against the in-process simulator."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from oec_operator.models.status import Status
from oec_simulator.clock import ManualClock
from tests.controller.conftest import Harness
from tests.simulator.sim_helpers import PROJECT_A, RW

#: A simulator action (start/stop/restart/quick update) takes 2 s, a deploy 5 s (sim_helpers).
DONE = 10.0


@pytest.fixture
def clock() -> ManualClock:
    """The simulator's clock at the wall clock's time (the operator's ``now`` and the API's times agree)."""
    return ManualClock(start=time.time())


def status(h: Harness, name: str = "shop") -> Status:
    return Status.from_body(h.kube.objects[("team", name)].get("status"))


def ready(h: Harness, name: str = "shop") -> tuple[str | None, str | None]:
    condition = status(h, name).condition("Ready") or {}
    return condition.get("status"), condition.get("reason")


def condition(h: Harness, type_: str, name: str = "shop") -> dict[str, Any]:
    return dict(status(h, name).condition(type_) or {})


async def requests(h: Harness, method: str = "POST") -> list[dict[str, Any]]:
    """The API requests the simulator answered with ``method``, oldest first."""
    entries = (await h.sim.admin.get("/requests")).json()
    return [e for e in entries if e["method"] == method]


async def actions(h: Harness, action: str) -> list[dict[str, Any]]:
    return [e for e in await requests(h) if e["path"].endswith(f"/{action}")]


async def running(h: Harness, name: str = "shop", **spec: Any) -> dict[str, Any]:
    """A resource whose environment was created and deployed, the status up to date."""
    body = h.add(name, **spec)
    await h.change(body)
    await settle(h, body)
    return body


async def settle(h: Harness, body: dict[str, Any], seconds: float = DONE, polls: int = 2) -> None:
    """Let the simulator's tasks finish, then let the operator see it (a list and polls)."""
    h.sim.clock.advance(seconds)
    for _ in range(polls):
        await h.list_project()
        await h.poll(body)


async def edit(h: Harness, body: dict[str, Any], **spec: Any) -> None:
    """A spec change as ``kubectl apply`` makes it (a new generation), handled as kopf would."""
    body["spec"].update(spec)
    body["metadata"]["generation"] += 1
    await h.change(body)


async def annotate(h: Harness, body: dict[str, Any], key: str, value: str) -> None:
    body["metadata"]["annotations"][key] = value
    await h.change(body)


async def sim_env(h: Harness, name: str = "shop") -> dict[str, Any]:
    """The environment as the simulator's admin view shows it."""
    envs = (await h.sim.admin.get("/environments")).json()
    return next(e for e in envs if e["name"] == name and not e.get("deleted"))


# ---------------------------------------------------------------------------------------- power state
async def test_stopped_environment_is_ready_and_started_again_from_the_spec(harness: Harness) -> None:
    h = harness
    body = await running(h)
    assert ready(h) == ("True", "Available") and status(h).power_state == "Running"
    await edit(h, body, powerState="Stopped")
    assert len(await actions(h, "stop")) == 1
    assert ready(h) == ("False", "Stopping") and status(h).power_state == "Stopping"
    assert condition(h, "Reconciling")["status"] == "True"
    assert status(h).observed_generation != body["metadata"]["generation"]  # kubectl wait keeps waiting
    await settle(h, body)
    assert (await sim_env(h))["status"] == "stopped"
    assert ready(h) == ("True", "Stopped") and status(h).power_state == "Stopped"
    assert status(h).observed_generation == body["metadata"]["generation"]
    assert not condition(h, "Reconciling") and status(h).task is None
    assert "Stopped" in h.reasons("shop")
    await settle(h, body)  # steady: no second stop
    assert len(await actions(h, "stop")) == 1
    await edit(h, body, powerState="Running")
    await settle(h, body)
    assert (await sim_env(h))["status"] == "running" and ready(h) == ("True", "Available")
    assert len(await actions(h, "start")) == 1 and "Started" in h.reasons("shop")


async def test_a_start_in_the_dashboard_is_set_back(harness: Harness) -> None:
    h = harness
    body = await running(h, powerState="Stopped")
    await settle(h, body)
    assert ready(h) == ("True", "Stopped")
    env = await sim_env(h)
    response = await h.sim.admin.patch(f"/environments/{env['id']}", json={"status": "running"})
    assert response.status_code == 200
    await settle(h, body, seconds=1, polls=1)
    assert len(await actions(h, "stop")) == 2  # a new key: the first stop's answer is not replayed
    await settle(h, body)
    assert (await sim_env(h))["status"] == "stopped" and ready(h) == ("True", "Stopped")


async def test_platform_pause_is_not_undone(harness: Harness) -> None:
    h = harness
    body = await running(h)
    env = await sim_env(h)
    await h.sim.admin.patch(f"/environments/{env['id']}", json={"status": "paused"})
    await settle(h, body)
    assert ready(h) == ("False", "PlatformPaused") and status(h).power_state == "Paused"
    assert await actions(h, "start") == [] and await actions(h, "stop") == []


async def test_a_lost_answer_to_a_stop_starts_one_task(harness: Harness) -> None:
    h = harness
    body = await running(h)
    rule = {"kind": "error", "status": 503, "route": "stop", "when": "after", "count": 1}
    assert (await h.sim.admin.post("/faults", json=rule)).status_code == 201
    await edit(h, body, powerState="Stopped")  # the stop happened, its answer was lost
    await h.poll(body)  # asked again under the same key: the first answer, no second task
    stops = await actions(h, "stop")
    assert len(stops) == 2 and stops[0]["idempotency_key"] == stops[1]["idempotency_key"]
    env = await sim_env(h)
    tasks = [t for t in (await h.sim.admin.get(f"/environments/{env['id']}/tasks")).json() if t["type"] == "stop"]
    assert len(tasks) == 1
    await settle(h, body)
    assert ready(h) == ("True", "Stopped")


# ---------------------------------------------------------------------------------------- restart
async def test_one_restart_per_token(harness: Harness) -> None:
    h = harness
    body = await running(h)
    await annotate(h, body, "oec.sh/restart-requested-at", "2026-12-04T10:00:00Z")
    assert len(await actions(h, "restart")) == 1
    assert ready(h) == ("False", "Restarting") and status(h).power_state == "Restarting"
    assert status(h).last_handled_restart_at == "2026-12-04T10:00:00Z"
    await settle(h, body)
    assert ready(h) == ("True", "Available") and "Restarted" in h.reasons("shop")
    await h.change(body)  # the same token again (an unrelated edit)
    await settle(h, body)
    assert len(await actions(h, "restart")) == 1
    await annotate(h, body, "oec.sh/restart-requested-at", "2026-12-04T11:00:00Z")
    assert len(await actions(h, "restart")) == 2


# ---------------------------------------------------------------------------------------- deploy requests
async def test_a_deploy_request_deploys_once_with_its_modules(harness: Harness) -> None:
    h = harness
    body = await running(h, deploy={"updateModules": ["sale_custom"]})
    deploys_before = len(await actions(h, "deploy"))
    await edit(h, body, deploy={"updateModules": ["sale_custom"],
                                "request": {"id": "3f9c2e1", "updateModules": ["account_custom"]}})
    deploys = await actions(h, "deploy")
    assert len(deploys) == deploys_before + 1
    assert deploys[-1]["body"] == {"update_modules": ["account_custom"]}
    assert status(h).last_handled_deploy_request == "3f9c2e1"
    await settle(h, body)
    assert ready(h) == ("True", "Available")
    await h.change(body)
    await settle(h, body)
    assert len(await actions(h, "deploy")) == deploys_before + 1  # once per id
    await edit(h, body, deploy={"updateModules": ["sale_custom"], "request": {"id": "4a0b1c2"}})
    deploys = await actions(h, "deploy")
    assert len(deploys) == deploys_before + 2 and deploys[-1]["body"] == {"update_modules": ["sale_custom"]}


async def test_a_branch_change_deploys_with_spec_update_modules(harness: Harness) -> None:
    h = harness
    body = await running(h, branch="main", deploy={"updateModules": ["all"]})
    await edit(h, body, branch="release")
    assert (await actions(h, "deploy"))[-1]["body"] == {"update_modules": ["all"]}


async def test_a_failed_deploy_is_retried_by_a_new_request_id(harness: Harness) -> None:
    h = harness
    body = await running(h)
    await h.sim.patch_config(fail_next_deploys=1)
    await edit(h, body, deploy={"request": {"id": "run-1"}})
    await settle(h, body)
    assert ready(h) == ("False", "DeployFailed") and condition(h, "Stalled")["status"] == "True"
    await h.change(body)
    await settle(h, body)
    assert ready(h) == ("False", "DeployFailed")  # no retry loop without a new id
    await edit(h, body, deploy={"request": {"id": "run-2"}})
    await settle(h, body)
    assert ready(h) == ("True", "Available") and not condition(h, "Stalled")


async def test_a_quick_update_request_sends_its_mode_and_modules(harness: Harness) -> None:
    h = harness
    body = await running(h)
    await edit(h, body, deploy={"request": {"id": "q1", "mode": "UpdateSpecific", "updateModules": ["stock_custom"]}})
    quick = await actions(h, "quick-update")
    assert len(quick) == 1 and quick[0]["body"] == {"mode": "update_specific", "modules": ["stock_custom"]}
    assert ready(h) == ("False", "Updating")
    await settle(h, body)
    assert ready(h) == ("True", "Available") and "QuickUpdated" in h.reasons("shop")
    assert status(h).last_handled_deploy_request == "q1"


async def test_reinitialize_needs_the_environment_name_typed_out(harness: Harness) -> None:
    h = harness
    body = await running(h)
    request = {"id": "r1", "mode": "ReinitializeSpecific", "updateModules": ["sale"], "confirm": "wrong"}
    await edit(h, body, deploy={"request": request})
    assert await actions(h, "quick-update") == []
    assert ready(h) == ("False", "InvalidSpec") and "confirm" in condition(h, "Stalled")["message"]
    await edit(h, body, deploy={"request": {**request, "confirm": "shop"}})
    quick = await actions(h, "quick-update")
    assert len(quick) == 1 and quick[0]["body"]["mode"] == "reinitialize_specific"


# ---------------------------------------------------------------------------------------- size
async def test_a_resize_restarts_and_status_shows_the_running_size_until_then(harness: Harness) -> None:
    h = harness
    body = await running(h)
    assert status(h).ram_mb == 2048
    await edit(h, body, resources={"ramMb": 4096, "cpuCores": 2})
    patched = {tuple(e["body"]) for e in await requests(h, "PATCH")}
    assert patched == {("ram_mb",), ("cpu_cores",)}
    assert len(await actions(h, "restart")) == 1
    assert status(h).ram_mb == 2048 and status(h).pending_resources is not None  # not running with it yet
    assert status(h).pending_resources.ram_mb == 4096  # type: ignore[union-attr]
    assert ready(h)[0] == "False"
    await settle(h, body)
    assert status(h).ram_mb == 4096 and status(h).cpu_cores == 2 and status(h).pending_resources is None
    assert ready(h) == ("True", "Available") and "Resized" in h.reasons("shop")
    await settle(h, body)
    assert len(await requests(h, "PATCH")) == 2 and len(await actions(h, "restart")) == 1


async def test_next_deploy_policy_waits_for_a_deploy(harness: Harness) -> None:
    h = harness
    body = await running(h, resizePolicy="NextDeploy")
    await edit(h, body, resources={"ramMb": 8192})
    await settle(h, body)
    assert await actions(h, "restart") == []
    assert ready(h) == ("True", "Available")
    assert condition(h, "ResizePending")["status"] == "True" and status(h).ram_mb == 2048
    await edit(h, body, deploy={"request": {"id": "d1"}})
    await settle(h, body)
    assert status(h).ram_mb == 8192 and not condition(h, "ResizePending")


async def test_a_refused_size_stalls_only_that_field(harness: Harness) -> None:
    h = harness
    await h.sim.patch_config(max_ram_mb=4096)
    body = await running(h, branch="main")
    await edit(h, body, resources={"ramMb": 8192}, branch="release")
    assert ready(h) == ("False", "FieldRefused") and "ram_mb" in condition(h, "Stalled")["message"]
    assert len(await actions(h, "deploy")) == 1  # the branch change was deployed all the same
    await settle(h, body)
    assert (await sim_env(h))["branch"] == "release"
    assert len(await requests(h, "PATCH")) == 2  # branch once, ram once: not sent again
    refused = status(h).refused_fields or ()
    assert len(refused) == 1 and refused[0].request.endswith("ram_mb")
    await edit(h, body, resources={"ramMb": 4096})
    await settle(h, body)
    assert not condition(h, "Stalled") and status(h).refused_fields is None


# ---------------------------------------------------------------------------------------- domain
async def test_custom_domain_is_set_and_its_verification_shown(harness: Harness) -> None:
    h = harness
    body = await running(h)
    await edit(h, body, domain="erp.example.com")
    assert (await sim_env(h))["custom_domain"] == "erp.example.com"
    verified = condition(h, "DomainVerified")
    assert verified["status"] == "False" and verified["reason"] == "AwaitingDNS"
    assert "CNAME erp.example.com" in verified["message"]
    await settle(h, body, seconds=60)
    assert condition(h, "DomainVerified")["status"] == "True" and status(h).custom_domain_verified is True
    await edit(h, body, domain="")
    assert (await sim_env(h))["custom_domain"] in (None, "")
    assert not condition(h, "DomainVerified")


async def test_an_api_without_domain_support_stalls_the_domain_only(harness: Harness) -> None:
    h = harness
    await h.sim.patch_config(patch_fields="seed")
    body = await running(h)
    await edit(h, body, domain="erp.example.com", name="shop-renamed")
    assert (await sim_env(h, "shop-renamed"))["name"] == "shop-renamed"
    assert ready(h) == ("False", "FieldRefused") and "domain" in condition(h, "Stalled")["message"]
    await settle(h, body)
    assert len([e for e in await requests(h, "PATCH") if "domain" in (e["body"] or {})]) == 1


async def test_two_resources_claiming_one_domain(make_harness: Callable[..., Harness]) -> None:
    h = make_harness()
    first = await running(h, "first", domain="erp.example.com")
    second = await running(h, "second", domain="erp.example.com")
    await settle(h, first)
    await settle(h, second)
    assert ready(h, "first")[0] == "True"
    assert ready(h, "second") == ("False", "Conflict") and "team/first" in condition(h, "Stalled", "second")["message"]
    domains = [e["body"]["domain"] for e in await requests(h, "PATCH") if "domain" in (e["body"] or {})]
    assert domains == ["erp.example.com"]  # only the first resource's


async def test_a_long_task_is_read_a_handful_of_times_and_a_stop_the_list_shows_needs_no_read(
        harness: Harness) -> None:
    h = harness
    await h.sim.patch_config(action_seconds=300.0)
    body = await running(h)
    await edit(h, body, powerState="Stopped")
    task_reads = [e for e in await requests(h, "GET") if "/deployments/" in e["path"]]
    h.kube.objects[("team", "shop")]["status"]["task"]["requestedAt"] = "2026-12-04T00:00:00Z"  # hours ago
    h.runtime.status.forget(body["metadata"]["uid"])  # the body is the truth again, as after a restart
    await h.poll(body)  # still running: read once, then not before the steady interval
    reads = [e for e in await requests(h, "GET") if "/deployments/" in e["path"]]
    assert len(reads) == len(task_reads) + 1
    due = h.state(body).next_poll_at - asyncio.get_running_loop().time()
    assert due > h.runtime.config.poll_interval - 5  # not every fast poll (1 s here)
    h.sim.clock.advance(400)  # the stop completed: the project's list shows the environment stopped
    await h.list_project()
    await h.poll(body)
    assert [e for e in await requests(h, "GET") if "/deployments/" in e["path"]] == reads  # no task read
    assert ready(h) == ("True", "Stopped") and "Stopped" in h.reasons("shop")


@pytest.mark.parametrize("when", ["before", "after"])
async def test_a_size_patch_whose_answer_was_lost_is_applied_and_shown_only_once_running(
        harness: Harness, when: str) -> None:
    h = harness
    body = await running(h)
    rule = {"kind": "error", "status": 503, "route": "patch_environment", "when": when, "count": 1}
    assert (await h.sim.admin.post("/faults", json=rule)).status_code == 201
    await edit(h, body, resources={"ramMb": 4096})  # 503: sent (after) or not (before), the answer lost
    assert status(h).ram_mb == 2048
    await h.poll(body)
    assert (await sim_env(h))["requested"]["ram_mb"] == 4096  # asked again when it did not land
    assert status(h).ram_mb == 2048  # not running with it yet, whatever the environment object shows
    await settle(h, body)
    assert (await sim_env(h))["applied"]["ram_mb"] == 4096 and status(h).ram_mb == 4096
    assert status(h).pending_resources is None and len(await actions(h, "restart")) == 1


async def test_a_redeploy_token_used_again_later_deploys_again(harness: Harness) -> None:
    h = harness
    body = await running(h)
    for token in ("t1", "t2", "t1"):  # e.g. a Git revert of the annotation
        await annotate(h, body, "oec.sh/redeploy-requested-at", token)
        await settle(h, body)
    assert len(await actions(h, "deploy")) == 3
    assert len({e["idempotency_key"] for e in await actions(h, "deploy")}) == 3


async def test_a_refused_domain_is_not_shown_as_waiting_for_dns(harness: Harness) -> None:
    h = harness
    await h.sim.patch_config(patch_fields="seed")
    body = await running(h)
    await edit(h, body, domain="erp.example.com")
    assert condition(h, "DomainVerified")["reason"] == "Refused"


async def test_a_list_older_than_the_end_of_a_stop_sends_no_second_stop(harness: Harness) -> None:
    h = harness
    body = await running(h)
    watch = h.runtime.fleet.watch(RW, PROJECT_A)
    env_id = status(h).environment_id or ""
    await edit(h, body, powerState="Stopped")
    stale = await watch.environment(env_id, max_age=3600)  # as a list started before the stop ended shows it
    assert stale.status == "running"
    await settle(h, body)
    assert ready(h) == ("True", "Stopped") and len(await actions(h, "stop")) == 1
    watch.record(stale)  # that list lands late, after the stop's end was seen
    await h.poll(body)
    assert len(await actions(h, "stop")) == 1  # the same key would only replay the first stop
    assert ready(h) == ("True", "Stopped")


@pytest.mark.parametrize("broken", ["refused", "unconfirmed"])
async def test_a_request_that_cannot_go_out_does_not_hold_back_the_stop(harness: Harness, broken: str) -> None:
    h = harness
    body = await running(h)
    request: dict[str, Any]
    if broken == "refused":
        rule = {"kind": "error", "status": 422, "route": "quick_update", "share": 1.0}
        assert (await h.sim.admin.post("/faults", json=rule)).status_code == 201
        request = {"id": "q1", "mode": "PullRestart"}
    else:
        request = {"id": "q1", "mode": "ReinitializeSpecific", "updateModules": ["sale"], "confirm": "not-shop"}
    await edit(h, body, deploy={"request": request}, powerState="Stopped")
    assert len(await actions(h, "stop")) == 1  # the nightly stop goes out all the same
    await settle(h, body)
    assert (await sim_env(h))["status"] == "stopped"


async def test_a_size_changed_and_applied_outside_is_shown_as_running(harness: Harness) -> None:
    h = harness
    body = await running(h, resources={"ramMb": 4096}, resizePolicy="NextDeploy")
    await settle(h, body)
    assert status(h).ram_mb == 4096
    env = await sim_env(h)
    response = await h.sim.admin.patch(f"/environments/{env['id']}", json={"ram_mb": 1024, "apply_sizes": True})
    assert response.status_code == 200  # resized and restarted in the dashboard
    await settle(h, body)
    assert (await sim_env(h))["requested"]["ram_mb"] == 4096  # set back, applies at the next deploy
    assert status(h).ram_mb == 1024 and condition(h, "ResizePending")["status"] == "True"


async def test_a_start_is_not_reported_as_a_deploy(harness: Harness) -> None:
    h = harness
    body = await running(h, powerState="Stopped")
    await settle(h, body)
    await edit(h, body, powerState="Running")
    await settle(h, body)
    assert ready(h) == ("True", "Available")
    assert h.reasons("shop").count("Deployed") == 1 and "Started" in h.reasons("shop")


async def test_switching_to_restart_policy_restarts_for_a_pending_size(harness: Harness) -> None:
    h = harness
    body = await running(h, resizePolicy="NextDeploy")
    await edit(h, body, resources={"ramMb": 3072})
    await settle(h, body)
    assert await actions(h, "restart") == []
    await edit(h, body, resizePolicy="Restart")
    await settle(h, body)
    assert len(await actions(h, "restart")) == 1 and status(h).ram_mb == 3072
