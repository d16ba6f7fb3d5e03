"""Chaos harness for oec-operator: faults against the real thing, counted (``oec_testkit.chaos``).

Everything there is real: a kube-apiserver + etcd (``oec_testkit.controlplane``), the OEC.sh API
simulator as a process, and the operator as a process (``python -m oec_operator``) that gets
SIGKILLed, cut off from the API or from the apiserver. Each scenario function runs a number of
trials and returns :class:`Result` rows (fault, trials, what was checked, violations); nothing
there asserts, so the same scenarios serve ``tests/chaos/test_chaos.py`` (few trials, zero
violations asserted, collected by ``make test``) and the long benchmark-style run::

    python tools/chaos.py --rounds 100      # make chaos-long; JSON in bench-results/chaos-results.json

which starts its own control plane and prints a table (fault, trials, checked, result).

The invariants (the promise of issue 6): per resource at most one environment ever exists in the
simulator (``/_sim/environments`` includes deleted ones); no environment is left behind after its
resource with ``deletionPolicy: Delete`` is gone; no environment is destroyed while its resource
exists or when the policy is ``Orphan``; after the fault clears every resource converges
(``Ready=True`` for its current generation) with the last ``spec.branch`` applied; the API key
appears nowhere the operator writes. Webhooks (issue 14, ``scenarios/webhooks.py``): a forged,
replayed or unknown delivery costs at most one API read and never changes status; changes made
while the receiver is down all show once it is back. Timings are in seconds throughout.
"""

from .kube import Kube
from .lab import Lab, Sim, new_key
from .ledger import Ledger, Tracked
from .proxy import Proxy
from .relay import Relay
from .results import Result, table
from .run import SCENARIOS, long_run, run_all
from .scenarios.apiserver import scenario_apiserver
from .scenarios.kill import scenario_operator_kill
from .scenarios.outage import backoff_bound, scenario_api_outage
from .scenarios.ratelimit import rate_limits_in_parallel, scenario_rate_limit
from .scenarios.secrets import leak_needles, scenario_secrets
from .scenarios.webhooks import scenario_webhooks

__all__ = [
    "SCENARIOS",
    "Kube",
    "Lab",
    "Ledger",
    "Proxy",
    "Relay",
    "Result",
    "Sim",
    "Tracked",
    "backoff_bound",
    "leak_needles",
    "long_run",
    "new_key",
    "rate_limits_in_parallel",
    "run_all",
    "scenario_api_outage",
    "scenario_apiserver",
    "scenario_operator_kill",
    "scenario_rate_limit",
    "scenario_secrets",
    "scenario_webhooks",
    "table",
]
