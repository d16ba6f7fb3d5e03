"""``OdooRestore`` through kubectl (``docs/backups.md`` §3): real apiserver, operator process,
simulator process. A restore runs exactly once across an operator SIGKILL, the environment shows
``Restoring`` meanwhile, the safety backup's id is recorded, a re-applied manifest does nothing and
a stale one is refused; ``kubectl oec restore`` asks for the name and creates the object. (The
rules themselves are tested in ``tests/controller/test_restore.py``.)"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from oec_testkit.manifests import condition

from .conftest import RW_KEY, Cluster, OperatorProcess, Simulator, environment, wait_for

pytestmark = pytest.mark.integration

#: Duration (s) of a restore in these tests: long enough to see the environment show Restoring and
#: to kill the operator while it runs.
RESTORE_SECONDS = 8.0


def _restore(name: str, env: str, backup_id: str, confirm: str, not_after: float = 3600) -> dict[str, Any]:
    at = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=not_after)
    return {"apiVersion": "oec.sh/v1alpha1", "kind": "OdooRestore", "metadata": {"name": name},
            "spec": {"environmentRef": {"name": env}, "backupId": backup_id, "confirmEnvironmentName": confirm,
                     "notAfter": at.strftime("%Y-%m-%dT%H:%M:%SZ")}}


def _get_restore(cluster: Cluster, name: str) -> dict[str, Any]:
    return dict(json.loads(cluster.kubectl("get", "odoorestore", name, "-o", "json").stdout))


def _phase(cluster: Cluster, name: str, *phases: str) -> dict[str, Any] | None:
    obj = _get_restore(cluster, name)
    return obj if obj.get("status", {}).get("phase") in phases else None


def _backup(simulator: Simulator, env_id: str) -> str:
    """A completed manual backup of the environment, made through the API."""
    with simulator.api() as api:
        response = api.post(f"/environments/{env_id}/backups", json={"backup_type": "manual",
                                                                     "retention_type": "monthly"})
        response.raise_for_status()
        backup_id = str(response.json()["id"])
        wait_for(lambda: api.get(f"/backups/{backup_id}").json()["status"] == "completed", timeout=30,
                 what=f"backup {backup_id} completed")
    return backup_id


def _running(cluster: Cluster, simulator: Simulator, name: str) -> str:
    cluster.apply(environment(name, simulator.new_project(name)))
    return str(cluster.wait_ready(name)["status"]["environmentId"])


@pytest.fixture
def slow_restores(simulator: Simulator) -> Any:
    before = simulator.config()
    simulator.configure(restore_seconds=RESTORE_SECONDS, auto_backups=False)
    yield
    simulator.configure(restore_seconds=before["restore_seconds"], auto_backups=before["auto_backups"])
    simulator.clear_faults()


def test_a_restore_runs_once_across_an_operator_kill_and_the_environment_shows_it(
    cluster: Cluster, simulator: Simulator, operator_factory: Any, slow_restores: Any
) -> None:
    first: OperatorProcess = operator_factory()
    env_id = _running(cluster, simulator, "shop")
    backup_id = _backup(simulator, env_id)

    # The restore's answer never comes back (the API started it, then holds the connection); the
    # operator is killed while it waits, after it recorded the intent, before it knew the task.
    simulator.inject(kind="timeout", when="after", route="restore_backup", count=1, hold_seconds=60)
    manifest = _restore("back", "shop", backup_id, confirm="shop")
    cluster.apply(manifest)
    wait_for(lambda: simulator.tasks(env_id, "restore"), timeout=30, interval=0.1, what="the restore task")
    shown = cluster.wait_condition("shop", "Reconciling", "True", "Restoring", timeout=15)
    assert "OdooRestore back" in shown["message"]
    row = cluster.kubectl("get", "odooenv", "shop", "-o", "wide").stdout.splitlines()[1].split()
    assert "Restoring" in row and "False" in row  # READY False, REASON Restoring
    first.kill()
    status = _get_restore(cluster, "back")["status"]
    assert status["phase"] == "Running" and "taskId" not in status
    since = simulator.last_seq()
    started = time.monotonic()
    operator_factory()

    done = wait_for(lambda: _phase(cluster, "back", "Completed", "Failed"), timeout=60, what="the restore ended")
    took = time.monotonic() - started
    status = done["status"]
    tasks = simulator.tasks(env_id, "restore")
    assert len(tasks) == 1 and status["phase"] == "Completed" and status["taskId"] == tasks[0]["id"]
    replayed = simulator.requests("POST", f"/backups/{backup_id}/restore", since=since)
    assert [r["status"] for r in replayed] == [202]  # the same key: answered with the first task
    safety = [b for b in simulator.client.backups(env_id)["backups"] if b["backup_type"] == "pre_restore"]
    assert [b["id"] for b in safety] == [status["safetyBackupId"]]
    assert (condition(done, "Ready") or {}).get("status") == "True"
    # The environment goes on at once: Ready again, the restore gone from its conditions.
    seen = time.monotonic()
    cluster.wait_ready("shop", timeout=30)
    print(f"\nrestore of {RESTORE_SECONDS:.0f}s seen Completed {took:.1f}s after the operator restart; "
          f"the environment Ready {time.monotonic() - seen:.1f}s after that")

    # The same manifest applied again (a GitOps resync) changes nothing and sends nothing.
    seq = simulator.last_seq()
    assert "unchanged" in cluster.apply(manifest).stdout
    time.sleep(2)  # a resync would act within the fast poll interval (0.5 s)
    assert simulator.requests("POST", "/restore", since=seq) == []
    assert len(simulator.tasks(env_id, "restore")) == 1

    # The manifest applied to a rebuilt cluster (a new object) after its notAfter: refused, nothing sent.
    stale = _restore("back-again", "shop", backup_id, confirm="shop", not_after=-60)
    cluster.apply(stale)
    refused = wait_for(lambda: _phase(cluster, "back-again", "Refused", "Running", "Completed"), timeout=30,
                       what="the stale restore refused")
    assert refused["status"]["phase"] == "Refused"
    assert (condition(refused, "Stalled") or {}).get("reason") == "Expired"
    assert simulator.requests("POST", "/restore", since=seq) == []


def _kubectl_oec(cluster: Cluster, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "KUBECONFIG": str(cluster.kube.kubeconfig), "PATH": f"{bin_dir}:{os.environ['PATH']}",
           "OEC_API_KEY": RW_KEY}
    return subprocess.run([cluster.kube.kubectl, "oec", *args, "-n", cluster.namespace], env=env, text=True,
                          capture_output=True, timeout=60, input=stdin, check=False)


def test_kubectl_oec_restore_asks_for_the_name_and_the_restore_runs(
    cluster: Cluster, simulator: Simulator, operator: OperatorProcess, slow_restores: Any
) -> None:
    env_id = _running(cluster, simulator, "staging")
    backup_id = _backup(simulator, env_id)

    # Not interactive (a script) and no confirmation: nothing is created.
    refused = _kubectl_oec(cluster, "restore", "staging", "--backup-id", backup_id, stdin="staging\n")
    assert refused.returncode == 1 and "--yes-i-mean-it <the environment's name>" in refused.stderr
    wrong = _kubectl_oec(cluster, "restore", "staging", "--backup-id", backup_id, "--yes-i-mean-it", "prod")
    assert wrong.returncode == 1 and "nothing was done" in wrong.stderr
    assert json.loads(cluster.kubectl("get", "odoorestore", "-o", "json").stdout)["items"] == []

    made = _kubectl_oec(cluster, "restore", "staging", "--backup-id", backup_id, "--yes-i-mean-it", "staging")
    assert made.returncode == 0, made.stderr
    name = made.stdout.split("'")[1]
    assert name.startswith("staging-restore-")
    done = wait_for(lambda: _phase(cluster, name, "Completed", "Failed", "Refused"), timeout=60,
                    what="the restore ended")
    assert done["status"]["phase"] == "Completed" and done["spec"]["confirmEnvironmentName"] == "staging"
    assert done["status"]["safetyBackupId"]
    assert len(simulator.tasks(env_id, "restore")) == 1
    row = cluster.kubectl("get", "odoorestore", name).stdout.splitlines()
    assert "Completed" in row[1] and done["status"]["safetyBackupId"] in row[1]
