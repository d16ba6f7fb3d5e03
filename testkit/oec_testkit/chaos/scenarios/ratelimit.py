"""429s in the three forms the API sends them: waited out, and the budget kept afterwards."""

from __future__ import annotations

import math
import threading
import time
from typing import Any

from ...waiting import WaitTimeout, wait_until
from ..lab import MIN_POLL, Lab, new_key, parse_time
from ..ledger import Ledger, ready_pool
from ..results import Result

__all__ = ["rate_limits_in_parallel", "scenario_rate_limit"]


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
    ready_pool(ledger, names, bad, "setup")
    resume_within = 3 + MIN_POLL + 4

    # 1. the told wait
    seq0 = sim.last_seq()
    rule: dict[str, Any] = {"kind": "rate_limit", "hint": form, "count": 1, "route": "list_environments"}
    if form != "none":
        rule["retry_after"] = 7
    sim.inject(**rule)
    try:
        first = wait_until(lambda: [parse_time(r["time"]) for r in sim.requests(seq0) if r["status"] == 429],
                           15, what="the injected 429", ignore=(Exception,))[0]
    except WaitTimeout:
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
