"""A control plane that outlives the process that started it, kept in a state directory.

What ``python tools/controlplane.py up|down|status`` and ``make demo`` use: :func:`up` starts
one (own session) or reuses the healthy one already there, :func:`down` stops it, :func:`status`
describes it. Progress goes to stderr.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from .controlplane import APISERVER_READY_TIMEOUT, ControlPlane, ControlPlaneError

__all__ = ["default_state_dir", "down", "status", "up"]


def default_state_dir() -> Path:
    """``${XDG_STATE_HOME:-~/.local/state}/oec-operator/controlplane``."""
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "oec-operator" / "controlplane"


def up(state_dir: str | os.PathLike[str], bin_dir: str | None = None,
       timeout: float = APISERVER_READY_TIMEOUT) -> ControlPlane:
    """Start a detached control plane in ``state_dir`` unless a healthy one runs there already
    (a stale one is stopped first); return it. Raises :class:`ControlPlaneError` if it cannot start."""
    state = Path(state_dir).expanduser().resolve()
    if (state / "pids").exists():
        try:
            old: ControlPlane | None = ControlPlane.attach(state)
        except ControlPlaneError:
            old = None
        if old is not None and old.healthy() and old.kubeconfig.exists():
            return old
        if old is not None:
            print(f"stale control plane state in {state}; restarting", file=sys.stderr)
            old.stop()
    t0 = time.monotonic()
    cp = ControlPlane(bin_dir, state, keep_state=True, detached=True, start_timeout=timeout).start()
    print(f"control plane up in {time.monotonic() - t0:.1f} s: {cp.server} (kubectl: {cp.kubectl}; "
          f"logs: {state}/*.log)", file=sys.stderr)
    return cp


def down(state_dir: str | os.PathLike[str], keep_state: bool = False) -> None:
    """Stop the control plane of ``state_dir`` and, unless ``keep_state``, remove its data,
    certificates and kubeconfig (the logs stay). Nothing there is no error."""
    state = Path(state_dir).expanduser().resolve()
    try:
        cp = ControlPlane.attach(state)
    except ControlPlaneError:
        print(f"no control plane state in {state}", file=sys.stderr)
        return
    cp.keep_state = keep_state
    cp.stop()
    print(f"control plane in {state} stopped", file=sys.stderr)


def status(state_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """``{state_dir, running, healthy, server, kubeconfig, pids, processes}`` of the control plane
    of ``state_dir`` (only ``state_dir`` and ``running: False`` when there is none)."""
    state = Path(state_dir).expanduser().resolve()
    try:
        cp = ControlPlane.attach(state)
    except ControlPlaneError:
        return {"state_dir": str(state), "running": False, "healthy": False}
    running = cp.running()
    return {
        "state_dir": str(state),
        "running": all(running.values()),
        "healthy": cp.healthy(),
        "server": cp.server,
        "kubeconfig": str(cp.kubeconfig),
        "pids": cp.pids,
        "processes": running,
    }
