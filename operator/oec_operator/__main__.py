"""``oec-operator``: run the operator (``kopf run`` with the project's defaults).

``oec-operator [KOPF RUN OPTIONS]`` = ``kopf run --standalone -m oec_operator.handlers`` plus
``--all-namespaces`` unless ``-n/--namespace`` or ``-A`` is given. Every ``kopf run`` option works
(``--liveness``, ``--verbose``, ``--log-format json``...). Configuration: ``OEC_*`` variables,
see :mod:`oec_operator.config`.
"""

from __future__ import annotations

import sys

from kopf.cli import main as kopf_main


def kopf_args(argv: list[str]) -> list[str]:
    """The ``kopf`` command line for our arguments."""
    scoped = any(a in ("-A", "--all-namespaces", "-n") or a.startswith("--namespace") for a in argv)
    return ["run", "--standalone", "-m", "oec_operator.handlers", *([] if scoped else ["--all-namespaces"]), *argv]


def main() -> None:
    """Console-script entry point."""
    kopf_main(args=kopf_args(sys.argv[1:]), prog_name="oec-operator")


if __name__ == "__main__":
    main()
