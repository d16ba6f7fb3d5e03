"""The operator as a real process, ``python -m oec_operator ARGS`` (or another entry module, e.g.
:mod:`oec_testkit.clocked_operator`): :class:`OperatorProcess`."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from .processes import Child, Isolation

__all__ = ["TEST_TIMINGS", "OperatorProcess"]

#: Poll timings of the tests and the chaos suite (seconds): steady poll 3, fast poll 0.5 (also the
#: base of the error backoff), lowest per-resource poll 1, no "deleted outside" within 5 s of a
#: create (scaled down from 30 like the polls); metrics on a free port.
TEST_TIMINGS = {
    "OEC_POLL_INTERVAL": "3",
    "OEC_FAST_POLL_INTERVAL": "0.5",
    "OEC_MIN_POLL_INTERVAL": "1",
    "OEC_EXTERNAL_DELETE_GRACE_PERIOD": "5",
    "OEC_METRICS_PORT": "0",
}


class OperatorProcess:
    """The operator as a real process against the cluster of ``kubeconfig`` and the API at ``api_url``.

    Its default key comes from ``api_key`` (``OEC_API_KEY``) or, as the shipped Deployment does
    it, from the Secret ``key_secret`` (``"namespace/name"``, ``OEC_API_KEY_SECRET``). ``env``:
    more ``OEC_*`` variables (over the inherited environment); ``args``: its command line (e.g.
    ``["-n", namespace]``); ``module``: the entry module run with ``python -m``; output is appended
    to ``log``. It can be started again after a stop
    or a kill (``starts`` counts the starts).

    Peering (``docs/kopf.md`` §6): each instance is one "pod": one kopf identity (``POD_ID``) over
    all its starts, so a restart does not wait for its own last keep-alive to expire. Unless ``env``
    names one, it has a peering object of its own (``OEC_PEERING_NAME``), so that operators of
    different tests in one control plane do not pause each other; give several instances the same
    ``OEC_PEERING_NAME`` to make them replicas of one operator.
    """

    _ids = itertools.count(1)

    def __init__(self, kubeconfig: str | Path, api_url: str, log: Path, *, args: Sequence[str] = (),
                 api_key: str | None = None, key_secret: str | None = None, env: Mapping[str, str] | None = None,
                 isolation: Isolation = "child", cwd: str | Path | None = None,
                 module: str = "oec_operator") -> None:
        self.module = module
        self.kubeconfig, self.api_url, self.log, self.args = str(kubeconfig), api_url, log, list(args)
        self.extra_env: dict[str, str] = {}
        if api_key is not None:
            self.extra_env["OEC_API_KEY"] = api_key
        if key_secret is not None:
            self.extra_env["OEC_API_KEY_SECRET"] = key_secret
        pod = f"op-{uuid.uuid4().hex[:8]}-{next(self._ids)}"
        # The webhook receiver is off unless ``env`` gives it a port (tests run operators side by side).
        self.extra_env.update({"POD_ID": pod, "OEC_PEERING_NAME": pod, "OEC_WEBHOOK_PORT": "0"})
        self.extra_env.update(env or {})
        self.isolation, self.cwd = isolation, cwd
        self.child: Child | None = None
        self.starts = 0

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        """The running (or exited) process of the last start, None before the first."""
        return self.child.proc if self.child else None

    def start(self) -> OperatorProcess:
        """Start it (again); return ``self``."""
        env = {**os.environ, "KUBECONFIG": self.kubeconfig, "OEC_API_URL": self.api_url, **self.extra_env}
        self.child = Child.start([sys.executable, "-m", self.module, *self.args], log=self.log, env=env,
                                 cwd=self.cwd, isolation=self.isolation)
        self.starts += 1
        return self

    def alive(self) -> bool:
        """Whether the process of the last start still runs."""
        return self.child is not None and self.child.alive()

    def kill(self) -> None:
        """SIGKILL: no clean-up, as in a node failure or an OOM kill."""
        if self.child is not None:
            self.child.kill()

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM, SIGKILL after ``grace`` s."""
        if self.child is not None:
            self.child.stop(grace)

    def output(self) -> str:
        """Everything it wrote to ``log`` so far, over all starts."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""
