"""Writes the API refuses are not sent again and again (issue 11, sections 3 and 4): a write the key
may not make waits for a change, an owed deploy waits for the running task, and the message of a
create queued behind the write budget stays true while it waits."""

from __future__ import annotations

import asyncio
import datetime
import re
from collections.abc import Callable
from typing import Any

from oec_operator.controller.state import ResourceState
from oec_operator.models.status import Status
from tests.controller.conftest import Harness
from tests.simulator.sim_helpers import PROJECT_A, RO, RW


def status(h: Harness, name: str, namespace: str = "team") -> Status:
    return Status.from_body(h.kube.objects[(namespace, name)].get("status"))


async def requests(h: Harness, method: str, pattern: str) -> list[dict[str, Any]]:
    """The simulator's log of public-API requests with this method whose path matches ``pattern``."""
    response = await h.sim.admin.get("/requests")
    assert response.status_code == 200
    return [r for r in response.json() if r["method"] == method and re.fullmatch(pattern, r["path"])]


CREATE = r"/api/public/v1/projects/[^/]+/environments"
PATCH = r"/api/public/v1/environments/[^/]+"
DEPLOY = r"/api/public/v1/environments/[^/]+/deploy"


async def running(h: Harness) -> dict[str, Any]:
    """A resource "shop" on branch main whose environment runs."""
    body = h.add("shop", branch="main")
    await h.change(body)
    h.sim.clock.advance(60)
    await h.list_project()
    await h.poll(body)
    return body


async def restarting(h: Harness) -> dict[str, Any]:
    """:func:`running`, then someone restarts the environment: a 30 s task, the phase stays running."""
    await h.sim.patch_config(action_seconds=30.0)
    body = await running(h)
    restart = await h.sim.api.post(f"/environments/{status(h, 'shop').environment_id}/restart")
    assert restart.status_code == 202, restart.text
    return body


async def test_a_create_refused_to_a_read_only_key_is_sent_once_until_the_key_changes(
        make_harness: Callable[..., Harness]) -> None:
    h = make_harness()
    h.kube.set_key(RO)
    body = h.add("shop")
    body["metadata"]["annotations"]["oec.sh/poll-interval"] = "15"
    await h.change(body)
    for _ in range(6):  # six steady polls (90 s at this poll interval)
        await h.list_project(RO)
        await h.poll(body)
    refused = await requests(h, "POST", CREATE)
    assert [r["status"] for r in refused] == [403]
    stalled = status(h, "shop").condition("Stalled")
    assert stalled is not None and stalled["reason"] == "AuthFailed"
    assert h.reasons("shop").count("AuthFailed") == 1  # one Warning, not one per poll
    assert RO not in str(h.kube.status_patches)  # the key is never in the status
    h.kube.set_key(RW)  # the Secret now holds a full-access key
    await h.poll(body)  # the next steady poll
    assert [r["status"] for r in await requests(h, "POST", CREATE)] == [403, 201]
    assert status(h, "shop").environment_id
    assert status(h, "shop").condition("Stalled") is None
    assert "Created" in h.reasons("shop")


async def test_a_refusal_is_remembered_across_a_restart(make_harness: Callable[..., Harness]) -> None:
    h = make_harness()
    h.kube.set_key(RO)
    body = h.add("shop")
    await h.change(body)
    restarted = make_harness()  # a new process: no memory but the status
    restarted.kube.objects, restarted.kube.secrets = h.kube.objects, h.kube.secrets
    restarted.states[body["metadata"]["uid"]] = ResourceState()
    for _ in range(3):
        await restarted.poll(body)
    assert [r["status"] for r in await requests(h, "POST", CREATE)] == [403]
    stalled = status(restarted, "shop").condition("Stalled")
    assert stalled is not None and stalled["reason"] == "AuthFailed"


