"""`make demo`: a local control plane, the OEC.sh simulator and the operator, all as background
processes on loopback, and a sample OdooEnvironment watched from creation to Running.

:func:`up` starts what is not running yet (idempotent) and watches the sample, :func:`status`
shows the processes and ``kubectl get odooenv``, :func:`down` stops everything :func:`up`
started. Everything lives in a state directory (pid files, logs, the simulator's port file, the
control plane). With ``KUBECONFIG_DEMO=/path/to/kubeconfig`` an existing cluster is used instead
of the local control plane (the CRD is installed there; the operator and the simulator still run
here). Errors are :class:`RuntimeError` (kubectl, the control plane, a process that does not start,
a sample that does not become Ready).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from oec_operator.settings import OperatorConfig

from . import detached
from .kubectl import Kubectl, default_kubectl
from .manifests import ROOT, condition
from .operator import OperatorProcess
from .ports import free_ports
from .processes import Child, pid_alive
from .simulator import start_simulator

__all__ = ["DEMO_KEY", "down", "status", "up"]

DEMO_KEY = "oec_live_rw_demo_simulator_key_0000000000000000"
SAMPLE = ROOT / "deploy" / "samples" / "odooenvironment.yaml"
SAMPLE_NAME = "acme-dev"
#: The demo operator polls faster than the defaults, so that changes show quickly; it peers like the
#: Deployment (the default peering object), so a second `oec-operator` started by hand waits.
OPERATOR_ENV = {"OEC_POLL_INTERVAL": "15", "OEC_FAST_POLL_INTERVAL": "1", "OEC_METRICS_ADDRESS": "127.0.0.1",
                "OEC_PEERING_NAME": "oec-operator"}
#: The demo's webhooks (docs/webhooks.md): the simulator posts to the operator's receiver on
#: loopback over http, which the real API refuses; the simulator allows it with this flag.
SIMULATOR_WEBHOOK_FLAG = "--allow-insecure-webhook-urls"
#: Where the operator keeps the webhook secret in the demo (its namespace is the sample's).
WEBHOOK_SECRET_REF = "default/oec-operator-webhooks"  # noqa: S105 - a Secret's name
#: How many times longer the steady project interval is in push mode (``OEC_WEBHOOK_POLL_STRETCH``).
POLL_STRETCH = float(OperatorConfig.model_fields["webhook_poll_stretch"].default)


def log(message: str) -> None:
    """A progress line on stdout."""
    print(f"==> {message}", flush=True)


def _running(state: Path, name: str) -> int | None:
    """The pid in ``state/NAME.pid`` if that process is alive."""
    try:
        pid = int((state / f"{name}.pid").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def _background(state: Path, name: str, start: Callable[[], Child]) -> int:
    """Run ``start`` (a detached process) unless ``name`` runs already; keep its pid in ``state/NAME.pid``."""
    pid = _running(state, name)
    if pid:
        log(f"{name} already running (pid {pid})")
        return pid
    child = start()
    (state / f"{name}.pid").write_text(str(child.pid))
    log(f"{name} started (pid {child.pid}, log {child.log})")
    return child.pid


def _stop_background(state: Path, name: str) -> None:
    pid = _running(state, name)
    if pid is None:
        return
    Child(pid, group=True).stop(grace=10.0)
    (state / f"{name}.pid").unlink(missing_ok=True)
    log(f"{name} stopped")


def _kubeconfig(state: Path) -> Path | None:
    """``KUBECONFIG_DEMO``, else the local control plane's kubeconfig if it was started."""
    existing = os.environ.get("KUBECONFIG_DEMO")
    if existing:
        return Path(existing)
    kubeconfig = state / "control-plane" / "kubeconfig"
    return kubeconfig if kubeconfig.exists() else None


