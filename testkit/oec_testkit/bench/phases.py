"""The measured phases of a benchmark run: create until Ready, settle, the steady window, and the
creation rate at the default write limit. Each fills its fields of a :class:`~.model.Run`."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

from ..manifests import is_ready
from .config import POLL_INTERVAL
from .model import Run
from .stack import Stack, log, manifests

__all__ = ["create_and_wait", "creation_rate", "percentile", "settle", "steady_state"]


def percentile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (0..1, nearest rank) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def create_and_wait(stack: Stack, run: Run, timeout: float) -> None:
    """Create ``run.n`` resources in one ``kubectl create`` and time until all are Ready (``timeout`` s at most)."""
    started = time.monotonic()
    stack.kubectl("create", "-f", "-", input=manifests(run.n, stack.projects))
    run.apply_seconds = time.monotonic() - started
    applied = time.monotonic()
    log(f"  created {run.n} resources in {run.apply_seconds:.1f}s; waiting for Ready")
    while time.monotonic() - applied < timeout:
        run.ready_count = sum(is_ready(o) for o in stack.objects())
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
    """Create ``run.n`` resources and measure creates a minute over ``window`` s, from 30 s after the first."""
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
