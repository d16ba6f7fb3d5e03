"""Uninstalling the operator's CRD must never destroy environments: they are orphaned."""

from __future__ import annotations

import datetime
import json
import time
from pathlib import Path
from typing import Any

import pytest

from oec_operator.settings import FINALIZER
from oec_testkit.manifests import BACKUP_CRD_NAMES, BACKUP_CRDS

from .conftest import CRD, Cluster, OperatorProcess, Simulator, environment, kubectl_run, wait_for

pytestmark = pytest.mark.integration


def test_deleting_the_crd_orphans_every_environment(
    cluster: Cluster, simulator: Simulator, operator: OperatorProcess, crd: Path
) -> None:
    project = simulator.new_project("uninstall")
    cluster.apply(environment("keep-me", project))
    cluster.wait_ready("keep-me")
    env_id = simulator.environments(project)[0]["id"]
    try:
        kubectl_run(cluster.kube, "delete", "crd", "odooenvironments.oec.sh", "--wait=false")
        wait_for(lambda: kubectl_run(cluster.kube, "get", "crd", "odooenvironments.oec.sh",
                                     check=False).returncode != 0, timeout=60, what="CRD removed")
    finally:
        kubectl_run(cluster.kube, "apply", "-f", str(CRD))
        kubectl_run(cluster.kube, "wait", "--for=condition=Established", "--timeout=60s",
                    "crd/odooenvironments.oec.sh")
    assert [e["id"] for e in simulator.environments(project)] == [env_id]
    assert simulator.requests("DELETE", f"/environments/{env_id}") == []
    # kopf posts Events from a queue of its own: they may land just after the finalizer went.
    wait_for(lambda: env_id in cluster.kubectl("get", "events", "--field-selector", "reason=Orphaned",
                                               "-o", "json").stdout, timeout=20, what="the Orphaned Event")


# --- the backup kinds (docs/backups.md §1 "Deleting while the operator is down") ----------------


def _backup_kind_objects(cluster: Cluster) -> None:
    """An OdooBackup and an OdooRestore whose daemons keep running (both wait for an environment
    that does not exist), so both carry the operator's finalizer."""
    not_after = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for manifest in (
        {"apiVersion": "oec.sh/v1alpha1", "kind": "OdooBackup", "metadata": {"name": "kept"},
         "spec": {"environmentRef": {"name": "not-yet"}}},
        {"apiVersion": "oec.sh/v1alpha1", "kind": "OdooRestore", "metadata": {"name": "kept"},
         "spec": {"environmentRef": {"name": "not-yet"}, "backupId": "b-1", "confirmEnvironmentName": "not-yet",
                  "notAfter": not_after}},
    ):
        cluster.apply(manifest)
    for kind in ("odoobackup", "odoorestore"):
        wait_for(lambda kind=kind: FINALIZER in _finalizers(cluster, kind, "kept"), timeout=30,  # type: ignore[misc]
                 what=f"the finalizer on {kind} kept")


def _finalizers(cluster: Cluster, kind: str, name: str) -> list[str]:
    proc = cluster.kubectl("get", kind, name, "-o", "json", check=False)
    return list(json.loads(proc.stdout)["metadata"].get("finalizers") or []) if proc.returncode == 0 else []


def _crds_gone(cluster: Cluster) -> bool:
    return all(kubectl_run(cluster.kube, "get", "crd", name, check=False).returncode != 0 for name in BACKUP_CRD_NAMES)


def _reinstall_backup_crds(cluster: Cluster) -> None:
    for path in BACKUP_CRDS:
        kubectl_run(cluster.kube, "apply", "-f", str(path))
    kubectl_run(cluster.kube, "wait", "--for=condition=Established", "--timeout=60s",
                *(f"crd/{name}" for name in BACKUP_CRD_NAMES))


def test_deleting_the_backup_crds_releases_their_objects(
    cluster: Cluster, simulator: Simulator, operator: OperatorProcess
) -> None:
    """``kubectl delete -k deploy/`` (or deleting the backup kinds' CRDs) with OdooBackups and
    OdooRestores present completes: the guard releases the finalizer, and OEC.sh is not asked anything."""
    _backup_kind_objects(cluster)
    seq = simulator.last_seq()
    try:
        started = time.monotonic()
        kubectl_run(cluster.kube, "delete", "crd", *BACKUP_CRD_NAMES, "--wait=false")
        wait_for(lambda: _crds_gone(cluster), timeout=30, what="the backup kinds' CRDs removed")
        print(f"\nbackup kinds' CRDs deleted with objects present: gone in {time.monotonic() - started:.1f} s")
    finally:
        _reinstall_backup_crds(cluster)
    assert [r for r in simulator.requests(since=seq) if r["method"] != "GET"] == []


def test_with_the_operator_down_deletions_wait_and_complete_when_it_is_back(
    cluster: Cluster, simulator: Simulator, operator: OperatorProcess
) -> None:
    """The operator down: a deleted OdooBackup and the deleted CRDs wait on the finalizer (nothing
    is lost); the operator started again releases them without any OEC.sh write."""
    _backup_kind_objects(cluster)
    operator.stop()
    seq = simulator.last_seq()
    try:
        cluster.kubectl("delete", "odoobackup", "kept", "--wait=false")
        kubectl_run(cluster.kube, "delete", "crd", *BACKUP_CRD_NAMES, "--wait=false")
        # Held by the finalizer (kubectl get still finds it, marked for deletion). The apiserver's
        # CRD finalizer marks the objects a moment after the CRD's delete returned: wait for it.
        def marked() -> dict[str, Any] | None:
            obj = json.loads(cluster.kubectl("get", "odoorestore", "kept", "-o", "json").stdout)
            return obj if obj["metadata"].get("deletionTimestamp") else None

        obj = wait_for(marked, timeout=15, what="the OdooRestore marked for deletion")
        assert FINALIZER in obj["metadata"]["finalizers"]
        assert not _crds_gone(cluster)
        started = time.monotonic()
        operator.start()
        wait_for(lambda: _crds_gone(cluster), timeout=30, what="the CRDs removed once the operator is back")
        print(f"\noperator started again: the waiting deletions done in {time.monotonic() - started:.1f} s")
    finally:
        _reinstall_backup_crds(cluster)
    assert [r for r in simulator.requests(since=seq) if r["method"] != "GET"] == []
