"""The chaos suite's promise, checked: which resources exist, what each should look like, and
whether the simulator agrees (:class:`Ledger`)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..manifests import environment, ready_for_generation
from .kube import Kube
from .lab import CONVERGE_TIMEOUT, Sim

__all__ = ["Ledger", "Tracked", "ready_pool"]


@dataclass
class Tracked:
    """What the harness expects of one resource: its ``policy`` (``Delete``/``Orphan``), the
    branch last written to its spec, and whether the user deleted it."""

    name: str
    policy: str = "Delete"
    branch: str = "main"
    deleted: bool = False


class Ledger:
    """The resources of one namespace and project, and the checks of the promise over them."""

    def __init__(self, kube: Kube, sim: Sim, project: str) -> None:
        self.kube, self.sim, self.project = kube, sim, project
        self.items: dict[str, Tracked] = {}

    def create(self, name: str, policy: str | None = None, branch: str = "main", **spec: Any) -> Tracked:
        if policy is not None:
            spec["deletionPolicy"] = policy
        self.kube.create(environment(name, self.project, branch=branch, **spec))
        item = self.items[name] = Tracked(name, policy or "Delete", branch)
        return item

    def set_branch(self, name: str, branch: str) -> None:
        self.kube.patch(name, {"spec": {"branch": branch}})
        self.items[name].branch = branch

    def delete(self, name: str) -> None:
        self.kube.delete(name)
        self.items[name].deleted = True

    def live(self) -> list[str]:
        return [n for n, t in self.items.items() if not t.deleted]

    def _envs_by_name(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for env in self.sim.environments():
            if env.get("project_id") == self.project:
                out.setdefault(env["name"], []).append(env)
        return out

    def converged(self, names: Sequence[str] | None = None) -> list[str]:
        """Names (of ``names``, default all) that have not converged yet: live ones not Ready for
        their generation with the spec's branch in status and in the API; deleted ones still in
        the cluster."""
        envs = self._envs_by_name()
        pending = []
        for name in names if names is not None else list(self.items):
            item = self.items[name]
            obj = self.kube.get(name)
            if item.deleted:
                if obj is not None:
                    pending.append(name)
                continue
            live = [e for e in envs.get(name, []) if not e.get("deleted")]
            if not (ready_for_generation(obj) and (obj or {}).get("spec", {}).get("branch") == item.branch
                    and (obj or {}).get("status", {}).get("branch") == item.branch
                    and len(live) == 1 and live[0]["branch"] == item.branch
                    and (obj or {}).get("status", {}).get("environmentId") == live[0]["id"]):
                pending.append(name)
        return pending

    def wait_converged(self, names: Sequence[str] | None = None, timeout: float = CONVERGE_TIMEOUT) -> list[str]:
        """Wait up to ``timeout`` s; return the names that did not converge (empty = all did)."""
        deadline = time.monotonic() + timeout
        pending = list(names if names is not None else self.items)
        while True:
            with contextlib.suppress(Exception):
                pending = self.converged(pending)
            if not pending or time.monotonic() > deadline:
                return pending
            time.sleep(0.3)

    def safety_violations(self) -> list[str]:
        """Broken safety rules right now (need no convergence): duplicates, wrongful destroys;
        plus, for resources already gone, environments left behind."""
        out = []
        envs = self._envs_by_name()
        for name, item in self.items.items():
            mine = envs.get(name, [])
            if len(mine) > 1:
                out.append(f"{name}: {len(mine)} environments for one resource ({[e['id'] for e in mine]})")
            destroyed = [e for e in mine if e.get("deleted") or e.get("status") == "destroying"]
            exists = self.kube.get(name) is not None
            if destroyed and (not item.deleted or item.policy == "Orphan"):
                why = "its resource still exists" if not item.deleted else "deletionPolicy Orphan"
                out.append(f"{name}: environment {destroyed[0]['id']} destroyed although {why}")
            if item.deleted and not exists and item.policy == "Delete" and any(not e.get("deleted") for e in mine):
                out.append(f"{name}: environment left behind after the resource (deletionPolicy Delete) was deleted")
        return out


def ready_pool(ledger: Ledger, names: Sequence[str], violations: list[str], what: str) -> None:
    """Wait for ``names`` to converge; add a line to ``violations`` for each that does not."""
    for name in ledger.wait_converged(names):
        violations.append(f"{what}: {name} never converged")
