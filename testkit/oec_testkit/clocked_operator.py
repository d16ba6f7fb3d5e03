"""``python -m oec_testkit.clocked_operator [ARGS]``: the operator (as ``python -m oec_operator
ARGS``) with its schedule clock (:mod:`oec_operator.clock`) under the test's control.

The clock is the wall clock plus an offset in seconds read from the file named by
``OEC_TEST_CLOCK_FILE`` (absent, empty or unreadable: 0), re-read at every look and at least every
:data:`RECHECK` seconds while a schedule sleeps. A test moves time forward by writing a larger
offset (:func:`set_offset`). Everything else in the process (kopf, the rate limiter, the HTTP
timeouts) keeps the real time. Nothing of this ships in the operator: it only calls
:func:`oec_operator.clock.install`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from oec_operator import clock
from oec_operator.__main__ import main as operator_main

#: Seconds between two reads of the offset file while a schedule sleeps.
RECHECK = 0.2
#: The environment variable naming the offset file.
CLOCK_FILE = "OEC_TEST_CLOCK_FILE"


def offset(path: Path) -> float:
    """The offset (s) in ``path``; 0 when there is none yet."""
    try:
        return float(path.read_text().strip() or 0)
    except (OSError, ValueError):
        return 0.0


def set_offset(path: Path, seconds: float) -> None:
    """Set the operator's clock to the wall clock plus ``seconds`` (atomically: a reader never
    sees a half-written file)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(repr(float(seconds)))
    tmp.replace(path)


def main() -> None:
    """Install the file-driven clock, then run the operator with the command line's arguments."""
    path = Path(os.environ[CLOCK_FILE])
    clock.install(lambda: time.time() + offset(path), recheck=RECHECK)
    operator_main()


if __name__ == "__main__":
    main()
