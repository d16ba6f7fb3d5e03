"""`make demo`: a local control plane, the OEC.sh simulator and the operator, all as background
processes on loopback, and a sample OdooEnvironment watched from creation to Running
(``oec_testkit.demo``).

    python tools/demo.py up     --state-dir .demo   # start (idempotent) and watch the sample
    python tools/demo.py status --state-dir .demo   # processes and `kubectl get odooenv`
    python tools/demo.py down   --state-dir .demo   # stop everything it started

Set KUBECONFIG_DEMO=/path/to/kubeconfig to use an existing cluster instead of the local control
plane (the CRD is installed there; the operator and the simulator still run here).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from oec_testkit import demo
from oec_testkit.manifests import ROOT


def main() -> None:
    """Parse the command line and run the action; exit with the error's message if it fails."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("up", "status", "down"))
    parser.add_argument("--state-dir", type=Path, default=ROOT / ".demo")
    args = parser.parse_args()
    try:
        {"up": demo.up, "status": demo.status, "down": demo.down}[args.action](args.state_dir.resolve())
    except RuntimeError as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
