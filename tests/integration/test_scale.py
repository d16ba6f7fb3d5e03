"""Batched polling on the real apiserver, the simulator and the operator process: the API calls
grow with projects and changes, not with resources, and steady resources are not rewritten.
(The figures at scale come from ``make bench``; these tests check the behaviour.)"""

from __future__ import annotations

import datetime
import json
import time
from typing import Any

import pytest

from .conftest import GROUP, PLURAL, Cluster, OperatorProcess, Simulator, environment, wait_for
from .test_gitops import at

pytestmark = pytest.mark.integration

RESOURCES = 6
STEADY = 3.0  # OEC_POLL_INTERVAL of the operator fixture
#: A status that changed in nothing but ``lastSyncTime`` is written again after this many seconds
#: (``SYNC_TIME_REFRESH_INTERVALS`` = 5 steady intervals, ``oec_operator/controller/sync.py``).
SYNC_REFRESH = 5 * STEADY


def _ready_all(cluster: Cluster, names: list[str]) -> dict[str, dict[str, Any]]:
    return {name: cluster.wait_ready(name, timeout=60) for name in names}


def _settled(cluster: Cluster, names: list[str]) -> None:
    """Every status holds the health read in its current phase (no detail read owed)."""
    def done() -> bool:
        for name in names:
            status = (cluster.get(name) or {}).get("status", {})
            if (status.get("health") or {}).get("phase") != status.get("phase"):
                return False
        return True
    wait_for(done, timeout=30, what="health read for every resource")


def _objects(cluster: Cluster, names: list[str]) -> dict[str, dict[str, Any]]:
    """The named resources, read in one kubectl call (one call per name takes seconds under load)."""
    items = json.loads(cluster.kubectl("get", f"{PLURAL}.{GROUP}", "-o", "json").stdout)["items"]
    return {o["metadata"]["name"]: o for o in items if o["metadata"]["name"] in names}


def _rfc3339(value: str) -> float:
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _assert_not_rewritten(before: dict[str, Any], after: dict[str, Any]) -> None:
    """``after`` is ``before``, except that a steady status may have had its ``lastSyncTime``
    refreshed, at most once per :data:`SYNC_REFRESH` seconds. (A fixed observation window cannot
    avoid that refresh: on a slow machine the reads around it take long enough to reach it.)"""
    name = before["metadata"]["name"]
    if after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]:
        return

    def strip(obj: dict[str, Any]) -> dict[str, Any]:
        meta = {k: v for k, v in obj["metadata"].items() if k not in ("resourceVersion", "managedFields")}
        status = {k: v for k, v in obj.get("status", {}).items() if k != "lastSyncTime"}
        return {**obj, "metadata": meta, "status": status}

    assert strip(after) == strip(before), f"{name}: a steady resource's status was rewritten although nothing changed"
    gap = _rfc3339(after["status"]["lastSyncTime"]) - _rfc3339(before["status"]["lastSyncTime"])
    # -1: the written time is taken (to the second) just before the age that triggers the write.
    assert gap >= SYNC_REFRESH - 1, f"{name}: lastSyncTime rewritten after {gap:.0f}s, not every {SYNC_REFRESH:.0f}s"


def _steady_project(cluster: Cluster, simulator: Simulator, tag: str,
                    count: int) -> tuple[str, list[str], dict[str, dict[str, Any]]]:
    """A new project with ``count`` Ready resources whose health was read: ``(project, names, objects)``."""
    project = simulator.new_project(tag)
    names = [f"{tag}-{i}" for i in range(count)]
    for name in names:
        cluster.apply(environment(name, project))
    ready = _ready_all(cluster, names)
    _settled(cluster, names)
    return project, names, ready


def test_steady_resources_of_a_project_share_one_list_and_are_not_rewritten(
    cluster: Cluster, simulator: Simulator, operator: OperatorProcess
) -> None:
    project, names, ready = _steady_project(cluster, simulator, "batch", RESOURCES)
    before = _objects(cluster, names)
    since = simulator.last_seq()
    time.sleep(3 * STEADY + 1)

    calls = simulator.requests(since=since)
    lists = [r for r in calls if r["path"].endswith(f"/projects/{project}/environments")]
    per_environment = [r for r in calls if any(ready[n]["status"]["environmentId"] in r["path"] for n in names)]
    # One list per steady interval (+-10 % jitter) for the whole project, whatever its size.
    assert 2 <= len(lists) <= 5, [r["time"] for r in lists]
    assert per_environment == [], [(r["method"], r["path"]) for r in per_environment]
    after = _objects(cluster, names)
    for name in names:
        _assert_not_rewritten(before[name], after[name])


