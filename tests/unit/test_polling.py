"""Batched observation (``oec_operator.polling``) against an in-memory stand-in of the two list and
get calls it makes (pure logic: the real HTTP path is covered by the integration tests)."""

from __future__ import annotations

import asyncio
import functools
from typing import Any, cast

import pytest

from oec_operator.domain.polling import Fleet, Interest, ProjectWatch, WatchedSource
from oec_operator.oec.client import OecClient
from oec_operator.oec.errors import OecNotFoundError, OecRateLimitError, OecServerError
from oec_operator.oec.models import Environment

PROJECT = "3f0c9a52-7a1e-4c1b-9d2e-5b8f6a4e2c10"


def env(n: int, status: str = "running", **extra: Any) -> Environment:
    return Environment(id=f"env-{n}", name=f"e{n}", status=status, project_id=PROJECT, **extra)


class FakeApi:
    """Answers ``list_environments``/``get_environment`` from ``envs``; counts calls."""

    def __init__(self, envs: list[Environment]) -> None:
        self.envs = {e.id: e for e in envs}
        self.lists = 0
        self.gets = 0
        self.fail: Exception | None = None
        self.delay = 0.0

    async def list_environments(self, project_id: str) -> list[Environment]:
        self.lists += 1
        await asyncio.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        return list(self.envs.values())

    async def get_environment(self, env_id: str) -> Environment:
        self.gets += 1
        if env_id not in self.envs:
            raise OecNotFoundError("gone", status=404, code="not_found")
        return self.envs[env_id]


def watch_of(api: FakeApi, *, fast: float = 0.05, floor: float = 0.0) -> ProjectWatch:
    return ProjectWatch(cast(OecClient, api), PROJECT, fast=fast, floor=lambda: floor)


async def test_a_thousand_resources_reading_at_once_cost_one_list() -> None:
    api = FakeApi([env(i) for i in range(1000)])
    api.delay = 0.05
    watch = watch_of(api)
    found = await asyncio.gather(*(watch.environment(f"env-{i}", max_age=60) for i in range(1000)))
    assert [e.id for e in found] == [f"env-{i}" for i in range(1000)]
    assert (api.lists, api.gets) == (1, 0)


async def test_only_the_resources_whose_entry_changed_are_woken() -> None:
    api = FakeApi([env(1), env(2)])
    watch = watch_of(api)
    woken: list[str] = []
    await watch.refresh()
    for n in (1, 2):
        watch.subscribe(f"env-{n}", f"uid-{n}", Interest(wake=functools.partial(woken.append, f"env-{n}"), steady=60))
    api.envs["env-2"] = env(2, status="stopped")
    await watch.refresh()
    assert woken == ["env-2"]
    await watch.refresh()
    assert woken == ["env-2"], "an unchanged list must wake nobody"
    await watch.aclose()


async def test_a_write_answer_newer_than_the_list_is_kept() -> None:
    api = FakeApi([env(1, branch="main")])
    api.delay = 0.05
    watch = watch_of(api)
    listing = asyncio.create_task(watch.refresh())
    await asyncio.sleep(0.01)  # the list has started and will answer with the old branch
    watch.record(env(1, branch="feature"))
    await listing
    assert (await watch.environment("env-1", max_age=60)).branch == "feature"


async def test_absence_from_the_list_is_confirmed_by_a_direct_read() -> None:
    api = FakeApi([env(1), env(2)])
    watch = watch_of(api)
    await watch.refresh()
    del api.envs["env-2"]
    await watch.refresh()
    with pytest.raises(OecNotFoundError):
        await watch.environment("env-2", max_age=60)
    assert api.gets == 1
    # An older API hides stopped environments from the list: the direct read still finds them.
    api2 = FakeApi([env(3, status="stopped")])
    watch2 = watch_of(api2)
    api2.list_environments = lambda project_id: _return([])  # type: ignore[method-assign]
    assert (await watch2.environment("env-3", max_age=60)).status == "stopped"


async def _return(value: Any) -> Any:
    return value


async def test_a_failing_list_is_not_retried_by_every_resource() -> None:
    api = FakeApi([env(1)])
    api.fail = OecServerError("down", status=503, code="enqueue_failed")
    watch = watch_of(api, fast=10)
    for _ in range(50):
        with pytest.raises(OecServerError):
            await watch.environment("env-1", max_age=0)
    assert api.lists == 1, "within the backoff the failure is answered from memory"


async def test_a_rate_limited_list_tells_later_callers_what_is_left_of_the_wait() -> None:
    api = FakeApi([env(1)])
    api.fail = OecRateLimitError("slow down", retry_after=30, status=429, code="rate_limit_exceeded")
    watch = watch_of(api)
    with pytest.raises(OecRateLimitError):
        await watch.refresh()
    await asyncio.sleep(1.1)
    with pytest.raises(OecRateLimitError) as later:
        await watch.environment("env-1", max_age=0)
    assert 27 <= later.value.retry_after <= 29.5
    assert api.lists == 1


