"""`make bench`: the operator at scale against the naive design, on the real control plane.

For each design (``batched``, the default, and ``direct``, the naive one: every resource reads its
environment and status each interval, no shared limiter) and each N it starts a fresh
kube-apiserver + etcd, a fresh simulator with 10 projects and the operator as a real process, and:

1. creates N OdooEnvironments spread over the projects (``kubectl create`` of one list) with the
   simulator's write limit lifted and its read limit at the default 120 a minute, and times all
   ``Ready=True`` after the create returned;
2. measures the steady state over a window: API reads and writes a minute and 429 answers (the
   simulator's ``/_sim/stats``), and status staleness: environments are stopped in the simulator
   at random moments and the time until the resource's ``status.phase`` shows it is recorded;
3. reads the operator's peak RSS (``VmHWM``) and CPU seconds from ``/proc``.

Once per design, N = 1000 new resources at the default limits (20 writes a minute): the creation
rate over a window and the 429 count.

Results: ``bench-results/bench.json``, ``bench-results/bench.png`` and a Markdown table on stdout
(also ``bench-results/table.md``). A benchmark, not a test: it asserts nothing and prints what it
measured. Usage: ``python tools/bench.py [--sizes 100,1000,3000] [--window 180] [--designs ...]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from oec_simulator.admin_client import SimulatorAdmin, start_simulator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import controlplane  # noqa: E402

KEY = "oec_live_rw_bench_simulator_key_00000000000000000"
PROJECTS = 10
NAMESPACE = "bench"
GROUP, VERSION, PLURAL = "oec.sh", "v1alpha1", "odooenvironments"
POLL_INTERVAL = 60.0
FAST_POLL_INTERVAL = 5.0
LIFTED = 1_000_000


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass
class Run:
    """What one run measured (times in seconds, rates a minute, memory in MB)."""

    design: str
    n: int
    limits: str
    apply_seconds: float = 0.0
    ready_seconds: float | None = None  # after the create returned; None: not all within the timeout
    ready_count: int = 0
    settle_seconds: float | None = None  # after Ready, until every health read was made
    reads_per_minute: float = 0.0
    writes_per_minute: float = 0.0
    rate_limited: int = 0
    rate_limited_total: int = 0
    creates_per_minute: float | None = None
    staleness: list[float] = field(default_factory=list)
    staleness_missed: int = 0
    staleness_p50: float | None = None
    staleness_p99: float | None = None
    peak_rss_mb: float = 0.0
    rss_mb: float = 0.0  # at the end of the run
    cpu_seconds: float = 0.0


class Stack:
    """Control plane, simulator and operator of one run."""

    def __init__(self, work: Path, design: str, write_limit: int, verbose: bool = False) -> None:
        self.work = work
        self.cp = controlplane.ControlPlane(state_dir=work / "cp").start()
        self.kubeconfig = self.cp.kubeconfig
        self.kubectl("apply", "-f", str(ROOT / "crds"))
        self.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{PLURAL}.{GROUP}")
        self.kubectl("create", "namespace", NAMESPACE)
        self.sim = start_simulator(["--key", KEY, "--read-limit", "120", "--write-limit", str(write_limit),
                                    "--request-log-limit", "1000"],
                                   port_file=work / "sim.port", log=work / "simulator.log")
        self.sim_proc, self.sim_url = self.sim.proc, self.sim.base_url
        self.admin = SimulatorAdmin(self.sim_url, timeout=30)
        self.projects = [self.admin.new_project(f"bench-{p}") for p in range(PROJECTS)]
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "OEC_API_URL": f"{self.sim_url}/api/public/v1",
               "OEC_API_KEY": KEY, "OEC_POLLING": design, "OEC_POLL_INTERVAL": str(POLL_INTERVAL),
               "OEC_FAST_POLL_INTERVAL": str(FAST_POLL_INTERVAL), "OEC_METRICS_PORT": "0"}
        self.operator = subprocess.Popen([sys.executable, "-m", "oec_operator", "-n", NAMESPACE,
                                          *([] if verbose else ["--quiet"])],
                                         stdout=(work / "operator.log").open("wb"), stderr=subprocess.STDOUT, env=env)

    def kubectl(self, *args: str, input: str | None = None) -> str:
        proc = subprocess.run([str(self.cp.kubectl), "--kubeconfig", str(self.kubeconfig), *args],
                              capture_output=True, text=True, input=input, timeout=900)
        if proc.returncode != 0:
            raise RuntimeError(f"kubectl {args[0]} failed: {proc.stderr[-2000:]}")
        return proc.stdout

    def objects(self) -> list[dict[str, Any]]:
        out = self.kubectl("get", f"{PLURAL}.{GROUP}", "-n", NAMESPACE, "-o", "json", "--chunk-size=500")
        return list(json.loads(out)["items"])

    def one(self, name: str) -> dict[str, Any]:
        return dict(json.loads(self.kubectl("get", f"{PLURAL}.{GROUP}", "-n", NAMESPACE, name, "-o", "json")))

    def stats(self) -> dict[str, Any]:
        return self.admin.stats()

    def usage(self) -> tuple[float, float, float]:
        """The operator's peak RSS and current RSS (MB), and its CPU seconds."""
        pid = self.operator.pid
        status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        mb = [int(status[k].split()[0]) / 1024 for k in ("VmHWM", "VmRSS")]
        return mb[0], mb[1], (int(fields[11]) + int(fields[12])) / ticks

    def close(self) -> None:
        for proc in (self.operator, self.sim_proc):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
        self.admin.close()
        self.cp.stop()


