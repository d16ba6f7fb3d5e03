"""The chaos suite's long form (``make chaos-long``): every scenario of ``oec_testkit.chaos`` with
many trials on its own local control plane; prints the table (fault, trials, checked, result) and
writes the JSON. Exit status 1 if any row has violations.

    python tools/chaos.py --rounds 100      # JSON in bench-results/chaos-results.json
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from oec_testkit.chaos import SCENARIOS, long_run


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=100, help="operator kill rounds (3 trials each)")
    parser.add_argument("--outage-trials", type=int, default=5, help="trials per outage form")
    parser.add_argument("--rl-windows", type=int, default=3, help="rate-limit windows (minutes) per 429 form")
    parser.add_argument("--kube-trials", type=int, default=10, help="apiserver cuts + restarts")
    parser.add_argument("--webhook-trials", type=int, default=10,
                        help="trials per webhook fault (forged, replayed, receiver down; the flood runs once)")
    parser.add_argument("--out", default="bench-results/chaos-results.json", help="JSON output (default %(default)s)")
    parser.add_argument("--kubeconfig", help="use this cluster (default: start a local control plane)")
    parser.add_argument("--only", default="", help=f"comma-separated subset of {','.join(SCENARIOS)}")
    parser.add_argument("--seed", type=int, default=6, help="seed of the kill scenario (default %(default)s)")
    args = parser.parse_args(argv)
    only = [o for o in args.only.split(",") if o]
    unknown = set(only) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s) {sorted(unknown)}; choose from {SCENARIOS}")
    return long_run(Path(args.out), rounds=args.rounds, outage_trials=args.outage_trials, rl_windows=args.rl_windows,
                    kube_trials=args.kube_trials, only=only, seed=args.seed, webhook_trials=args.webhook_trials,
                    kubeconfig=args.kubeconfig,
                    arguments=vars(args))


if __name__ == "__main__":
    sys.exit(main())
