"""`make bench`: the operator at scale against the naive design, on the real control plane.

The operator runs in the shipped configuration: as the ServiceAccount of ``deploy/rbac``, its
default API key read from a Secret (``OEC_API_KEY_SECRET``), not from ``OEC_API_KEY``.

For each design (``batched``, the default, and ``direct``, the naive one: every resource reads its
environment and status each interval, no shared limiter) and each N it starts a fresh
kube-apiserver + etcd, a fresh simulator with 10 projects and the operator as a real process, and:

1. creates N OdooEnvironments spread over the projects (``kubectl create`` of one list) with the
   simulator's write limit lifted and its read limit at the default 120 a minute, and times all
   ``Ready=True`` after the create returned;
2. measures the steady state over a window: API reads and writes a minute and 429 answers (the
   simulator's ``/_sim/stats``), and status staleness: environments are stopped in the simulator
   at random moments and the time until the resource's ``status.phase`` shows it is recorded;
3. reads the operator's peak RSS (``VmHWM``) and CPU seconds from ``/proc``;
4. measures the operator's requests to the kube-apiserver a second in each phase (create, settle,
   steady), all of them and the Secret GETs, from the apiserver's own ``/metrics`` (``apiserver.py``).

Once per design, N = 1000 new resources at the default limits (20 writes a minute): the creation
rate over a window and the 429 count.

Results: ``bench-results/bench.json``, ``bench-results/bench.png`` and a Markdown table on stdout
(also ``bench-results/table.md``). A benchmark, not a test: it asserts nothing and prints what it
measured. Command line: ``python tools/bench.py [--sizes 100,1000,3000] [--window 180] [--designs ...]``.
"""

from .model import Run
from .run import Options, one_run, run_benchmark

__all__ = ["Options", "Run", "one_run", "run_benchmark"]
