"""Webhook hints (docs/webhooks.md §2, §6): the PushHub routes a hint to exactly the object that
owns the environment, reads that one environment once per debounce period through the key's
client, forwards to the owner's replica through an annotation when the loop runs elsewhere, and
the key's push health stretches the project lists; the real SyncController and OEC client
against the in-process simulator."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from oec_operator.controller.push import PushHub
from oec_operator.domain.polling import ProjectWatch
from oec_operator.domain.pushhealth import PushHealth
from oec_operator.models.requests import REFRESH_REQUESTED_AT
from oec_operator.models.status import Status
from oec_operator.oec.client import key_id_of
from oec_operator.webhooks.registration import WebhookState
from oec_simulator.clock import ManualClock
from tests.controller.conftest import Harness
from tests.simulator.sim_helpers import PROJECT_A, RO, RW

KEY = key_id_of(RW)


@pytest.fixture
def clock() -> ManualClock:
    """The simulator's clock at the wall clock's time (the operator's ``now`` and the API's times agree)."""
    return ManualClock(start=time.time())


@pytest.fixture
def h(make_harness: Callable[..., Harness]) -> Harness:
    harness = make_harness(webhook_debounce=0.2)
    harness.runtime.push = PushHub(harness.runtime)
    return harness


def hub(h: Harness) -> PushHub:
    assert h.runtime.push is not None
    return h.runtime.push


def status(h: Harness, name: str) -> Status:
    return Status.from_body(h.kube.objects[("team", name)].get("status"))


async def running(h: Harness, name: str) -> dict[str, Any]:
    """A resource whose environment was created and deployed, subscribed to its project's watch."""
    body = h.add(name)
    await h.change(body)
    h.sim.clock.advance(10)
    for _ in range(2):
        await h.list_project()
        await h.poll(body)
    assert status(h, name).phase == "running"
    h.state(body).changed = False
    return body


async def api_reads(h: Harness, since: int) -> list[str]:
    """``METHOD path`` of the API requests after request ``since`` (the simulator's log)."""
    entries = (await h.sim.admin.get("/requests", params={"since": since})).json()
    return [f"{e['method']} {e['path'].removeprefix('/api/public/v1')}" for e in entries]


async def last_seq(h: Harness) -> int:
    entries = (await h.sim.admin.get("/requests")).json()
    return int(entries[-1]["seq"]) if entries else 0


def watch(h: Harness) -> ProjectWatch:
    return h.runtime.fleet.watch(RW, PROJECT_A)


async def test_a_hint_wakes_only_the_owner_and_its_status_shows_the_api_state(h: Harness) -> None:
    shop, other = await running(h, "shop"), await running(h, "other")
    env_id = status(h, "shop").environment_id
    assert env_id
    response = await h.sim.admin.patch(f"/environments/{env_id}", json={"status": "stopped"})  # the dashboard
    assert response.status_code == 200
    since = await last_seq(h)
    assert await hub(h).hint(KEY, env_id, "environment.status_changed")
    await hub(h).drain()
    assert await api_reads(h, since) == [f"GET /environments/{env_id}"]  # one targeted read, no list
    assert h.state(shop).changed and not h.state(other).changed  # no fan-out
    await h.poll(shop)
    assert status(h, "shop").phase == "stopped"  # from the API, never from the payload
    assert status(h, "other").phase == "running"


async def test_a_hint_without_a_change_costs_one_read_and_writes_nothing(h: Harness) -> None:
    shop = await running(h, "shop")
    env_id = status(h, "shop").environment_id
    assert env_id
    since, writes = await last_seq(h), h.kube.calls["patch_status"]
    assert await hub(h).hint(KEY, env_id, "environment.status_changed")
    await hub(h).drain()
    assert await api_reads(h, since) == [f"GET /environments/{env_id}"]
    assert not h.state(shop).changed
    assert h.kube.calls["patch_status"] == writes and h.kube.calls["patch_metadata"] == 0


async def test_a_burst_of_hints_for_one_environment_costs_one_read(h: Harness) -> None:
    await running(h, "shop")
    env_id = status(h, "shop").environment_id
    assert env_id
    since = await last_seq(h)
    for _ in range(100):  # well within the 0.2 s debounce
        assert await hub(h).hint(KEY, env_id, "deploy.started")
    await hub(h).drain()
    assert await api_reads(h, since) == [f"GET /environments/{env_id}"]


