"""A whole benchmark: every design and size, written to JSON, a Markdown table and a chart."""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

from .apiserver import ApiserverCounts, rates, scrape
from .config import DESIGNS, FAST_POLL_INTERVAL, LIFTED, POLL_INTERVAL, PROJECTS, STRETCH
from .model import Run
from .phases import (
    calm,
    create_and_wait,
    creation_rate,
    deliveries_stopped,
    quiet,
    settle,
    steady_state,
    wait_push,
    webhook_state,
)
from .report import chart, push_table, table
from .stack import Stack, log

__all__ = ["Options", "one_run", "run_benchmark"]


@dataclass(frozen=True)
class Options:
    """What to run (seconds throughout): ``sizes`` and ``designs`` (of :data:`~.config.DESIGNS`),
    the measurement ``window``, the ``quiet_window`` with no change (0: ``window``), how long the
    push design may take to reach push mode before its steady and quiet windows (``push_timeout``;
    they run anyway after it), ``samples``
    phase changes per steady window (and per deliveries-stopped phase), the timeouts of Ready and
    of settling, the N of the default-limits run (0: none), where results go, and whether the
    logs of every run are kept there."""

    sizes: tuple[int, ...] = (100, 1000, 3000)
    designs: tuple[str, ...] = DESIGNS
    window: float = 180.0
    quiet_window: float = 0.0
    push_timeout: float = 600.0
    samples: int = 20
    ready_timeout: float = 300.0
    settle_timeout: float = 2400.0
    default_limits_n: int = 1000
    out: Path = Path("bench-results")
    keep_logs: bool = False


def one_run(design: str, n: int, limits: str, options: Options) -> Run:
    """One design at one N on a fresh stack: ``limits`` ``lifted`` (create, settle, steady window
    with changes, quiet window, and for ``push`` deliveries stopped mid-run) or ``default`` (the
    creation rate at 20 writes a minute)."""
    run = Run(design=design, n=n, limits=limits)
    log(f"{design} N={n} limits={limits}")
    with tempfile.TemporaryDirectory(prefix="oec-bench-") as tmp, ExitStack() as stack_exit:
        stack = Stack(Path(tmp), design, LIFTED if limits == "lifted" else 20, verbose=options.keep_logs)
        stack_exit.callback(stack.close)
        mark = scrape(stack.cp)

        def phase(name: str) -> ApiserverCounts:
            now = scrape(stack.cp)
            run.apiserver[name] = asdict(rates(mark, now))
            log(f"  apiserver during {name}: {run.apiserver[name]}")
            return now

        if limits == "lifted":
            create_and_wait(stack, run, options.ready_timeout)
            mark = phase("create")
            if design != "direct":
                settle(stack, run, options.settle_timeout)
                mark = phase("settle")
            if design == "push":
                run.webhook_after_settle = webhook_state(stack)
                log(f"  webhook after settling: {run.webhook_after_settle}")
                run.push_wait_seconds, run.push_mode_steady = wait_push(stack, options.push_timeout)
                log(f"  push mode {run.push_mode_steady} {run.push_wait_seconds:.0f}s after settling")
                time.sleep(1.1 * POLL_INTERVAL)  # the lists planned before the switch pass first
                mark = phase("push")
            steady_state(stack, run, options.window, options.samples)
            mark = phase("steady")
            if design != "direct":  # the naive design reads the same with or without changes
                calm(stack, options.settle_timeout)
                if design == "push":
                    waited, mode = wait_push(stack, options.push_timeout)
                    log(f"  push mode {mode} {waited:.0f}s after the steady window")
                    if waited > 5:  # lists planned before the switch still come at the normal interval
                        time.sleep(1.1 * POLL_INTERVAL)
                quiet(stack, run, options.quiet_window or options.window)
                mark = phase("quiet")
            if design == "push":
                deliveries_stopped(stack, run, options.window, options.samples)
                phase("stopped")
        else:
            creation_rate(stack, run, options.window)
            phase("create")
        run.rate_limited_total = stack.stats()["rate_limited"]
        run.peak_rss_mb, run.rss_mb, run.cpu_seconds = stack.usage()
        if options.keep_logs:
            target = options.out / "logs" / f"{design}-{n}-{limits}"
            target.mkdir(parents=True, exist_ok=True)
            for name in ("operator.log", "simulator.log"):
                (target / name).write_bytes((Path(tmp) / name).read_bytes())
            (target / "stats.json").write_text(json.dumps(stack.stats(), indent=1))
            if design == "push":
                (target / "webhooks.json").write_text(json.dumps(stack.webhooks(), indent=1))
    log(f"  {json.dumps({k: v for k, v in asdict(run).items() if k not in ('staleness', 'stopped_staleness')})}")
    return run


def run_benchmark(options: Options) -> list[Run]:
    """Every size and design with lifted limits, then the default-limits runs; write
    ``bench.json`` (after every run), ``table.md`` and ``bench.png`` to ``options.out`` and print
    the table; return the runs."""
    if options.window < 2 * POLL_INTERVAL:
        log(f"warning: a window of {options.window:.0f}s is shorter than two poll intervals ({POLL_INTERVAL:.0f}s): "
            "steady-state rates and their ratios are not meaningful")
    out = options.out
    out.mkdir(parents=True, exist_ok=True)
    runs: list[Run] = []
    for n in options.sizes:
        for design in options.designs:
            runs.append(one_run(design, n, "lifted", options))
            (out / "bench.json").write_text(json.dumps([asdict(r) for r in runs], indent=2))
    if options.default_limits_n:
        for design in (d for d in options.designs if d != "push"):  # push creates as batched does
            runs.append(one_run(design, options.default_limits_n, "default", options))
            (out / "bench.json").write_text(json.dumps([asdict(r) for r in runs], indent=2))
    meta = {"poll_interval": POLL_INTERVAL, "fast_poll_interval": FAST_POLL_INTERVAL, "projects": PROJECTS,
            "window": options.window, "quiet_window": options.quiet_window or options.window,
            "push_stretch": STRETCH, "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M"),
            "operator": "ServiceAccount of deploy/rbac, default key from a Secret (OEC_API_KEY_SECRET)"}
    (out / "bench.json").write_text(json.dumps({"meta": meta, "runs": [asdict(r) for r in runs]}, indent=2))
    text = table(runs)
    if any(r.design == "push" and r.limits == "lifted" for r in runs):
        text += "\n\nDeliveries stopped mid-run (push):\n\n" + push_table(runs)
    (out / "table.md").write_text(text + "\n")
    chart(runs, out / "bench.png")
    print(text)
    print(f"\nwrote {out / 'bench.json'}, {out / 'bench.png'}, {out / 'table.md'}")
    if any(r.staleness for r in runs):
        all_stale = [s for r in runs for s in r.staleness]
        log(f"staleness over all runs: median {statistics.median(all_stale):.1f}s")
    return runs
