"""Chaos harness for oec-operator: faults against the real thing, counted.

Everything here is real: a kube-apiserver + etcd (``tools/controlplane.py``), the OEC.sh API
simulator as a process, and the operator as a process (``python -m oec_operator``) that gets
SIGKILLed, cut off from the API or from the apiserver. Each scenario function runs a number of
trials and returns :class:`Result` rows (fault, trials, what was checked, violations); nothing
here asserts, so the same scenarios serve ``tests/chaos/test_chaos.py`` (few trials, zero
violations asserted, collected by ``make test``) and the long benchmark-style run::

    python tools/chaos.py --rounds 100      # make chaos-long; JSON in bench-results/chaos-results.json

which starts its own control plane and prints a table (fault, trials, checked, result).

The invariants (the promise of issue 6): per resource at most one environment ever exists in the
simulator (``/_sim/environments`` includes deleted ones); no environment is left behind after its
resource with ``deletionPolicy: Delete`` is gone; no environment is destroyed while its resource
exists or when the policy is ``Orphan``; after the fault clears every resource converges
(``Ready=True`` for its current generation) with the last ``spec.branch`` applied; the API key
appears nowhere the operator writes. Timings are in seconds throughout.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import math
import os
import random
import secrets
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from oec_simulator.admin_client import SimulatorAdmin, start_simulator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import controlplane  # noqa: E402

GROUP, VERSION, PLURAL = "oec.sh", "v1alpha1", "odooenvironments"
CRD = ROOT / "crds" / "odooenvironments.oec.sh.yaml"
#: Operator timing used by every scenario (seconds): steady poll, fast poll (also the base of the
#: error backoff, README "Errors"), lowest per-resource poll interval.
POLL, FAST_POLL, MIN_POLL = 3.0, 0.5, 1.0
#: Simulator task durations (seconds).
DEPLOY_SECONDS, DESTROY_SECONDS = 1.0, 0.5
#: How long a resource may take to converge after a fault cleared (seconds).
CONVERGE_TIMEOUT = 90.0


class ChaosTimeout(AssertionError):
    """A wait in the harness ran out of time."""


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.2, what: str = "") -> Any:
    """Poll ``predicate`` every ``interval`` s until truthy and return its value; raise
    :class:`ChaosTimeout` after ``timeout`` s. Exceptions from ``predicate`` count as falsy."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = predicate()
        except Exception as exc:  # an apiserver being restarted, a socket closing...
            last = exc
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise ChaosTimeout(f"timed out after {timeout:.0f}s waiting for {what or predicate}: {last!r}")
        time.sleep(interval)


def new_key(tag: str) -> str:
    """A fresh, well-formed read-write API key (random secret part), never a constant."""
    return f"oec_live_rw_{tag}_{secrets.token_urlsafe(24).replace('-', 'x')}"


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def parse_time(value: str) -> float:
    """Epoch seconds of an ISO 8601 UTC time as the simulator writes it (``...Z``)."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


# --------------------------------------------------------------------------- results


@dataclass
class Result:
    """One row of the chaos table.

    ``fault``: what was done; ``trials``: how many times; ``checked``: what was verified after
    each trial; ``violations``: one line per broken promise (empty = pass); ``notes``: measured
    numbers (e.g. API calls during an outage and the bound asserted).
    """

    fault: str
    trials: int
    checked: str
    violations: list[str] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.violations and self.trials > 0

    def summary(self) -> str:
        return "pass (0 violations)" if self.passed else f"FAIL ({len(self.violations)} violations)"


def table(results: Sequence[Result]) -> str:
    """Markdown table of ``results`` (fault, trials, checked, result)."""
    lines = ["| Fault | Trials | Checked | Result |", "|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r.fault} | {r.trials} | {r.checked} | {r.summary()} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- simulator


class Sim(SimulatorAdmin):
    """A simulator process on 127.0.0.1 with fast lifecycles, and its admin API (``/_sim``, the
    methods of :class:`~oec_simulator.admin_client.SimulatorAdmin`).

    ``keys``: API keys it accepts; ``read_limit``/``write_limit``: requests per minute per key;
    ``variants``: extra ``--variant NAME=VALUE`` settings.
    """

    def __init__(self, workdir: Path, keys: Sequence[str], *, read_limit: int = 100000,
                 write_limit: int = 100000, variants: Sequence[str] = ()) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        port_file = workdir / f"sim-{uuid.uuid4().hex[:6]}.port"
        args = ["--deploy-seconds", str(DEPLOY_SECONDS), "--destroy-seconds", str(DESTROY_SECONDS),
                "--read-limit", str(read_limit), "--write-limit", str(write_limit),
                "--variant", "brute_force_threshold=100000", "--log-level", "WARNING"]
        for key in keys:
            args += ["--key", key]
        for variant in variants:
            args += ["--variant", variant]
        self.process = start_simulator(args, port_file=port_file, log=port_file.with_suffix(".log"))
        self.proc, self.log, self.port = self.process.proc, self.process.log, self.process.port
        self.base, self.api_url = self.process.base_url, self.process.api_url
        super().__init__(self.base, timeout=10.0)
        self.admin = self.http  # raw calls: ``sim.admin.get("/_sim/...")``

    def stop(self) -> None:
        self.process.stop()
        self.close()

    def new_project(self, name: str = "chaos", default_branch: str = "main", odoo_version: str = "17.0") -> str:
        return super().new_project(name, default_branch, odoo_version)


# --------------------------------------------------------------------------- a cuttable network


class Proxy:
    """A TCP proxy on 127.0.0.1 in front of ``127.0.0.1:target_port``: the network to break.

    ``up()`` forwards bytes both ways (TLS passes through untouched). ``down()`` closes every open
    connection and from then on answers each new connection by reading what the client sends
    first (for plain HTTP: the request line), recording it in ``refused`` and closing the socket
    without a response, as a network that drops everything. ``cut()`` closes open connections
    but keeps forwarding new ones (a watch connection cut by a load balancer).
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.is_down = False
        self.refused: list[tuple[float, str]] = []
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        if self.is_down:
            with contextlib.suppress(OSError):
                client.settimeout(2.0)
                head = client.recv(4096).split(b"\r\n", 1)[0].decode(errors="replace")
                self.refused.append((time.time(), head))
            with contextlib.suppress(OSError):
                client.close()
            return
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
        except OSError:
            client.close()
            return
        with self._lock:
            self._conns.update((client, upstream))
        try:
            pair = {client: upstream, upstream: client}
            while True:
                ready, _, _ = select.select(list(pair), [], [], 1.0)
                if self._closed:
                    return
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    pair[sock].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            with self._lock:
                self._conns.difference_update((client, upstream))
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.close()

    def cut(self) -> None:
        """Close every open connection (new ones are still forwarded unless down)."""
        with self._lock:
            conns = list(self._conns)
        for sock in conns:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def down(self) -> None:
        self.is_down = True
        self.cut()

    def up(self) -> None:
        self.is_down = False

    def close(self) -> None:
        self._closed = True
        self.cut()
        with contextlib.suppress(OSError):
            self.listener.close()


