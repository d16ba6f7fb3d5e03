"""What ``kubectl get`` shows of the backup kinds, and what deleting them logs (``docs/backups.md``
§1-§2): a schedule with a bad cron or time zone says so in its default columns and one Warning
Event; deleting an OdooBackup, an OdooBackupSchedule and an OdooEnvironment stops their daemons
without kopf's "is cancelled. Will escalate." warning (``docs/kopf.md``, daemons)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

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
    schedule,
)

pytestmark = pytest.mark.integration


def _table(text: str) -> dict[str, dict[str, str]]:
    """``kubectl get`` output by NAME, then by header; cells cut at the header's offsets (an empty
    cell stays empty, which splitting on whitespace would not keep)."""
    header, *rows = text.splitlines()
    starts = [i for i, ch in enumerate(header) if ch != " " and (i == 0 or header[i - 1] == " ")]
    bounds = list(zip(starts, [*starts[1:], None], strict=True))
    names = [header[a:b].strip() for a, b in bounds]
    return {row.split()[0]: {n: row[a:b].strip() for n, (a, b) in zip(names, bounds, strict=True)} for row in rows}


def _ready(cluster: Cluster, name: str) -> str | None:
    conditions = ((get(cluster, SCHEDULES, name) or {}).get("status") or {}).get("conditions") or []
    return next((c["status"] for c in conditions if c["type"] == "Ready"), None)


def test_an_invalid_schedule_shows_in_kubectl_get_and_deletions_log_no_cancelled_daemon(
        cluster: Cluster, simulator: Simulator, clocked_operator: Callable[..., Clocked]) -> None:
    clocked = clocked_operator(datetime.now(UTC))
    cluster.apply(environment("shop", simulator.new_project("columns"), deletionPolicy="Orphan"))
    cluster.wait_ready("shop", timeout=90)
    cluster.apply(schedule("good", schedule="0 2 * * *", environmentRef={"name": "shop"}))
    cluster.apply(schedule("bad", schedule="99 2 * * *", timeZone="Mars/Olympus", environmentRef={"name": "shop"}))
    cluster.apply({"apiVersion": "oec.sh/v1alpha1", "kind": "OdooBackup", "metadata": {"name": "adhoc"},
                   "spec": {"environmentRef": {"name": "shop"}}})
    wait_for(lambda: (_ready(cluster, "good"), _ready(cluster, "bad")) == ("True", "False"), timeout=30,
             what="both schedules looked at")

    rows = _table(cluster.kubectl("get", SCHEDULES).stdout)
    assert (rows["bad"]["READY"], rows["bad"]["REASON"]) == ("False", "InvalidSpec"), rows
    assert (rows["good"]["READY"], rows["good"]["REASON"]) == ("True", "Scheduled"), rows
    wide = cluster.kubectl("get", SCHEDULES, "-o", "wide").stdout
    assert "[]" not in wide, wide

    def warnings() -> list[dict[str, str]]:
        events = json.loads(cluster.kubectl("get", "events", "--field-selector", "involvedObject.name=bad",
                                            "-o", "json").stdout)["items"]
        return [e for e in events if e["type"] == "Warning" and e["reason"] == "InvalidSpec"]

    # one per stall, not per look: tests/controller/test_schedule.py (looked at three times)
    wait_for(lambda: bool(warnings()), timeout=30, what="the InvalidSpec Warning Event")
    assert len(warnings()) == 1 and warnings()[0]["message"].startswith("spec."), warnings()

    started = time.monotonic()
    cluster.kubectl("delete", BACKUPS, "adhoc", timeout=60)
    cluster.kubectl("delete", SCHEDULES, "good", "bad", timeout=60)
    cluster.kubectl("delete", "odooenv", "shop", timeout=60)
    took = time.monotonic() - started
    log = clocked.process.log.read_text()
    assert "Will escalate" not in log and "did not exit in time" not in log, log[-3000:]
    print(f"\nfour deletions (backup, two schedules, environment) done in {took:.1f} s")
