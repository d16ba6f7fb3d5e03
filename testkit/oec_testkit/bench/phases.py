"""The measured phases of a benchmark run: create until Ready, settle, the steady window with
changes, the quiet window, deliveries stopped mid-run (push), and the creation rate at the
default write limit. Each fills its fields of a :class:`~.model.Run`."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

from ..manifests import is_ready
from .config import POLL_INTERVAL, STRETCH
from .model import Run
from .stack import Stack, log, manifests

__all__ = [
    "Follower",
    "calm",
    "create_and_wait",
    "creation_rate",
    "deliveries_stopped",
    "percentile",
    "quiet",
    "settle",
    "steady_state",
    "wait_push",
    "webhook_state",
]


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


class Follower:
    """Follows changes made in the simulator until ``status.phase`` shows them: one thread GETs
    each pending resource every ``period`` s (``stack.one``) and records the seconds from the
    change to the first GET that shows it, or None after ``follow_for`` s (a missed change)."""

    def __init__(self, stack: Stack, follow_for: float, period: float = 0.25) -> None:
        self.stack, self.follow_for, self.period = stack, follow_for, period
        self.pending: dict[str, tuple[str, float]] = {}  # name -> (phase, changed at)
        self.results: list[tuple[float, float | None]] = []  # (changed at, staleness or None)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def add(self, name: str, phase: str, changed_at: float) -> None:
        """Follow ``name`` until its ``status.phase`` is ``phase`` (changed at ``changed_at``, monotonic)."""
        with self._lock:
            self.pending[name] = (phase, changed_at)

    def _run(self) -> None:
        while not (self._stop.is_set() and not self.pending):
            with self._lock:
                pending = list(self.pending.items())
            for name, (phase, changed_at) in pending:
                try:
                    shown = self.stack.one(name).get("status", {}).get("phase") == phase
                except Exception:  # a slow or failed GET: look again next round
                    shown = False
                now = time.monotonic()
                if shown or now > changed_at + self.follow_for:
                    with self._lock:
                        self.pending.pop(name, None)
                        self.results.append((changed_at, now - changed_at if shown else None))
            time.sleep(self.period)

    def wait(self) -> list[tuple[float, float | None]]:
        """Wait until every change showed or timed out; return ``(changed at, staleness or None)``."""
        self._stop.set()
        self._thread.join()
        return sorted(self.results)


def untouched(stack: Stack, k: int) -> list[tuple[str, str]]:
    """``k`` random ``(name, environment id)`` of resources whose phase is ``running`` (none an
    earlier phase changed: they are ``stopped``)."""
    targets = [(o["metadata"]["name"], o["status"]["environmentId"]) for o in stack.objects()
               if o.get("status", {}).get("environmentId") and o["status"].get("phase") == "running"]
    random.shuffle(targets)
    return targets[:k]


def stop_at(stack: Stack, t0: float, moments: list[float], follower: Follower) -> None:
    """Stop one running environment in the simulator (as in its dashboard: ``PATCH
    /_sim/environments/{id}``, which makes it send ``environment.status_changed``) at each of
    ``moments`` (seconds after ``t0``) and follow each with ``follower``."""
    for moment, (name, env_id) in zip(moments, untouched(stack, len(moments)), strict=False):
        time.sleep(max(0.0, t0 + moment - time.monotonic()))
        stack.admin.patch_environment(env_id, status="stopped")
        follower.add(name, "stopped", time.monotonic())


def follow_for(stack: Stack) -> float:
    """Seconds after which a change not shown counts as missed: three steady intervals (stretched
    for ``push``, whose safety net is its stretched poll)."""
    return (STRETCH + 3 if stack.design == "push" else 3) * POLL_INTERVAL


def steady_state(stack: Stack, run: Run, window: float, samples: int) -> None:
    """Counters over ``window`` seconds while ``samples`` environments are stopped at random moments
    (for ``push`` also the webhook deliveries the simulator made meanwhile)."""
    push = stack.design == "push"
    # Every change has time to show before the window ends, so its reads are counted in it.
    latest = window - (15.0 if push else 2.5 * POLL_INTERVAL)
    moments = sorted(random.uniform(0, latest) for _ in range(samples)) if latest > 0 else []  # noqa: S311
    delivered = stack.deliveries() if push else 0
    before, t0 = stack.stats(), time.monotonic()
    follower = Follower(stack, follow_for(stack))
    stop_at(stack, t0, moments, follower)
    time.sleep(max(0.0, t0 + window - time.monotonic()))
    after, minutes = stack.stats(), (time.monotonic() - t0) / 60
    results = [r for _, r in follower.wait()]
    run.reads_per_minute = (after["reads"] - before["reads"]) / minutes
    run.writes_per_minute = (after["writes"] - before["writes"]) / minutes
    run.rate_limited = after["rate_limited"] - before["rate_limited"]
    run.staleness = [r for r in results if r is not None]
    run.staleness_missed = sum(r is None for r in results)
    run.staleness_p50 = percentile(run.staleness, 0.5)
    run.staleness_p99 = percentile(run.staleness, 0.99)
    if push:
        run.deliveries = stack.deliveries() - delivered


def wait_push(stack: Stack, timeout: float) -> tuple[float, float | None]:
    """Wait up to ``timeout`` s until the operator's key is in push mode and its webhook is active
    in the simulator (deliveries flow); return the seconds waited and the mode then (1 push, 0
    poll, None unknown)."""
    t0 = time.monotonic()

    def mode() -> float | None:
        hooks = stack.webhooks()
        return stack.push_mode() if hooks and all(h["is_active"] for h in hooks) else 0.0

    now = mode()
    while now != 1 and time.monotonic() - t0 < timeout:
        time.sleep(2)
        now = mode()
    return time.monotonic() - t0, now


def webhook_state(stack: Stack) -> dict[str, Any]:
    """The simulator's view of the operator's webhook(s): active or not, ``failure_count``, and
    the delivery records by outcome (all summed)."""
    hooks = stack.webhooks()
    outcomes: dict[str, int] = {}
    for hook in hooks:
        for outcome, n in (hook.get("deliveries") or {}).items():
            outcomes[outcome] = outcomes.get(outcome, 0) + n
    return {"webhooks": len(hooks), "is_active": all(h["is_active"] for h in hooks) if hooks else None,
            "failure_count": sum(h["failure_count"] for h in hooks), "deliveries": outcomes}


def calm(stack: Stack, timeout: float) -> None:
    """Wait up to ``timeout`` s until nothing is in flight: every resource ``running`` again (the
    operator starts an environment stopped in the dashboard, ``spec.powerState: Running``) with
    its health read in that phase, then a few seconds for the last writes' reads."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if all(o.get("status", {}).get("phase") == "running"
               and (o.get("status", {}).get("health") or {}).get("phase") == "running" for o in stack.objects()):
            time.sleep(10)
            log(f"  calm {time.monotonic() - t0:.0f}s after the steady window")
            return
        time.sleep(5)
    log(f"  not calm {timeout:.0f}s after the steady window; measuring anyway")


