"""Where chaos scenarios run: a cluster and a work directory (:class:`Lab`), the simulator
(:class:`Sim`) and the operator they start, the timings they all use, and fresh API keys."""

from __future__ import annotations

import contextlib
import secrets
import tempfile
import threading
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from oec_simulator.admin_client import SimulatorAdmin

from ..controlplane import ControlPlane
from ..operator import TEST_TIMINGS, OperatorProcess
from ..ports import free_ports
from ..simulator import start_simulator
from .kube import Kube
from .proxy import Proxy
from .relay import Relay

__all__ = ["CONVERGE_TIMEOUT", "FAST_POLL", "MIN_POLL", "POLL", "Lab", "Sim", "free_port", "new_key", "parse_time"]

#: Operator timing used by every scenario (seconds, :data:`~oec_testkit.operator.TEST_TIMINGS`):
#: steady poll, fast poll (also the base of the error backoff, README "Errors"), lowest
#: per-resource poll interval.
POLL, FAST_POLL, MIN_POLL = (
    float(TEST_TIMINGS[f"OEC_{name}_INTERVAL"]) for name in ("POLL", "FAST_POLL", "MIN_POLL")
)
#: What the operator of every scenario runs with: the timings, and a request timeout of 5 s.
OPERATOR_ENV = {**TEST_TIMINGS, "OEC_REQUEST_TIMEOUT": "5"}
#: Simulator task durations (seconds).
DEPLOY_SECONDS, DESTROY_SECONDS = 1.0, 0.5
#: How long a resource may take to converge after a fault cleared (seconds).
CONVERGE_TIMEOUT = 90.0


def new_key(tag: str) -> str:
    """A fresh, well-formed read-write API key (random secret part), never a constant."""
    return f"oec_live_rw_{tag}_{secrets.token_urlsafe(24).replace('-', 'x')}"


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    return free_ports(1)[0]


def parse_time(value: str) -> float:
    """Epoch seconds of an ISO 8601 UTC time as the simulator writes it (``...Z``)."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


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
        self.log = self.process.log
        self.port = self.process.port
        self.base, self.api_url = self.process.base_url, self.process.api_url
        super().__init__(self.base, timeout=10.0)
        self.admin = self.http  # raw calls: ``sim.admin.get("/_sim/...")``

    def stop(self) -> None:
        """Stop the process and close the admin client."""
        self.process.stop()
        self.close()

    def new_project(self, name: str = "chaos", default_branch: str = "main", odoo_version: str = "17.0") -> str:
        """A project on a fresh server (named ``chaos`` by default); return its id."""
        return super().new_project(name, default_branch, odoo_version)


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
        """Undo everything made here, newest first (errors ignored)."""
        while self._cleanup:
            with contextlib.suppress(Exception):
                self._cleanup.pop()()

    def namespace(self, tag: str, kubeconfig: str | Path | None = None, kubectl: str | Path | None = None) -> Kube:
        """A new namespace ``chaos-TAG-xxxxxx`` (on another cluster if ``kubeconfig`` is given; the
        CRD is installed once on the lab's own cluster)."""
        kube = Kube(kubeconfig or self.kubeconfig, kubectl or self.kubectl, f"chaos-{tag}-{uuid.uuid4().hex[:6]}")
        with self._crd_lock:
            if kubeconfig is None and not self._crd_installed:
                kube.install_crd()
                self._crd_installed = True
        kube.create_namespace()
        self._cleanup.append(kube.release_all)
        return kube

    def simulator(self, keys: Sequence[str], **kwargs: Any) -> Sim:
        """A started :class:`Sim` accepting ``keys`` (``kwargs``: its limits and variants)."""
        sim = Sim(self.workdir, keys, **kwargs)
        self._cleanup.append(sim.stop)
        return sim

    def proxy(self, target_port: int) -> Proxy:
        """A :class:`Proxy` in front of ``127.0.0.1:target_port``."""
        proxy = Proxy(target_port)
        self._cleanup.append(proxy.close)
        return proxy

    def relay(self, target_port: int) -> Relay:
        """A :class:`Relay` (recording webhook forwarder) in front of ``127.0.0.1:target_port``."""
        relay = Relay(target_port)
        self._cleanup.append(relay.close)
        return relay

    def operator(self, kube: Kube, api_url: str, api_key: str, *, kubeconfig: str | Path | None = None,
                 env: dict[str, str] | None = None, args: Sequence[str] = ()) -> OperatorProcess:
        """A started operator for ``kube``'s namespace (``-n NAMESPACE *args``) with :data:`OPERATOR_ENV`
        and ``env``, the default key ``api_key``; output in ``operator-NAMESPACE.log``."""
        op = OperatorProcess(kubeconfig or kube.kubeconfig, api_url, self.workdir / f"operator-{kube.namespace}.log",
                             args=["-n", kube.namespace, *args], api_key=api_key, env={**OPERATOR_ENV, **(env or {})})
        self._cleanup.append(op.stop)
        return op.start()

    def control_plane(self) -> ControlPlane:
        """A dedicated control plane (for restarting its apiserver without disturbing others)."""
        cp = ControlPlane(state_dir=Path(tempfile.mkdtemp(prefix="chaos-cp-", dir=self.workdir)))
        cp.start()
        self._cleanup.append(cp.stop)
        return cp
