"""An OdooBackupSchedule on the real apiserver with the real operator process, whose schedule clock
the test moves (``python -m oec_testkit.clocked_operator``; ``docs/backups.md`` §2): it fires when
its time comes, the OdooBackup controller takes each backup on the simulator, the history limit
collects the oldest object (the data stays in OEC.sh), and a week of downtime ends in one run, not
a burst."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from oec_testkit.manifests import environment

from .conftest import Cluster, Simulator, wait_for
from .schedule_support import (  # noqa: F401 - fixtures
    BACKUPS,
    SCHEDULES,
    Clocked,
    backup_crds_fixture,
    clocked_operator_fixture,
    get,
    items,
    next_2am,
    phases,
    schedule,
)

pytestmark = pytest.mark.integration


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y%m%d%H%M")


def test_a_schedule_fires_on_its_clock_collects_old_backups_and_never_bursts_after_downtime(
        cluster: Cluster, simulator: Simulator, clocked_operator: Callable[..., Clocked]) -> None:
    project = simulator.new_project("schedule")
    slot = next_2am(datetime.now(UTC))
    clocked = clocked_operator(slot - timedelta(minutes=2))
    cluster.apply(environment("shop", project))
    env_id = cluster.wait_ready("shop", timeout=90)["status"]["environmentId"]
    cluster.apply(schedule("nightly", schedule="0 2 * * *", environmentRef={"name": "shop"},
                           successfulHistoryLimit=2, startingDeadlineSeconds=600))

    def status() -> dict[str, object]:
        return dict((get(cluster, SCHEDULES, "nightly") or {}).get("status") or {})

    wait_for(lambda: status().get("nextScheduleTime") == slot.strftime("%Y-%m-%dT%H:%M:%SZ"), timeout=30,
             what="the schedule's next run")
    assert items(cluster, BACKUPS) == []

    # Three nights: each a backup, each completed before the next night (Forbid would skip it).
    names = []
    for night in range(3):
        clocked.set(slot + timedelta(days=night, seconds=5))
        name = f"nightly-shop-{_stamp(slot + timedelta(days=night))}"
        names.append(name)
        wait_for(lambda: phases(items(cluster, BACKUPS)).get(name) == "Completed", timeout=90,  # noqa: B023
                 what=f"{name} Completed")
    # The oldest object is collected (successfulHistoryLimit 2); the data stays in OEC.sh.
    wait_for(lambda: sorted(phases(items(cluster, BACKUPS))) == names[1:], timeout=30,
             what="the oldest backup object collected")
    assert simulator.client.backups(env_id)["counts"]["creates"] == 3

    # A week of downtime: the operator stops, the clock jumps, the operator starts again.
    clocked.process.stop()
    clocked.set(slot + timedelta(days=9, minutes=3))
    clocked.process.start()
    last = f"nightly-shop-{_stamp(slot + timedelta(days=9))}"
    wait_for(lambda: phases(items(cluster, BACKUPS)).get(last) == "Completed", timeout=90, what=f"{last} Completed")
    newest = get(cluster, BACKUPS, last) or {}
    wait_for(lambda: status().get("lastScheduleTime") == (slot + timedelta(days=9)).strftime("%Y-%m-%dT%H:%M:%SZ")
             and not status().get("active")
             and status().get("lastSuccessfulTime") == newest["status"]["completedAt"],
             timeout=30, what="the schedule's status after the run")
    # one run for the six nights missed and the one in time, not seven
    assert simulator.client.backups(env_id)["counts"]["creates"] == 4
    assert status()["skipped"] == 6
    assert sorted(phases(items(cluster, BACKUPS))) == [names[2], last]
