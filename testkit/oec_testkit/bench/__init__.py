"""`make bench`: the operator at scale against the naive design, on the real control plane.

The operator runs in the shipped configuration: as the ServiceAccount of ``deploy/rbac``, its
default API key read from a Secret (``OEC_API_KEY_SECRET``), not from ``OEC_API_KEY``.

For each design (``batched``, the default; ``direct``, the naive one: every resource reads its
environment and status each interval, no shared limiter; ``push``: batched with OEC.sh webhooks,
``docs/webhooks.md``: the operator's receiver on a loopback port, ``OEC_WEBHOOK_URL`` at it, the
simulator started with ``--allow-insecure-webhook-urls``) and each N it starts a fresh
kube-apiserver + etcd, a fresh simulator with 10 projects and the operator as a real process, and:

1. creates N OdooEnvironments spread over the projects (``kubectl create`` of one list) with the
   simulator's write limit lifted and its read limit at the default 120 a minute, and times all
   ``Ready=True`` after the create returned;
2. measures the steady state over a window: API reads and writes a minute and 429 answers (the
   simulator's ``/_sim/stats``), and status staleness: environments are stopped in the simulator
   at random moments (``PATCH /_sim/environments/{id}``, as in the dashboard: it makes the
   simulator send ``environment.status_changed``) and the time until the resource's
   ``status.phase`` shows it is recorded (looked for every 0.25 s; the operator then starts it
   again, ``spec.powerState: Running``, so the reads and writes with changes include that);
   then (batched, push), once every resource is running again with its health read, the API
   reads a minute over a quiet window with no change (``--quiet-window``; push waits for its
   key's ``oec_operator_push_mode`` to read 1 first, and its webhook to be active). Push only:
   *deliveries stopped mid-run*: the simulator stops sending (``POST /_sim/webhooks/deliveries``),
   environments keep being stopped over more than one stretched interval, and the staleness of those changes, how long
   until the key's push mode falls to 0 (poll) and that none is missed are recorded;
3. reads the operator's peak RSS (``VmHWM``) and CPU seconds from ``/proc``;
4. measures the operator's requests to the kube-apiserver a second in each phase (create, settle,
   steady), all of them and the Secret GETs, from the apiserver's own ``/metrics`` (``apiserver.py``).

Once per design (push creates as batched does: not repeated), N = 1000 new resources at the
default limits (20 writes a minute): the creation rate over a window and the 429 count.

Results: ``bench-results/bench.json``, ``bench-results/bench.png`` and a Markdown table on stdout
(also ``bench-results/table.md``). A benchmark, not a test: it asserts nothing and prints what it
measured. Command line: ``python tools/bench.py [--sizes 100,1000,3000] [--window 180] [--designs ...]``;
a short push run: ``--sizes 100 --window 120 --designs push --default-limits-n 0``.
"""

from .model import Run
from .run import Options, one_run, run_benchmark

__all__ = ["Options", "Run", "one_run", "run_benchmark"]
