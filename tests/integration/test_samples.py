"""Every manifest in deploy/samples is valid for the CRD: a server-side dry run against the real
apiserver (schema, defaults and CEL rules apply; nothing is created, no operator needed)."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import ROOT, Cluster

pytestmark = pytest.mark.integration

SAMPLES = ROOT / "deploy" / "samples"
DEMO_PROJECT = "3f0c9a52-7a1e-4c1b-9d2e-5b8f6a4e2c10"
MANIFESTS = sorted(p for p in SAMPLES.glob("*.yaml") if p.name != "kustomization.yaml")
KINDS = {"OdooEnvironment": "odooenvironment", "OdooBackup": "odoobackup",
         "OdooBackupSchedule": "odoobackupschedule", "OdooRestore": "odoorestore"}


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_there_are_samples() -> None:
    assert len(MANIFESTS) >= 8, MANIFESTS


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_sample_is_accepted_by_the_apiserver(cluster: Cluster, path: Path) -> None:
    text = path.read_text()
    assert text.startswith("#"), f"{path.name} should start with a comment saying what it shows"
    docs = _docs(path)
    assert docs and all(d.get("kind") in (*KINDS, "Secret") for d in docs), f"{path.name}: an unexpected kind"
    envs = [d for d in docs if d.get("kind") == "OdooEnvironment"]
    assert all(d["spec"]["projectId"] == DEMO_PROJECT for d in envs), "samples use the demo project"
    result = cluster.kubectl("apply", "--dry-run=server", "-f", str(path), check=False)
    assert result.returncode == 0, f"{path.name}: {result.stderr}"
    for doc in (d for d in docs if d["kind"] in KINDS):
        assert f"{KINDS[doc['kind']]}.oec.sh/{doc['metadata']['name']}" in result.stdout, result.stdout
    for doc in envs:
        assert cluster.get(doc["metadata"]["name"]) is None  # a dry run creates nothing


def test_a_sample_per_day2_feature() -> None:
    """Issue 12: a deploy request with module updates, a stopped environment, a size with a
    resize policy and a custom domain each have a sample (which the dry run above validates)."""
    specs = [d["spec"] for p in MANIFESTS for d in yaml.safe_load_all(p.read_text())
             if d and d.get("kind") == "OdooEnvironment"]
    assert any(s.get("deploy", {}).get("request", {}).get("updateModules") for s in specs)
    assert any(s.get("powerState") == "Stopped" for s in specs)
    assert any(s.get("resources") and s.get("resizePolicy") for s in specs)
    assert any(s.get("domain") for s in specs)


def test_a_sample_per_backup_kind_over_the_demo_environment() -> None:
    """Issue 13: the demo environment (odooenvironment.yaml) is backed up once, nightly by a label
    selector that matches it, and restored (with a notAfter still ahead, else the operator
    refuses it); a production environment takes a final backup before it is destroyed."""
    docs = [d for p in MANIFESTS for d in _docs(p)]
    by_kind = {kind: [d for d in docs if d["kind"] == kind] for kind in KINDS}
    (demo,) = _docs(SAMPLES / "odooenvironment.yaml")
    (backup,) = by_kind["OdooBackup"]
    assert backup["spec"]["environmentRef"]["name"] == demo["metadata"]["name"]
    (schedule,) = by_kind["OdooBackupSchedule"]
    labels = demo["metadata"].get("labels") or {}
    assert schedule["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (restore,) = by_kind["OdooRestore"]
    assert restore["spec"]["environmentRef"]["name"] == demo["metadata"]["name"]
    assert restore["spec"]["backupRef"]["name"] == backup["metadata"]["name"]
    assert restore["spec"]["confirmEnvironmentName"] == demo["spec"].get("name", demo["metadata"]["name"])
    not_after = datetime.datetime.fromisoformat(restore["spec"]["notAfter"].replace("Z", "+00:00"))
    assert not_after > datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=90), "move notAfter ahead"
    assert any(e["spec"].get("environmentType") == "production" and e["spec"].get("deletionPolicy") == "Delete"
               and e["spec"].get("finalBackup", {}).get("enabled") for e in by_kind["OdooEnvironment"])
    kustomization = yaml.safe_load((SAMPLES / "kustomization.yaml").read_text())["resources"]
    assert "odoorestore.yaml" not in kustomization, "apply -k deploy/samples must never restore"


def test_kustomization_is_accepted_by_the_apiserver(cluster: Cluster) -> None:
    result = cluster.kubectl("apply", "--dry-run=server", "-k", str(SAMPLES), check=False)
    assert result.returncode == 0, result.stderr
