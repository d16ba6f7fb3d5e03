"""An OEC.sh API outage (503s or dropped connections) during a create, an update and a delete."""

from __future__ import annotations

import math
import random
import time

from oec_operator.settings import FINALIZER

from ..lab import FAST_POLL, Lab, new_key
from ..ledger import Ledger, ready_pool
from ..results import Result

__all__ = ["backoff_bound", "scenario_api_outage"]


def backoff_bound(outage: float, streams: int = 2) -> int:
    """Most API calls one resource may make during an ``outage`` of that many seconds.

    README "Errors": failures back off from ``OEC_FAST_POLL_INTERVAL`` (F), doubling, ±20 %
    jitter. With delays >= 0.8·F·2^i the attempts that fit in D seconds are at most
    ``floor(log2(D / (0.8·F) + 1)) + 1``, plus one request already in flight when it started;
    ``streams`` retry loops may run per resource (its kopf handler and its poll timer). A
    hot-looping operator (one call per 0.5 s tick) would exceed this from about D = 6 s on.
    """
    per_stream = math.floor(math.log2(outage / (0.8 * FAST_POLL) + 1)) + 2
    return streams * per_stream


def scenario_api_outage(lab: Lab, trials: int, form: str, outage: float = 12.0, seed: int = 7) -> list[Result]:
    """An API outage of ``outage`` s (4 steady poll intervals) hitting a create, an update and a
    delete. ``form``: ``"503"`` (every request answered 503 by the simulator's fault queue until
    cleared) or ``"drop"`` (a proxy closes every connection without an answer). During the
    outage the updated resource gets a second branch change and another resource is deleted.

    Checked: the deleted resource keeps its finalizer through the outage and its environment
    survives it; afterwards everything converges (last branch applied, deletion completed); and
    the API calls made during the outage stay within :func:`backoff_bound` per resource.
    Returns two rows: the outage, and the deletion while the API is down.
    """
    rng = random.Random(seed)  # noqa: S311 (reproducible chaos, not crypto)
    key = new_key("outage")
    kube = lab.namespace(f"outage-{form}")
    sim = lab.simulator([key])
    proxy = lab.proxy(sim.port) if form == "drop" else None
    api_url = f"http://127.0.0.1:{proxy.port}/api/public/v1" if proxy else sim.api_url
    project = sim.new_project("outage")
    ledger = Ledger(kube, sim, project)
    lab.operator(kube, api_url, key)
    bad: list[str] = []
    held: list[str] = []
    counts: list[int] = []
    worst: list[int] = []
    per_resource = backoff_bound(outage)
    for t in range(trials):
        upd, dele = f"u{t}", f"d{t}"
        ledger.create(upd)
        ledger.create(dele, policy="Delete")
        ready_pool(ledger, [upd, dele], bad, f"trial {t} setup")
        new = f"c{t}"
        ledger.create(new, branch=f"c{t}")
        ledger.set_branch(upd, f"t{t}-a")
        time.sleep(rng.uniform(0, 0.6))  # the outage starts somewhere inside the three requests
        seq0 = sim.last_seq()
        refused0 = len(proxy.refused) if proxy else 0
        started = time.monotonic()
        if proxy:
            proxy.down()
        else:
            sim.inject(status=503, count=1_000_000)
        time.sleep(outage / 3)
        ledger.set_branch(upd, f"t{t}-b")  # changed during the outage: must not be lost
        env_of_dele = next(e for e in sim.environments() if e["project_id"] == project and e["name"] == dele)
        ledger.delete(dele)  # deleted while the API is down
        time.sleep(max(0.0, outage - (time.monotonic() - started)))
        obj = kube.get(dele)
        if obj is None or FINALIZER not in obj["metadata"].get("finalizers", []):
            held.append(f"trial {t}: {dele} lost its finalizer while the API was down")
        env_now = next(e for e in sim.environments() if e["id"] == env_of_dele["id"])
        if env_now.get("deleted"):
            held.append(f"trial {t}: environment of {dele} gone during the outage")
        if proxy:
            proxy.up()
            paths = [line for _, line in proxy.refused[refused0:]]
        else:
            sim.clear_faults()
            paths = [f"{r['method']} {r['path']}" for r in sim.requests(seq0) if r["status"] == 503]
        # Every resource of earlier trials still polls too: the bound scales with the live ones.
        live = len(ledger.live()) + 1  # + the one deleted during the outage
        bound = live * per_resource
        counts.append(len(paths))
        if len(paths) > bound:
            bad.append(f"trial {t}: {len(paths)} API calls during a {outage:.0f}s outage "
                       f"({live} resources, bound {bound})")
        env_ids = {e["id"] for e in sim.environments() if e["project_id"] == project}
        per_env = {i: sum(1 for p in paths if i in p) for i in env_ids}
        worst.append(max(per_env.values(), default=0))
        for env_id, n in per_env.items():
            if n > per_resource:
                bad.append(f"trial {t}: {n} calls for environment {env_id} during the outage (bound {per_resource})")
        for name in ledger.wait_converged([new, upd, dele]):
            (held if name == dele else bad).append(f"trial {t}: {name} did not converge after the outage")
        bad.extend(f"trial {t}: {v}" for v in ledger.safety_violations() if f"trial {t}: {v}" not in bad)
    label = {"503": "every request answered 503", "drop": "connections dropped, no answer"}[form]
    return [
        Result(f"API outage {outage:.0f}s ({label}) during create, update, delete", trials,
               f"converges afterwards, last branch applied, no duplicate; calls during the outage <= "
               f"{per_resource} per resource", bad,
               {"calls_during_outage": counts, "most_calls_for_one_environment": worst,
                "bound_per_resource": per_resource}),
        Result(f"resource deleted while the API is down ({label})", trials,
               "finalizer held and environment kept during the outage; deletion completes after it",
               held),
    ]
