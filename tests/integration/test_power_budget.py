"""The write budget at fleet scale (issue 12): stopping and starting N environments at the API's
default write limit (20 writes per calendar minute per key, ``docs/oec-api.md`` §6) sends no
request the operator's limiter did not admit and runs into no 429.

N comes from ``OEC_BUDGET_ENVIRONMENTS``: 20 in ``make test`` (two to three and a half minutes),
100 in ``make budget`` (11 to 19 minutes; figures in ``docs/reliability.md``)."""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from oec_testkit.manifests import condition
from oec_testkit.ports import free_ports
from oec_testkit.waiting import WaitTimeout

from .conftest import GROUP, PLURAL, Cluster, OperatorProcess, Simulator, environment, wait_for

pytestmark = pytest.mark.integration

#: How many environments are stopped and started.
ENVIRONMENTS = int(os.environ.get("OEC_BUDGET_ENVIRONMENTS", "20"))
#: The API's default limits per key and calendar minute (``docs/oec-api.md`` §6).
WRITE_LIMIT, READ_LIMIT = 20, 120
#: The operator's own key: its budget is untouched by the setup (limits are per key).
BUDGET_KEY = "oec_live_rw_test_power_budget_key_000000000000"
#: Upper bound (s) for one phase (all stops, or all starts): one minute per 20 writes, a minute
#: more for the calendar-minute alignment and the tasks themselves; room for twice the writes, so
#: that a run that spends more writes than it should still ends with its figures and counts.
PHASE_SECONDS = 60 * (2 * ENVIRONMENTS // WRITE_LIMIT + 2)

_SAMPLE = re.compile(r'^oec_operator_api_requests_total\{(?P<labels>.*)\} (?P<value>\S+)$', re.M)


def _all_objects(cluster: Cluster) -> list[dict[str, Any]]:
    """Every OdooEnvironment of the namespace, in one kubectl call."""
    return list(json.loads(cluster.kubectl("get", f"{PLURAL}.{GROUP}", "-o", "json").stdout)["items"])


def _apply_all(cluster: Cluster, manifests: list[dict[str, Any]]) -> None:
    """One ``kubectl apply`` of every manifest (a List)."""
    cluster.apply({"apiVersion": "v1", "kind": "List", "items": manifests})


def _wait_all(cluster: Cluster, count: int, power: str, reason: str, timeout: float) -> None:
    """Until every resource says Ready=True with ``reason`` and ``status.powerState`` ``power``."""
    def done() -> bool:
        objs = _all_objects(cluster)
        settled = [o for o in objs
                   if (c := condition(o, "Ready")) and (c["status"], c["reason"]) == ("True", reason)
                   and o["status"].get("powerState") == power and o["status"].get("observedGeneration")
                   == o["metadata"]["generation"]]
        return len(settled) == count
    wait_for(done, timeout=timeout, interval=2.0, what=f"{count} resources Ready/{reason}, power {power}")


def _operator_requests(port: int) -> Counter[str]:
    """The operator's count of OEC.sh requests it sent, by ``GET``/``write`` (its metrics)."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    counts: Counter[str] = Counter()
    for sample in _SAMPLE.finditer(text):
        method = re.search(r'method="([A-Z]+)"', sample["labels"])
        assert method is not None, sample[0]
        counts["GET" if method[1] == "GET" else "write"] += int(float(sample["value"]))
    return counts


@pytest.mark.timeout(300 + 2 * PHASE_SECONDS)
def test_stopping_and_starting_many_environments_stays_within_the_write_limit(
    cluster: Cluster, simulator: Simulator, operator_factory: Callable[..., OperatorProcess]
) -> None:
    project = simulator.new_project("power-budget")
    key_id = simulator.client.add_key(BUDGET_KEY)["key_id"]
    names = [f"power-{i:03d}" for i in range(ENVIRONMENTS)]
    # Set-up outside the measurement: the environments exist and run before the operator starts
    # (created with the tests' key while the session's limits are lifted), and are adopted.
    ids = {name: simulator.create_environment(project, name)["id"] for name in names}
    wait_for(lambda: all(e["status"] == "running" for e in simulator.environments(project)), timeout=60,
             what="every environment running")
    simulator.configure(write_limit=WRITE_LIMIT, read_limit=READ_LIMIT)
    try:
        port = free_ports()[0]
        operator_factory(OEC_API_KEY=BUDGET_KEY, OEC_METRICS_PORT=str(port), OEC_METRICS_ADDRESS="127.0.0.1")
        since = simulator.last_seq()
        _apply_all(cluster, [environment(n, project, environmentId=ids[n]) for n in names])
        _wait_all(cluster, ENVIRONMENTS, "Running", "Available", timeout=PHASE_SECONDS)

        started = time.monotonic()
        _apply_all(cluster, [environment(n, project, environmentId=ids[n], powerState="Stopped") for n in names])
        _wait_all(cluster, ENVIRONMENTS, "Stopped", "Stopped", timeout=PHASE_SECONDS)
        stopped = time.monotonic()
        _apply_all(cluster, [environment(n, project, environmentId=ids[n], powerState="Running") for n in names])
        _wait_all(cluster, ENVIRONMENTS, "Running", "Available", timeout=PHASE_SECONDS)
        finished = time.monotonic()

        # The operator's count and the API's agree (nothing sent past the client and its limiter).
        # Reads go on in the background: the API's count lies between two scrapes around it.
        seen: list[tuple[Counter[str], dict[str, Any], Counter[str]]] = []

        def agreed() -> tuple[Counter[str], dict[str, Any]] | None:
            before = _operator_requests(port)
            api = simulator.client.stats()["by_key"][key_id]
            after = _operator_requests(port)
            seen[:] = [(before, api, after)]
            writes_agree = before["write"] == api["writes"] == after["write"]
            return (after, api) if writes_agree and before["GET"] <= api["reads"] <= after["GET"] else None

        try:
            counted, api = wait_for(agreed, timeout=30, what="the operator's metrics and the API's counters to agree")
        except WaitTimeout:
            pytest.fail(f"the operator's metrics and the API's counters disagree: (before, API, after) = {seen}")
        calls = simulator.requests(since=since)
    finally:
        simulator.configure(write_limit=100_000, read_limit=100_000)

    per_minute = Counter(r["time"][:16] for r in calls if r["method"] != "GET")  # calendar minutes
    writes = Counter((r["method"], re.sub(r"[0-9a-f-]{36}", "{id}", r["path"]), r["status"])
                     for r in calls if r["method"] != "GET")
    figures = {"environments": ENVIRONMENTS, "stop_seconds": round(stopped - started),
               "start_seconds": round(finished - stopped), "reads": api["reads"], "writes": api["writes"],
               "rate_limited": api["rate_limited"], "most_writes_in_a_minute": max(per_minute.values())}
    print(f"\npower budget: {json.dumps(figures)}")
    assert api["rate_limited"] == 0
    assert [r for r in calls if r["status"] == 429] == []
    assert max(per_minute.values()) <= WRITE_LIMIT, per_minute
    for name, env_id in ids.items():
        actions = [(t["type"], t["status"]) for t in simulator.tasks(env_id) if t["type"] in ("stop", "start")]
        assert actions == [("stop", "completed"), ("start", "completed")], (name, actions)
    # One write each, nothing else: a stop or start sent again (even answered by a replay) spends
    # the key's budget twice.
    assert counted["write"] == 2 * ENVIRONMENTS, writes
