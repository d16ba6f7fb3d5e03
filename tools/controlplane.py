"""A local kube-apiserver + etcd that keeps running after the command returns (``oec_testkit``).

    python tools/controlplane.py up     --state-dir DIR   # prints DIR/kubeconfig
    python tools/controlplane.py status --state-dir DIR   # exit 0 = healthy
    python tools/controlplane.py down   --state-dir DIR
"""

from __future__ import annotations

import argparse
import json
import sys

from oec_testkit import detached
from oec_testkit.controlplane import APISERVER_READY_TIMEOUT, ControlPlaneError


def main(argv: list[str] | None = None) -> int:
    """Run one command; return the exit status (2: the control plane failed)."""
    parser = argparse.ArgumentParser(description="Local kube-apiserver + etcd control plane")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_ in (("up", "start detached (idempotent); print the kubeconfig path"),
                        ("down", "stop and remove data, certificates and kubeconfig (logs stay)"),
                        ("status", "print status JSON; exit 0 if healthy")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--state-dir", default=str(detached.default_state_dir()), help="default: %(default)s")
        if name == "up":
            p.add_argument("--bin-dir", default=None, help="default: $OEC_K8S_BIN_DIR or the cache dir")
            p.add_argument("--timeout", type=float, default=APISERVER_READY_TIMEOUT, help="readyz timeout (s)")
        if name == "down":
            p.add_argument("--keep-state", action="store_true", help="keep data dir and certificates")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            print(detached.up(args.state_dir, args.bin_dir, args.timeout).kubeconfig)
        elif args.command == "down":
            detached.down(args.state_dir, args.keep_state)
        else:
            info = detached.status(args.state_dir)
            print(json.dumps(info, indent=2))
            return 0 if info["healthy"] else 1
    except ControlPlaneError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