def up(state: Path) -> None:
    """Start the control plane, the simulator and the operator (what is not running yet), apply
    the sample and print its row of ``kubectl get odooenv`` until it is Ready (180 s)."""
    state.mkdir(parents=True, exist_ok=True)
    log("starting the control plane (kube-apiserver + etcd on 127.0.0.1)")
    if not os.environ.get("KUBECONFIG_DEMO"):
        detached.up(state / "control-plane")
    kubeconfig = _kubeconfig(state)
    assert kubeconfig is not None
    kubectl = Kubectl(default_kubectl(), kubeconfig)

    log("starting the OEC.sh API simulator (demo project, demo keys, 10 s deploys)")
    port_file = state / "simulator.port"
    if _running(state, "simulator") is None:
        port_file.unlink(missing_ok=True)
        _stop_background(state, "operator")  # it would still talk to the old simulator's port
    _background(state, "simulator", lambda: start_simulator(
        ["--deploy-seconds", "10", SIMULATOR_WEBHOOK_FLAG], port_file=port_file, log=state / "simulator.log",
        isolation="session").proc)
    api_url = f"http://127.0.0.1:{int(port_file.read_text())}/api/public/v1"

    log("installing the OdooEnvironment CRD and kopf's peering CRDs")
    kubectl.install_crd(ROOT / "crds")

    if _running(state, "operator") is None:
        forget_ports(state)
    log(f"starting the operator against {api_url}, its webhook receiver on {webhook_url(state)}, "
        f"its metrics on {metrics_url(state)}")
    operator = OperatorProcess(kubeconfig, api_url, state / "operator.log", api_key=DEMO_KEY,
                               env={**OPERATOR_ENV, **webhook_env(state), "OEC_METRICS_PORT": _port(state, "metrics")},
                               isolation="session", cwd=ROOT)
    _background(state, "operator", lambda: _started(operator))

    log(f"applying {SAMPLE.relative_to(ROOT)}")
    print(kubectl("apply", "-n", "default", "-f", str(SAMPLE)).stdout.strip())
    watch(kubectl)
    show_push(kubectl, api_url, metrics_url(state))
    kc = kubeconfig if kubeconfig.is_absolute() else Path.cwd() / kubeconfig
    print(try_text(kubectl.binary, kc, api_url, state))


def webhook_url(state: Path) -> str:
    """The receiver's URL on loopback; its port is chosen once and kept in ``state/webhook.port``
    (a second ``make demo`` finds the running operator on it)."""
    return f"http://127.0.0.1:{_port(state, 'webhook')}/oec/webhook"


def _port(state: Path, name: str) -> str:
    """A free loopback port chosen once and kept in ``state/NAME.port``: not a fixed one (``8081``
    may be taken, e.g. by another demo, and the push check would then read that one's metrics)."""
    port_file = state / f"{name}.port"
    if not port_file.exists():
        port_file.write_text(str(free_ports(1)[0]))
    return str(int(port_file.read_text()))


def forget_ports(state: Path) -> None:
    """Drop the operator's kept ports (no operator runs): one kept from an earlier run may be taken
    by now, and the operator would fail its start-up on it every 60 s."""
    for name in ("webhook", "metrics"):
        (state / f"{name}.port").unlink(missing_ok=True)


def metrics_url(state: Path) -> str:
    """The demo operator's ``/metrics`` URL (``oec_operator_push_mode``, ``..._webhook_events_total``)."""
    return f"http://127.0.0.1:{_port(state, 'metrics')}/metrics"


def webhook_env(state: Path) -> dict[str, str]:
    """The operator's webhook settings in the demo (README "Webhooks")."""
    url = webhook_url(state)
    return {"OEC_WEBHOOK_URL": url, "OEC_WEBHOOK_PORT": url.rsplit(":", 1)[1].split("/", 1)[0],
            "OEC_WEBHOOK_ADDRESS": "127.0.0.1", "OEC_WEBHOOK_SECRET": WEBHOOK_SECRET_REF}


def push_mode(metrics_url: str) -> bool:
    """True once the operator says a key's webhooks are healthy (``oec_operator_push_mode 1``)."""
    try:
        text = httpx.get(metrics_url, timeout=5).text
    except httpx.HTTPError:
        return False
    return any(line.startswith("oec_operator_push_mode{") and line.rstrip().endswith(" 1.0")
               for line in text.splitlines())


def show_push(kubectl: Kubectl, api_url: str, metrics: str, timeout: float = 60) -> None:
    """Stop the sample's environment through the OEC.sh API (as a user of the dashboard would) and
    print when OEC.sh finished the stop and how much later ``kubectl get`` showed it: seconds with
    webhooks, up to the steady poll interval without. The operator then starts it again
    (``spec.powerState`` defaults to ``Running``).

    Raises:
        RuntimeError: the environment id is unknown or the API refused the stop.
    """
    obj = json.loads(kubectl("get", "odooenv", SAMPLE_NAME, "-n", "default", "-o", "json").stdout)
    env_id = obj.get("status", {}).get("environmentId")
    if not env_id:
        raise RuntimeError(f"{SAMPLE_NAME} has no status.environmentId")
    log("waiting for the operator's webhook to be registered and calibrated (push mode)")
    deadline = time.monotonic() + timeout
    while not push_mode(metrics) and time.monotonic() < deadline:
        time.sleep(1)
    pushing = push_mode(metrics)
    log(push_mode_text(pushing))
    log(f"stopping {SAMPLE_NAME}'s environment through the OEC.sh API (not through Kubernetes); "
        "the simulator takes about 2 s to stop it")
    answer = httpx.post(f"{api_url}/environments/{env_id}/stop", timeout=10,
                        headers={"Authorization": f"Bearer {DEMO_KEY}", "Idempotency-Key": f"demo-stop-{time.time()}"})
    if answer.status_code >= 300:
        raise RuntimeError(f"the simulator refused the stop: {answer.status_code} {answer.text[:200]}")
    asked = time.monotonic()
    stopped_at = seen_at = None
    sim = f"{api_url.rsplit('/api/', 1)[0]}/_sim/environments"  # the simulator's own view: no API read
    while time.monotonic() - asked < 120 and seen_at is None:
        if stopped_at is None and any(e.get("id") == env_id and e.get("status") == "stopped"
                                      for e in httpx.get(sim, timeout=10).json()):
            stopped_at = time.monotonic()
        phase = json.loads(kubectl("get", "odooenv", SAMPLE_NAME, "-n", "default", "-o", "json").stdout).get(
            "status", {}).get("phase")
        if phase in ("stopped", "starting"):  # "starting": it saw the stop and already starts it again
            seen_at = time.monotonic()
            print(kubectl("get", "odooenv", SAMPLE_NAME, "-n", "default").stdout.rstrip(), flush=True)
        else:
            time.sleep(0.2)
    if seen_at is None:
        log("the stop did not show within 120 s; see the operator log")
        return
    done = seen_at if stopped_at is None else stopped_at
    log(push_result_text(done - asked, seen_at - done, pushing))


