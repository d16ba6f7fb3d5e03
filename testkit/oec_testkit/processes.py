"""Child processes of the tests and tools: start one with its output in a log, stop it, kill it.

The one place that starts and stops the control plane's binaries, the simulator, the operator
and the demo's background processes. A :class:`Child` is either started here (``proc`` set) or
re-attached from a pid file (``proc`` None, e.g. ``make demo-down`` stopping what ``make demo``
started). Times are seconds.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = ["Child", "Isolation", "pid_alive", "pid_is"]

#: ``child``: a plain child process (signals go to it alone); ``group``: its own process group,
#: SIGKILLed by the kernel when the thread that started it dies (so a crashed test run leaves no
#: kube-apiserver behind); ``session``: its own session, outliving this process (``make demo``,
#: ``controlplane up``). With ``group`` and ``session`` signals go to the whole group.
Isolation = Literal["child", "group", "session"]


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie counts as dead
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def pid_is(pid: int, exe: str) -> bool:
    """True if ``pid`` is alive and its argv[0] is ``exe`` (guards against recycled pids)."""
    if not pid_alive(pid):
        return False
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0].decode()
    except OSError:
        return True  # no /proc: trust the pid file
    return argv0 == exe


def _die_with_parent() -> None:
    """Child-side (between fork and exec): get SIGKILL when the parent thread dies.

    SIGKILL, not SIGTERM: a kube-apiserver whose etcd vanishes mid graceful-shutdown was seen to
    hang, and both get the signal at once.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG


@dataclass
class Child:
    """A child process: ``pid``, its ``log`` file, the ``proc`` handle when started here, and
    whether signals go to its process ``group``."""

    pid: int
    log: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    group: bool = False

    @classmethod
    def start(cls, argv: Sequence[str], *, log: Path, env: Mapping[str, str] | None = None,
              cwd: str | os.PathLike[str] | None = None, isolation: Isolation = "child",
              header: str | None = None) -> Child:
        """Start ``argv`` with stdout and stderr appended to ``log`` (after a ``header`` line if
        given) and no stdin. ``env`` replaces the environment (None: inherit)."""
        options: dict[str, Any] = {}
        if isolation == "group":
            options = {"process_group": 0, "preexec_fn": _die_with_parent}
        elif isolation == "session":
            options = {"start_new_session": True}
        with log.open("ab") as out:
            if header is not None:
                out.write(f"{header}\n".encode())
                out.flush()
            proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    env=None if env is None else dict(env), cwd=cwd, **options)
        return cls(proc.pid, log, proc, group=isolation != "child")

    @property
    def returncode(self) -> int | None:
        """The exit status once it exited (only known for a process started here), else None."""
        return None if self.proc is None else self.proc.poll()

    def alive(self) -> bool:
        """Whether it still runs."""
        return self.proc.poll() is None if self.proc is not None else pid_alive(self.pid)

    def send(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the process (or its group); a process already gone is no error."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if self.group:
                os.killpg(self.pid, sig)
            else:
                os.kill(self.pid, sig)

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for it to exit; return whether it did."""
        if self.proc is not None:
            try:
                self.proc.wait(timeout)
                return True
            except subprocess.TimeoutExpired:
                return False
        deadline = time.monotonic() + timeout
        while pid_alive(self.pid):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM; SIGKILL if it has not exited after ``grace`` s; wait for it."""
        if not self.alive():
            return
        self.send(signal.SIGTERM)
        if not self.wait(grace):
            self.send(signal.SIGKILL)
            self.wait(5.0)

    def kill(self) -> None:
        """SIGKILL at once, as in a node failure or an OOM kill; wait for it."""
        if self.alive():
            self.send(signal.SIGKILL)
            self.wait(10.0)

    def output(self) -> str:
        """The log's text ("" before anything was written)."""
        if self.log is None or not self.log.exists():
            return ""
        return self.log.read_text(errors="replace")
