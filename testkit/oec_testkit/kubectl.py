"""Running the control plane's kubectl: :class:`Kubectl`. Times are seconds."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from .controlplane import default_bin_dir
from .manifests import BACKUP_CRD_NAMES, BACKUP_CRDS, CRD, PEERING_CRD, PEERING_CRDS, RESOURCE

__all__ = ["Kubectl", "KubectlError", "default_kubectl"]


class KubectlError(RuntimeError):
    """kubectl exited non-zero; the message has the command, its exit status and its output."""


def default_kubectl() -> str:
    """The kubectl of ``make k8s-bin`` (matching the control plane's version), else the one on PATH."""
    local = default_bin_dir() / "kubectl"
    return str(local) if os.access(local, os.X_OK) else shutil.which("kubectl") or "kubectl"


class Kubectl:
    """``kubectl --kubeconfig KUBECONFIG ...`` with the binary at ``binary``."""

    def __init__(self, binary: str | os.PathLike[str], kubeconfig: str | os.PathLike[str]) -> None:
        self.binary, self.kubeconfig = str(binary), str(kubeconfig)

    def __call__(self, *args: str, input: str | None = None, check: bool = True,
                 timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """Run kubectl with ``args`` (and ``input`` on stdin); raise :class:`KubectlError` if
        ``check`` and it fails, ``subprocess.TimeoutExpired`` after ``timeout``."""
        proc = subprocess.run([self.binary, "--kubeconfig", self.kubeconfig, *args], capture_output=True,
                              text=True, input=input, timeout=timeout)
        if check and proc.returncode != 0:
            raise KubectlError(f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr}{proc.stdout}")
        return proc

    def install_crd(self, crd: Path = CRD, timeout: float = 60.0) -> None:
        """Apply the OdooEnvironment CRD (a file or a directory), the backup kinds' CRDs and kopf's
        peering CRDs (the operator needs them all), and wait until each is served (``timeout`` s):
        Established, and then listable. An Established CRD's storage (the apiserver's watch cache)
        can still answer 429 "storage is (re)initializing" for a moment; an operator started then
        logs an ERROR per kind, so the wait lasts until a list of every kind succeeds.

        Raises:
            KubectlError: a CRD not Established, or a kind not listable, within ``timeout``.
        """
        self("apply", "-f", str(crd))
        if crd.is_file():
            for other in (*BACKUP_CRDS, PEERING_CRD):
                self("apply", "-f", str(other))
        names = (RESOURCE, *BACKUP_CRD_NAMES, *PEERING_CRDS)
        self("wait", "--for=condition=Established", f"--timeout={timeout:.0f}s", *(f"crd/{name}" for name in names))
        deadline = time.monotonic() + timeout
        for name in names:
            while True:
                proc = self("get", name, "-A", "-o", "name", "--request-timeout=5s", check=False)
                if proc.returncode == 0:
                    break
                if time.monotonic() > deadline:
                    raise KubectlError(f"{name} not listable after {timeout:.0f}s: {proc.stderr.strip()}")
                time.sleep(0.2)