# --------------------------------------------------------------------------- kubernetes


def environment(name: str, project_id: str, /, **spec: Any) -> dict[str, Any]:
    """An OdooEnvironment manifest; ``spec`` keys are the CRD's."""
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "OdooEnvironment", "metadata": {"name": name},
            "spec": {"projectId": project_id, **spec}}


class Kube:
    """Typed access to one namespace of a cluster through the Python client (admin kubeconfig).

    Every call has a 10 s timeout so an apiserver that is down fails fast.
    """

    def __init__(self, kubeconfig: str | Path, kubectl: str | Path, namespace: str) -> None:
        from kubernetes import client, config

        self.kubeconfig, self.kubectl_path, self.namespace = str(kubeconfig), str(kubectl), namespace
        self.api = config.new_client_from_config(config_file=self.kubeconfig)
        self.custom: Any = client.CustomObjectsApi(self.api)  # untyped returns
        self.core = client.CoreV1Api(self.api)
        self._client = client

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([self.kubectl_path, "--kubeconfig", self.kubeconfig, *args], capture_output=True,
                              text=True, input=input, timeout=120)
        if check and proc.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {proc.stderr}{proc.stdout}")
        return proc

    def install_crd(self) -> None:
        self.kubectl("apply", "-f", str(CRD))
        self.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{PLURAL}.{GROUP}")

    def create_namespace(self) -> None:
        body = self._client.V1Namespace(metadata=self._client.V1ObjectMeta(name=self.namespace))
        self.core.create_namespace(body, _request_timeout=10)

    def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        return dict(self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, manifest,
                                                                _request_timeout=10))

    def get(self, name: str) -> dict[str, Any] | None:
        try:
            got: dict[str, Any] = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name, _request_timeout=10)
            return got
        except self._client.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def items(self) -> list[dict[str, Any]]:
        out = self.custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, _request_timeout=10)
        return list(out["items"])

    def patch(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Merge-patch the object (e.g. ``{"spec": {"branch": "x"}}``), as ``kubectl patch`` would."""
        return dict(self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name, body,
                                                               _request_timeout=10))

    def delete(self, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name,
                                                    _request_timeout=10)

    def events(self) -> list[dict[str, Any]]:
        return list(self.api.sanitize_for_serialization(
            self.core.list_namespaced_event(self.namespace, _request_timeout=10).items))

    def release_all(self) -> None:
        """Strip finalizers from and delete every OdooEnvironment of the namespace (clean-up)."""
        with contextlib.suppress(Exception):
            for obj in self.items():
                name = obj["metadata"]["name"]
                with contextlib.suppress(Exception):
                    self.patch(name, {"metadata": {"finalizers": None}})
                with contextlib.suppress(Exception):
                    self.delete(name)
        with contextlib.suppress(Exception):
            self.core.delete_namespace(self.namespace, _request_timeout=10)


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    return next((c for c in (obj or {}).get("status", {}).get("conditions", []) if c["type"] == type_), None)


def ready_now(obj: dict[str, Any] | None) -> bool:
    """``Ready=True`` computed for the object's current generation (what ``kubectl wait`` waits for)."""
    ready = condition(obj, "Ready")
    gen = (obj or {}).get("metadata", {}).get("generation")
    return bool(ready and ready["status"] == "True" and ready.get("observedGeneration") == gen
                and (obj or {}).get("status", {}).get("observedGeneration") == gen)


# --------------------------------------------------------------------------- operator


class Operator:
    """The operator as a real process, ``python -m oec_operator -n NAMESPACE [args]``.

    ``api_url``: the API root it talks to (the simulator or a :class:`Proxy` in front of it);
    ``api_key``: its default key; ``env``: more ``OEC_*`` variables; output goes to ``log``.
    """

    def __init__(self, kubeconfig: str | Path, namespace: str, api_url: str, api_key: str, log: Path,
                 env: dict[str, str] | None = None, args: Sequence[str] = ()) -> None:
        self.kubeconfig, self.namespace, self.api_url, self.api_key = str(kubeconfig), namespace, api_url, api_key
        self.log, self.extra_env, self.args = log, dict(env or {}), list(args)
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> Operator:
        env = {**os.environ, "KUBECONFIG": self.kubeconfig, "OEC_API_URL": self.api_url, "OEC_API_KEY": self.api_key,
               "OEC_POLL_INTERVAL": str(POLL), "OEC_FAST_POLL_INTERVAL": str(FAST_POLL),
               "OEC_MIN_POLL_INTERVAL": str(MIN_POLL), "OEC_METRICS_PORT": "0", "OEC_REQUEST_TIMEOUT": "5",
               **self.extra_env}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "oec_operator", "-n", self.namespace, *self.args],
                                         stdout=out, stderr=subprocess.STDOUT, env=env)
        self.starts += 1
        return self

    def kill(self) -> None:
        """SIGKILL: no clean-up, as in a node failure or an OOM kill."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        controlplane.stop_process(self.proc)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


# --------------------------------------------------------------------------- the lab


class Lab:
    """Where scenarios run: a cluster (kubeconfig + kubectl) and a work directory.

    :meth:`namespace`, :meth:`simulator` and :meth:`operator` create things that :meth:`close`
    (or leaving the ``with`` block) removes again: operators and simulators stopped, every
    OdooEnvironment released (finalizers stripped) so later tests never meet them.
    """

    def __init__(self, kubeconfig: str | Path, kubectl: str | Path, workdir: Path) -> None:
        self.kubeconfig, self.kubectl, self.workdir = str(kubeconfig), str(kubectl), workdir
        self._cleanup: list[Callable[[], None]] = []
        self._crd_installed = False
        self._crd_lock = threading.Lock()  # scenarios run in parallel threads (the 429 forms)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        while self._cleanup:
            with contextlib.suppress(Exception):
                self._cleanup.pop()()

    def namespace(self, tag: str, kubeconfig: str | Path | None = None, kubectl: str | Path | None = None) -> Kube:
        kube = Kube(kubeconfig or self.kubeconfig, kubectl or self.kubectl, f"chaos-{tag}-{uuid.uuid4().hex[:6]}")
        with self._crd_lock:
            if kubeconfig is None and not self._crd_installed:
                kube.install_crd()
                self._crd_installed = True
        kube.create_namespace()
        self._cleanup.append(kube.release_all)
        return kube

    def simulator(self, keys: Sequence[str], **kwargs: Any) -> Sim:
        sim = Sim(self.workdir, keys, **kwargs)
        self._cleanup.append(sim.stop)
        return sim

    def proxy(self, target_port: int) -> Proxy:
        proxy = Proxy(target_port)
        self._cleanup.append(proxy.close)
        return proxy

    def operator(self, kube: Kube, api_url: str, api_key: str, *, kubeconfig: str | Path | None = None,
                 env: dict[str, str] | None = None, args: Sequence[str] = ()) -> Operator:
        op = Operator(kubeconfig or kube.kubeconfig, kube.namespace, api_url, api_key,
                      self.workdir / f"operator-{kube.namespace}.log", env, args)
        self._cleanup.append(op.stop)
        return op.start()

    def control_plane(self) -> controlplane.ControlPlane:
        """A dedicated control plane (for restarting its apiserver without disturbing others)."""
        cp = controlplane.ControlPlane(state_dir=Path(tempfile.mkdtemp(prefix="chaos-cp-", dir=self.workdir)))
        cp.start()
        self._cleanup.append(cp.stop)
        return cp


# --------------------------------------------------------------------------- invariants


@dataclass
class Tracked:
    """What the harness expects of one resource: its ``policy`` (``Delete``/``Orphan``), the
    branch last written to its spec, and whether the user deleted it."""

    name: str
    policy: str = "Delete"
    branch: str = "main"
    deleted: bool = False


class Ledger:
    """The resources of one namespace and project, and the checks of the promise over them."""

    def __init__(self, kube: Kube, sim: Sim, project: str) -> None:
        self.kube, self.sim, self.project = kube, sim, project
        self.items: dict[str, Tracked] = {}

    def create(self, name: str, policy: str | None = None, branch: str = "main", **spec: Any) -> Tracked:
        if policy is not None:
            spec["deletionPolicy"] = policy
        self.kube.create(environment(name, self.project, branch=branch, **spec))
        item = self.items[name] = Tracked(name, policy or "Delete", branch)
        return item

    def set_branch(self, name: str, branch: str) -> None:
        self.kube.patch(name, {"spec": {"branch": branch}})
        self.items[name].branch = branch

    def delete(self, name: str) -> None:
        self.kube.delete(name)
        self.items[name].deleted = True

    def live(self) -> list[str]:
        return [n for n, t in self.items.items() if not t.deleted]

    def _envs_by_name(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for env in self.sim.environments():
            if env.get("project_id") == self.project:
                out.setdefault(env["name"], []).append(env)
        return out

    def converged(self, names: Sequence[str] | None = None) -> list[str]:
        """Names (of ``names``, default all) that have not converged yet: live ones not Ready for
        their generation with the spec's branch in status and in the API; deleted ones still in
        the cluster."""
        envs = self._envs_by_name()
        pending = []
        for name in names if names is not None else list(self.items):
            item = self.items[name]
            obj = self.kube.get(name)
            if item.deleted:
                if obj is not None:
                    pending.append(name)
                continue
            live = [e for e in envs.get(name, []) if not e.get("deleted")]
            if not (ready_now(obj) and (obj or {}).get("spec", {}).get("branch") == item.branch
                    and (obj or {}).get("status", {}).get("branch") == item.branch
                    and len(live) == 1 and live[0]["branch"] == item.branch
                    and (obj or {}).get("status", {}).get("environmentId") == live[0]["id"]):
                pending.append(name)
        return pending

    def wait_converged(self, names: Sequence[str] | None = None, timeout: float = CONVERGE_TIMEOUT) -> list[str]:
        """Wait up to ``timeout`` s; return the names that did not converge (empty = all did)."""
        deadline = time.monotonic() + timeout
        pending = list(names if names is not None else self.items)
        while True:
            with contextlib.suppress(Exception):
                pending = self.converged(pending)
            if not pending or time.monotonic() > deadline:
                return pending
            time.sleep(0.3)

    def safety_violations(self) -> list[str]:
        """Broken safety rules right now (need no convergence): duplicates, wrongful destroys;
        plus, for resources already gone, environments left behind."""
        out = []
        envs = self._envs_by_name()
        for name, item in self.items.items():
            mine = envs.get(name, [])
            if len(mine) > 1:
                out.append(f"{name}: {len(mine)} environments for one resource ({[e['id'] for e in mine]})")
            destroyed = [e for e in mine if e.get("deleted") or e.get("status") == "destroying"]
            exists = self.kube.get(name) is not None
            if destroyed and (not item.deleted or item.policy == "Orphan"):
                why = "its resource still exists" if not item.deleted else "deletionPolicy Orphan"
                out.append(f"{name}: environment {destroyed[0]['id']} destroyed although {why}")
            if item.deleted and not exists and item.policy == "Delete" and any(not e.get("deleted") for e in mine):
                out.append(f"{name}: environment left behind after the resource (deletionPolicy Delete) was deleted")
        return out


# --------------------------------------------------------------------------- scenarios


def _ready_pool(ledger: Ledger, names: Sequence[str], violations: list[str], what: str) -> None:
    for name in ledger.wait_converged(names):
        violations.append(f"{what}: {name} never converged")


def scenario_operator_kill(lab: Lab, rounds: int, seed: int = 6, max_delay: float = 2.5) -> list[Result]:
    """SIGKILL the operator at a random moment while a create, an update and a delete are in
    flight (one of each per round), sometimes change the branch again while it is dead, restart
    it, and check the promise. Writes are slowed down (0.3-0.6 s latency) so kills land inside
    requests too. Returns three rows (creates, updates, deletes), ``rounds`` trials each."""
    rng = random.Random(seed)  # noqa: S311 (reproducible chaos, not crypto)
    key = new_key("kill")
    kube = lab.namespace("kill")
    sim = lab.simulator([key])
    sim.configure(latency={"create_environment": 0.6, "patch_environment": 0.3, "deploy": 0.3,
                           "delete_environment": 0.3})
    project = sim.new_project("kill")
    ledger = Ledger(kube, sim, project)
    op = lab.operator(kube, sim.api_url, key)
    bad: dict[str, list[str]] = {"create": [], "update": [], "delete": []}
    ledger.create("keep", policy="Delete")  # a bystander: never deleted, so never destroyed
    pool = [ledger.create(f"seed{i}", policy=rng.choice(["Delete", "Orphan", None])).name for i in range(2)]
    _ready_pool(ledger, ["keep", *pool], bad["create"], "setup")
    delays = []
    for r in range(rounds):
        new = f"c{r}"
        ledger.create(new, policy=rng.choice(["Delete", "Orphan", None]), branch=f"c{r}")
        upd, dele = rng.sample(pool, 2)
        ledger.set_branch(upd, f"r{r}-a")
        ledger.delete(dele)
        delay = rng.uniform(0, max_delay)
        delays.append(round(delay, 2))
        time.sleep(delay)
        op.kill()
        if rng.random() < 0.5:  # a change the dead operator cannot see: must not be lost
            ledger.set_branch(upd, f"r{r}-b")
        if rng.random() < 0.3:  # sometimes the operator stays down a while
            time.sleep(rng.uniform(0.5, 3))
        op.start()
        for kind, name in (("create", new), ("update", upd), ("delete", dele)):
            for pending in ledger.wait_converged([name]):
                obj = kube.get(pending) or {}
                bad[kind].append(f"round {r}: {pending} did not converge after the kill "
                                 f"(status {json.dumps(obj.get('status', {}))[:300]})")
        for line in ledger.safety_violations():
            kind = "delete" if "destroyed" in line or "left behind" in line else "create"
            if line not in bad[kind]:
                bad[kind].append(f"round {r}: {line}")
        pool = [p for p in pool if p != dele] + [new]
    notes = {"kill_delays_s": delays, "operator_starts": op.starts}
    return [
        Result("operator SIGKILLed during a create", rounds,
               "one environment per resource (deleted ones included); resource Ready with that environment",
               bad["create"], notes),
        Result("operator SIGKILLed during an update (branch; half the time changed again while down)", rounds,
               "no lost update: Ready for the last generation, last branch in the API and status",
               bad["update"]),
        Result("operator SIGKILLed during a delete (policy Delete/Orphan/absent)", rounds,
               "Delete: environment destroyed; Orphan: kept; bystander never destroyed; resource gone",
               bad["delete"]),
    ]


def backoff_bound(outage: float, streams: int = 2) -> int:
    """Most API calls one resource may make during an ``outage`` of that many seconds.

    README "Errors": failures back off from ``OEC_FAST_POLL_INTERVAL`` (F), doubling, ±20 %
    jitter. With delays >= 0.8·F·2^i the attempts that fit in D seconds are at most
    ``floor(log2(D / (0.8·F) + 1)) + 1``, plus one request already in flight when it started;
    ``streams`` retry loops may run per resource (its kopf handler and its poll timer). A
    hot-looping operator (one call per 0.5 s tick) would exceed this from about D = 6 s on.
    """
    per_stream = math.floor(math.log2(outage / (0.8 * FAST_POLL) + 1)) + 2
    return streams * per_stream


def scenario_api_outage(lab: Lab, trials: int, form: str, outage: float = 12.0, seed: int = 7) -> list[Result]:
    """An API outage of ``outage`` s (4 steady poll intervals) hitting a create, an update and a
    delete. ``form``: ``"503"`` (every request answered 503 by the simulator's fault queue until
    cleared) or ``"drop"`` (a proxy closes every connection without an answer). During the
    outage the updated resource gets a second branch change and another resource is deleted.

    Checked: the deleted resource keeps its finalizer through the outage and its environment
    survives it; afterwards everything converges (last branch applied, deletion completed); and
    the API calls made during the outage stay within :func:`backoff_bound` per resource.
    Returns two rows: the outage, and the deletion while the API is down.
    """
    rng = random.Random(seed)  # noqa: S311 (reproducible chaos, not crypto)
    key = new_key("outage")
    kube = lab.namespace(f"outage-{form}")
    sim = lab.simulator([key])
    proxy = lab.proxy(sim.port) if form == "drop" else None
    api_url = f"http://127.0.0.1:{proxy.port}/api/public/v1" if proxy else sim.api_url
    project = sim.new_project("outage")
    ledger = Ledger(kube, sim, project)
    lab.operator(kube, api_url, key)
    bad: list[str] = []
    held: list[str] = []
    counts: list[int] = []
    worst: list[int] = []
    per_resource = backoff_bound(outage)
    for t in range(trials):
        upd, dele = f"u{t}", f"d{t}"
        ledger.create(upd)
        ledger.create(dele, policy="Delete")
        _ready_pool(ledger, [upd, dele], bad, f"trial {t} setup")
        new = f"c{t}"
        ledger.create(new, branch=f"c{t}")
        ledger.set_branch(upd, f"t{t}-a")
        time.sleep(rng.uniform(0, 0.6))  # the outage starts somewhere inside the three requests
        seq0 = sim.last_seq()
        refused0 = len(proxy.refused) if proxy else 0
        started = time.monotonic()
        if proxy:
            proxy.down()
        else:
            sim.inject(status=503, count=1_000_000)
        time.sleep(outage / 3)
        ledger.set_branch(upd, f"t{t}-b")  # changed during the outage: must not be lost
        env_of_dele = next(e for e in sim.environments() if e["project_id"] == project and e["name"] == dele)
        ledger.delete(dele)  # deleted while the API is down
        time.sleep(max(0.0, outage - (time.monotonic() - started)))
        obj = kube.get(dele)
        if obj is None or "oec.sh/finalizer" not in obj["metadata"].get("finalizers", []):
            held.append(f"trial {t}: {dele} lost its finalizer while the API was down")
        env_now = next(e for e in sim.environments() if e["id"] == env_of_dele["id"])
        if env_now.get("deleted"):
            held.append(f"trial {t}: environment of {dele} gone during the outage")
        if proxy:
            proxy.up()
            paths = [line for _, line in proxy.refused[refused0:]]
        else:
            sim.clear_faults()
            paths = [f"{r['method']} {r['path']}" for r in sim.requests(seq0) if r["status"] == 503]
        # Every resource of earlier trials still polls too: the bound scales with the live ones.
        live = len(ledger.live()) + 1  # + the one deleted during the outage
        bound = live * per_resource
        counts.append(len(paths))
        if len(paths) > bound:
            bad.append(f"trial {t}: {len(paths)} API calls during a {outage:.0f}s outage "
                       f"({live} resources, bound {bound})")
        env_ids = {e["id"] for e in sim.environments() if e["project_id"] == project}
        per_env = {i: sum(1 for p in paths if i in p) for i in env_ids}
        worst.append(max(per_env.values(), default=0))
        for env_id, n in per_env.items():
            if n > per_resource:
                bad.append(f"trial {t}: {n} calls for environment {env_id} during the outage (bound {per_resource})")
        for name in ledger.wait_converged([new, upd, dele]):
            (held if name == dele else bad).append(f"trial {t}: {name} did not converge after the outage")
        bad.extend(f"trial {t}: {v}" for v in ledger.safety_violations() if f"trial {t}: {v}" not in bad)
    label = {"503": "every request answered 503", "drop": "connections dropped, no answer"}[form]
    return [
        Result(f"API outage {outage:.0f}s ({label}) during create, update, delete", trials,
               f"converges afterwards, last branch applied, no duplicate; calls during the outage <= "
               f"{per_resource} per resource", bad,
               {"calls_during_outage": counts, "most_calls_for_one_environment": worst,
                "bound_per_resource": per_resource}),
        Result(f"resource deleted while the API is down ({label})", trials,
               "finalizer held and environment kept during the outage; deletion completes after it",
               held),
    ]


def _next_minute(ts: float) -> float:
    return (math.floor(ts / 60) + 1) * 60.0


def scenario_rate_limit(lab: Lab, form: str, windows: int = 1, limit: int = 12) -> Result:
    """429s in one of the three forms the API sends them (``form``, the simulator's
    ``rate_limit_headers`` and the injected 429's ``hint``): ``full`` (``Retry-After`` and
    ``X-RateLimit-*`` headers), ``body_only`` (body ``retry_after`` only) or ``none`` (no hint:
    the operator must wait past the next full minute, README "Errors"), for a key that two
    resources of one project poll through the operator (poll interval 1 s).

    1. *Waits as told*: one injected 429 (``retry_after`` 7 s, or none) on the project's list.
       Over every request of the key (the budget and the operator's limiter are per key):
       nothing is sent before the told time (50 ms tolerance) and requests resume within
       3 s + 10 % jitter + slack after it.
    2. *Keeps the budget*: the API's read limit cut to ``limit`` per calendar minute in the
       middle of a minute, for ``windows`` minutes. At most one 429 (a request sent before the
       operator could know), none after it, and after the first minute at most ``limit``
       requests a minute.
    """
    key = new_key("ratelimit")
    kube = lab.namespace(f"rl-{form.replace('_', '')}")
    sim = lab.simulator([key], variants=[f"rate_limit_headers={form}"])
    project = sim.new_project("rl")
    ledger = Ledger(kube, sim, project)
    lab.operator(kube, sim.api_url, key, env={"OEC_POLL_INTERVAL": "1"})
    bad: list[str] = []
    names = ["rl-a", "rl-b"]
    for name in names:
        ledger.create(name)
    _ready_pool(ledger, names, bad, "setup")
    resume_within = 3 + MIN_POLL + 4

    # 1. the told wait
    seq0 = sim.last_seq()
    rule: dict[str, Any] = {"kind": "rate_limit", "hint": form, "count": 1, "route": "list_environments"}
    if form != "none":
        rule["retry_after"] = 7
    sim.inject(**rule)
    try:
        first = wait_until(lambda: [parse_time(r["time"]) for r in sim.requests(seq0) if r["status"] == 429],
                           15, what="the injected 429")[0]
    except ChaosTimeout:
        bad.append(f"{form}: the injected 429 was never requested")
        first = None
    told_wait = 0.0
    if first is not None:
        told = first + 7 if form != "none" else _next_minute(first)
        told_wait = told - first
        time.sleep(max(0.0, told + resume_within + 1 - time.time()))
        later = [parse_time(r["time"]) for r in sim.requests(seq0) if parse_time(r["time"]) > first]
        early = [t for t in later if t < told - 0.05]
        if early:
            bad.append(f"{form}: the key sent {len(early)} request(s), the first {told - early[0]:.1f}s before "
                       "the told time after a 429")
        if not any(t < told + resume_within for t in later):
            bad.append(f"{form}: no request within {resume_within:.0f}s after the told time")

    # 2. the budget kept
    seq1 = sim.last_seq()
    sim.configure(read_limit=limit)
    end = _next_minute(time.time()) + 60 * (windows - 1) + 10
    time.sleep(max(0.0, end - time.time()))
    sim.configure(read_limit=100000)
    log = [(parse_time(r["time"]), int(r["status"])) for r in sim.requests(seq1)]
    refused = [ts for ts, status in log if status == 429]
    if len(refused) > 1:
        bad.append(f"{form}: {len(refused)} 429s after the limit was cut: the operator kept exceeding it")
    per_minute: dict[int, int] = {}
    for ts, _ in log:
        per_minute[int(ts // 60)] = per_minute.get(int(ts // 60), 0) + 1
    cut_minute = int(log[0][0] // 60) if log else None
    over = {m: n for m, n in per_minute.items() if m != cut_minute and n > limit}
    if over:
        bad.append(f"{form}: more than {limit} requests in minute(s) {over} after the cut")
    checked = (f"after a 429 no request of the key before the told time, resumes after it; with the budget "
               f"cut to {limit}/min at most one 429 and at most {limit} requests a minute after that")
    return Result(f"429 rate limit, hint: {form}", 1 + windows, checked, bad,
                  {"told_wait_s": round(told_wait, 1), "requests_after_cut": len(log), "429s_after_cut": len(refused),
                   "requests_per_minute": dict(sorted(per_minute.items()))})


def restart_apiserver(cp: controlplane.ControlPlane, down: float) -> None:
    """SIGKILL the control plane's kube-apiserver, wait ``down`` s, start it again with the same
    command line (same port, certificates, etcd: the data survives) and wait for ``/readyz``.

    Uses :class:`controlplane.ControlPlane` internals (``_procs``/``_pids``) so that its
    ``stop()`` stops the new process.
    """
    pid = cp._pids["kube-apiserver"]
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    old = cp._procs.get("kube-apiserver")
    if old is not None:
        old.wait(10)
    time.sleep(down)
    with cp.log_file("kube-apiserver").open("ab") as out:
        proc = subprocess.Popen([c.decode() for c in cmdline], stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, cwd=cp.state_dir, process_group=0)
    cp._procs["kube-apiserver"], cp._pids["kube-apiserver"] = proc, proc.pid
    wait_until(lambda: cp._get_status("/readyz") == 200, 60, interval=0.3, what="kube-apiserver /readyz")


def scenario_apiserver(lab: Lab, trials: int, cp: controlplane.ControlPlane | None = None,
                       seed: int = 8) -> list[Result]:
    """The operator's link to Kubernetes broken, on a dedicated control plane (``cp``, started
    when None). Odd trials: the operator's connections to the apiserver (its watch included)
    are cut and refused for 2-5 s by a proxy while the user changes the branch directly on the
    apiserver. Even trials: the kube-apiserver itself is SIGKILLed, down 2-5 s, restarted, and
    the branch is changed right away. Checked: the operator process survives and catches up
    (Ready for the new generation, new branch in the API) without a restart of its own.
    """
    rng = random.Random(seed)  # noqa: S311 (reproducible chaos, not crypto)
    cp = cp or lab.control_plane()
    key = new_key("kubecut")
    admin = Kube(cp.kubeconfig, cp.kubectl, "x")
    admin.install_crd()
    kube = lab.namespace("kubecut", kubeconfig=cp.kubeconfig, kubectl=cp.kubectl)
    port = int(cp.server.rsplit(":", 1)[1])
    proxy = lab.proxy(port)
    cfg = yaml.safe_load(Path(cp.kubeconfig).read_text())
    cfg["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{proxy.port}"
    via_proxy = lab.workdir / f"kubeconfig-proxy-{proxy.port}"
    via_proxy.write_text(yaml.safe_dump(cfg))
    sim = lab.simulator([key])
    project = sim.new_project("kubecut")
    ledger = Ledger(kube, sim, project)
    op = lab.operator(kube, sim.api_url, key, kubeconfig=via_proxy)
    cut_bad: list[str] = []
    restart_bad: list[str] = []
    ledger.create("watched")
    _ready_pool(ledger, ["watched"], cut_bad, "setup")
    cuts = restarts = 0
    for t in range(trials):
        down = rng.uniform(2, 5)
        if t % 2 == 0:
            cuts += 1
            proxy.down()
            time.sleep(0.5)
            ledger.set_branch("watched", f"cut{t}")
            time.sleep(down)
            proxy.up()
            sink = cut_bad
        else:
            restarts += 1
            restart_apiserver(cp, down)
            wait_until(lambda: kube.get("watched") is not None, 30, what="apiserver serving again")
            ledger.set_branch("watched", f"restart{t}")
            sink = restart_bad
        for name in ledger.wait_converged(["watched"], timeout=120):
            sink.append(f"trial {t}: {name} did not catch up (status "
                        f"{json.dumps((kube.get(name) or {}).get('status', {}))[:300]})")
        if not op.alive():
            sink.append(f"trial {t}: the operator process exited ({op.proc.returncode if op.proc else None})")
            op.start()
    checked = "operator still running; catches up on the branch changed meanwhile (Ready, API branch)"
    return [
        Result("watch and all apiserver connections cut 2-5 s, spec changed meanwhile", cuts, checked, cut_bad),
        Result("kube-apiserver SIGKILLed, down 2-5 s, restarted; spec changed right after", restarts, checked,
               restart_bad),
    ]


def leak_needles(key: str) -> list[str]:
    """Forms of ``key`` that must never appear: the key, its secret part (after
    ``oec_live_rw_``), the first 16 characters of that part, and the key in base64 (a Secret)."""
    secret = key.split("_", 3)[3]
    return [key, secret, secret[:16], base64.b64encode(key.encode()).decode()]


@contextlib.contextmanager
def sampler(kube: Kube, period: float = 0.25) -> Iterator[list[str]]:
    """Collect the JSON of every OdooEnvironment (status, annotations including kopf's progress
    annotations ``operator.oec.sh/...``) every ``period`` s while the block runs."""
    samples: list[str] = []
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            with contextlib.suppress(Exception):
                samples.append(json.dumps(kube.items()))
            stop.wait(period)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join(5)


def scenario_secrets(lab: Lab) -> Result:
    """A chaos run with every error path, collecting everything the operator writes: its log at
    debug level (``--verbose``), Events, the objects (status, annotations, kopf progress
    annotations) sampled every 0.25 s, and its Prometheus page scraped throughout. Faults: a key
    revoked under a running resource (401), a key the API never knew (401), 5xx, timeouts
    (latency above ``OEC_REQUEST_TIMEOUT``), a SIGKILL mid-create. Checked: no form of either key
    (:func:`leak_needles`) appears anywhere, and the collection did see the errors (so the check
    is not vacuous)."""
    default_key, team_key, unknown_key = new_key("default"), new_key("team"), new_key("unknown")
    kube = lab.namespace("secrets")
    sim = lab.simulator([default_key, team_key])
    project = sim.new_project("secrets")
    ledger = Ledger(kube, sim, project)
    port = free_port()
    op = lab.operator(kube, sim.api_url, default_key, args=["--verbose"],
                      env={"OEC_METRICS_PORT": str(port), "OEC_METRICS_ADDRESS": "127.0.0.1",
                           "OEC_REQUEST_TIMEOUT": "1"})
    bad: list[str] = []
    scrapes: list[str] = []

    def scrape() -> None:
        with contextlib.suppress(httpx.HTTPError):
            scrapes.append(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5, trust_env=False).text)

    for name, key in (("team", team_key), ("stranger", unknown_key)):
        kube.core.create_namespaced_secret(kube.namespace, kube._client.V1Secret(
            metadata=kube._client.V1ObjectMeta(name=name), string_data={"apiKey": key}), _request_timeout=10)
    with sampler(kube) as samples:
        ledger.create("plain")
        ledger.create("teamed", credentialsSecretRef={"name": "team"})
        _ready_pool(ledger, ["plain", "teamed"], bad, "setup")
        scrape()
        sim.revoke_key(team_key)  # 401 key_revoked on the next poll of "teamed"
        ledger.kube.create(environment("stranger", project, credentialsSecretRef={"name": "stranger"}))
        with contextlib.suppress(ChaosTimeout):
            wait_until(lambda: (c := condition(kube.get("teamed"), "Stalled")) and c["reason"] == "AuthFailed",
                       30, what="teamed AuthFailed")
        for status in (503, 500, 502, 504):  # four failures in a row: backoff 0.5+1+2+4 s
            sim.inject(status=status, count=1)
        ledger.set_branch("plain", "after-5xx")
        _ready_pool(ledger, ["plain"], bad, "after 5xx")
        scrape()
        sim.configure(latency={"get_environment": 2.5, "environment_status": 2.5})
        ledger.set_branch("plain", "after-timeouts")
        time.sleep(5)
        sim.configure(latency={"create_environment": 1.5})
        ledger.create("crashed")
        time.sleep(0.8)
        op.kill()
        sim.configure(latency={})
        op.start()
        _ready_pool(ledger, ["plain", "crashed"], bad, "after timeouts and a kill")
        time.sleep(2)
        scrape()
    corpus = {
        "operator log (--verbose)": op.output(),
        "events": json.dumps(kube.events()),
        "objects (status, annotations)": "\n".join(samples),
        "metrics": "\n".join(scrapes),
    }
    for where, text in corpus.items():
        for key, label in ((default_key, "default key"), (team_key, "revoked key"), (unknown_key, "unknown key")):
            for needle in leak_needles(key):
                if needle in text:
                    at = text.index(needle)
                    bad.append(f"{label} ({'full' if needle == key else 'part'}) in {where}: "
                               f"...{text[max(0, at - 80):at].replace(needle, '<KEY>')}<KEY>...")
    everything = "\n".join(corpus.values())
    for evidence, meaning in (("AuthFailed", "a 401 stall"), ("503", "a 5xx"), ("Timeout", "a timeout"),
                              ("operator.oec.sh/", "kopf's annotations"),
                              ("oec_operator_api_requests_total", "metrics"), ("DEBUG", "debug-level log lines")):
        if evidence not in everything:
            bad.append(f"the collection shows no {meaning} ({evidence!r} missing): the scan would be vacuous")
    sizes = {k: len(v) for k, v in corpus.items()}
    return Result("API key leak scan: 401 (revoked, unknown key), 5xx, timeouts, SIGKILL; --verbose log", 1,
                  "no key (full, secret part, base64) in log, Events, status, annotations, metrics", bad,
                  {"collected_chars": sizes})


def rate_limits_in_parallel(lab: Lab, windows: int = 1) -> list[Result]:
    """:func:`scenario_rate_limit` for the three 429 forms at once (each its own simulator,
    namespace and operator): the waits are calendar minutes, so in parallel they cost one."""
    rows: dict[str, Result] = {}

    def one(form: str) -> None:
        try:
            rows[form] = scenario_rate_limit(lab, form, windows=windows)
        except Exception as exc:
            rows[form] = Result(f"429 rate limit, hint: {form}", 0, "scenario ran", [f"crashed: {exc!r}"])

    threads = [threading.Thread(target=one, args=(form,)) for form in ("full", "body_only", "none")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [rows[form] for form in ("full", "body_only", "none")]


# --------------------------------------------------------------------------- long form


#: Scenario names for ``--only``.
SCENARIOS = ("kill", "outage", "ratelimit", "kube", "secrets")


def run_all(lab: Lab, rounds: int, outage_trials: int, rl_windows: int, kube_trials: int,
            only: Sequence[str] = (), seed: int = 6) -> list[Result]:
    """Every scenario (or those named in ``only``, see :data:`SCENARIOS`) with the given trial
    counts (the long form); returns all rows."""
    results: list[Result] = []

    def step(label: str, fn: Callable[[], list[Result] | Result]) -> None:
        t0 = time.monotonic()
        print(f"[chaos] {label} ...", file=sys.stderr, flush=True)
        try:
            out = fn()
        except Exception as exc:  # a scenario that crashed is a failed row, not a lost run
            out = Result(label, 0, "scenario ran to completion", [f"scenario crashed: {exc!r}"])
        rows = out if isinstance(out, list) else [out]
        for row in rows:
            row.notes["seconds"] = round(time.monotonic() - t0, 1)
            print(f"[chaos]   {row.fault}: {row.summary()}", file=sys.stderr, flush=True)
        results.extend(rows)

    chosen = set(only or SCENARIOS)
    if "kill" in chosen:
        step("operator kills", lambda: scenario_operator_kill(lab, rounds, seed))
    if "outage" in chosen:
        step("API outage (503)", lambda: scenario_api_outage(lab, outage_trials, "503"))
        step("API outage (dropped connections)", lambda: scenario_api_outage(lab, outage_trials, "drop"))
    if "ratelimit" in chosen:
        step("rate limits", lambda: rate_limits_in_parallel(lab, rl_windows))
    if "kube" in chosen:
        step("apiserver cut and restart", lambda: scenario_apiserver(lab, kube_trials))
    if "secrets" in chosen:
        step("key leak scan", lambda: scenario_secrets(lab))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """``python tools/chaos.py``: the long form. Prints the table, writes ``--out`` JSON; exits 1
    if any row has violations."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=100, help="operator kill rounds (3 trials each)")
    parser.add_argument("--outage-trials", type=int, default=5, help="trials per outage form")
    parser.add_argument("--rl-windows", type=int, default=3, help="rate-limit windows (minutes) per 429 form")
    parser.add_argument("--kube-trials", type=int, default=10, help="apiserver cuts + restarts")
    parser.add_argument("--out", default="bench-results/chaos-results.json", help="JSON output (default %(default)s)")
    parser.add_argument("--kubeconfig", help="use this cluster (default: start a local control plane)")
    parser.add_argument("--only", default="", help=f"comma-separated subset of {','.join(SCENARIOS)}")
    parser.add_argument("--seed", type=int, default=6, help="seed of the kill scenario (default %(default)s)")
    args = parser.parse_args(argv)
    only = [o for o in args.only.split(",") if o]
    unknown = set(only) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s) {sorted(unknown)}; choose from {SCENARIOS}")
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="oec-chaos-") as tmp, contextlib.ExitStack() as stack:
        if args.kubeconfig:
            kubeconfig, kubectl = args.kubeconfig, str(controlplane.default_bin_dir() / "kubectl")
        else:
            cp = stack.enter_context(controlplane.ControlPlane())
            kubeconfig, kubectl = str(cp.kubeconfig), str(cp.kubectl)
        lab = stack.enter_context(Lab(kubeconfig, kubectl, Path(tmp)))
        results = run_all(lab, args.rounds, args.outage_trials, args.rl_windows, args.kube_trials, only, args.seed)
    print(table(results))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({
        "seconds": round(time.monotonic() - t0, 1),
        "arguments": vars(args),
        "results": [{**asdict(r), "result": r.summary()} for r in results],
    }, indent=2) + "\n")
    print(f"\n{args.out} written ({time.monotonic() - t0:.0f} s)", file=sys.stderr)
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