def manifests(n: int, projects: list[str]) -> str:
    items = [{"apiVersion": f"{GROUP}/{VERSION}", "kind": "OdooEnvironment",
              "metadata": {"name": f"env-{i:05d}", "namespace": NAMESPACE},
              "spec": {"projectId": projects[i % len(projects)], "branch": "main"}} for i in range(n)]
    return yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items})


def ready(obj: dict[str, Any]) -> bool:
    conds = obj.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def create_and_wait(stack: Stack, run: Run, timeout: float) -> None:
    started = time.monotonic()
    stack.kubectl("create", "-f", "-", input=manifests(run.n, stack.projects))
    run.apply_seconds = time.monotonic() - started
    applied = time.monotonic()
    log(f"  created {run.n} resources in {run.apply_seconds:.1f}s; waiting for Ready")
    while time.monotonic() - applied < timeout:
        run.ready_count = sum(ready(o) for o in stack.objects())
        if run.ready_count == run.n:
            run.ready_seconds = time.monotonic() - applied
            log(f"  all {run.n} Ready {run.ready_seconds:.1f}s after the create")
            return
        time.sleep(2)
    log(f"  only {run.ready_count}/{run.n} Ready after {timeout:.0f}s")


def settle(stack: Stack, run: Run, timeout: float) -> None:
    """Wait until the operator has nothing left to do: every status shows the health read in its
    current phase (the batched design reads ``/status`` once per change, within the budget)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        objs = stack.objects()
        pending = sum((o.get("status", {}).get("health") or {}).get("phase") != o.get("status", {}).get("phase")
                      for o in objs)
        if not pending:
            run.settle_seconds = time.monotonic() - started
            log(f"  settled {run.settle_seconds:.0f}s after Ready")
            return
        time.sleep(10)
    log(f"  not settled after {timeout:.0f}s ({pending} health reads owed); measuring anyway")


def steady_state(stack: Stack, run: Run, window: float, samples: int) -> None:
    """Counters over ``window`` seconds while ``samples`` environments are stopped at random moments."""
    by_name = {o["metadata"]["name"]: o.get("status", {}).get("environmentId") for o in stack.objects()}
    targets = [(name, env) for name, env in by_name.items() if env]
    random.shuffle(targets)
    before, t0 = stack.stats(), time.monotonic()
    latest = window - 2.5 * POLL_INTERVAL  # every change has time to show before the window ends
    moments = sorted(random.uniform(0, latest) for _ in range(samples)) if latest > 0 else []  # noqa: S311  # noqa: S311
    threads: list[threading.Thread] = []
    results: list[float | None] = []

    def follow(name: str, changed_at: float) -> None:
        deadline = changed_at + 3 * POLL_INTERVAL
        while time.monotonic() < deadline:
            if stack.one(name).get("status", {}).get("phase") == "stopped":
                results.append(time.monotonic() - changed_at)
                return
            time.sleep(1.0)
        results.append(None)

    for moment, (name, env_id) in zip(moments, targets, strict=False):
        time.sleep(max(0.0, t0 + moment - time.monotonic()))
        stack.admin.patch_environment(env_id, status="stopped")
        thread = threading.Thread(target=follow, args=(name, time.monotonic()), daemon=True)
        thread.start()
        threads.append(thread)
    time.sleep(max(0.0, t0 + window - time.monotonic()))
    after, minutes = stack.stats(), (time.monotonic() - t0) / 60
    for thread in threads:
        thread.join()
    run.reads_per_minute = (after["reads"] - before["reads"]) / minutes
    run.writes_per_minute = (after["writes"] - before["writes"]) / minutes
    run.rate_limited = after["rate_limited"] - before["rate_limited"]
    run.staleness = [r for r in results if r is not None]
    run.staleness_missed = sum(r is None for r in results)
    run.staleness_p50 = percentile(run.staleness, 0.5)
    run.staleness_p99 = percentile(run.staleness, 0.99)


def creation_rate(stack: Stack, run: Run, window: float) -> None:
    stack.kubectl("create", "-f", "-", input=manifests(run.n, stack.projects))
    deadline = time.monotonic() + window
    while time.monotonic() < deadline:  # from the first create on, so start-up time does not count
        created = stack.stats()["by_route"].get("create_environment", {})
        if sum(v for k, v in created.items() if k.startswith("2")):
            break
        time.sleep(0.2)
    # The limiter sends a budget's worth at the start of each of its windows: start half a
    # window after the first create so that the measurement holds whole windows, not a burst
    # at each end.
    time.sleep(30)
    begin = stack.stats()
    time.sleep(window)
    end = stack.stats()

    def creates(stats: dict[str, Any]) -> int:
        return sum(v for k, v in stats["by_route"].get("create_environment", {}).items() if k.startswith("2"))

    run.creates_per_minute = (creates(end) - creates(begin)) / (window / 60)
    run.rate_limited = end["rate_limited"] - begin["rate_limited"]
    run.reads_per_minute = (end["reads"] - begin["reads"]) / (window / 60)
    run.writes_per_minute = (end["writes"] - begin["writes"]) / (window / 60)


def one_run(design: str, n: int, limits: str, args: argparse.Namespace) -> Run:
    run = Run(design=design, n=n, limits=limits)
    log(f"{design} N={n} limits={limits}")
    with tempfile.TemporaryDirectory(prefix="oec-bench-") as tmp, ExitStack() as stack_exit:
        stack = Stack(Path(tmp), design, LIFTED if limits == "lifted" else 20, verbose=args.keep_logs)
        stack_exit.callback(stack.close)
        if limits == "lifted":
            create_and_wait(stack, run, args.ready_timeout)
            if design == "batched":
                settle(stack, run, args.settle_timeout)
            steady_state(stack, run, args.window, args.samples)
        else:
            creation_rate(stack, run, args.window)
        run.rate_limited_total = stack.stats()["rate_limited"]
        run.peak_rss_mb, run.rss_mb, run.cpu_seconds = stack.usage()
        if args.keep_logs:
            target = Path(args.out) / "logs" / f"{design}-{n}-{limits}"
            target.mkdir(parents=True, exist_ok=True)
            for name in ("operator.log", "simulator.log"):
                (target / name).write_bytes((Path(tmp) / name).read_bytes())
            (target / "stats.json").write_text(json.dumps(stack.stats(), indent=1))
    log(f"  {json.dumps({k: v for k, v in asdict(run).items() if k != 'staleness'})}")
    return run


def fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def ratio(ours: float | None, naive: float | None) -> str:
    if ours is None or naive is None or ours == 0:
        return ""
    return f" (naive x{naive / ours:.1f})"


def table(runs: list[Run]) -> str:
    by = {(r.design, r.n, r.limits): r for r in runs}
    lines = ["| N | limits | design | Ready after create (s) | settled after (s) | reads/min | writes/min | "
             "429s (window / whole run) | "
             "creates/min | staleness p50 / p99 (s) | peak RSS (MB) | CPU (s) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(runs, key=lambda r: (r.limits != "lifted", r.n, r.design)):
        naive = by.get(("direct", r.n, r.limits)) if r.design == "batched" else None
        ready_cell = fmt(r.ready_seconds, 1) if r.ready_seconds is not None else f"{r.ready_count}/{r.n} in time"
        if r.limits != "lifted":
            ready_cell = "-"
        stale = f"{fmt(r.staleness_p50, 1)} / {fmt(r.staleness_p99, 1)}"
        if r.staleness_missed:
            stale += f" ({r.staleness_missed} missed)"
        lines.append(
            f"| {r.n} | {r.limits} | {r.design} | {ready_cell}"
            f"{ratio(r.ready_seconds, naive.ready_seconds) if naive else ''} | {fmt(r.settle_seconds)} | "
            f"{fmt(r.reads_per_minute, 1)}{ratio(r.reads_per_minute, naive.reads_per_minute) if naive else ''} | "
            f"{fmt(r.writes_per_minute, 1)} | {r.rate_limited} / {r.rate_limited_total} | "
            f"{fmt(r.creates_per_minute, 1)} | {stale}"
            f"{ratio(r.staleness_p99, naive.staleness_p99) if naive else ''} | "
            f"{r.peak_rss_mb:.0f}{ratio(r.peak_rss_mb, naive.peak_rss_mb) if naive else ''} | "
            f"{r.cpu_seconds:.0f}{ratio(r.cpu_seconds, naive.cpu_seconds) if naive else ''} |")
    return "\n".join(lines)


def chart(runs: list[Run], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (calls, stale) = plt.subplots(1, 2, figsize=(11, 4.2))
    for design, style in (("batched", "o-"), ("direct", "s--")):
        rs = sorted((r for r in runs if r.design == design and r.limits == "lifted"), key=lambda r: r.n)
        if not rs:
            continue
        label = "oec-operator (batched)" if design == "batched" else "naive (one poll per resource)"
        calls.plot([r.n for r in rs], [max(0.1, r.reads_per_minute + r.writes_per_minute) for r in rs], style,
                   label=label)
        timed = [r for r in rs if r.staleness_p99 is not None]
        if timed:
            stale.plot([r.n for r in timed], [r.staleness_p99 for r in timed], style, label=f"{label} p99")
            stale.plot([r.n for r in timed], [r.staleness_p50 for r in timed], style, alpha=0.4, label=f"{label} p50")
    calls.axhline(120, color="grey", linestyle=":", label="read budget (120/min)")
    scale = "log" if len({r.n for r in runs}) > 1 else "linear"
    calls.set(xscale=scale, yscale="log", xlabel="resources (10 projects)", ylabel="API calls a minute (steady)",
              title="API calls a minute")
    stale.axhline(2 * POLL_INTERVAL, color="grey", linestyle=":", label="goal: 2 x poll interval")
    stale.set(xscale=scale, xlabel="resources (10 projects)", ylabel="seconds", title="Status staleness")
    for ax in (calls, stale):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,1000,3000")
    parser.add_argument("--designs", default="batched,direct")
    parser.add_argument("--window", type=float, default=180.0, help="seconds of each measurement window")
    parser.add_argument("--samples", type=int, default=20, help="phase changes per steady window")
    parser.add_argument("--ready-timeout", type=float, default=300.0)
    parser.add_argument("--settle-timeout", type=float, default=2400.0,
                        help="seconds to wait after Ready for the health reads owed (batched design)")
    parser.add_argument("--default-limits-n", type=int, default=1000, help="N of the default-limits run (0: skip)")
    parser.add_argument("--out", default=str(ROOT / "bench-results"))
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args()
    if args.window < 2 * POLL_INTERVAL:
        log(f"warning: a window of {args.window:.0f}s is shorter than two poll intervals ({POLL_INTERVAL:.0f}s): "
            "steady-state rates and their ratios are not meaningful")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the processes of the run on SIGTERM too
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs: list[Run] = []
    designs = args.designs.split(",")
    for n in (int(s) for s in args.sizes.split(",")):
        for design in designs:
            runs.append(one_run(design, n, "lifted", args))
            (out / "bench.json").write_text(json.dumps([asdict(r) for r in runs], indent=2))
    if args.default_limits_n:
        for design in designs:
            runs.append(one_run(design, args.default_limits_n, "default", args))
            (out / "bench.json").write_text(json.dumps([asdict(r) for r in runs], indent=2))
    meta = {"poll_interval": POLL_INTERVAL, "fast_poll_interval": FAST_POLL_INTERVAL, "projects": PROJECTS,
            "window": args.window, "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M")}
    (out / "bench.json").write_text(json.dumps({"meta": meta, "runs": [asdict(r) for r in runs]}, indent=2))
    text = table(runs)
    (out / "table.md").write_text(text + "\n")
    chart(runs, out / "bench.png")
    print(text)
    print(f"\nwrote {out / 'bench.json'}, {out / 'bench.png'}, {out / 'table.md'}")
    if any(r.staleness for r in runs):
        all_stale = [s for r in runs for s in r.staleness]
        log(f"staleness over all runs: median {statistics.median(all_stale):.1f}s")


if __name__ == "__main__":
    main()
