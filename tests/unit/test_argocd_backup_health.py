"""The Argo CD health checks of the backup kinds (``deploy/argocd/health-oneshot.lua`` for OdooBackup
and OdooRestore, ``health-odoobackupschedule.lua``), run the way
Argo CD runs them (see :mod:`tests.unit.test_argocd_health`): each phase of ``docs/status-contract.md``
(OdooBackup, OdooBackupSchedule, OdooRestore) gives the Argo CD health a user sees in the app."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.unit.test_argocd_health import ARGOCD_CM, ROOT, argo_health

ARGOCD = ROOT / "deploy" / "argocd"
BACKUP = RESTORE = ARGOCD / "health-oneshot.lua"
SCHEDULE = ARGOCD / "health-odoobackupschedule.lua"


def cond(type_: str, status: str, reason: str, message: str = "") -> dict[str, Any]:
    return {"type": type_, "status": status, "reason": reason, "message": message, "observedGeneration": 1,
            "lastTransitionTime": "2026-12-01T00:00:00Z"}


def obj(status: dict[str, Any] | None, *, spec: dict[str, Any] | None = None, **metadata: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"metadata": {"name": "x", "generation": 1, **metadata}, "spec": spec or {}}
    if status is not None:
        body["status"] = status
    return body


BACKUP_CASES = {
    "no-status": (obj(None), "Progressing", "Waiting for status"),
    "pending": (obj({"phase": "Pending", "conditions": [cond("Ready", "False", "Pending", "backup requested"),
                                                        cond("Reconciling", "True", "Pending", "backup requested")]}),
                "Progressing", "backup requested"),
    "waiting-for-task": (obj({"phase": "Running", "conditions": [
        cond("Ready", "False", "Running", "running"),
        cond("Reconciling", "True", "TaskInProgress", "waiting for deploy t1 to end")]}),
        "Progressing", "waiting for deploy t1 to end"),
    "completed": (obj({"phase": "Completed", "conditions": [cond("Ready", "True", "Completed", "1.2 GB")]}),
                  "Healthy", "1.2 GB"),
    "failed": (obj({"phase": "Failed", "conditions": [cond("Ready", "False", "BackupFailed", "disk full"),
                                                      cond("Stalled", "True", "BackupFailed", "disk full")]}),
               "Degraded", "Failed: disk full"),
    "expired": (obj({"phase": "Expired", "conditions": [
        cond("Ready", "False", "Expired", "retention daily ended 2026-12-02"),
        cond("Stalled", "True", "Expired", "retention daily ended 2026-12-02")]}),
        "Degraded", "Expired: retention daily ended 2026-12-02"),
    "expired-no-conditions": (obj({"phase": "Expired"}), "Degraded", "Expired: OEC.sh no longer keeps this backup"),
    "deleting": (obj({"phase": "Completed"}, deletionTimestamp="2026-12-01T00:00:00Z"),
                 "Progressing", "Pending deletion"),
}

SCHEDULE_CASES = {
    "no-status": (obj(None, spec={"schedule": "0 2 * * *"}), "Progressing", "Waiting for status"),
    "scheduled": (obj({"observedGeneration": 1, "nextScheduleTime": "2026-12-02T02:00:00Z",
                       "conditions": [cond("Ready", "True", "Scheduled", "")]}),
                  "Healthy", "Scheduled"),
    "scheduled-message": (obj({"observedGeneration": 1, "conditions": [
        cond("Ready", "True", "Scheduled", "next run 2026-12-02T02:00:00Z, 12 environments")]}),
        "Healthy", "next run 2026-12-02T02:00:00Z, 12 environments"),
    "stalled": (obj({"observedGeneration": 1, "conditions": [
        cond("Ready", "False", "NoEnvironments", "selector tier=prod matches no OdooEnvironment"),
        cond("Stalled", "True", "NoEnvironments", "selector tier=prod matches no OdooEnvironment")]}),
        "Degraded", "selector tier=prod matches no OdooEnvironment"),
    "suspended": (obj({"observedGeneration": 1, "conditions": [cond("Ready", "True", "Suspended", "")]},
                      spec={"suspend": True}), "Suspended", "Suspended (spec.suspend)"),
    "new-generation": (obj({"observedGeneration": 1, "conditions": [cond("Ready", "True", "Scheduled", "ok")]},
                           generation=2), "Progressing", "Waiting for generation 2 to be evaluated"),
}

RESTORE_CASES = {
    "no-status": (obj(None), "Progressing", "Waiting for status"),
    "pending": (obj({"phase": "Pending", "conditions": [cond("Reconciling", "True", "TaskInProgress",
                                                            "waiting for deploy t1 to end")]}),
                "Progressing", "waiting for deploy t1 to end"),
    "running": (obj({"phase": "Running"}), "Progressing", "Running"),
    "refused-no-conditions": (obj({"phase": "Refused"}), "Degraded", "Refused: nothing was sent"),
    "completed": (obj({"phase": "Completed", "conditions": [cond("Ready", "True", "Completed", "restored b1")]}),
                  "Healthy", "restored b1"),
    "failed": (obj({"phase": "Failed", "conditions": [cond("Stalled", "True", "RestoreFailed", "task failed")]}),
               "Degraded", "Failed: task failed"),
    "refused": (obj({"phase": "Refused", "conditions": [
        cond("Stalled", "True", "NotAfterPassed", "notAfter 2026-01-01T00:00:00Z has passed: nothing was sent")]}),
        "Degraded", "Refused: notAfter 2026-01-01T00:00:00Z has passed: nothing was sent"),
}


@pytest.mark.parametrize(("script", "case"), [
    *((BACKUP, c) for c in BACKUP_CASES.values()),
    *((SCHEDULE, c) for c in SCHEDULE_CASES.values()),
    *((RESTORE, c) for c in RESTORE_CASES.values()),
], ids=[*(f"backup-{k}" for k in BACKUP_CASES), *(f"schedule-{k}" for k in SCHEDULE_CASES),
        *(f"restore-{k}" for k in RESTORE_CASES)])
def test_health(script: Any, case: tuple[dict[str, Any], str, str]) -> None:
    body, status, message = case
    assert argo_health(body, script) == {"status": status, "message": message}


def test_argocd_cm_embeds_each_health_script_verbatim() -> None:
    (config_map,) = yaml.safe_load_all(ARGOCD_CM.read_text())
    for kind, script in (("OdooBackup", BACKUP), ("OdooBackupSchedule", SCHEDULE), ("OdooRestore", RESTORE)):
        assert config_map["data"][f"resource.customizations.health.oec.sh_{kind}"] == script.read_text(), (
            f"deploy/argocd/argocd-cm.yaml drifted from {script.name}: copy the script into it")
