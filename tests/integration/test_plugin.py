"""``kubectl oec`` against the real apiserver and the simulator, run through kubectl itself."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from .conftest import RW_KEY, Cluster, OperatorProcess, Simulator, environment, wait_for

pytestmark = pytest.mark.integration

PLUGIN_DIR = Path(sys.executable).parent  # kubectl-oec is installed beside the venv's python


def kubectl_oec(cluster: Cluster, *args: str, api_url: str | None = None, key: str | None = RW_KEY
                ) -> subprocess.CompletedProcess[str]:
    """``kubectl oec ARGS`` with the plugin on PATH, as a user would run it."""
    env = {**os.environ, "PATH": f"{PLUGIN_DIR}{os.pathsep}{os.environ.get('PATH', '')}",
           "KUBECONFIG": str(cluster.kube.kubeconfig)}
    env.pop("OEC_API_KEY", None)
    if key:
        env["OEC_API_KEY"] = key
    if api_url:
        env["OEC_API_URL"] = api_url
    return subprocess.run([str(cluster.kube.kubectl), "oec", "-n", cluster.namespace, *args],
                          capture_output=True, text=True, env=env, timeout=60)


def test_status_logs_redeploy_and_reconcile(cluster: Cluster, simulator: Simulator,
                                            operator: OperatorProcess) -> None:
    project = simulator.new_project("plugin")
    cluster.apply(environment("shop", project, branch="main", deployPolicy="Manual"))
    obj = cluster.wait_ready("shop")
    env_id = obj["status"]["environmentId"]

    shown = kubectl_oec(cluster, "status", "shop")
    assert shown.returncode == 0, shown.stderr
    for text in ("Phase:        running", obj["status"]["url"], env_id, "Ready", "Available",
                 "container running yes", obj["status"]["lastDeploy"]["id"]):
        assert text in shown.stdout

    logs = kubectl_oec(cluster, "logs", "shop", "--lines", "50", api_url=simulator.api_url)
    assert logs.returncode == 0, logs.stderr
    with httpx.Client(base_url=simulator.api_url, headers={"Authorization": f"Bearer {RW_KEY}"}) as api:
        expected = api.get(f"/environments/{env_id}/logs", params={"lines": 50}).json()["log"]
    assert expected.strip() and expected.strip().splitlines()[-1] in logs.stdout

    assert simulator.requests("POST", f"/environments/{env_id}/deploy") == []  # deployPolicy Manual
    redeploy = kubectl_oec(cluster, "redeploy", "shop")
    assert redeploy.returncode == 0, redeploy.stderr
    wait_for(lambda: simulator.requests("POST", f"/environments/{env_id}/deploy"), timeout=20,
             what="a deploy after kubectl oec redeploy")

    reconcile = kubectl_oec(cluster, "reconcile", "shop")
    assert reconcile.returncode == 0, reconcile.stderr
    token = reconcile.stdout.strip().split("=")[-1].rstrip(")")
    wait_for(lambda: (cluster.get("shop") or {}).get("status", {}).get("lastHandledReconcileAt") == token,
             timeout=20, what="lastHandledReconcileAt")


def test_errors_name_the_problem(cluster: Cluster, simulator: Simulator, operator: OperatorProcess) -> None:
    missing = kubectl_oec(cluster, "status", "nope")
    assert missing.returncode == 1
    assert f"odooenvironment 'nope' not found in namespace '{cluster.namespace}'" in missing.stderr

    project = simulator.new_project("plugin-errors")
    cluster.apply(environment("quiet", project))
    cluster.wait_ready("quiet")
    no_key = kubectl_oec(cluster, "logs", "quiet", api_url=simulator.api_url, key=None)
    assert no_key.returncode == 1 and "no credentials" in no_key.stderr

    down = kubectl_oec(cluster, "logs", "quiet", api_url="http://127.0.0.1:9/api/public/v1")
    assert down.returncode == 1 and "cannot reach the OEC.sh API at http://127.0.0.1:9" in down.stderr
    assert RW_KEY not in down.stderr + no_key.stderr + missing.stderr




def test_restart_stop_and_start_patch_the_resource(cluster: Cluster, simulator: Simulator) -> None:
    """What the commands write, on the real apiserver (no operator: what it does with them is
    tested with the reconcile logic)."""
    cluster.apply(environment("power", simulator.new_project("plugin-power")))

    restart = kubectl_oec(cluster, "restart", "power")
    assert restart.returncode == 0, restart.stderr
    token = restart.stdout.strip().split("=")[-1].rstrip(")")
    assert (cluster.get("power") or {})["metadata"]["annotations"]["oec.sh/restart-requested-at"] == token

    stop = kubectl_oec(cluster, "stop", "power")
    assert stop.returncode == 0 and "spec.powerState=Stopped" in stop.stdout, stop.stderr
    assert (cluster.get("power") or {})["spec"]["powerState"] == "Stopped"
    assert "Power:        - (spec: Stopped)" in kubectl_oec(cluster, "status", "power").stdout

    start = kubectl_oec(cluster, "start", "power")
    assert start.returncode == 0, start.stderr
    assert (cluster.get("power") or {})["spec"]["powerState"] == "Running"

    missing = kubectl_oec(cluster, "stop", "nope")
    assert missing.returncode == 1 and "odooenvironment 'nope' not found" in missing.stderr