async def test_the_first_hint_reads_at_once_and_later_ones_join_one_read_at_the_end_of_the_period(
        make_harness: Callable[..., Harness]) -> None:
    h = make_harness(webhook_debounce=2.0)
    h.runtime.push = PushHub(h.runtime)
    await running(h, "shop")
    env_id = status(h, "shop").environment_id
    assert env_id
    since = await last_seq(h)
    started = time.monotonic()
    assert await hub(h).hint(KEY, env_id, "deploy.started")
    await hub(h).drain()
    assert time.monotonic() - started < 1.0  # not held for the debounce period
    assert await api_reads(h, since) == [f"GET /environments/{env_id}"]
    for _ in range(20):  # a burst right after: may announce a change after that read
        assert await hub(h).hint(KEY, env_id, "deploy.completed")
        await asyncio.sleep(0.01)
    await hub(h).drain()
    reads = [r for r in await api_reads(h, since) if not r.startswith("GET /projects/")]  # the lists go on
    assert reads == [f"GET /environments/{env_id}"] * 2
    assert time.monotonic() - started >= 2.0  # the second read waited for the end of the period


async def test_a_hint_without_spare_read_budget_sends_nothing_and_leaves_it_to_the_list(h: Harness) -> None:
    """During a mass create thousands of deliveries arrive; their reads must never queue in front
    of the creates' and the lists' reads: a hint reads only from the key's spare budget."""
    await running(h, "shop")
    env_id = status(h, "shop").environment_id
    assert env_id
    limiter = h.runtime._limiter(RW)
    while limiter.try_acquire(write=False):  # the spare part of the read budget used up
        pass
    since = await last_seq(h)
    assert await hub(h).hint(KEY, env_id, "environment.status_changed")  # still owned: 202
    await hub(h).drain()
    assert [r for r in await api_reads(h, since) if not r.startswith("GET /projects/")] == []


async def test_an_unknown_environment_is_refused_after_at_most_one_list(h: Harness) -> None:
    await running(h, "shop")
    since = await last_seq(h)
    for n in range(50):
        assert not await hub(h).hint(KEY, f"00000000-0000-4000-8000-{n:012d}", "environment.created")
    assert h.kube.calls["list_objects"] == 1
    assert await api_reads(h, since) == []  # an unknown id costs no API read


async def test_without_a_local_loop_the_owner_gets_the_refresh_annotation(h: Harness,
                                                                         make_harness: Callable[..., Harness]) -> None:
    await running(h, "shop")
    env_id = status(h, "shop").environment_id
    assert env_id
    standby = make_harness(webhook_debounce=0.2)  # another replica: no poll loop of "shop" runs there
    standby.kube.objects = standby.kube.kinds["odooenvironments"] = h.kube.objects
    standby.runtime.push = PushHub(standby.runtime)
    since = await last_seq(h)
    for _ in range(10):
        assert await standby.runtime.push.hint(KEY, env_id, "environment.status_changed")
    annotations = h.kube.objects[("team", "shop")]["metadata"]["annotations"]
    assert REFRESH_REQUESTED_AT in annotations  # the active replica's update handler reconciles it
    assert standby.kube.calls["patch_metadata"] == 1 and standby.kube.calls["list_objects"] == 1
    assert await api_reads(h, since) == []  # the standby reads nothing from the API


async def test_push_mode_stretches_the_steady_lists_and_an_unannounced_change_ends_it(h: Harness) -> None:
    shop = await running(h, "shop")
    env_id = status(h, "shop").environment_id
    assert env_id
    now = [0.0]
    health = h.runtime.push_health[KEY] = PushHealth(
        KEY, stretch=6.0, memory=180.0, state_ttl=600.0, grace=10.0, clock=lambda: now[0],
        on_switch=h.runtime._push_switched)
    assert watch(h).interval() == 60.0  # no webhook: the steady interval
    health.webhook_state(registered=True, is_active=True, failure_count=0)
    hub(h).delivered(KEY)
    assert watch(h).interval() == 360.0  # push: 6 x the steady interval
    # A change no delivery announces: the list sees it, no hint within the grace.
    await h.sim.admin.patch(f"/environments/{env_id}", json={"status": "stopped"})
    watch(h)._kick.clear()
    await h.list_project()
    assert h.state(shop).changed
    now[0] += 11
    assert health.mode() == "poll"
    assert watch(h)._kick.is_set()  # the watch plans its next list again at once
    assert watch(h).interval() == 60.0


