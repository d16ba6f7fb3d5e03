"""Fixtures for integration tests: the CRD on the real apiserver, the OEC.sh simulator as a real
process on loopback, and the operator as a real process (``python -m oec_operator``) scoped to
the test's namespace."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from oec_simulator.admin_client import SimulatorAdmin
from oec_testkit.kubectl import Kubectl, KubectlError
from oec_testkit.manifests import CRD, GROUP, PLURAL, RESOURCE, ROOT, VERSION, condition, environment, is_ready
from oec_testkit.operator import TEST_TIMINGS, OperatorProcess
from oec_testkit.simulator import SimulatorProcess, start_simulator
from oec_testkit.waiting import wait_until as wait_for

__all__ = ["CRD", "GROUP", "PLURAL", "ROOT", "VERSION", "OperatorProcess", "environment", "wait_for"]

RW_KEY = "oec_live_rw_test_integration_key_00000000000000"
RO_KEY = "oec_live_ro_test_integration_key_00000000000000"


class Simulator:
    """A running ``oec-simulator`` process and its admin API (``/_sim/...``): test-shaped helpers
    over :class:`SimulatorAdmin` (``client``); ``admin`` is its raw :class:`httpx.Client`."""

    def __init__(self, process: SimulatorProcess) -> None:
        self.process = process
        self.base, self.api_url = process.base_url, process.api_url
        self.proc, self.log = process.proc, process.log
        self.client = SimulatorAdmin(self.base, timeout=10.0)
        self.admin = self.client.http

    def close(self) -> None:
        self.client.close()
        self.process.stop()

    def new_project(self, name: str = "it", default_branch: str = "main") -> str:
        return self.client.new_project(name, default_branch)

    def requests(self, method: str | None = None, path_contains: str = "", since: int = 0) -> list[dict[str, Any]]:
        """Logged API requests, oldest first; ``since``: only those with ``seq`` above it."""
        return [
            r for r in self.client.requests(since)
            if (method is None or r["method"] == method) and path_contains in r["path"]
        ]

    def last_seq(self) -> int:
        """``seq`` of the newest logged request (0 when the log is empty); pass it as ``since``."""
        return self.client.last_seq()

    def clear_requests(self) -> None:
        """Empty the request log (sequence numbers keep counting)."""
        self.client.clear_requests()

    def environments(self, project_id: str, include_deleted: bool = False) -> list[dict[str, Any]]:
        return [
            e for e in self.client.environments()
            if e.get("project_id") == project_id and (include_deleted or not e.get("deleted"))
        ]

    def configure(self, **changes: Any) -> None:
        self.client.configure(**changes)

    def config(self) -> dict[str, Any]:
        return self.client.config()

    def environment(self, env_id: str) -> dict[str, Any] | None:
        """The admin view of one environment (gone ones included, ``deleted: true``), or None."""
        return next((e for e in self.client.environments() if e["id"] == env_id), None)

    def tasks(self, env_id: str, type_: str | None = None) -> list[dict[str, Any]]:
        """The tasks the simulator ran for an environment, oldest first (only ``type_`` ones if given),
        with what each was asked (``update_modules``, ``mode``, ``modules``) and ``applied_sizes``."""
        return [t for t in reversed(self.client.tasks(env_id)) if type_ is None or t["type"] == type_]

    def wait_environment_status(self, env_id: str, status: str, timeout: float = 20) -> dict[str, Any]:
        return dict(wait_for(lambda: (e := self.environment(env_id)) and e["status"] == status and e,
                             timeout=timeout, what=f"environment {env_id} {status}"))

    def edit(self, env_id: str, **fields: Any) -> dict[str, Any]:
        """Change ``name``/``branch``/``status``/``fail_next_deploy`` as in the OEC.sh dashboard."""
        return self.client.patch_environment(env_id, **fields)

    def delete_outside(self, env_id: str) -> None:
        """Delete an environment outside Kubernetes: it is gone at once."""
        self.client.delete_environment(env_id)

    def inject(self, **fault: Any) -> None:
        """Queue a fault: ``status``, ``code``, ``count``, ``route``, ``method``, ``retry_after``."""
        self.client.inject(**fault)

    def clear_faults(self) -> None:
        self.client.clear_faults()

    def add_key(self, key: str) -> None:
        """Accept another (organisation-scoped) API key."""
        self.client.add_key(key)

    def revoke_key(self, key: str) -> None:
        assert self.client.revoke_key(key) is True

    def api(self, key: str = RW_KEY) -> httpx.Client:
        """A client of the public API (``/api/public/v1``) authenticated with ``key``; close it after use."""
        return httpx.Client(base_url=self.api_url, timeout=10.0, trust_env=False,
                            headers={"Authorization": f"Bearer {key}"})

    def create_environment(self, project_id: str, name: str, branch: str | None = None,
                           environment_type: str = "development", key: str = RW_KEY) -> dict[str, Any]:
        """Create an environment through the public API, as someone outside Kubernetes would."""
        body: dict[str, Any] = {"name": name, "environment_type": environment_type}
        if branch is not None:
            body["branch"] = branch
        with self.api(key) as api:
            response = api.post(f"/projects/{project_id}/environments", json=body)
        response.raise_for_status()
        return dict(response.json())


@pytest.fixture(scope="session")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    """The simulator with fast lifecycles (deploy 2 s, destroy 1.5 s) and the test keys."""
    work = tmp_path_factory.mktemp("simulator")
    try:
        process = start_simulator(
            ["--deploy-seconds", "2", "--destroy-seconds", "1.5", "--key", RW_KEY, "--key", RO_KEY,
             # One key serves every test of the session: tests that exercise limits set them.
             "--read-limit", "100000", "--write-limit", "100000", "--variant", "brute_force_threshold=100000"],
            port_file=work / "port", log=work / "simulator.log",
        )
    except RuntimeError as exc:
        pytest.fail(str(exc))
    sim = Simulator(process)
    try:
        yield sim
    finally:
        sim.close()


@pytest.fixture(scope="session")
def crd(kube: Any) -> Path:
    """The CRD installed from ``crds/`` and Established."""
    try:
        Kubectl(kube.kubectl, kube.kubeconfig).install_crd(CRD)
    except KubectlError as exc:
        pytest.fail(str(exc))
    return CRD


def kubectl_run(kube: Any, *args: str, check: bool = True, input: str | None = None,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the control plane's kubectl; fail the test with its output when ``check`` and it fails."""
    try:
        return Kubectl(kube.kubectl, kube.kubeconfig)(*args, check=check, input=input, timeout=timeout)
    except KubectlError as exc:
        pytest.fail(str(exc))


