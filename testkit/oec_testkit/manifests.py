"""The OdooEnvironment resource as the tests and tools write and read it: names, the CRD file,
manifests, and the conditions in a status (plain JSON dicts, as kubectl and the API return them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from oec_operator.settings import (
    BACKUP_CRD_NAME,
    CRD_NAME,
    GROUP,
    PLURAL,
    RESTORE_CRD_NAME,
    SCHEDULE_CRD_NAME,
    VERSION,
)

__all__ = [
    "BACKUP_CRDS",
    "BACKUP_CRD_NAMES",
    "CRD",
    "GROUP",
    "KIND",
    "PEERING_CRD",
    "PEERING_CRDS",
    "PLURAL",
    "RESOURCE",
    "ROOT",
    "VERSION",
    "condition",
    "environment",
    "is_ready",
    "ready_for_generation",
]

#: The repository (the test support is installed editable from ``testkit/``).
ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "crds" / "odooenvironments.oec.sh.yaml"
#: kopf's peering CRDs (several operator processes: ``docs/kopf.md`` §6).
PEERING_CRD = ROOT / "crds" / "kopfpeerings.kopf.dev.yaml"
#: Their names, for ``kubectl wait``.
PEERING_CRDS = ("clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev")
#: The backup kinds' CRDs (``OdooBackup``, ``OdooBackupSchedule``, ``OdooRestore``), installed with
#: the ``OdooEnvironment`` one, and their names.
BACKUP_CRD_NAMES = (BACKUP_CRD_NAME, SCHEDULE_CRD_NAME, RESTORE_CRD_NAME)
BACKUP_CRDS = tuple(ROOT / "crds" / f"{name}.yaml" for name in BACKUP_CRD_NAMES)
KIND = "OdooEnvironment"
#: ``odooenvironments.oec.sh``: the name kubectl takes (and the CRD's name).
RESOURCE = CRD_NAME


def environment(name: str, project_id: str, /, *, namespace: str | None = None, **spec: Any) -> dict[str, Any]:
    """An OdooEnvironment manifest named ``name`` (in ``namespace`` if given); ``spec`` keys are the CRD's."""
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "metadata": metadata,
            "spec": {"projectId": project_id, **spec}}


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    """The condition ``type_`` of the object's status, or None."""
    return next((c for c in (obj or {}).get("status", {}).get("conditions", []) if c["type"] == type_), None)


def is_ready(obj: dict[str, Any] | None) -> bool:
    """``Ready=True``, whatever generation it was computed for."""
    ready = condition(obj, "Ready")
    return bool(ready and ready["status"] == "True")


def ready_for_generation(obj: dict[str, Any] | None) -> bool:
    """``Ready=True`` computed for the object's current generation, and ``status.observedGeneration``
    at it (what ``kubectl wait --for=condition=Ready`` after an apply waits for)."""
    ready = condition(obj, "Ready")
    gen = (obj or {}).get("metadata", {}).get("generation")
    return bool(ready and ready["status"] == "True" and ready.get("observedGeneration") == gen
                and (obj or {}).get("status", {}).get("observedGeneration") == gen)
