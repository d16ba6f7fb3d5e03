"""`make demo`: a local control plane, the OEC.sh simulator and the operator, all as background
processes on loopback, and a sample OdooEnvironment watched from creation to Running.

    python tools/demo.py up     --state-dir .demo   # start (idempotent) and watch the sample
    python tools/demo.py status --state-dir .demo   # processes and `kubectl get odooenv`
    python tools/demo.py down   --state-dir .demo   # stop everything it started

Set KUBECONFIG_DEMO=/path/to/kubeconfig to use an existing cluster instead of the local control
plane (the CRD is installed there; the operator and the simulator still run here).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO_KEY = "oec_live_rw_demo_simulator_key_0000000000000000"
SAMPLE = ROOT / "deploy" / "samples" / "odooenvironment.yaml"
SAMPLE_NAME = "acme-dev"


def log(message: str) -> None:
    print(f"==> {message}", flush=True)


def running(pid_file: Path) -> int | None:
    """The pid in ``pid_file`` if that process is alive."""
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return None
    return pid


def start_background(name: str, argv: list[str], state: Path, env: dict[str, str]) -> int:
    """Start a detached process (own session, output to ``state/NAME.log``) unless it runs already."""
    pid_file = state / f"{name}.pid"
    pid = running(pid_file)
    if pid:
        log(f"{name} already running (pid {pid})")
        return pid
    with (state / f"{name}.log").open("ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True, cwd=ROOT)
    pid_file.write_text(str(proc.pid))
    log(f"{name} started (pid {proc.pid}, log {state / (name + '.log')})")
    return proc.pid


def stop_background(name: str, state: Path) -> None:
    pid = running(state / f"{name}.pid")
    if pid is None:
        return
    os.killpg(pid, signal.SIGTERM)
    for _ in range(100):
        if running(state / f"{name}.pid") is None:
            break
        time.sleep(0.1)
    else:
        os.killpg(pid, signal.SIGKILL)
    (state / f"{name}.pid").unlink(missing_ok=True)
    log(f"{name} stopped")


def kubectl_path() -> str:
    bin_dir = os.environ.get("OEC_K8S_BIN_DIR")
    candidate = Path(bin_dir) / "kubectl" if bin_dir else None
    return str(candidate) if candidate and candidate.exists() else "kubectl"


def kubectl(kubeconfig: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([kubectl_path(), "--kubeconfig", str(kubeconfig), *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        sys.exit(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc


def control_plane(state: Path, action: str) -> Path:
    """Start/stop the local control plane (tools/controlplane.py); returns the kubeconfig."""
    existing = os.environ.get("KUBECONFIG_DEMO")
    if existing:
        return Path(existing)
    cp_dir = state / "control-plane"
    subprocess.run([sys.executable, str(ROOT / "tools" / "controlplane.py"), action, "--state-dir", str(cp_dir)],
                   check=True)
    return cp_dir / "kubeconfig"


def wait_port(port_file: Path, name: str, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_file.exists() and port_file.read_text().strip():
            return int(port_file.read_text())
        time.sleep(0.2)
    sys.exit(f"{name} did not start; see its log in {port_file.parent}")


def up(state: Path) -> None:
    state.mkdir(parents=True, exist_ok=True)
    log("starting the control plane (kube-apiserver + etcd on 127.0.0.1)")
    kubeconfig = control_plane(state, "up")
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}

    log("starting the OEC.sh API simulator (demo project, demo keys, 10 s deploys)")
    port_file = state / "simulator.port"
    if running(state / "simulator.pid") is None:
        port_file.unlink(missing_ok=True)
        stop_background("operator", state)  # it would still talk to the old simulator's port
    start_background("simulator", [sys.executable, "-m", "oec_simulator", "--port", "0",
                                   "--port-file", str(port_file), "--deploy-seconds", "10"], state, env)
    port = wait_port(port_file, "the simulator")
    api_url = f"http://127.0.0.1:{port}/api/public/v1"

    log("installing the OdooEnvironment CRD")
    kubectl(kubeconfig, "apply", "-f", str(ROOT / "crds"))
    kubectl(kubeconfig, "wait", "--for=condition=Established", "--timeout=60s", "crd/odooenvironments.oec.sh")

    log(f"starting the operator against {api_url}")
    start_background("operator", [sys.executable, "-m", "oec_operator"], state, {
        **env, "OEC_API_URL": api_url, "OEC_API_KEY": DEMO_KEY,
        "OEC_POLL_INTERVAL": "15", "OEC_FAST_POLL_INTERVAL": "1", "OEC_METRICS_ADDRESS": "127.0.0.1",
    })

    log(f"applying {SAMPLE.relative_to(ROOT)}")
    print(kubectl(kubeconfig, "apply", "-n", "default", "-f", str(SAMPLE)).stdout.strip())
    watch(kubeconfig)
    kc = kubeconfig if kubeconfig.is_absolute() else Path.cwd() / kubeconfig
    print(f"""