class Cluster:
    """kubectl and typed reads of OdooEnvironments in one namespace."""

    def __init__(self, kube: Any, namespace: str) -> None:
        self.kube = kube
        self.namespace = namespace

    def kubectl(self, *args: str, check: bool = True, input: str | None = None,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return kubectl_run(self.kube, "-n", self.namespace, *args, check=check, input=input, timeout=timeout)

    def apply(self, manifest: dict[str, Any], check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest), check=check)

    def get(self, name: str) -> dict[str, Any] | None:
        proc = self.kubectl("get", RESOURCE, name, "-o", "json", check=False)
        if proc.returncode != 0:
            if "NotFound" in proc.stderr:
                return None
            pytest.fail(f"kubectl get failed: {proc.stderr}")
        return dict(json.loads(proc.stdout))

    def condition(self, name: str, type_: str) -> dict[str, Any] | None:
        return condition(self.get(name), type_)

    def wait_ready(self, name: str, timeout: float = 60) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            obj = self.get(name)
            return obj if is_ready(obj) else None
        return dict(wait_for(ready, timeout=timeout, what=f"{name} Ready=True"))

    def wait_condition(self, name: str, type_: str, status: str = "True", reason: str | None = None,
                       timeout: float = 30) -> dict[str, Any]:
        """Wait until condition ``type_`` has ``status`` (and ``reason``); return the condition."""
        def matches() -> dict[str, Any] | None:
            c = self.condition(name, type_)
            ok = c is not None and c["status"] == status and (reason is None or c["reason"] == reason)
            return c if ok else None
        return dict(wait_for(matches, timeout=timeout, what=f"{name} {type_}={status} {reason or ''}"))

    def annotate(self, name: str, key: str, value: str | None) -> None:
        """Set (or, with ``None``, remove) one annotation of an OdooEnvironment, as a user would."""
        arg = f"{key}-" if value is None else f"{key}={value}"
        self.kubectl("annotate", "--overwrite", f"{RESOURCE}/{name}", arg)

    def delete(self, name: str) -> None:
        """``kubectl delete`` without waiting for finalizers."""
        self.kubectl("delete", RESOURCE, name, "--wait=false")

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """Events of the namespace, or of the object ``name``, oldest first."""
        args = ["get", "events", "-o", "json"]
        if name is not None:
            args += ["--field-selector", f"involvedObject.name={name}"]
        items = json.loads(self.kubectl(*args).stdout)["items"]
        return sorted(items, key=lambda e: (e.get("lastTimestamp") or e.get("eventTime") or "",
                                            e["metadata"].get("creationTimestamp") or ""))


