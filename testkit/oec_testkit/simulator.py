"""The OEC.sh API simulator as a child process on 127.0.0.1: :func:`start_simulator`.

Its admin API is driven with the simulator's own client, :class:`oec_simulator.admin_client.SimulatorAdmin`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from oec_simulator.admin_client import SimulatorAdmin

from .processes import Child, Isolation
from .waiting import WaitTimeout, wait_until

__all__ = ["SimulatorProcess", "start_simulator"]


@dataclass
class SimulatorProcess:
    """A simulator started by :func:`start_simulator`: the process, its port and its log file."""

    proc: Child
    port: int

    @property
    def log(self) -> Path:
        """Its stdout and stderr."""
        assert self.proc.log is not None
        return self.proc.log

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """The public API's base URL, ``{base_url}/api/public/v1``."""
        return f"{self.base_url}/api/public/v1"

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited after ``timeout`` s."""
        self.proc.stop(timeout)


def start_simulator(args: Sequence[str], *, port_file: Path, log: Path, timeout: float = 30.0,
                    isolation: Isolation = "child") -> SimulatorProcess:
    """Run ``python -m oec_simulator --port 0 --port-file PORT_FILE *args``, its output appended
    to ``log``; return once it listens and ``/_sim/health`` answers.

    Raises :class:`RuntimeError` (with the end of the log) if it exits or is not up within
    ``timeout`` s; it is stopped then.
    """
    port_file.unlink(missing_ok=True)
    child = Child.start([sys.executable, "-m", "oec_simulator", "--port", "0", "--port-file", str(port_file), *args],
                        log=log, isolation=isolation)

    def port() -> int:
        if not child.alive():
            raise RuntimeError("exited")
        text = port_file.read_text().strip() if port_file.exists() else ""
        return int(text) if text else 0

    try:
        try:
            sim = SimulatorProcess(child, wait_until(port, timeout, 0.1, "the simulator's port file"))
        except (RuntimeError, WaitTimeout):
            raise RuntimeError(f"simulator did not start: {child.output()[-2000:]}") from None
        with SimulatorAdmin(sim.base_url, timeout=timeout) as admin:
            admin.health()
    except BaseException:
        child.stop()
        raise
    return sim
