"""Day-2 operations at the edges of the API's behaviour: a task seen ended before the project's
list shows its effect, a deletion while a stop runs, a size reverted while it is pending, a
stopped environment with a size or a deploy owed, a deploy owed while the operator's own task
runs; the real controller and OEC client against the in-process simulator."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from oec_simulator.clock import ManualClock
from tests.controller.conftest import Harness
from tests.controller.test_day2 import (
    DONE,
    actions,
    annotate,
    condition,
    edit,
    ready,
    requests,
    running,
    settle,
    sim_env,
    status,
)
from tests.simulator.sim_helpers import PROJECT_A, RW


@pytest.fixture
def clock() -> ManualClock:
    """The simulator's clock at the wall clock's time (as in ``test_day2``)."""
    return ManualClock(start=time.time())


async def test_a_stop_seen_ended_before_the_list_shows_it_is_not_sent_again(harness: Harness) -> None:
    """The stop completed in OEC.sh; the poll that reads the task comes before the project's next
    list, whose cached entry still says running: no second stop, no second StopRequested."""
    h = harness
    body = await running(h)
    await edit(h, body, powerState="Stopped")
    assert len(await actions(h, "stop")) == 1
    h.sim.clock.advance(DONE)
    await h.poll(body)  # the task reads completed; the cached list entry is older
    assert len(await actions(h, "stop")) == 1
    assert ready(h) == ("True", "Stopped")
    assert status(h).observed_generation == body["metadata"]["generation"]
    await settle(h, body)
    assert len(await actions(h, "stop")) == 1
    assert h.reasons("shop").count("StopRequested") == 1 and h.reasons("shop").count("Stopped") == 1


async def test_deleting_while_a_stop_runs_sends_no_delete_until_it_ended(harness: Harness) -> None:
    """One task at a time: a DELETE while the operator's stop runs is refused (409), so it is not
    sent at every deletion step; it goes once the stop ended."""
    h = harness
    body = await running(h)
    await edit(h, body, powerState="Stopped")
    for _ in range(3):
        step = await h.delete_step(body)
        assert not step.done and "task" in step.message
    assert await requests(h, "DELETE") == []
    h.sim.clock.advance(DONE)
    step = await h.delete_step(body)
    assert not step.done and "destroying" in step.message
    h.sim.clock.advance(DONE)
    assert (await h.delete_step(body)).done
    assert len(await requests(h, "DELETE")) == 1

async def test_a_size_reverted_while_pending_is_sent_when_the_api_shows_running_sizes(harness: Harness) -> None:
    """``size_view=applied``: the environment shows the size it runs with until a restart. A size
    reverted before its restart ran must be PATCHed back, or the restart applies the size the spec
    no longer asks for."""
    h = harness
    await h.sim.patch_config(size_view="applied")
    body = await running(h)
    assert status(h).ram_mb == 2048
    await edit(h, body, resources={"ramMb": 4096})  # PATCH 4096; the restart is under way
    await edit(h, body, resources={"ramMb": 2048})  # reverted before the restart ended
    rams = [e["body"]["ram_mb"] for e in await requests(h, "PATCH") if "ram_mb" in (e["body"] or {})]
    assert rams == [4096, 2048]
    for _ in range(3):
        await settle(h, body)
    env = await sim_env(h)
    applied = [t["applied_sizes"] for t in (await h.sim.admin.get(f"/environments/{env['id']}/tasks")).json()
               if t["applied_sizes"]]
    assert all(sizes["ram_mb"] == 2048 for sizes in applied)  # never ran with the reverted size
    assert status(h).ram_mb == 2048 and status(h).pending_resources is None and ready(h) == ("True", "Available")

async def test_a_size_sent_while_stopped_on_purpose_does_not_keep_the_project_polled_fast(harness: Harness) -> None:
    """A stopped environment (``spec.powerState: Stopped``) is not restarted for a new size: the size
    applies at the next start. Meanwhile nothing is in flight, so its project is listed at the
    steady interval, not the fast one (all night long, for a staging environment)."""
    h = harness
    body = await running(h, powerState="Stopped")
    await settle(h, body)
    assert ready(h) == ("True", "Stopped")
    await edit(h, body, resources={"ramMb": 4096})
    await settle(h, body)
    assert ready(h) == ("True", "Stopped") and status(h).pending_resources is not None
    assert await actions(h, "restart") == [] and await actions(h, "start") == []
    assert h.runtime.fleet.watch(RW, PROJECT_A).interval() == h.runtime.config.poll_interval
    await edit(h, body, powerState="Running")  # the start applies the size
    await settle(h, body)
    assert status(h).ram_mb == 4096 and status(h).pending_resources is None and ready(h) == ("True", "Available")

async def test_a_deploy_owed_on_a_stopped_environment_keeps_kubectl_wait_waiting(harness: Harness) -> None:
    """Stopped on purpose, then a branch change while a task started in the dashboard runs (409
    ``task_in_progress``): the deploy is owed, so the resource is not Ready and the generation
    not observed until it was sent."""
    h = harness
    body = await running(h, branch="main", powerState="Stopped")
    await settle(h, body)
    assert ready(h) == ("True", "Stopped")
    env = await sim_env(h)
    started = await h.sim.api.post(f"/environments/{env['id']}/start")  # someone starts it in the dashboard
    assert started.status_code == 202
    await edit(h, body, branch="release")
    assert status(h).pending_deploy is not None
    assert ready(h)[0] == "False"
    assert status(h).observed_generation != body["metadata"]["generation"]
    for _ in range(3):  # the start ends, the deploy runs (it starts the environment), the stop again
        await settle(h, body)
    assert (await sim_env(h))["status"] == "stopped" and ready(h) == ("True", "Stopped")
    assert status(h).observed_generation == body["metadata"]["generation"] and status(h).pending_deploy is None



async def test_a_deploy_owed_while_our_restart_runs_is_not_sent_into_a_409(harness: Harness) -> None:
    """The operator knows its restart runs (``status.task``): a branch change meanwhile owes a
    deploy that waits for that task, instead of a deploy sent and refused with 409
    ``task_in_progress`` (a write of the key's budget for nothing)."""
    h = harness
    body = await running(h, branch="main")
    deploys_before = len(await actions(h, "deploy"))
    body["metadata"]["annotations"]["oec.sh/restart-requested-at"] = "t1"
    await h.change(body)
    assert status(h).task is not None
    await edit(h, body, branch="release")
    assert status(h).pending_deploy is not None and ready(h) == ("False", "DeployPending")
    for _ in range(2):
        await settle(h, body)
    deploys = await actions(h, "deploy")
    assert [e["status"] for e in deploys[deploys_before:]] == [202]
    assert (await sim_env(h))["branch"] == "release" and ready(h) == ("True", "Available")


async def test_a_failed_restart_for_a_new_size_is_not_repeated_without_a_change(harness: Harness) -> None:
    """OEC.sh reports the restart that should apply a new size as failed (a terminal task state,
    ``docs/oec-api.md`` §1 row 23): no restart loop (the same key would only replay the failed
    task, at every poll); the resource says so, and a restart token retries it."""
    h = harness
    body = await running(h)
    await edit(h, body, resources={"ramMb": 4096})
    assert len(await actions(h, "restart")) == 1
    store = h.sim.state.store
    env = store.environments[(await sim_env(h))["id"]]
    assert env.active_task_id is not None
    store.tasks[env.active_task_id].fail_step = 0  # this restart fails in OEC.sh
    for _ in range(3):
        await settle(h, body)
    assert len(await actions(h, "restart")) == 1
    assert "RestartFailed" in h.reasons("shop")
    assert ready(h) == ("False", "FieldRefused") and "restart task ended failed" in condition(h, "Stalled")["message"]
    assert status(h).ram_mb == 2048 and status(h).pending_resources is not None
    await annotate(h, body, "oec.sh/restart-requested-at", "retry-1")
    await settle(h, body)
    assert len(await actions(h, "restart")) == 2
    assert status(h).ram_mb == 4096 and status(h).pending_resources is None and ready(h) == ("True", "Available")


async def test_a_request_id_used_again_after_another_one_deploys_again(harness: Harness) -> None:
    """``spec.deploy.request.id`` back to an id handled before (a Git revert of the CI's commit):
    it differs from ``lastHandledDeployRequest``, so it is a new request. It must start a deploy,
    not replay the first one's answer (same idempotency key within 24 h) and report a deploy that
    never ran; likewise a restart token used again."""
    h = harness
    body = await running(h)
    env_id = (await sim_env(h))["id"]

    async def tasks(kind: str) -> int:
        listed = (await h.sim.admin.get(f"/environments/{env_id}/tasks")).json()
        return len([t for t in listed if t["type"] == kind])

    deploys = await tasks("deploy")
    for request_id in ("sha-1", "sha-2", "sha-1"):
        await edit(h, body, deploy={"request": {"id": request_id}})
        await settle(h, body)
    assert await tasks("deploy") == deploys + 3
    assert status(h).last_handled_deploy_request == "sha-1" and ready(h) == ("True", "Available")
    for token in ("t1", "t2", "t1"):
        await annotate(h, body, "oec.sh/restart-requested-at", token)
        await settle(h, body)
    assert await tasks("restart") == 3
    assert h.reasons("shop").count("Restarted") == 3


async def test_a_domain_in_use_is_tried_again_after_a_steady_interval(make_harness: Callable[..., Harness]) -> None:
    """409 ``domain_in_use`` depends on another environment, not on this resource: when that one
    lets the domain go (here: its resource was paused while its domain was removed, so the second
    one asked first), the PATCH goes out again after a steady interval, not only after a change
    of this resource. Within the interval it is not repeated."""
    h = make_harness()
    first = await running(h, "first", domain="erp.example.com")
    second = await running(h, "second")
    await annotate(h, first, "oec.sh/paused", "true")
    await edit(h, first, domain="")  # paused: the domain stays on the first environment for now
    await edit(h, second, domain="erp.example.com")
    assert ready(h, "second") == ("False", "FieldRefused") and "domain_in_use" in condition(h, "Stalled", "second")[
        "message"]
    await settle(h, second)
    patches = [e for e in await requests(h, "PATCH") if e["body"].get("domain") == "erp.example.com"]
    assert [e["status"] for e in patches] == [200, 409]  # the first one's, then the second's: not repeated
    del first["metadata"]["annotations"]["oec.sh/paused"]
    await h.change(first)  # the first environment lets the domain go
    assert (await sim_env(h, "first"))["custom_domain"] is None
    h.runtime.status.view(second["metadata"]["uid"], second["status"])
    for refused in second["status"]["refusedFields"]:  # as if a steady interval passed since
        refused["refusedAt"] = "2026-12-01T00:00:00Z"
    await settle(h, second)
    assert (await sim_env(h, "second"))["custom_domain"] == "erp.example.com"
    assert not condition(h, "Stalled", "second") and status(h, "second").refused_fields is None


async def test_a_new_size_with_a_stop_does_not_restart_first(harness: Harness) -> None:
    """One change asks for a new size and ``powerState: Stopped`` (a staging environment resized
    and stopped for the night): the environment is stopped, not restarted first to apply a size
    that its next start applies anyway."""
    h = harness
    body = await running(h)
    await edit(h, body, powerState="Stopped", resources={"ramMb": 4096})
    await settle(h, body)
    await settle(h, body)
    assert await actions(h, "restart") == [] and len(await actions(h, "stop")) == 1
    assert ready(h) == ("True", "Stopped") and status(h).ram_mb == 2048
    await edit(h, body, powerState="Running")
    await settle(h, body)
    assert status(h).ram_mb == 4096 and status(h).pending_resources is None and ready(h) == ("True", "Available")


async def test_deleting_while_a_dashboard_task_runs_sends_one_delete(harness: Harness) -> None:
    """A restart started in the dashboard leaves the phase ``running``: the first DELETE is refused
    with 409 ``task_in_progress`` naming it; the deletion then reads that task until it ended
    instead of sending a DELETE at every step (each a write of the key's budget)."""
    h = harness
    body = await running(h)
    env_id = (await sim_env(h))["id"]
    assert (await h.sim.api.post(f"/environments/{env_id}/restart")).status_code == 202
    for _ in range(3):
        step = await h.delete_step(body)
        assert not step.done and "task" in step.message
    assert [e["status"] for e in await requests(h, "DELETE")] == [409]
    h.sim.clock.advance(DONE)
    await h.delete_step(body)
    h.sim.clock.advance(DONE)
    assert (await h.delete_step(body)).done
    assert [e["status"] for e in await requests(h, "DELETE")] == [409, 202]


async def test_a_new_restart_token_during_a_failing_restart_still_restarts(harness: Harness) -> None:
    """The restart for token t1 fails while the user already set t2: t2 is a new request, sent once
    t1's task ended (only a restart nobody asked for again is held back after a failure)."""
    h = harness
    body = await running(h)
    await annotate(h, body, "oec.sh/restart-requested-at", "t1")
    store = h.sim.state.store
    env = store.environments[(await sim_env(h))["id"]]
    assert env.active_task_id is not None
    store.tasks[env.active_task_id].fail_step = 0  # this restart fails in OEC.sh
    await annotate(h, body, "oec.sh/restart-requested-at", "t2")
    await settle(h, body)
    assert [e["status"] for e in await actions(h, "restart")] == [202, 202]
    assert "RestartFailed" in h.reasons("shop") and status(h).last_handled_restart_at == "t2"
    await settle(h, body)
    assert ready(h) == ("True", "Available") and not condition(h, "Stalled")


async def test_a_size_whose_restart_is_refused_does_not_keep_the_project_polled_fast(harness: Harness) -> None:
    """The restart that would apply a new size failed and is held back: the resource stalls, and
    nothing is in flight, so its project is listed at the steady interval, not the fast one."""
    h = harness
    body = await running(h)
    await edit(h, body, resources={"ramMb": 4096})
    store = h.sim.state.store
    env = store.environments[(await sim_env(h))["id"]]
    assert env.active_task_id is not None
    store.tasks[env.active_task_id].fail_step = 0  # this restart fails in OEC.sh: held back
    await settle(h, body)
    assert ready(h) == ("False", "FieldRefused") and status(h).pending_resources is not None
    await settle(h, body)
    assert h.runtime.fleet.watch(RW, PROJECT_A).interval() == h.runtime.config.poll_interval
