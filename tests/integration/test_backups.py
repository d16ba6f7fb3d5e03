"""``OdooBackup`` as a user sees it (``docs/backups.md`` §1): real apiserver, operator process,
simulator process. One backup per object although the operator is SIGKILLed right after its
create and again while the backup runs; ``kubectl wait`` on the Ready condition; the three
``kubectl oec`` backup commands. (The rules themselves: ``tests/controller/test_backup.py``.)"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from .conftest import Cluster, OperatorProcess, Simulator, environment, wait_for
from .test_metrics import free_port
from .test_plugin import kubectl_oec

pytestmark = pytest.mark.integration

#: Seconds a backup runs in the simulator here: long enough to kill the operator while it runs.
BACKUP_SECONDS = 12.0


def _backup(cluster: Cluster, name: str) -> dict[str, Any]:
    return dict(json.loads(cluster.kubectl("get", "odoobackup", name, "-o", "json").stdout))


def _status(cluster: Cluster, name: str) -> dict[str, Any]:
    return dict(_backup(cluster, name).get("status") or {})


def test_one_backup_per_object_across_two_sigkills_and_the_plugin_commands(
    cluster: Cluster, simulator: Simulator, operator_factory: Callable[..., OperatorProcess]
) -> None:
    # A fixed POD_ID: the restarted process is the same peer (no wait for its own old entry).
    port = free_port()
    op = operator_factory(POD_ID=f"backups-{uuid.uuid4().hex[:8]}", OEC_METRICS_PORT=str(port),
                          OEC_METRICS_ADDRESS="127.0.0.1")
    project = simulator.new_project("backups")
    cluster.apply(environment("shop", project))
    env_id = str(cluster.wait_ready("shop")["status"]["environmentId"])
    simulator.configure(backup_seconds=BACKUP_SECONDS)
    since = simulator.last_seq()
    posts = f"/environments/{env_id}/backups"

    # The API makes the backup, then holds the answer: the operator is killed waiting for it.
    simulator.inject(kind="timeout", when="after", route="create_backup", count=1, hold_seconds=30)
    try:
        made = kubectl_oec(cluster, "backup", "shop", "--retention", "weekly", "--notes", "before the migration")
        assert made.returncode == 0, made.stderr
        name = made.stdout.split()[0].removeprefix("odoobackup/")
        started = time.monotonic()
        wait_for(lambda: simulator.client.backups(env_id)["counts"]["creates"] == 1, timeout=30, interval=0.05,
                 what="the backup made by the POST")
        op.kill()  # right after the POST, before its answer
        status = _status(cluster, name)
        assert status.get("createRequestedAt") and not status.get("backupId"), status  # the intent only
        op.start()
    finally:
        simulator.clear_faults()
    wait_for(lambda: _status(cluster, name).get("phase") == "Running", timeout=30, interval=0.2,
             what="the backup followed by the new process")
    op.kill()  # while the backup runs
    op.start()
    cluster.kubectl("wait", "--for=condition=Ready", "--timeout=90s", f"odoobackup/{name}", timeout=120)
    took = time.monotonic() - started

    sim = simulator.client.backups(env_id)
    manual = [b for b in sim["backups"] if b["backup_type"] == "manual"]
    assert len(manual) == 1 and sim["counts"]["creates"] == 1, sim
    assert simulator.requests("POST", posts, since=since) == []  # the held one is not logged; no other was sent
    status = _status(cluster, name)
    assert status["backupId"] == manual[0]["id"] and status["phase"] == "Completed"
    assert status["totalSize"] > 0 and status["expiresAt"] and status["createRequestedAt"]
    assert status["observedGeneration"] == 1
    assert manual[0]["notes"].startswith("before the migration [k8s:")
    assert "http" not in json.dumps(status)  # never a download link in the status
    print(f"\nOdooBackup Completed {took:.1f} s after its POST (backup {BACKUP_SECONDS:.0f} s, two SIGKILLs)")

    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert 'oec_operator_backups_total{result="completed"} 1.0' in metrics  # counted by the process that saw it end
    age = next(line for line in metrics.splitlines() if line.startswith("oec_operator_latest_backup_age_seconds{"))
    assert f'environment="shop",namespace="{cluster.namespace}"' in age and 0 <= float(age.split()[-1]) < 120

    header, row = cluster.kubectl("get", "odoobackup", name).stdout.splitlines()[:2]
    assert "Completed" in row.split() and "shop" in row.split(), (header, row)

    listed = kubectl_oec(cluster, "backups", "shop", api_url=simulator.api_url)
    assert listed.returncode == 0, listed.stderr
    mine = next(line for line in listed.stdout.splitlines() if line.startswith(manual[0]["id"]))
    assert mine.split()[1:3] == ["manual", "completed"] and mine.split()[-1] == name

    link = kubectl_oec(cluster, "backup", "download", name, "--expires-in", "600", api_url=simulator.api_url)
    assert link.returncode == 0, link.stderr
    assert "database:  http" in link.stdout and manual[0]["id"] in link.stdout
    assert "http" not in json.dumps(_status(cluster, name))  # asked on demand, still not stored

    # The OdooEnvironment deleted: its backups are still listed, from its OdooBackup objects.
    cluster.kubectl("delete", "odooenvironment", "shop", "--timeout=60s", timeout=90)
    after = kubectl_oec(cluster, "backups", "shop", api_url=simulator.api_url)
    assert after.returncode == 0, after.stderr
    assert any(line.startswith(manual[0]["id"]) and line.split()[-1] == name for line in after.stdout.splitlines())
    none = kubectl_oec(cluster, "backups", "never-made", api_url=simulator.api_url)
    assert none.returncode == 1 and "no OdooBackup" in none.stderr, none.stderr

    cluster.kubectl("delete", "odoobackup", name, "--timeout=30s", timeout=60)
    wait_for(lambda: any(e["reason"] == "BackupKept" for e in cluster.events(name)), timeout=20,
             what="the BackupKept Event")
    assert len(simulator.client.backups(env_id)["backups"]) == len(sim["backups"])  # data kept
