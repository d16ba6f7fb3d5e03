"""`make bench`: the operator at scale against the naive design (``oec_testkit.bench``), in the
shipped configuration; results in ``bench-results/``.

    python tools/bench.py [--sizes 100,1000,3000] [--window 180] [--designs batched,direct,push]
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from oec_testkit.bench import Options, run_benchmark
from oec_testkit.manifests import ROOT


def main() -> None:
    """Parse the command line and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,1000,3000")
    parser.add_argument("--designs", default="batched,direct,push")
    parser.add_argument("--window", type=float, default=180.0, help="seconds of each measurement window")
    parser.add_argument("--quiet-window", type=float, default=0.0,
                        help="seconds of the window with no change (default: --window)")
    parser.add_argument("--push-timeout", type=float, default=600.0,
                        help="seconds the push design may take to reach push mode before its windows")
    parser.add_argument("--samples", type=int, default=20, help="phase changes per steady window")
    parser.add_argument("--ready-timeout", type=float, default=300.0)
    parser.add_argument("--settle-timeout", type=float, default=2400.0,
                        help="seconds to wait after Ready for the health reads owed (batched design)")
    parser.add_argument("--default-limits-n", type=int, default=1000, help="N of the default-limits run (0: skip)")
    parser.add_argument("--out", default=str(ROOT / "bench-results"))
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the processes of the run on SIGTERM too
    run_benchmark(Options(
        sizes=tuple(int(s) for s in args.sizes.split(",")), designs=tuple(args.designs.split(",")),
        window=args.window, quiet_window=args.quiet_window, push_timeout=args.push_timeout, samples=args.samples,
        ready_timeout=args.ready_timeout,
        settle_timeout=args.settle_timeout, default_limits_n=args.default_limits_n, out=Path(args.out),
        keep_logs=args.keep_logs,
    ))


if __name__ == "__main__":
    main()
