"""The operator SIGKILLed while a create, an update and a delete are in flight."""

from __future__ import annotations

import json
import random
import time

from ..lab import Lab, new_key
from ..ledger import Ledger, ready_pool
from ..results import Result

__all__ = ["scenario_operator_kill"]


def scenario_operator_kill(lab: Lab, rounds: int, seed: int = 6, max_delay: float = 2.5) -> list[Result]:
    """SIGKILL the operator at a random moment while a create, an update and a delete are in
    flight (one of each per round), sometimes change the branch again while it is dead, restart
    it, and check the promise. Writes are slowed down (0.3-0.6 s latency) so kills land inside
    requests too. Returns three rows (creates, updates, deletes), ``rounds`` trials each."""
    rng = random.Random(seed)  # noqa: S311 (reproducible chaos, not crypto)
    key = new_key("kill")
    kube = lab.namespace("kill")
    sim = lab.simulator([key])
    sim.configure(latency={"create_environment": 0.6, "patch_environment": 0.3, "deploy": 0.3,
                           "delete_environment": 0.3})
    project = sim.new_project("kill")
    ledger = Ledger(kube, sim, project)
    op = lab.operator(kube, sim.api_url, key)
    bad: dict[str, list[str]] = {"create": [], "update": [], "delete": []}
    ledger.create("keep", policy="Delete")  # a bystander: never deleted, so never destroyed
    pool = [ledger.create(f"seed{i}", policy=rng.choice(["Delete", "Orphan", None])).name for i in range(2)]
    ready_pool(ledger, ["keep", *pool], bad["create"], "setup")
    delays = []
    for r in range(rounds):
        new = f"c{r}"
        ledger.create(new, policy=rng.choice(["Delete", "Orphan", None]), branch=f"c{r}")
        upd, dele = rng.sample(pool, 2)
        ledger.set_branch(upd, f"r{r}-a")
        ledger.delete(dele)
        delay = rng.uniform(0, max_delay)
        delays.append(round(delay, 2))
        time.sleep(delay)
        op.kill()
        if rng.random() < 0.5:  # a change the dead operator cannot see: must not be lost
            ledger.set_branch(upd, f"r{r}-b")
        if rng.random() < 0.3:  # sometimes the operator stays down a while
            time.sleep(rng.uniform(0.5, 3))
        op.start()
        for kind, name in (("create", new), ("update", upd), ("delete", dele)):
            for pending in ledger.wait_converged([name]):
                obj = kube.get(pending) or {}
                bad[kind].append(f"round {r}: {pending} did not converge after the kill "
                                 f"(status {json.dumps(obj.get('status', {}))[:300]})")
        for line in ledger.safety_violations():
            kind = "delete" if "destroyed" in line or "left behind" in line else "create"
            if line not in bad[kind]:
                bad[kind].append(f"round {r}: {line}")
        pool = [p for p in pool if p != dele] + [new]
    notes = {"kill_delays_s": delays, "operator_starts": op.starts}
    return [
        Result("operator SIGKILLed during a create", rounds,
               "one environment per resource (deleted ones included); resource Ready with that environment",
               bad["create"], notes),
        Result("operator SIGKILLed during an update (branch; half the time changed again while down)", rounds,
               "no lost update: Ready for the last generation, last branch in the API and status",
               bad["update"]),
        Result("operator SIGKILLed during a delete (policy Delete/Orphan/absent)", rounds,
               "Delete: environment destroyed; Orphan: kept; bystander never destroyed; resource gone",
               bad["delete"]),
    ]
