"""A 404 is not proof that an environment is gone (two observations and a grace period), and a
create the API refused leaves nothing for a deletion to replay (``docs/reconciliation.md``).

The real controllers and OEC.sh client against the in-process simulator (on a manual clock) and an
in-memory apiserver."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from oec_simulator import ManualClock
from tests.controller.conftest import Harness
from tests.controller.test_sync import environments, status
from tests.simulator.sim_helpers import PROJECT_A


@pytest.fixture
def clock() -> ManualClock:
    """The simulator's clock starts at the wall clock's time, so an environment's ``createdAt``
    is "now" for the operator too (the grace period after a create is measured from it)."""
    return ManualClock(start=time.time())


async def requests_since(h: Harness, seq: int) -> list[tuple[str, str, int | None]]:
    """``(method, path, status)`` of every API request the simulator answered after ``seq``."""
    response = await h.sim.admin.get("/requests", params={"since": seq})
    assert response.status_code == 200
    return [(e["method"], e["path"], e["status"]) for e in response.json()]


async def last_seq(h: Harness) -> int:
    entries = (await h.sim.admin.get("/requests")).json()
    return max((e["seq"] for e in entries), default=0)


async def inject(h: Harness, **rule: Any) -> None:
    response = await h.sim.admin.post("/faults", json=rule)
    assert response.status_code == 201, response.text


def never_deleted(h: Harness, name: str) -> None:
    """No sign of "deleted outside Kubernetes" at all: no Event, no phase, no stall."""
    assert "ExternallyDeleted" not in h.reasons(name)
    current = status(h, name)
    assert current.phase != "deleted"
    assert current.condition("Stalled") is None


async def running(h: Harness, body: dict[str, Any]) -> None:
    """Let the first deploy finish and let the resource see it."""
    h.sim.clock.advance(10)
    await h.list_project()
    await h.poll(body)
    assert status(h, body["metadata"]["name"]).phase == "running"


# -- §1: a single 404 is not proof -----------------------------------------------------------------
@pytest.mark.parametrize("grace", [30.0, 0.0], ids=["within-grace", "after-grace"])
async def test_detail_reads_lagging_behind_the_create_never_mean_deleted(
        make_harness: Callable[..., Harness], grace: float) -> None:
    h = make_harness(external_delete_grace_period=grace)
    await h.sim.patch_config(detail_lag_seconds=10)
    body = h.add("shop")
    await h.change(body)
    for _ in range(2):  # the first deploy ends (5 s) while GET /environments/{id}/status still answers 404
        h.sim.clock.advance(4)
        await h.list_project()
        await h.poll(body)
        never_deleted(h, "shop")
    h.sim.clock.advance(4)  # the detail routes answer now
    await h.list_project()
    await h.poll(body)
    never_deleted(h, "shop")
    current = status(h, "shop")
    assert current.phase == "running" and current.health is not None
    ready = current.condition("Ready")
    assert ready is not None and ready["status"] == "True"
    assert not [e for _, e in h.events if e.type == "Warning"]


async def test_a_spec_change_is_not_consumed_by_a_transient_404(harness: Harness) -> None:
    h = harness
    body = h.add("shop", branch="main")
    await h.change(body)
    await running(h, body)
    env_id = status(h, "shop").environment_id
    # The detail route answers 404 for a while (e.g. a replica lagging behind); the list shows it.
    await inject(h, kind="error", status=404, code="not_found", route="get_environment", count=3)
    await inject(h, kind="error", status=404, code="not_found", route="environment_status", count=3)
    seq = await last_seq(h)
    body["spec"]["branch"] = "feature"
    body["metadata"]["generation"] = 2
    await h.change(body)
    for _ in range(3):
        await h.list_project()
        await h.poll(body)
    sent = await requests_since(h, seq)
    assert ("PATCH", f"/api/public/v1/environments/{env_id}", 200) in sent
    assert "Updated" in h.reasons("shop")
    assert "DriftCorrected" not in h.reasons("shop")
    never_deleted(h, "shop")
    assert next(e for e in await environments(h) if e["id"] == env_id)["branch"] == "feature"


async def test_an_external_delete_is_still_reported(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(external_delete_grace_period=0)
    body = h.add("shop")
    await h.change(body)
    await running(h, body)
    env_id = status(h, "shop").environment_id
    assert (await h.sim.admin.delete(f"/environments/{env_id}")).status_code in (200, 202, 204)
    h.sim.clock.advance(10)
    await h.list_project()
    await h.poll(body)
    current = status(h, "shop")
    assert current.phase == "deleted"
    stalled = current.condition("Stalled")
    assert stalled is not None and stalled["reason"] == "ExternallyDeleted"
    assert [e.type for _, e in h.events if e.reason == "ExternallyDeleted"] == ["Warning"]


async def test_no_external_delete_within_the_grace_period(harness: Harness) -> None:
    h = harness
    body = h.add("shop")
    await h.change(body)
    env_id = status(h, "shop").environment_id
    assert (await h.sim.admin.delete(f"/environments/{env_id}")).status_code in (200, 202, 204)
    h.sim.clock.advance(10)  # gone from the list and from every route, seconds after its create
    await h.list_project()
    await h.poll(body)
    never_deleted(h, "shop")
    assert h.state(body).next_poll_at - asyncio.get_running_loop().time() <= 2 * h.runtime.config.fast_poll_interval
    h.runtime.config.external_delete_grace_period = 0  # as if the grace period had passed
    await h.poll(body)
    stalled = status(h, "shop").condition("Stalled")
    assert stalled is not None and stalled["reason"] == "ExternallyDeleted"


async def test_adopting_an_environment_whose_detail_read_lags_behind_its_create(
        make_harness: Callable[..., Harness]) -> None:
    h = make_harness(fast_poll_interval=5.0)
    await h.sim.patch_config(detail_lag_seconds=20)
    await h.list_project()  # the project's watch listed it just before the environment's create
    created = await h.sim.create_env(name="legacy")
    body = h.add("legacy", environmentId=created["id"])
    await h.change(body)  # GET /environments/{id} answers 404 while the project's list shows it
    assert "Adopted" in h.reasons("legacy")
    assert not [e for _, e in h.events if e.type == "Warning"]
    current = status(h, "legacy")
    assert current.environment_id == created["id"]
    assert current.condition("Stalled") is None
    h.sim.clock.advance(21)  # the detail routes answer now
    await h.list_project()
    await h.poll(body)
    current = status(h, "legacy")
    assert current.condition("Stalled") is None and current.environment_id == created["id"]
    assert h.reasons("legacy").count("Adopted") == 1
    assert not [e for _, e in h.events if e.type == "Warning"]


async def test_adopting_an_environment_that_does_not_exist_stalls(harness: Harness) -> None:
    h = harness
    missing = "d4b490d2-d00f-4c66-a1a8-000000000000"
    body = h.add("legacy", environmentId=missing)
    await h.change(body)
    current = status(h, "legacy")
    stalled = current.condition("Stalled")
    assert stalled is not None and stalled["reason"] == "InvalidSpec"
    assert missing in stalled["message"]
    assert current.environment_id is None
    assert [e.type for _, e in h.events if e.reason == "InvalidSpec"] == ["Warning"]
    assert await environments(h) == []  # nothing created in its place


# -- §2: a refused create leaves nothing to replay -------------------------------------------------
async def refuse_validation(h: Harness) -> Callable[[], Awaitable[None]]:
    await inject(h, kind="error", status=422, code="validation_error", route="create_environment", count=1)

    async def fix() -> None:  # one refusal only: the branch was pushed meanwhile
        return None
    return fix


async def refuse_not_found(h: Harness) -> Callable[[], Awaitable[None]]:
    await inject(h, kind="error", status=404, code="not_found", route="create_environment", count=1)

    async def fix() -> None:  # the project became visible to the key meanwhile
        return None
    return fix


async def refuse_quota(h: Harness) -> Callable[[], Awaitable[None]]:
    await h.sim.patch_config(max_environments=0)

    async def fix() -> None:  # the plan's quota was raised
        await h.sim.patch_config(max_environments=None)
    return fix


async def refuse_project(h: Harness) -> Callable[[], Awaitable[None]]:
    async def fix() -> None:  # the project was created afterwards
        response = await h.sim.admin.post("/projects", json={"id": UNKNOWN_PROJECT, "name": "late"})
        assert response.status_code == 201, response.text
    return fix


UNKNOWN_PROJECT = "44444444-4444-4444-8444-444444444444"


@pytest.mark.parametrize(("refuse", "project", "reason"), [
    (refuse_validation, PROJECT_A, "InvalidSpec"),
    (refuse_quota, PROJECT_A, "PlanLimit"),
    (refuse_not_found, PROJECT_A, "InvalidSpec"),
    (refuse_project, UNKNOWN_PROJECT, "InvalidSpec"),
], ids=["validation_error", "quota_exceeded", "not_found", "unknown_project"])
async def test_deleting_after_a_refused_create_creates_nothing(
        harness: Harness, refuse: Callable[[Harness], Awaitable[Callable[[], Awaitable[None]]]],
        project: str, reason: str) -> None:
    h = harness
    fix = await refuse(h)
    body = h.add("shop", projectId=project)
    await h.change(body)
    stalled = status(h, "shop").condition("Stalled")
    assert stalled is not None and stalled["reason"] == reason
    await fix()
    seq = await last_seq(h)
    step = await h.delete_step(body)
    assert step.done  # the finalizer is released at once
    assert [r for r in await requests_since(h, seq) if r[0] in ("POST", "DELETE")] == []
    assert await environments(h) == []


async def test_deleting_after_an_ambiguous_create_still_finds_its_environment(harness: Harness) -> None:
    h = harness
    # The API created it but the answer was lost (a 503 after the change).
    await inject(h, kind="error", status=503, route="create_environment", when="after", count=1)
    body = h.add("shop")
    await h.change(body)
    assert status(h, "shop").create_request is not None
    [created] = await environments(h)
    step = await h.delete_step(body)
    assert not step.done
    h.sim.clock.advance(10)
    while not step.done:
        h.sim.clock.advance(5)
        step = await h.delete_step(body)
    assert await environments(h) == []
    assert "Deleted" in h.reasons("shop") and created["name"] == "shop"


async def test_a_busy_answer_to_the_deletions_replay_is_asked_again(harness: Harness) -> None:
    h = harness
    await inject(h, kind="error", status=503, route="create_environment", when="after", count=1)
    body = h.add("shop")
    await h.change(body)
    assert len(await environments(h)) == 1
    # The replay meets 409 concurrent_action (the older API's idempotency lock): not "nothing exists".
    await inject(h, kind="conflict", code="concurrent_action", route="create_environment", count=1)
    step = await h.delete_step(body)
    assert not step.done
    for _ in range(20):
        h.sim.clock.advance(5)
        step = await h.delete_step(body)
        if step.done:
            break
    assert step.done and await environments(h) == []


async def test_a_spec_change_whose_first_read_failed_is_reported_as_updated(harness: Harness) -> None:
    h = harness
    body = h.add("shop", branch="main")
    await h.change(body)
    await running(h, body)
    await inject(h, kind="error", status=503, code="service_unavailable", route="get_environment", count=1)
    body["spec"]["branch"] = "feature"
    body["metadata"]["generation"] = 2
    await h.change(body)  # the fresh read answers 503: retried later
    assert "Updated" not in h.reasons("shop")
    for _ in range(2):
        await h.list_project()
        await h.poll(body)
    assert "Updated" in h.reasons("shop")  # the user's change, not drift
    assert "DriftCorrected" not in h.reasons("shop")