def quiet(stack: Stack, run: Run, window: float) -> None:
    """API reads a minute over ``window`` seconds in which nothing changes (for ``push`` also
    its push mode at the start and the end)."""
    push = stack.design == "push"
    modes = [stack.push_mode()] if push else []
    before, t0 = stack.stats(), time.monotonic()
    time.sleep(window)
    after, minutes = stack.stats(), (time.monotonic() - t0) / 60
    run.quiet_reads_per_minute = (after["reads"] - before["reads"]) / minutes
    run.push_mode_quiet = [*modes, stack.push_mode()] if push else []
    log(f"  quiet: {run.quiet_reads_per_minute:.1f} reads a minute; push mode {run.push_mode_quiet}")


def deliveries_stopped(stack: Stack, run: Run, window: float, samples: int) -> None:
    """Deliveries stopped mid-run (push design): the simulator stops sending webhooks, then
    ``samples`` environments are stopped at random moments over ``max(window, (STRETCH + 1) x
    POLL_INTERVAL)`` seconds (longer than a stretched interval, so that some changes come after
    the fall-back). Records their staleness, how long after the stop (and after the first change)
    the key's ``oec_operator_push_mode`` fell to 0, and the staleness of the changes made after
    that. Deliveries are resumed at the end."""
    span = max(window, (STRETCH + 1) * POLL_INTERVAL)
    moments = sorted(random.uniform(0, span) for _ in range(samples))  # noqa: S311
    stack.set_deliveries(False)
    t0 = time.monotonic()
    switched: list[float] = []
    done = threading.Event()

    def watch_mode() -> None:
        while not done.is_set():
            if stack.push_mode() == 0:
                switched.append(time.monotonic())
                return
            done.wait(1.0)

    watcher = threading.Thread(target=watch_mode, daemon=True)
    watcher.start()
    follower = Follower(stack, follow_for(stack))
    stop_at(stack, t0, moments, follower)
    results = follower.wait()
    done.set()
    watcher.join()
    stack.set_deliveries(True)
    run.stopped_staleness = [r for _, r in results if r is not None]
    run.stopped_missed = sum(r is None for _, r in results)
    run.stopped_p50 = percentile(run.stopped_staleness, 0.5)
    run.stopped_p99 = percentile(run.stopped_staleness, 0.99)
    if switched:
        run.poll_mode_after = switched[0] - t0
        if results:
            run.poll_mode_after_change = switched[0] - results[0][0]
        later = [r for at, r in results if at >= switched[0] and r is not None]
        run.stopped_after_switch_p99 = percentile(later, 0.99)
    log(f"  deliveries stopped: staleness p50 {run.stopped_p50} p99 {run.stopped_p99} missed {run.stopped_missed}; "
        f"poll mode {run.poll_mode_after} s after the stop")


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
