"""The operator's link to Kubernetes broken: connections cut, the kube-apiserver restarted."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import yaml

from ...controlplane import ControlPlane
from ...kubectl import Kubectl
from ...waiting import wait_until
from ..lab import Lab, new_key
from ..ledger import Ledger, ready_pool
from ..results import Result

__all__ = ["scenario_apiserver"]


def scenario_apiserver(lab: Lab, trials: int, cp: ControlPlane | None = None,
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
    Kubectl(cp.kubectl, cp.kubeconfig).install_crd()
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
    ready_pool(ledger, ["watched"], cut_bad, "setup")
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
            cp.restart_apiserver(down)
            wait_until(lambda: kube.get("watched") is not None, 30, what="apiserver serving again",
                       ignore=(Exception,))
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
