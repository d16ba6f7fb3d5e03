"""The long form of the chaos suite (``make chaos-long``): every scenario with many trials."""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..controlplane import ControlPlane
from ..kubectl import default_kubectl
from .lab import Lab
from .results import Result, table
from .scenarios.apiserver import scenario_apiserver
from .scenarios.kill import scenario_operator_kill
from .scenarios.outage import scenario_api_outage
from .scenarios.ratelimit import rate_limits_in_parallel
from .scenarios.secrets import scenario_secrets
from .scenarios.webhooks import scenario_webhooks

__all__ = ["SCENARIOS", "long_run", "run_all"]


#: Scenario names for ``--only``.
SCENARIOS = ("kill", "outage", "ratelimit", "kube", "secrets", "webhooks")


def run_all(lab: Lab, rounds: int, outage_trials: int, rl_windows: int, kube_trials: int,
            only: Sequence[str] = (), seed: int = 6, webhook_trials: int = 10) -> list[Result]:
    """Every scenario (or those named in ``only``, see :data:`SCENARIOS`) with the given trial
    counts (the long form); returns all rows."""
    results: list[Result] = []

    def step(label: str, fn: Callable[[], list[Result] | Result]) -> None:
        t0 = time.monotonic()
        print(f"[chaos] {label} ...", file=sys.stderr, flush=True)
        try:
            out = fn()
        except Exception as exc:  # a scenario that crashed is a failed row, not a lost run
            out = Result(label, 0, "scenario ran to completion", [f"scenario crashed: {exc!r}"])
        rows = out if isinstance(out, list) else [out]
        for row in rows:
            row.notes["seconds"] = round(time.monotonic() - t0, 1)
            print(f"[chaos]   {row.fault}: {row.summary()}", file=sys.stderr, flush=True)
        results.extend(rows)

    chosen = set(only or SCENARIOS)
    if "kill" in chosen:
        step("operator kills", lambda: scenario_operator_kill(lab, rounds, seed))
    if "outage" in chosen:
        step("API outage (503)", lambda: scenario_api_outage(lab, outage_trials, "503"))
        step("API outage (dropped connections)", lambda: scenario_api_outage(lab, outage_trials, "drop"))
    if "ratelimit" in chosen:
        step("rate limits", lambda: rate_limits_in_parallel(lab, rl_windows))
    if "kube" in chosen:
        step("apiserver cut and restart", lambda: scenario_apiserver(lab, kube_trials))
    if "secrets" in chosen:
        step("key leak scan", lambda: scenario_secrets(lab))
    if "webhooks" in chosen:
        step("webhooks: forged, replayed, unknown flood, receiver down", lambda: scenario_webhooks(lab, webhook_trials))
    return results


def long_run(out: Path, *, rounds: int, outage_trials: int, rl_windows: int, kube_trials: int,
             only: Sequence[str] = (), seed: int = 6, webhook_trials: int = 10, kubeconfig: str | None = None,
             arguments: dict[str, Any] | None = None) -> int:
    """:func:`run_all` on ``kubeconfig``'s cluster (default: a local control plane started for it),
    print the table, write ``out`` (JSON: seconds, ``arguments``, rows); return 0 if every row
    passed, else 1."""
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="oec-chaos-") as tmp, contextlib.ExitStack() as stack:
        if kubeconfig:
            kubectl = default_kubectl()
        else:
            cp = stack.enter_context(ControlPlane())
            kubeconfig, kubectl = str(cp.kubeconfig), str(cp.kubectl)
        lab = stack.enter_context(Lab(kubeconfig, kubectl, Path(tmp)))
        results = run_all(lab, rounds, outage_trials, rl_windows, kube_trials, only, seed, webhook_trials)
    print(table(results))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "seconds": round(time.monotonic() - t0, 1),
        "arguments": arguments or {},
        "results": [{**asdict(r), "result": r.summary()} for r in results],
    }, indent=2) + "\n")
    print(f"\n{out} written ({time.monotonic() - t0:.0f} s)", file=sys.stderr)
    return 0 if all(r.passed for r in results) else 1
