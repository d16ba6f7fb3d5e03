"""Control plane, simulator and operator of one benchmark run: :class:`Stack`.

The operator runs in the shipped configuration: as the ServiceAccount of ``deploy/rbac`` with
that RBAC (a token kubeconfig), watching every namespace, its default API key read from a Secret
(``OEC_API_KEY_SECRET``) as ``deploy/manager`` does it, not from ``OEC_API_KEY``. The harness itself is the admin
(``system:masters``), whose requests the apiserver's metrics tell apart (``apiserver.py``).

The ``push`` design is ``batched`` with OEC.sh webhooks (``docs/webhooks.md``): the operator's
receiver on a free loopback port, ``OEC_WEBHOOK_URL`` pointing at it (the operator registers the
webhook itself), its metrics on another loopback port (``oec_operator_push_mode``), and the
simulator started with ``--allow-insecure-webhook-urls`` (it refuses http and loopback URLs
otherwise, as OEC.sh does). The other designs run with the receiver off (``OEC_WEBHOOK_PORT=0``).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from oec_operator.settings import WEBHOOK_PATH
from oec_simulator.admin_client import SimulatorAdmin

from ..controlplane import ControlPlane
from ..kubectl import Kubectl
from ..manifests import GROUP, PLURAL, RESOURCE, ROOT, VERSION, environment
from ..operator import OperatorProcess
from ..ports import free_ports
from ..simulator import start_simulator
from .config import (
    FAST_POLL_INTERVAL,
    KEY,
    KEY_SECRET_NAME,
    KEY_SECRET_NAMESPACE,
    NAMESPACE,
    POLL_INTERVAL,
    PROJECTS,
    SERVICE_ACCOUNT,
    STRETCH,
)

__all__ = ["Stack", "log", "manifests"]

TOKEN_SECONDS = 24 * 3600  # longer than any run
#: The bench key's id, the ``key`` label of the operator's metrics (``OecClient.key_id``).
KEY_ID = hashlib.sha256(KEY.encode()).hexdigest()[:16]


def log(message: str) -> None:
    """A progress line on stdout, with the time."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class Stack:
    """Control plane, simulator (10 projects, read limit 120 a minute, ``write_limit``) and
    operator (``design``: ``OEC_POLLING``) of one run, in ``work``."""

    def __init__(self, work: Path, design: str, write_limit: int, verbose: bool = False) -> None:
        from kubernetes import client, config

        self.work, self.design = work, design
        self.cp = ControlPlane(state_dir=work / "cp").start()
        self.kubeconfig = self.cp.kubeconfig
        self._kubectl = Kubectl(self.cp.kubectl, self.kubeconfig)
        self._kubectl.install_crd(ROOT / "crds")
        self.kubectl("create", "namespace", NAMESPACE)
        api = config.new_client_from_config(config_file=str(self.kubeconfig))
        api.configuration.connection_pool_maxsize = 8
        self.custom: Any = client.CustomObjectsApi(api)  # untyped returns
        operator_kubeconfig = self._install_operator_identity()
        push = design == "push"
        self.sim = start_simulator(["--key", KEY, "--read-limit", "120", "--write-limit", str(write_limit),
                                    "--request-log-limit", "1000",
                                    *(["--allow-insecure-webhook-urls"] if push else [])],
                                   port_file=work / "sim.port", log=work / "simulator.log")
        self.admin = SimulatorAdmin(self.sim.base_url, timeout=30)
        self.projects = [self.admin.new_project(f"bench-{p}") for p in range(PROJECTS)]
        env = {"OEC_POLLING": "batched" if push else design, "OEC_POLL_INTERVAL": str(POLL_INTERVAL),
               "OEC_FAST_POLL_INTERVAL": str(FAST_POLL_INTERVAL), "OEC_METRICS_PORT": "0", "OEC_WEBHOOK_PORT": "0"}
        self.metrics_url: str | None = None
        if push:
            receiver, metrics = free_ports(2)
            self.metrics_url = f"http://127.0.0.1:{metrics}/metrics"
            env.update({"OEC_WEBHOOK_URL": f"http://127.0.0.1:{receiver}{WEBHOOK_PATH}",
                        "OEC_WEBHOOK_PORT": str(receiver), "OEC_WEBHOOK_ADDRESS": "127.0.0.1",
                        "OEC_WEBHOOK_POLL_STRETCH": str(STRETCH),
                        "OEC_METRICS_PORT": str(metrics), "OEC_METRICS_ADDRESS": "127.0.0.1"})
        self.operator = OperatorProcess(
            operator_kubeconfig, self.sim.api_url, work / "operator.log",
            args=[] if verbose else ["--quiet"],  # every namespace, as the Deployment (its RBAC lists no namespaces)
            key_secret=f"{KEY_SECRET_NAMESPACE}/{KEY_SECRET_NAME}", env=env,
        ).start()

    def _install_operator_identity(self) -> Path:
        """The operator's namespace, ServiceAccount and RBAC (``deploy/rbac``) and the API key
        Secret; return a kubeconfig with a token of that ServiceAccount."""
        self.kubectl("create", "namespace", KEY_SECRET_NAMESPACE)
        self.kubectl("apply", "-k", str(ROOT / "deploy" / "rbac"))
        self.kubectl("-n", KEY_SECRET_NAMESPACE, "create", "secret", "generic", KEY_SECRET_NAME,
                     f"--from-literal=apiKey={KEY}")
        token = self.cp.mint_token(KEY_SECRET_NAMESPACE, SERVICE_ACCOUNT, TOKEN_SECONDS)
        return self.cp.write_kubeconfig(self.work / "operator.kubeconfig", token=token)

    def kubectl(self, *args: str, input: str | None = None) -> str:
        """Run kubectl as the admin (15 minutes at most); return its stdout."""
        return self._kubectl(*args, input=input, timeout=900).stdout

    def objects(self) -> list[dict[str, Any]]:
        """Every OdooEnvironment of the namespace."""
        out = self.kubectl("get", RESOURCE, "-n", NAMESPACE, "-o", "json", "--chunk-size=500")
        return list(json.loads(out)["items"])

    def one(self, name: str) -> dict[str, Any]:
        """The OdooEnvironment ``name`` (a GET through the Python client: cheaper than a kubectl
        process, so a change can be looked for every fraction of a second)."""
        return dict(self.custom.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, name,
                                                             _request_timeout=30))

    def push_mode(self) -> float | None:
        """The operator's ``oec_operator_push_mode`` for the bench's key (1 push, 0 poll), from its
        metrics page; None when it has no such sample yet or does not answer (push design only)."""
        if self.metrics_url is None:
            return None
        try:
            text = httpx.get(self.metrics_url, timeout=5, trust_env=False).text
        except httpx.HTTPError:
            return None
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "oec_operator_push_mode" and sample.labels.get("key") == KEY_ID:
                    return float(sample.value)
        return None

    def webhooks(self) -> list[dict[str, Any]]:
        """Every webhook the simulator has, with its delivery counts (``GET /_sim/webhooks``)."""
        return list(self.admin.webhooks()["webhooks"])

    def deliveries(self) -> int:
        """Deliveries the simulator made to every webhook so far (all outcomes)."""
        return sum(sum((hook.get("deliveries") or {}).values()) for hook in self.webhooks())

    def set_deliveries(self, enabled: bool) -> None:
        """Stop (``False``) or resume the simulator's webhook deliveries (``POST /_sim/webhooks/deliveries``)."""
        self.admin.set_deliveries(enabled)

    def stats(self) -> dict[str, Any]:
        """The simulator's counters (``/_sim/stats``)."""
        return self.admin.stats()

    def usage(self) -> tuple[float, float, float]:
        """The operator's peak RSS and current RSS (MB), and its CPU seconds."""
        assert self.operator.proc is not None
        pid = self.operator.proc.pid
        status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        mb = [int(status[k].split()[0]) / 1024 for k in ("VmHWM", "VmRSS")]
        return mb[0], mb[1], (int(fields[11]) + int(fields[12])) / ticks

    def close(self) -> None:
        """Stop the operator and the simulator (20 s grace each) and the control plane."""
        self.operator.stop(20.0)
        self.sim.stop(20.0)
        self.admin.close()
        self.cp.stop()


def manifests(n: int, projects: list[str]) -> str:
    """A ``kubectl create -f -`` list of ``n`` OdooEnvironments spread over ``projects``."""
    items = [environment(f"env-{i:05d}", projects[i % len(projects)], namespace=NAMESPACE, branch="main")
             for i in range(n)]
    return yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items})