async def test_a_refused_patch_is_sent_again_only_for_a_new_generation(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(secret_cache_ttl=0)
    body = h.add("shop", branch="main")
    await h.change(body)
    h.sim.clock.advance(60)
    h.kube.set_key(RO)  # rotated by mistake to a read-only key
    body["spec"]["branch"] = "feature"
    body["metadata"]["generation"] = 2
    await h.change(body)
    for _ in range(4):
        await h.list_project(RO)
        await h.poll(body)
    assert [r["status"] for r in await requests(h, "PATCH", PATCH)] == [403]
    stalled = status(h, "shop").condition("Stalled")
    assert stalled is not None and stalled["reason"] == "AuthFailed"
    body["spec"]["branch"] = "feature-2"  # a new change is tried once more
    body["metadata"]["generation"] = 3
    await h.change(body)
    await h.poll(body)
    assert [r["status"] for r in await requests(h, "PATCH", PATCH)] == [403, 403]


async def test_an_owed_deploy_waits_for_the_running_first_deploy(harness: Harness) -> None:
    h = harness
    await h.sim.patch_config(deploy_seconds=60.0)
    body = h.add("shop", branch="main")
    await h.change(body)
    h.sim.clock.advance(2)
    body["spec"]["branch"] = "feature"  # changed while the first deploy runs
    body["metadata"]["generation"] = 2
    await h.change(body)
    assert status(h, "shop").pending_deploy is not None  # the owed deploy is recorded
    for _ in range(40):  # a fast poll every 2 s for 80 s
        h.sim.clock.advance(2)
        await h.list_project()
        await h.poll(body)
    deploys = await requests(h, "POST", DEPLOY)
    assert sum(r["status"] == 409 for r in deploys) <= 1, [r["status"] for r in deploys]
    assert [r["status"] for r in deploys if r["status"] != 409] == [202]
    h.sim.clock.advance(61)  # the new deploy is done
    await h.list_project()
    await h.poll(body)
    final = status(h, "shop")
    assert final.phase == "running" and final.branch == "feature" and final.pending_deploy is None
    assert "DeployStarted" in h.reasons("shop")
    assert [r["status"] for r in await requests(h, "POST", DEPLOY)] == [r["status"] for r in deploys]


async def test_an_owed_deploy_waits_for_a_task_that_does_not_show_in_the_phase(harness: Harness) -> None:
    h = harness
    body = await restarting(h)  # someone restarts it: a 30 s task, the phase stays running
    body["spec"]["branch"] = "feature"
    body["metadata"]["generation"] = 2
    await h.change(body)
    for _ in range(20):
        h.sim.clock.advance(2)
        await h.list_project()
        await h.poll(body)
    statuses = [r["status"] for r in await requests(h, "POST", DEPLOY)]
    assert statuses == [409, 202]  # one refusal names the task; the deploy follows once it ended
    assert "DeployStarted" in h.reasons("shop")


async def test_the_write_budget_wait_message_follows_the_wait(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(fast_poll_interval=0.5)
    h.runtime.client(RW)  # the key's limiter
    limiter = next(iter(h.runtime.limiters.values()))
    announced = {"x-ratelimit-limit": "20"}
    limiter.rate_limited(write=True, retry_after=2.0, headers=announced)  # the write budget is spent for 2 s
    body = h.add("shop")
    create = asyncio.create_task(h.change(body))
    await asyncio.sleep(1.0)
    limiter.rate_limited(write=True, retry_after=4.0, headers=announced)  # ... and then for longer
    await create
    created = datetime.datetime.now(datetime.UTC)
    waiting = [c["message"] for p in h.kube.status_patches for c in p.get("conditions") or ()
               if c["type"] == "Ready" and c["reason"] == "RateLimited"]
    assert len(set(waiting)) >= 2, waiting  # the estimate was updated while it waited
    said = re.search(r"until about (\d\d:\d\d:\d\d) UTC", waiting[-1])
    assert said is not None, waiting[-1]
    at = datetime.datetime.combine(created.date(), datetime.time.fromisoformat(said.group(1)), datetime.UTC)
    assert abs((at - created).total_seconds()) < 3, (waiting, created)  # the last word was about right
    assert status(h, "shop").environment_id


async def test_a_deploy_refused_in_this_phase_waits_for_the_phase_to_change(harness: Harness) -> None:
    h = harness
    body = h.add("shop", branch="main")
    await h.change(body)
    h.sim.clock.advance(60)
    env_id = status(h, "shop").environment_id
    paused = await h.sim.admin.patch(f"/environments/{env_id}", json={"status": "paused"})  # by the platform
    assert paused.status_code == 200, paused.text
    body["metadata"]["annotations"]["oec.sh/redeploy-requested-at"] = "r1"
    await h.change(body)
    for _ in range(5):
        h.sim.clock.advance(2)
        await h.list_project()
        await h.poll(body)
    assert [r["status"] for r in await requests(h, "POST", DEPLOY)] == [409]  # invalid_state, once
    assert status(h, "shop").pending_deploy is not None  # still owed
    resumed = await h.sim.admin.patch(f"/environments/{env_id}", json={"status": "running"})
    assert resumed.status_code == 200, resumed.text
    await h.list_project()
    await h.poll(body)
    assert [r["status"] for r in await requests(h, "POST", DEPLOY)] == [409, 202]
    assert status(h, "shop").pending_deploy is None and "DeployStarted" in h.reasons("shop")


async def test_a_delete_refused_to_a_read_only_key_waits_for_the_key_to_change(
        make_harness: Callable[..., Harness]) -> None:
    h = make_harness(secret_cache_ttl=0)
    body = h.add("shop")
    await h.change(body)
    h.sim.clock.advance(60)  # running
    h.kube.set_key(RO)  # rotated by mistake to a read-only key, then the resource is deleted
    steps = [await h.delete_step(body) for _ in range(5)]
    assert not any(step.done for step in steps)
    assert all(step.retry_after == 60.0 for step in steps)  # the steady interval, not a fast backoff
    assert [r["status"] for r in await requests(h, "DELETE", PATCH)] == [403]
    ready = status(h, "shop").condition("Ready")
    assert ready is not None and ready["reason"] == "AuthFailed" and "full-access key" in ready["message"]
    assert RO not in str(h.kube.status_patches)
    h.kube.set_key(RW)  # fixed
    await h.delete_step(body)
    h.sim.clock.advance(10)  # the destroy is done
    assert (await h.delete_step(body)).done
    assert [r["status"] for r in await requests(h, "DELETE", PATCH)] == [403, 202]


async def test_a_create_refused_for_quota_goes_out_again_once_the_project_changed(
        make_harness: Callable[..., Harness]) -> None:
    h = make_harness()
    old = h.add("old")
    await h.change(old)
    h.sim.clock.advance(60)
    await h.sim.patch_config(max_environments=1)  # the plan's quota is used up by "old"
    body = h.add("shop")
    await h.change(body)
    for _ in range(3):
        await h.list_project()
        await h.poll(body)
    assert [r["status"] for r in await requests(h, "POST", CREATE)] == [201, 422]  # refused once
    ready = status(h, "shop").condition("Ready")
    assert ready is not None and ready["reason"] == "PlanLimit"
    assert "not sent again until" in ready["message"]  # says why nothing happens and what to change
    old_id = status(h, "old").environment_id
    assert (await h.sim.admin.delete(f"/environments/{old_id}")).status_code in (200, 202, 204)
    h.sim.clock.advance(10)  # "old" is gone: the quota has room again
    await h.list_project()  # the project's list shows it
    await h.poll(body)
    assert [r["status"] for r in await requests(h, "POST", CREATE)] == [201, 422, 201]
    assert status(h, "shop").environment_id


async def test_not_ready_while_a_deploy_is_owed_behind_a_running_task(harness: Harness) -> None:
    h = harness
    body = await restarting(h)  # someone restarts it: a 30 s task, the phase stays running
    body["spec"]["branch"] = "feature"
    body["metadata"]["generation"] = 2
    await h.change(body)  # PATCH done, deploy refused 409: owed until the restart ended
    owed = status(h, "shop")
    ready, reconciling = owed.condition("Ready"), owed.condition("Reconciling")
    assert ready is not None and ready["status"] == "False" and ready["reason"] == "DeployPending"
    assert reconciling is not None and reconciling["status"] == "True"
    assert owed.observed_generation != 2  # kubectl wait / kstatus keep waiting
    for _ in range(20):
        h.sim.clock.advance(2)
        await h.list_project()
        await h.poll(body)
    h.sim.clock.advance(120)  # the deploy of "feature" is done
    await h.list_project()
    await h.poll(body)
    done = status(h, "shop")
    ready = done.condition("Ready")
    assert ready is not None and ready["status"] == "True" and done.branch == "feature"
    assert done.observed_generation == 2


async def test_not_ready_after_a_deploy_whose_status_read_failed(harness: Harness) -> None:
    h = harness
    body = await running(h)
    # The detail route lags behind (a 404 while the list shows the environment): no health read.
    response = await h.sim.admin.post("/faults", json={"kind": "error", "status": 404, "code": "not_found",
                                                       "route": "environment_status", "count": 1})
    assert response.status_code == 201, response.text
    body["spec"]["branch"] = "feature"
    body["metadata"]["generation"] = 2
    await h.change(body)  # PATCH, deploy accepted, its /status read answered 404
    assert "DeployStarted" in h.reasons("shop")
    started = status(h, "shop")
    ready = started.condition("Ready")
    assert ready is not None and ready["status"] != "True", ready  # the old code still runs
    assert started.phase == "deploying"
    h.sim.clock.advance(60)  # the deploy of "feature" is done
    await h.list_project()
    await h.poll(body)
    done = status(h, "shop")
    ready = done.condition("Ready")
    assert ready is not None and ready["status"] == "True" and done.branch == "feature"


async def test_a_read_only_keys_create_is_not_resent_when_another_environment_appears(
        make_harness: Callable[..., Harness]) -> None:
    h = make_harness()
    h.kube.set_key(RO)
    body = h.add("shop")
    await h.change(body)
    created = await h.sim.api.post(f"/projects/{PROJECT_A}/environments",  # someone else's, with a full key
                                   json={"name": "elsewhere", "environment_type": "development"},
                                   headers={"X-Idempotency-Key": "other-1"})
    assert created.status_code == 201, created.text
    for _ in range(3):
        await h.list_project(RO)
        await h.poll(body)
    assert [r["status"] for r in await requests(h, "POST", CREATE) if r["status"] != 201] == [403]


async def test_a_second_branch_change_while_a_deploy_is_owed_deploys_the_last_branch(harness: Harness) -> None:
    h = harness
    body = await restarting(h)  # someone restarts it: a 30 s task, the phase stays running
    for generation, branch in ((2, "first"), (3, "second")):
        body["spec"]["branch"] = branch
        body["metadata"]["generation"] = generation
        await h.change(body)
    owed = status(h, "shop").pending_deploy
    assert owed is not None and "second" in owed.reason
    for _ in range(20):
        h.sim.clock.advance(2)
        await h.list_project()
        await h.poll(body)
    started = [e.message for n, e in h.events if n == "shop" and e.reason == "DeployStarted"]
    assert len(started) == 1 and "second" in started[0], started
    assert [r["status"] for r in await requests(h, "POST", DEPLOY)] == [409, 202]  # one refusal per task
