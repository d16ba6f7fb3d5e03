"""The write budget of an OdooBackupSchedule over many environments (``docs/backups.md`` §2): one
schedule time, a label selector over N environments, the default spread window: every
environment gets exactly one backup, no calendar minute carries more writes than the API allows,
and the API answers no 429.

The schedule clock is the test's (``python -m oec_testkit.clocked_operator``): the spread window
(an hour of schedule time) passes in a few real minutes, at a pace that puts the writes at about
80 % of the budget on average, so that the minutes where the spread bunches them up are held
back by the rate limiter, not by the API. The API's limits are real time (calendar minutes).

N from ``OEC_SCHEDULE_BUDGET_ENVIRONMENTS`` (200), the API's write limit from
``OEC_SCHEDULE_BUDGET_WRITE_LIMIT`` (100 a minute in ``make test``, so that 200 backups take two
and a half minutes; 20, the API's default, takes 200 / 16 = 12.5 minutes; reads six times the
writes, as the API's defaults). Figures in ``docs/reliability.md``."""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from oec_operator.domain.schedule import SELECTOR_SPREAD_SECONDS
from oec_testkit.manifests import environment

from .conftest import Cluster, Simulator, wait_for
from .schedule_support import (  # noqa: F401 - fixtures
    BACKUPS,
    Clocked,
    backup_crds_fixture,
    clocked_operator_fixture,
    items,
    next_2am,
    phases,
    schedule,
)

pytestmark = pytest.mark.integration

ENVIRONMENTS = int(os.environ.get("OEC_SCHEDULE_BUDGET_ENVIRONMENTS", "200"))
WRITE_LIMIT = int(os.environ.get("OEC_SCHEDULE_BUDGET_WRITE_LIMIT", "100"))
READ_LIMIT = 6 * WRITE_LIMIT
#: The operator's own key: its budget is untouched by the set-up (limits are per key).
BUDGET_KEY = "oec_live_rw_test_backup_budget_key_0000000000000"
#: Real seconds the spread window takes: writes at 80 % of the budget on average.
WINDOW_SECONDS = ENVIRONMENTS * 60 / (0.8 * WRITE_LIMIT)


@pytest.mark.timeout(600 + 3 * int(WINDOW_SECONDS))
def test_a_schedule_over_many_environments_stays_within_the_write_budget(
        cluster: Cluster, simulator: Simulator, clocked_operator: Callable[..., Clocked]) -> None:
    project = simulator.new_project("backup-budget")
    key_id = simulator.client.add_key(BUDGET_KEY)["key_id"]
    names = [f"budget-{i:03d}" for i in range(ENVIRONMENTS)]
    # Set-up outside the measurement: the environments run before the operator starts (created
    # with the tests' key while the session's limits are lifted), and are adopted.
    ids = {name: simulator.create_environment(project, name)["id"] for name in names}
    wait_for(lambda: all(e["status"] == "running" for e in simulator.environments(project)), timeout=120,
             what="every environment running")
    slot = next_2am(datetime.now(UTC))
    simulator.configure(write_limit=WRITE_LIMIT, read_limit=READ_LIMIT, auto_backups=False)
    try:
        clocked = clocked_operator(slot - timedelta(minutes=5), api_key=BUDGET_KEY)
        manifests = [environment(n, project, environmentId=ids[n]) for n in names]
        for manifest in manifests:
            manifest["metadata"]["labels"] = {"backup": "nightly"}
        cluster.apply({"apiVersion": "v1", "kind": "List", "items": manifests})
        wait_for(lambda: _ready(cluster) == ENVIRONMENTS, timeout=300, interval=2.0, what="every environment Ready")
        since = simulator.last_seq()
        cluster.apply(schedule("fleet", schedule="0 2 * * *", selector={"matchLabels": {"backup": "nightly"}}))

        # The spread window (the default for a selector) passes in WINDOW_SECONDS of real time.
        speed = SELECTOR_SPREAD_SECONDS / WINDOW_SECONDS
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) * speed <= SELECTOR_SPREAD_SECONDS:
            clocked.set(slot + timedelta(seconds=elapsed * speed))
            time.sleep(0.5)
        clocked.set(slot + timedelta(seconds=SELECTOR_SPREAD_SECONDS + 1))
        wait_for(lambda: list(phases(items(cluster, BACKUPS)).values()).count("Completed") == ENVIRONMENTS,
                 timeout=WINDOW_SECONDS + 120, interval=3.0, what="a Completed backup of every environment")
        finished = time.monotonic()
        api = simulator.client.stats()["by_key"][key_id]
        calls = simulator.requests(since=since)
        creates = {name: simulator.client.backups(env_id)["counts"]["creates"] for name, env_id in ids.items()}
    finally:
        simulator.configure(write_limit=100_000, read_limit=100_000, auto_backups=True)

    writes = [r for r in calls if r["method"] != "GET"]
    per_minute = Counter(r["time"][:16] for r in writes)  # calendar minutes
    figures = {"environments": ENVIRONMENTS, "write_limit": WRITE_LIMIT, "window_seconds": round(WINDOW_SECONDS),
               "seconds": round(finished - started), "writes": len(writes), "reads": api["reads"],
               "rate_limited": api["rate_limited"], "most_writes_in_a_minute": max(per_minute.values())}
    print(f"\nbackup schedule budget: {json.dumps(figures)}")
    assert [n for n, count in creates.items() if count != 1] == []  # exactly one backup each
    assert api["rate_limited"] == 0
    assert [r for r in calls if r["status"] == 429] == []
    assert max(per_minute.values()) <= WRITE_LIMIT, per_minute
    # One write per environment, nothing else: the backup's create.
    routes = Counter((r["method"], re.sub(r"[0-9a-f-]{36}", "{id}", r["path"]).rsplit("/environments/", 1)[-1])
                     for r in writes)
    assert routes == Counter({("POST", "{id}/backups"): ENVIRONMENTS}), routes


def _ready(cluster: Cluster) -> int:
    """How many OdooEnvironments of the namespace say Ready=True."""
    objs = json.loads(cluster.kubectl("get", "odooenvironments.oec.sh", "-o", "json").stdout)["items"]
    return sum(1 for o in objs if any(c["type"] == "Ready" and c["status"] == "True"
                                      for c in (o.get("status") or {}).get("conditions", [])))