def push_mode_text(pushing: bool) -> str:
    """What push mode means for the demo's polling (``OPERATOR_ENV``, ``OEC_WEBHOOK_POLL_STRETCH``)."""
    steady = float(OPERATOR_ENV["OEC_POLL_INTERVAL"])
    if pushing:
        return (f"webhooks healthy (push mode): changes made in OEC.sh reach the operator by webhook; the "
                f"steady project list, now the safety net, runs every {steady * POLL_STRETCH:.0f} s "
                f"instead of every {steady:.0f} s")
    return (f"webhooks not healthy yet (see the operator log): the change shows at the next poll instead "
            f"(every {steady:.0f} s)")


def push_result_text(stop_seconds: float, lag_seconds: float, pushing: bool) -> str:
    """The demo's push figure: when OEC.sh finished the stop, how much later ``kubectl get`` showed it."""
    steady = float(OPERATOR_ENV["OEC_POLL_INTERVAL"])
    how = (f"by webhook; by polling alone it could take up to {steady * POLL_STRETCH:.0f} s in push mode, "
           f"{steady:.0f} s without webhooks" if pushing else f"by polling; the steady poll runs every {steady:.0f} s")
    return (f"OEC.sh finished the stop {stop_seconds:.1f} s after it was asked; kubectl get showed it "
            f"{max(lag_seconds, 0.0):.1f} s later ({how}). The operator now starts it again "
            f"(spec.powerState defaults to Running): kubectl get odooenv {SAMPLE_NAME} -w")


def try_text(binary: str, kc: Path, api_url: str, state: Path) -> str:
    """The commands ``make demo`` suggests once the sample is Ready; the plugin commands that call
    the OEC.sh API come after the ``export`` of the demo's simulator key and URL (the plugin reads
    ``OEC_API_KEY`` / ``OEC_API_URL``, not the operator's configuration)."""
    return f"""
The demo keeps running in the background. Try:
  export KUBECONFIG={kc}
  {binary} get odooenv -o wide
  {binary} describe odooenv {SAMPLE_NAME}
  {binary} patch odooenv {SAMPLE_NAME} --type merge -p '{{"spec":{{"branch":"release"}}}}'
Day-2 operations (README "Day-2 operations"), each visible in kubectl get/describe and in the simulator:
  {binary} patch odooenv {SAMPLE_NAME} --type merge -p \
'{{"spec":{{"deploy":{{"request":{{"id":"commit-2","updateModules":["sale_custom"]}}}}}}}}'
  {binary} patch odooenv {SAMPLE_NAME} --type merge -p '{{"spec":{{"powerState":"Stopped"}}}}'
  {binary} wait odooenv/{SAMPLE_NAME} --for=condition=Ready --timeout=120s
  {binary} patch odooenv {SAMPLE_NAME} --type merge -p '{{"spec":{{"powerState":"Running"}}}}'
  {binary} annotate odooenv {SAMPLE_NAME} --overwrite oec.sh/restart-requested-at="$(date -u +%FT%TZ)"
  PATH=$PWD/.venv/bin:$PATH {binary} oec restart {SAMPLE_NAME}    # the same, with the kubectl plugin
  {binary} patch odooenv {SAMPLE_NAME} --type merge -p '{{"spec":{{"resources":{{"ramMb":4096}}}}}}'
  {binary} patch odooenv {SAMPLE_NAME} --type merge -p '{{"spec":{{"domain":"erp.example.com"}}}}'
  curl -s {api_url.rsplit("/api/", 1)[0]}/_sim/environments    # what OEC.sh (the simulator) shows
  curl -s http://127.0.0.1:$(cat {state}/metrics.port)/metrics | grep -E 'oec_operator_(push_mode|webhook_events_total)'
Backups and restore (docs/backups.md), each step visible in `kubectl get odoobackup,odoobackupschedule,odoorestore`:
  {binary} apply -f deploy/samples/odoobackup.yaml
  {binary} wait odoobackup/acme-dev-before-upgrade --for=condition=Ready --timeout=120s
  {binary} apply -f deploy/samples/odoobackupschedule-nightly.yaml    # 02:00 Berlin; to see it fire now:
  {binary} patch odoobackupschedule nightly --type merge -p \
'{{"spec":{{"schedule":"* * * * *","spreadSeconds":0}}}}'
  {binary} apply -f deploy/samples/odoorestore.yaml    # overwrites acme-dev from that backup; a NEW \
object of it (after a delete) restores again until its notAfter
  {binary} get odoobackup,odoobackupschedule,odoorestore
The kubectl plugin reads its own OEC.sh key and API root (here the demo's simulator key, not a secret):
  export OEC_API_KEY={DEMO_KEY} OEC_API_URL={api_url}
  export PATH=$PWD/.venv/bin:$PATH
  {binary} oec backups {SAMPLE_NAME}    # every backup OEC.sh keeps, its own too
  {binary} delete odooenv {SAMPLE_NAME}
  {binary} oec backups {SAMPLE_NAME}    # still listed after the delete, from its OdooBackup objects
Logs: {state}/operator.log, {state}/simulator.log
Stop everything with: make demo-down
"""