The demo keeps running in the background. Try:
  export KUBECONFIG={kc}
  {kubectl_path()} get odooenv -o wide
  {kubectl_path()} describe odooenv {SAMPLE_NAME}
  {kubectl_path()} patch odooenv {SAMPLE_NAME} --type merge -p '{{"spec":{{"branch":"release"}}}}'
  {kubectl_path()} delete odooenv {SAMPLE_NAME}
Logs: {state}/operator.log, {state}/simulator.log
Stop everything with: make demo-down
""")


def watch(kubeconfig: Path, timeout: float = 180) -> None:
    """Print the sample's row of `kubectl get odooenv` whenever it changes, until it is Ready."""
    log(f"watching {SAMPLE_NAME} until it is Running and Ready")
    row = "{:<10} {:<12} {:<8} {:<11} {:<6} {:<13} {}"
    print(row.format("NAME", "TYPE", "BRANCH", "PHASE", "READY", "REASON", "URL"), flush=True)
    last: tuple[str, ...] = ()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc = kubectl(kubeconfig, "get", "odooenv", SAMPLE_NAME, "-n", "default", "-o", "json", check=False)
        obj = json.loads(proc.stdout) if proc.returncode == 0 else {}
        status = obj.get("status", {})
        ready = next((c for c in status.get("conditions", []) if c.get("type") == "Ready"), {})
        current = (SAMPLE_NAME, obj.get("spec", {}).get("environmentType", ""), status.get("branch", "-"),
                   status.get("phase", "-"), ready.get("status", "-"), ready.get("reason", "-"), status.get("url", "-"))
        if obj and current != last:
            print(row.format(*current), flush=True)
            last = current
        if ready.get("status") == "True":
            log(f"{SAMPLE_NAME} is Running and Ready")
            return
        time.sleep(1)
    sys.exit(f"{SAMPLE_NAME} did not become Ready in {timeout:.0f}s; see the operator log")


def status(state: Path) -> None:
    for name in ("simulator", "operator"):
        pid = running(state / f"{name}.pid")
        print(f"{name}: {f'running (pid {pid})' if pid else 'stopped'}")
    kubeconfig = state / "control-plane" / "kubeconfig"
    if os.environ.get("KUBECONFIG_DEMO") or kubeconfig.exists():
        kubeconfig = control_plane(state, "status")
        listing = kubectl(kubeconfig, "get", "odooenv", "-A", "-o", "wide", check=False)
        # kubectl says "No resources found" (and why it cannot list) on stderr, not stdout.
        print((listing.stdout or listing.stderr).rstrip() or "no OdooEnvironment resources")
    else:
        print("control plane: not started (run `make demo`)")


def down(state: Path) -> None:
    stop_background("operator", state)
    stop_background("simulator", state)
    if (state / "control-plane").exists() and not os.environ.get("KUBECONFIG_DEMO"):
        control_plane(state, "down")
    log("demo stopped")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("up", "status", "down"))
    parser.add_argument("--state-dir", type=Path, default=ROOT / ".demo")
    args = parser.parse_args()
    {"up": up, "status": status, "down": down}[args.action](args.state_dir.resolve())


if __name__ == "__main__":
    main()