async def test_an_announced_change_keeps_push(h: Harness) -> None:
    await running(h, "shop")
    env_id = status(h, "shop").environment_id
    assert env_id
    now = [0.0]
    health = h.runtime.push_health[KEY] = PushHealth(
        KEY, stretch=6.0, memory=180.0, state_ttl=600.0, grace=10.0, clock=lambda: now[0])
    health.webhook_state(registered=True, is_active=True, failure_count=0)
    health.delivered()
    await h.sim.admin.patch(f"/environments/{env_id}", json={"status": "stopped"})
    await h.list_project()  # the list comes before the delivery
    now[0] += 2
    assert await hub(h).hint(KEY, env_id, "environment.status_changed")
    now[0] += 20
    assert health.mode() == "push" and watch(h).interval() == 360.0


async def test_a_busy_project_is_listed_fast_even_in_push_mode(h: Harness) -> None:
    shop = await running(h, "shop")
    health = h.runtime.health(KEY)
    health.webhook_state(registered=True, is_active=True, failure_count=0)
    health.delivered()
    assert watch(h).interval() == 360.0
    shop["spec"]["branch"] = "feature"
    shop["metadata"]["generation"] += 1
    await h.change(shop)  # a deploy in flight
    assert watch(h).interval() == h.runtime.config.fast_poll_interval


async def test_a_conflicting_resource_does_not_take_the_hints(h: Harness) -> None:
    shop = await running(h, "shop")
    env_id = status(h, "shop").environment_id
    assert env_id
    twin = h.add("twin", environmentId=env_id)  # adopts an environment "shop" manages
    await h.change(twin)
    assert (status(h, "twin").condition("Ready") or {}).get("reason") == "Conflict"
    await h.sim.admin.patch(f"/environments/{env_id}", json={"status": "stopped"})
    assert await hub(h).hint(KEY, env_id, "environment.status_changed")
    assert h.runtime.fleet.route(env_id) is watch(h)
    await hub(h).drain()
    assert h.state(shop).changed and not h.state(twin).changed


async def test_the_refresh_annotation_reads_the_environment_afresh(h: Harness) -> None:
    """The active replica's side of a forwarded hint: kopf's update handler sees the new
    ``oec.sh/refresh-requested-at`` and the reconcile reads the environment (not the list's copy)."""
    shop = await running(h, "shop")
    env_id = status(h, "shop").environment_id
    assert env_id
    await h.sim.admin.patch(f"/environments/{env_id}", json={"status": "stopped"})
    since = await last_seq(h)
    shop["metadata"]["annotations"][REFRESH_REQUESTED_AT] = "2026-12-05T01:00:00.000Z"
    await h.change(shop)
    assert f"GET /environments/{env_id}" in await api_reads(h, since)
    assert status(h, "shop").phase == "stopped"
    since = await last_seq(h)
    shop["metadata"]["annotations"]["team"] = "x"  # another annotation: the same token, no read
    await h.change(shop)
    assert f"GET /environments/{env_id}" not in await api_reads(h, since)


async def test_a_forwarded_refresh_counts_as_announced_for_the_keys_push_health(h: Harness) -> None:
    """The hint reached another replica, which forwarded it: the list that sees the change here
    must not take it for one the webhooks missed (that would drop the key to poll mode)."""
    shop = await running(h, "shop")
    env_id = status(h, "shop").environment_id
    assert env_id
    health = h.runtime.health(KEY)
    await h.sim.admin.patch(f"/environments/{env_id}", json={"status": "stopped"})
    shop["metadata"]["annotations"][REFRESH_REQUESTED_AT] = "2026-12-05T01:00:00.000Z"
    await h.change(shop)
    health.poll_saw_change([env_id])
    assert env_id not in health._pending  # announced: not waiting for a hint that will never come


async def test_a_paused_owner_elsewhere_is_not_annotated(h: Harness, make_harness: Callable[..., Harness]) -> None:
    shop = await running(h, "shop")
    env_id = status(h, "shop").environment_id
    assert env_id
    shop["metadata"]["annotations"]["oec.sh/paused"] = "true"
    standby = make_harness(webhook_debounce=0.2)
    standby.kube.objects = standby.kube.kinds["odooenvironments"] = h.kube.objects
    standby.runtime.push = PushHub(standby.runtime)
    assert await standby.runtime.push.hint(KEY, env_id, "environment.status_changed")  # owned: not a 404
    assert REFRESH_REQUESTED_AT not in shop["metadata"]["annotations"]
    assert standby.kube.calls["patch_metadata"] == 0