def release_leftovers(kube: Any, namespace: str) -> None:
    """Remove the OdooEnvironments a test leaves behind, finalizers stripped: its namespace is never
    deleted for real (no namespace controller), and later tests (a CRD deletion, an operator
    watching every namespace) must not meet them."""
    proc = kubectl_run(kube, "-n", namespace, "get", RESOURCE, "-o", "name", check=False)
    for name in proc.stdout.split():
        kubectl_run(kube, "-n", namespace, "patch", name, "--type", "merge",
                    "-p", '{"metadata":{"finalizers":null}}', check=False)
    # Gone, too: a cluster-wide operator in a later test must not find them.
    kubectl_run(kube, "-n", namespace, "delete", RESOURCE, "--all", "--wait=false", check=False)


@pytest.fixture
def cluster(kube: Any, namespace: str, crd: Path) -> Iterator[Cluster]:
    yield Cluster(kube, namespace)
    release_leftovers(kube, namespace)


@pytest.fixture
def operator_factory(kube: Any, namespace: str, simulator: Simulator, tmp_path: Path,
                     request: pytest.FixtureRequest) -> Iterator[Callable[..., OperatorProcess]]:
    """Start operator processes for the test's namespace; all are stopped at the end, and the
    log is printed when the test failed. ``kubeconfig`` replaces the admin kubeconfig (e.g. a
    ServiceAccount token's, so RBAC applies); ``args`` replaces ``-n NAMESPACE`` (e.g. ``[]`` for
    the default ``--all-namespaces``); other keyword arguments are environment variables over
    :data:`TEST_TIMINGS` and the default key ``RW_KEY``."""
    started: list[OperatorProcess] = []

    def start(*, kubeconfig: str | Path | None = None, args: Sequence[str] | None = None,
              **env: str) -> OperatorProcess:
        op = OperatorProcess(kubeconfig or kube.kubeconfig, simulator.api_url, tmp_path / "operator.log",
                             args=["-n", namespace] if args is None else args, api_key=RW_KEY,
                             env={**TEST_TIMINGS, **env})
        op.start()
        started.append(op)
        return op

    yield start
    for op in started:
        op.stop()
    release_leftovers(kube, namespace)
    if started:
        print_log_if_failed(request, started[-1])


def print_log_if_failed(request: pytest.FixtureRequest, operator: OperatorProcess) -> None:
    """Print the end of the operator's log when the test of ``request`` failed."""
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        sys.stderr.write(f"\n--- operator log ---\n{operator.output()[-6000:]}\n")


@pytest.fixture
def operator(operator_factory: Callable[..., OperatorProcess]) -> OperatorProcess:
    """One running operator for the test's namespace."""
    return operator_factory()


@pytest.fixture(scope="module")
def module_cluster(kube: Any, module_namespace: str, crd: Path) -> Iterator[Cluster]:
    """A :class:`Cluster` on a namespace shared by the tests of one module (each test uses names
    and an OEC.sh project of its own); leftovers released after the module."""
    yield Cluster(kube, module_namespace)
    release_leftovers(kube, module_namespace)


@pytest.fixture(scope="module")
def _module_operator(kube: Any, module_cluster: Cluster, simulator: Simulator,
                     tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    op = OperatorProcess(kube.kubeconfig, simulator.api_url, tmp_path_factory.mktemp("operator") / "operator.log",
                         args=["-n", module_cluster.namespace], api_key=RW_KEY, env=TEST_TIMINGS)
    op.start()
    yield op
    op.stop()


@pytest.fixture
def module_operator(_module_operator: OperatorProcess, request: pytest.FixtureRequest) -> Iterator[OperatorProcess]:
    """One operator for the namespace of :func:`module_cluster`, started once per module (a test may
    kill and start it again: it is running again when the next test begins); its log is printed
    when a test failed."""
    if not _module_operator.alive():
        _module_operator.start()
    yield _module_operator
    print_log_if_failed(request, _module_operator)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)
