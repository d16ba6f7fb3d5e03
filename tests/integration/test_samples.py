"""Every manifest in deploy/samples is valid for the CRD: a server-side dry run against the real
apiserver (schema, defaults and CEL rules apply; nothing is created, no operator needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from .conftest import ROOT, Cluster

pytestmark = pytest.mark.integration

SAMPLES = ROOT / "deploy" / "samples"
DEMO_PROJECT = "3f0c9a52-7a1e-4c1b-9d2e-5b8f6a4e2c10"
MANIFESTS = sorted(p for p in SAMPLES.glob("*.yaml") if p.name != "kustomization.yaml")


def test_there_are_samples() -> None:
    assert len(MANIFESTS) >= 8, MANIFESTS


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_sample_is_accepted_by_the_apiserver(cluster: Cluster, path: Path) -> None:
    text = path.read_text()
    assert text.startswith("#"), f"{path.name} should start with a comment saying what it shows"
    docs = [d for d in yaml.safe_load_all(text) if d]
    envs = [d for d in docs if d.get("kind") == "OdooEnvironment"]
    assert envs, f"{path.name} has no OdooEnvironment"
    assert all(d["spec"]["projectId"] == DEMO_PROJECT for d in envs), "samples use the demo project"
    result = cluster.kubectl("apply", "--dry-run=server", "-f", str(path), check=False)
    assert result.returncode == 0, f"{path.name}: {result.stderr}"
    for doc in envs:
        assert f"odooenvironment.oec.sh/{doc['metadata']['name']}" in result.stdout, result.stdout
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


def test_kustomization_is_accepted_by_the_apiserver(cluster: Cluster) -> None:
    result = cluster.kubectl("apply", "--dry-run=server", "-k", str(SAMPLES), check=False)
    assert result.returncode == 0, result.stderr