async def test_a_hint_for_a_deleted_environment_wakes_the_owner_once_a_list_agrees(
        make_harness: Callable[..., Harness]) -> None:
    h = make_harness(webhook_debounce=0.2, external_delete_grace_period=0)
    h.runtime.push = PushHub(h.runtime)
    shop = await running(h, "shop")
    env_id = status(h, "shop").environment_id
    assert env_id
    assert (await h.sim.admin.delete(f"/environments/{env_id}")).status_code == 200  # in the dashboard
    since = await last_seq(h)
    assert await hub(h).hint(KEY, env_id, "environment.deleted")
    await hub(h).drain()
    # A 404 alone proves nothing: the project's list, sent after it, must not show it either.
    assert await api_reads(h, since) == [f"GET /environments/{env_id}", f"GET /projects/{PROJECT_A}/environments"]
    assert h.state(shop).changed
    await h.poll(shop)  # the reconcile's own rules: the list and a direct read agree
    assert status(h, "shop").phase == "deleted"
    assert (status(h, "shop").condition("Stalled") or {}).get("reason") == "ExternallyDeleted"


async def test_push_ends_once_the_webhook_state_is_too_old_even_with_nothing_else_happening(h: Harness) -> None:
    """The registrar's checks fail from some point on (429/5xx for long): once the last state it
    reported is older than its time to live, the key is in poll mode and its watches plan their
    next list at the normal interval at once, not after the stretched wait they are in."""
    await running(h, "shop")
    await watch(h).aclose()  # its loop would look at the mode whenever it plans (at a random time)
    health = h.runtime.push_health[KEY] = PushHealth(
        KEY, stretch=6.0, memory=180.0, state_ttl=0.3, grace=10.0, on_switch=h.runtime._push_switched)
    h.runtime.webhook_state(WebhookState(KEY, usable=True, is_active=True, failure_count=0))
    hub(h).delivered(KEY)
    assert watch(h).interval() == 360.0
    watch(h)._kick.clear()
    # No check reports any more, no delivery comes, no list runs.
    await asyncio.wait_for(watch(h)._kick.wait(), timeout=5.0)
    assert health.mode() == "poll" and watch(h).interval() == 60.0


async def test_a_delivery_of_another_keys_webhook_costs_the_owners_key_nothing(h: Harness) -> None:
    """Key RO's webhook (verified with RO's secret) names an environment whose owner reads through
    key RW: it is owned (202, the sender is not failed), but nothing is read on RW's budget and
    RW's push health is not told that the change was announced; RW's own webhook announces it."""
    await running(h, "shop")
    env_id = status(h, "shop").environment_id
    assert env_id
    health = h.runtime.health(KEY)
    health.webhook_state(registered=True, is_active=True, failure_count=0)
    health.delivered()
    since = await last_seq(h)
    for _ in range(3):
        assert await hub(h).hint(key_id_of(RO), env_id, "environment.status_changed")
        await hub(h).drain()
    assert await api_reads(h, since) == []
    await h.sim.admin.patch(f"/environments/{env_id}", json={"status": "stopped"})
    await h.list_project()
    assert env_id in health._pending  # the other key's hints do not explain RW's change


async def test_a_standby_does_not_forward_another_keys_delivery(
        h: Harness, make_harness: Callable[..., Harness]) -> None:
    """The same as above in a standby replica (the owner's loop runs elsewhere): a delivery of key
    RO's webhook naming an environment owned through key RW annotates nothing (the annotation would
    make the active replica read on RW's budget)."""
    await running(h, "shop")
    env_id = status(h, "shop").environment_id
    assert env_id
    standby = make_harness(webhook_debounce=0.2)
    standby.kube.objects = standby.kube.kinds["odooenvironments"] = h.kube.objects
    standby.runtime.push = PushHub(standby.runtime)
    assert await standby.runtime.push.hint(key_id_of(RO), env_id, "environment.status_changed")  # owned
    assert standby.kube.calls["patch_metadata"] == 0
    assert await standby.runtime.push.hint(KEY, env_id, "environment.status_changed")  # the owner's key
    assert standby.kube.calls["patch_metadata"] == 1
