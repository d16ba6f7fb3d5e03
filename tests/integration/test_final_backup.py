"""The final backup before a production environment is destroyed (``docs/backups.md`` §4) as a
user sees it: ``kubectl delete`` on the real apiserver, the operator and simulator processes. (The
rules themselves are tested in ``tests/controller/test_final_backup.py``; here: the CRD keeps
``status.finalBackup``, the ``OdooBackup`` record outlives the resource, the escape hatch works
through kubectl.)"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from .conftest import Cluster, OperatorProcess, Simulator, environment, wait_for

pytestmark = pytest.mark.integration

SKIP = "oec.sh/skip-final-backup"
PRODUCTION = {"environmentType": "production", "deletionPolicy": "Delete"}


def _running(cluster: Cluster, name: str, project: str, **spec: Any) -> str:
    cluster.apply(environment(name, project, **spec))
    return str(cluster.wait_ready(name)["status"]["environmentId"])


def _manual_backups(simulator: Simulator, env_id: str) -> list[dict[str, Any]]:
    listing = simulator.client.backups(env_id)
    return [b for b in listing["backups"] if b["backup_type"] == "manual"]


def _records(cluster: Cluster, name: str) -> list[dict[str, Any]]:
    """The OdooBackup objects recording a final backup of the environment ``name``."""
    out = cluster.kubectl("get", "odoobackups", "-l", f"oec.sh/final-backup=true,oec.sh/environment={name}",
                          "-o", "json").stdout
    return list(json.loads(out)["items"])


def test_deleting_a_production_environment_leaves_a_completed_backup_and_its_record(
    module_cluster: Cluster, simulator: Simulator, module_operator: OperatorProcess
) -> None:
    cluster = module_cluster
    project = simulator.new_project("final-backup")
    env_id = _running(cluster, "erp", project, **PRODUCTION)
    seq = simulator.last_seq()
    started = time.monotonic()
    cluster.delete("erp")
    wait_for(lambda: cluster.get("erp") is None, timeout=90, what="erp gone")
    elapsed = time.monotonic() - started
    env = simulator.environment(env_id)
    assert env is not None and env.get("deleted")
    [backup] = _manual_backups(simulator, env_id)  # still readable: the environment is gone
    assert backup["status"] == "completed"
    writes = [(r["method"], r["path"]) for r in simulator.requests(since=seq) if r["method"] in ("POST", "DELETE")]
    assert [m for m, _ in writes] == ["POST", "DELETE"]  # the backup first, one of each
    [record] = _records(cluster, "erp")
    assert record["spec"]["backupId"] == backup["id"] and not record["metadata"].get("ownerReferences")
    # The OdooBackup controller observes the record, the environment gone: kubectl shows it Completed.
    wait_for(lambda: (_records(cluster, "erp")[0].get("status") or {}).get("phase") == "Completed", timeout=30,
             what="the final backup's OdooBackup Completed")
    completed = [e for e in cluster.events("erp") if e["reason"] == "FinalBackupCompleted"]
    assert completed and backup["id"] in completed[0]["message"]
    print(f"kubectl delete -> gone with a final backup: {elapsed:.1f} s")


def test_a_failing_final_backup_keeps_the_resource_until_the_annotation(
    module_cluster: Cluster, simulator: Simulator, module_operator: OperatorProcess
) -> None:
    cluster = module_cluster
    project = simulator.new_project("final-backup-fails")
    env_id = _running(cluster, "erp2", project, **PRODUCTION)
    simulator.configure(fail_next_backups=1)
    cluster.delete("erp2")
    stalled = cluster.wait_condition("erp2", "Stalled", reason="FinalBackupFailed", timeout=60)
    assert SKIP in stalled["message"]
    obj = cluster.get("erp2")
    assert obj is not None and obj["status"]["finalBackup"]["phase"] == "Failed"
    env = simulator.environment(env_id)
    assert env is not None and not env.get("deleted")  # kept, no DELETE sent
    annotated = time.monotonic()
    cluster.annotate("erp2", SKIP, "true")
    wait_for(lambda: cluster.get("erp2") is None, timeout=60, what="erp2 gone after the annotation")
    print(f"annotation -> resource gone: {time.monotonic() - annotated:.1f} s")
    env = simulator.environment(env_id)
    assert env is not None and env.get("deleted")
    assert "FinalBackupSkipped" in {e["reason"] for e in cluster.events("erp2")}
