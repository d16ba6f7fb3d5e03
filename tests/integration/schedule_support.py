"""Shared by the OdooBackupSchedule integration tests: the backup CRDs, the operator on a clock the
test controls (:mod:`oec_testkit.clocked_operator`), and reads of the backup kinds. A test module
imports the fixtures ``backup_crds_fixture`` and ``clocked_operator_fixture`` (named ``backup_crds``
and ``clocked_operator``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from oec_operator.settings import BACKUP_CRD_NAME, SCHEDULE_CRD_NAME
from oec_testkit.clocked_operator import CLOCK_FILE, set_offset
from oec_testkit.manifests import ROOT
from oec_testkit.operator import TEST_TIMINGS

from .conftest import RW_KEY, Cluster, OperatorProcess, Simulator, kubectl_run, print_log_if_failed, release_leftovers

BACKUPS, SCHEDULES = BACKUP_CRD_NAME, SCHEDULE_CRD_NAME


@pytest.fixture(scope="session", name="backup_crds")
def backup_crds_fixture(kube: Any, crd: Path) -> None:
    """The ``OdooBackup`` and ``OdooBackupSchedule`` CRDs installed and Established."""
    for name in (BACKUPS, SCHEDULES):
        kubectl_run(kube, "apply", "-f", str(ROOT / "crds" / f"{name}.yaml"))
    kubectl_run(kube, "wait", "--for=condition=Established", "--timeout=60s", f"crd/{BACKUPS}", f"crd/{SCHEDULES}")


@dataclass
class Clocked:
    """The operator process and its clock: the wall clock plus :attr:`offset` seconds."""

    process: OperatorProcess
    file: Path
    offset: float = 0.0

    def set(self, moment: datetime) -> None:
        """Make the operator's schedule clock read ``moment`` now (it runs on from there)."""
        self.offset = (moment - datetime.now(UTC)).total_seconds()
        set_offset(self.file, self.offset)

    def advance(self, seconds: float) -> None:
        """Move the operator's schedule clock forward."""
        self.offset += seconds
        set_offset(self.file, self.offset)

    def now(self) -> datetime:
        """What the operator's schedule clock reads."""
        return datetime.now(UTC) + timedelta(seconds=self.offset)


@pytest.fixture(name="clocked_operator")
def clocked_operator_fixture(kube: Any, namespace: str, simulator: Simulator, tmp_path: Path,
                             request: pytest.FixtureRequest, backup_crds: None) -> Iterator[Callable[..., Clocked]]:
    """Factory: ``clocked_operator(start_at, **env)`` -> the operator for the test's namespace, run
    by ``python -m oec_testkit.clocked_operator`` with its schedule clock at ``start_at``; stopped
    at the end (its log printed when the test failed)."""
    started: list[OperatorProcess] = []

    def start(start_at: datetime, *, api_key: str = RW_KEY, **env: str) -> Clocked:
        file = tmp_path / "clock"
        op = OperatorProcess(kube.kubeconfig, simulator.api_url, tmp_path / "operator.log", args=["-n", namespace],
                             api_key=api_key, env={**TEST_TIMINGS, CLOCK_FILE: str(file), **env},
                             module="oec_testkit.clocked_operator")
        clocked = Clocked(op, file)
        clocked.set(start_at)
        op.start()
        started.append(op)
        return clocked

    yield start
    for op in started:
        op.stop()
    for plural in (SCHEDULES, BACKUPS):
        kubectl_run(kube, "-n", namespace, "delete", plural, "--all", "--wait=false", check=False)
    release_leftovers(kube, namespace)
    if started:
        print_log_if_failed(request, started[-1])


def items(cluster: Cluster, plural: str) -> list[dict[str, Any]]:
    """Every object of ``plural`` in the namespace."""
    return list(json.loads(cluster.kubectl("get", plural, "-o", "json").stdout)["items"])


def get(cluster: Cluster, plural: str, name: str) -> dict[str, Any] | None:
    """One object, ``None`` when there is none."""
    proc = cluster.kubectl("get", plural, name, "-o", "json", check=False)
    return None if proc.returncode != 0 else dict(json.loads(proc.stdout))


def schedule(name: str, **spec: Any) -> dict[str, Any]:
    """An ``OdooBackupSchedule`` manifest."""
    return {"apiVersion": "oec.sh/v1alpha1", "kind": "OdooBackupSchedule", "metadata": {"name": name}, "spec": spec}


def phases(objs: Sequence[Mapping[str, Any]]) -> dict[str, str | None]:
    """Backup name -> phase."""
    return {o["metadata"]["name"]: (o.get("status") or {}).get("phase") for o in objs}


def next_2am(after: datetime) -> datetime:
    """The first 02:00 UTC at least ten minutes after ``after``."""
    day = (after + timedelta(minutes=10)).replace(hour=2, minute=0, second=0, microsecond=0)
    return day if day >= after + timedelta(minutes=10) else day + timedelta(days=1)