def _started(operator: OperatorProcess) -> Child:
    operator.start()
    assert operator.child is not None
    return operator.child


def watch(kubectl: Kubectl, timeout: float = 180) -> None:
    """Print the sample's row of ``kubectl get odooenv`` whenever it changes, until it is Ready;
    :class:`RuntimeError` after ``timeout`` s."""
    log(f"watching {SAMPLE_NAME} until it is Ready")
    row = "{:<10} {:<12} {:<8} {:<11} {:<8} {:<6} {:<13} {}"
    print(row.format("NAME", "TYPE", "BRANCH", "PHASE", "POWER", "READY", "REASON", "URL"), flush=True)
    last: tuple[str, ...] = ()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc = kubectl("get", "odooenv", SAMPLE_NAME, "-n", "default", "-o", "json", check=False)
        obj = json.loads(proc.stdout) if proc.returncode == 0 else {}
        status = obj.get("status", {})
        ready = condition(obj, "Ready") or {}
        current = (SAMPLE_NAME, obj.get("spec", {}).get("environmentType", ""), status.get("branch", "-"),
                   status.get("phase", "-"), status.get("powerState", "-"), ready.get("status", "-"),
                   ready.get("reason", "-"), status.get("url", "-"))
        if obj and current != last:
            print(row.format(*current), flush=True)
            last = current
        if ready.get("status") == "True":
            log(f"{SAMPLE_NAME} is Ready ({ready.get('reason')}, power {status.get('powerState', '-')})")
            return
        time.sleep(1)
    raise RuntimeError(f"{SAMPLE_NAME} did not become Ready in {timeout:.0f}s; see the operator log")


def status(state: Path) -> None:
    """Print which processes run, the control plane's status and ``kubectl get`` of the four kinds
    (``odooenv,odoobackup,odoobackupschedule,odoorestore``) in all namespaces."""
    for name in ("simulator", "operator"):
        pid = _running(state, name)
        print(f"{name}: {f'running (pid {pid})' if pid else 'stopped'}")
    kubeconfig = _kubeconfig(state)
    if kubeconfig is None:
        print("control plane: not started (run `make demo`)")
        return
    if not os.environ.get("KUBECONFIG_DEMO"):
        print(json.dumps(detached.status(state / "control-plane"), indent=2))
    listing = Kubectl(default_kubectl(), kubeconfig)("get", "odooenv,odoobackup,odoobackupschedule,odoorestore",
                                                     "-A", "-o", "wide", check=False)
    # kubectl says "No resources found" (and why it cannot list) on stderr, not stdout.
    print((listing.stdout or listing.stderr).rstrip() or "no OdooEnvironment or backup resources")


def down(state: Path) -> None:
    """Stop the operator, the simulator and the local control plane."""
    _stop_background(state, "operator")
    _stop_background(state, "simulator")
    if (state / "control-plane").exists() and not os.environ.get("KUBECONFIG_DEMO"):
        detached.down(state / "control-plane")
    log("demo stopped")
