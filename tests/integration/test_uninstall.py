"""Uninstalling the operator's CRD must never destroy environments: they are orphaned."""

from __future__ import annotations

from pathlib import Path

import pytest

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
