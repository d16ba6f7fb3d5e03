"""``oec-operator``: run the operator (``kopf run`` with the project's defaults).

``oec-operator [KOPF RUN OPTIONS]`` = ``kopf run -m oec_operator.handlers`` plus
``--all-namespaces`` unless ``-n/--namespace`` or ``-A`` is given. Every ``kopf run`` option works
(``--liveness``, ``--verbose``, ``--log-format json``, ``--standalone`` to turn peering off...).
Configuration: ``OEC_*`` variables, see :mod:`oec_operator.settings`.

Peering is on (``docs/kopf.md`` §6): kopf knows each process by ``POD_ID`` (the Deployment sets the
pod's name); outside a pod it is set here to ``HOST-PID``, unique per process.
"""

from __future__ import annotations

import os
import socket
import sys

from kopf.cli import main as kopf_main


def kopf_args(argv: list[str]) -> list[str]:
    """The ``kopf`` command line for our arguments."""
    scoped = any(a in ("-A", "--all-namespaces", "-n") or a.startswith("--namespace") for a in argv)
    return ["run", "-m", "oec_operator.handlers", *([] if scoped else ["--all-namespaces"]), *argv]


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("POD_ID", f"{socket.gethostname()}-{os.getpid()}")
    kopf_main(args=kopf_args(sys.argv[1:]), prog_name="oec-operator")


if __name__ == "__main__":
    main()