async def test_the_interval_is_fast_while_busy_steady_otherwise_never_below_the_floor() -> None:
    watch = watch_of(FakeApi([]), fast=5, floor=2)
    watch.subscribe("env-1", "a", Interest(wake=lambda: None, steady=60))
    watch.subscribe("env-2", "b", Interest(wake=lambda: None, steady=30))
    assert watch.interval() == 30
    watch.subscribe("env-2", "b", Interest(wake=lambda: None, steady=30, busy=True))
    assert watch.interval() == 5
    slow_floor = watch_of(FakeApi([]), fast=5, floor=12)
    slow_floor.subscribe("env-1", "a", Interest(wake=lambda: None, steady=60, busy=True))
    assert slow_floor.interval() == 12
    await watch.aclose()
    await slow_floor.aclose()


async def test_the_fleet_floor_keeps_all_lists_of_a_key_within_half_its_read_budget() -> None:
    fleet = Fleet(lambda key: cast(OecClient, FakeApi([])), lambda key: 120.0, fast=5)
    watches = [fleet.watch("key", f"project-{p}") for p in range(10)]
    for p, watch in enumerate(watches):
        fleet.subscribe(watch, f"env-{p}", f"uid-{p}", Interest(wake=lambda: None, steady=60, busy=True))
    # 10 projects polled fast may use 60 of the 120 reads a minute: one list per 10 s each.
    assert watches[0].interval() == pytest.approx(10.0)
    other = fleet.watch("other-key", "project-0")
    fleet.subscribe(other, "env-x", "uid-x", Interest(wake=lambda: None, steady=60, busy=True))
    assert other.interval() == pytest.approx(5.0), "another key has a budget of its own"
    for p in range(10):
        fleet.forget(f"uid-{p}")
    fleet.forget("uid-x")
    await fleet.aclose()


async def test_the_loop_lists_on_its_own_and_stops_when_nobody_listens() -> None:
    api = FakeApi([env(1)])
    watch = watch_of(api, fast=0.05)
    woken = asyncio.Event()
    watch.subscribe("env-1", "a", Interest(wake=woken.set, steady=0.05))
    await asyncio.wait_for(woken.wait(), timeout=2)  # first list: a new entry
    before = api.lists
    await asyncio.sleep(0.3)
    assert api.lists > before, "the watch must keep listing on its schedule"
    watch.unsubscribe("a")
    await asyncio.sleep(0.2)
    stopped = api.lists
    await asyncio.sleep(0.3)
    assert api.lists == stopped


async def test_the_watched_source_reads_fresh_for_a_users_change_and_from_the_list_otherwise() -> None:
    api = FakeApi([env(1)])
    watch = watch_of(api)
    source = WatchedSource(watch, cast(OecClient, api))
    await source.environment("env-1", fresh=False)
    await source.environment("env-1", fresh=False)
    assert (api.lists, api.gets) == (1, 0)
    await source.environment("env-1", fresh=True)
    assert api.gets == 1
    seen = env(1)
    assert not source.wants_detail(seen, seen)
    deploying = env(1, status="deploying")
    assert not source.wants_detail(deploying, deploying), "one status read per change, not per poll"
    assert source.wants_detail(env(1, status="running"), deploying)
    assert source.wants_detail(env(1, branch="x"), seen)
    assert source.wants_detail(seen, None)


async def test_a_404_is_confirmed_only_by_a_list_started_after_the_read() -> None:
    api = FakeApi([])
    watch = watch_of(api, fast=60)
    source = WatchedSource(watch, cast(OecClient, api))
    await watch.refresh()  # a list from just before the environment's create
    api.envs["env-1"] = env(1)

    async def lagging(env_id: str) -> Environment:  # the detail read lags behind the create
        api.gets += 1
        raise OecNotFoundError("not yet", status=404, code="not_found")
    api.get_environment = lagging  # type: ignore[method-assign]
    api.delay = 0.05
    found = await asyncio.gather(*(source.environment("env-1", fresh=True) for _ in range(5)))
    assert [e.id for e in found] == ["env-1"] * 5, "the earlier list does not show it; a later one does"
    # Five 404s, two lists: the one in flight is shared by the reads sent before it started.
    assert api.lists - 1 <= 2, f"concurrent confirmations share the lists in flight ({api.lists - 1})"
    del api.envs["env-1"]
    with pytest.raises(OecNotFoundError):  # both observations agree
        await source.environment("env-1", fresh=True)