def test_a_change_in_oec_wakes_only_its_resource_within_one_interval(
    cluster: Cluster, simulator: Simulator, operator: OperatorProcess
) -> None:
    _, names, ready = _steady_project(cluster, simulator, "wake", 3)
    target = ready["wake-1"]["status"]["environmentId"]
    before = _objects(cluster, names)
    since = simulator.last_seq()
    changed_at = time.time()
    simulator.edit(target, status="paused")  # by the platform: the operator only reports it

    stopped = wait_for(lambda: (obj := cluster.get("wake-1")) and obj["status"].get("phase") == "paused" and obj,
                       timeout=30, interval=0.1, what="the pause to show")
    ready_cond = next(c for c in stopped["status"]["conditions"] if c["type"] == "Ready")
    assert (ready_cond["status"], ready_cond["reason"]) == ("False", "PlatformPaused")
    # Timed by the status itself (when the operator wrote the change, to the second), not by when
    # this test's kubectl polls happened to see it: the project's next list, within one interval
    # (+10 % jitter), wakes the resource; 2 s for the reconcile on a loaded machine.
    written = _rfc3339(ready_cond["lastTransitionTime"])
    assert written - changed_at <= 1.1 * STEADY + 2.0, f"the pause showed {written - changed_at:.1f}s after the edit"
    # The changed environment got its health read once; the others were left alone.
    wait_for(lambda: (cluster.get("wake-1") or {})["status"].get("health", {}).get("phase") == "paused",
             timeout=10, what="the health of the paused environment")
    status_reads = [r for r in simulator.requests("GET", since=since) if r["path"].endswith("/status")]
    assert [r["path"] for r in status_reads] == [f"/api/public/v1/environments/{target}/status"]
    after = _objects(cluster, names)
    for name in ("wake-0", "wake-2"):
        _assert_not_rewritten(before[name], after[name])


@pytest.mark.timeout(480)  # a settling window, up to a minute to align, 70 s measured
def test_the_operator_slows_down_before_the_budget_runs_out_even_when_another_client_shares_the_key(
    cluster: Cluster, simulator: Simulator, operator: OperatorProcess
) -> None:
    project, names, _ = _steady_project(cluster, simulator, "budget", 3)
    # 20 reads per calendar minute (docs/oec-api.md §6): the fleet's floor keeps the lists within half
    # of that (one every 6 s). The first minute after the switch may refuse a request the operator
    # could not see coming. After a whole window (60.5 s) under the new limit the operator lists
    # as a steady stream, so its log still holds the previous minute when the next one starts.
    simulator.configure(read_limit=20)
    try:
        time.sleep(61)
        time.sleep(60 - time.time() % 60 + 0.5)
        since = simulator.last_seq()
        with simulator.api() as other:  # another client spends three quarters of the key's reads
            for _ in range(15):
                other.get("/projects")
        time.sleep(70)
        calls = simulator.requests(since=since)
    finally:
        simulator.configure(read_limit=100_000)
    refused = [(r["time"], r["path"]) for r in calls if r["status"] == 429]
    assert refused == [], "the operator ran into the limit instead of slowing down before it"
    lists = [r for r in calls if r["path"].endswith(f"/projects/{project}/environments")]
    # The 5 reads left in the minute, then the next minute's share: it slows down, it does not stop.
    assert 3 <= len(lists) <= 10, f"{len(lists)} lists in 70 s with 5 of 20 reads a minute left"
    for name in names:
        ready = next(c for c in (cluster.get(name) or {})["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True"


@pytest.mark.timeout(480)  # 2 creates a minute: 5 take three calendar minutes
def test_creates_waiting_for_the_write_budget_say_so_and_all_complete(
    cluster: Cluster, simulator: Simulator, operator: OperatorProcess
) -> None:
    project = simulator.new_project("write-budget")
    simulator.configure(write_limit=2)  # writes per calendar minute (docs/oec-api.md §6)
    try:
        names = [f"queued-{i}" for i in range(5)]
        for name in names:
            cluster.apply(environment(name, project))

        def waiting() -> list[str]:
            found = []
            for name in names:
                ready = cluster.condition(name, "Ready") or {}
                if ready.get("reason") == "RateLimited" and "write budget" in ready.get("message", ""):
                    found.append(name)
            return found

        # The first burst runs into the plan's 2 (429, "retrying in N s" until the next full
        # minute); the retries then know the budget and wait for it, saying so.
        assert wait_for(waiting, timeout=90, what="a resource that says it waits for the write budget")
        for name in names:
            cluster.wait_ready(name, timeout=200)
    finally:
        simulator.configure(write_limit=100_000)
    created = simulator.requests("POST", f"/projects/{project}/environments")
    assert len({r["x_idempotency_key"] for r in created if r["status"] == 201}) == len(names)
    # Before its first answer the operator assumes the documented 20 writes a minute, so a first
    # burst may overrun a plan of 2; after the API said so (headers, 429) it never does again.
    refused = [at(r) for r in created if r["status"] == 429]
    assert not refused or max(refused) - min(refused) <= 2.0, f"429s at {refused}: the limit was not learned"
