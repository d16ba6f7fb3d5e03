"""The controller's tests: the real controller and OEC.sh client against the in-process
simulator over real HTTP; the apiserver is an in-memory fake (:class:`FakeKube`)."""

from __future__ import annotations

import base64
import copy
import itertools
import logging
import re
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf
import pytest

from oec_operator.controller.delete import DeleteController
from oec_operator.controller.state import Handle, ResourceState
from oec_operator.controller.sync import SyncController
from oec_operator.domain.outcome import Event
from oec_operator.domain.ownership import Claim, claims_of
from oec_operator.kube.client import KubeClient, KubeError
from oec_operator.oec.client import make_http_client
from oec_operator.runtime import Runtime
from oec_operator.settings import BACKUP_PLURAL, PLURAL, RESTORE_PLURAL, SCHEDULE_PLURAL, OperatorConfig
from tests.simulator.conftest import clock, sim, start_sim
from tests.simulator.sim_helpers import API, PROJECT_A, RW, Sim

__all__ = ["clock", "sim", "start_sim"]

SECRET = ("oec-system", "oec-api-key")


def merge(target: dict[str, Any], patch: Mapping[str, Any]) -> None:
    """RFC 7386 JSON merge patch, in place."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = value


_TERM = re.compile(r"\s*(!?)([^!=,\s()]+)(?:\s*(==?|!=)\s*([^,\s()]*)|\s+(in|notin)\s*\(([^)]*)\))?\s*")


def selects(query: str | None, labels: Mapping[str, str]) -> bool:
    """Whether a ``labelSelector`` query (``a=b,c!=d,e in (f,g),h notin (i),j,!k``) selects ``labels``,
    as the apiserver decides."""
    for match in _TERM.finditer(query or ""):
        bang, key, op, value, set_op, values = match.groups()
        if not key:
            continue
        if op in ("=", "=="):
            ok = labels.get(key) == value
        elif op == "!=":
            ok = labels.get(key) != value
        elif set_op is not None:
            members = {v.strip() for v in values.split(",")}
            ok = labels.get(key) in members if set_op == "in" else labels.get(key) not in members
        else:
            ok = (key in labels) != bool(bang)
        if not ok:
            return False
    return True


class FakeKube(KubeClient):
    """An in-memory apiserver: objects of every kind (``kinds[plural]``; ``objects`` is
    ``OdooEnvironment``'s), Secrets and the CRD; counts every call.

    ``fail_status_writes``: HTTP status every status write fails with (``None``: they succeed).
    """

    def __init__(self) -> None:
        super().__init__(kopf.OperatorSettings())
        self.kinds: dict[str, dict[tuple[str, str], dict[str, Any]]] = {
            plural: {} for plural in (PLURAL, BACKUP_PLURAL, SCHEDULE_PLURAL, RESTORE_PLURAL)}
        self.objects = self.kinds[PLURAL]
        self.secrets: dict[tuple[str, str], dict[str, str]] = {}
        self.secret_meta: dict[tuple[str, str], dict[str, Any]] = {}
        self.crd_deleting = False
        self.fail_status_writes: int | None = None
        self.calls: Counter[str] = Counter()
        self.status_patches: list[dict[str, Any]] = []

    def set_key(self, key: str, where: tuple[str, str] = SECRET) -> None:
        self.secrets[where] = {"apiKey": base64.b64encode(key.encode()).decode()}

    async def patch_status(self, namespace: str, name: str, patch: Mapping[str, Any], *,
                           plural: str = PLURAL) -> dict[str, Any]:
        self.calls["patch_status"] += 1
        if self.fail_status_writes is not None:
            raise KubeError("PATCH status: injected failure", self.fail_status_writes)
        obj = self.kinds[plural].get((namespace, name))
        if obj is None:
            raise KubeError("PATCH status: not found", 404)
        self.status_patches.append(dict(patch))
        merge(obj.setdefault("status", {}), patch)
        return obj

    async def patch_metadata(self, namespace: str, name: str, metadata: Mapping[str, Any], *,
                             plural: str = PLURAL) -> None:
        self.calls["patch_metadata"] += 1
        obj = self.kinds[plural].get((namespace, name))
        if obj is None:
            raise KubeError("PATCH: not found", 404)
        merge(obj.setdefault("metadata", {}), {k: v for k, v in metadata.items() if k != "resourceVersion"})

    async def get_object(self, namespace: str, name: str, *, plural: str = PLURAL) -> dict[str, Any] | None:
        self.calls["get_object"] += 1
        return self.kinds[plural].get((namespace, name))

    async def list_objects(self, namespace: str | None = None, *, plural: str = PLURAL,
                           label_selector: str | None = None) -> list[dict[str, Any]]:
        self.calls["list_objects"] += 1
        return [obj for (ns, _), obj in self.kinds[plural].items() if namespace in (None, ns)
                and selects(label_selector, obj["metadata"].get("labels") or {})]

    async def create_object(self, namespace: str, body: Mapping[str, Any], *, plural: str = PLURAL) -> dict[str, Any]:
        self.calls["create_object"] += 1
        obj = copy.deepcopy(dict(body))
        name = obj["metadata"]["name"]
        if (namespace, name) in self.kinds[plural]:
            raise KubeError("POST: already exists", 409)
        obj["metadata"].update(namespace=namespace, uid=f"00000000-0000-4000-8000-{next(_uids):012d}",
                               generation=1, creationTimestamp="2026-12-01T00:00:00Z")
        obj.setdefault("status", {})
        self.kinds[plural][(namespace, name)] = obj
        return obj

    async def delete_object(self, namespace: str, name: str, *, plural: str = PLURAL, uid: str | None = None) -> bool:
        self.calls["delete_object"] += 1
        obj = self.kinds[plural].get((namespace, name))
        if obj is None:
            return False
        if uid is not None and obj["metadata"].get("uid") != uid:
            raise KubeError("DELETE: precondition failed", 409)
        del self.kinds[plural][(namespace, name)]
        return True

    async def read_secret_data(self, namespace: str, name: str) -> dict[str, str]:
        self.calls["read_secret"] += 1
        if (namespace, name) not in self.secrets:
            raise KubeError("GET Secret: not found", 404)
        return dict(self.secrets[(namespace, name)])

    async def read_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls["read_secret"] += 1
        if (namespace, name) not in self.secrets:
            return None
        return {"metadata": {"namespace": namespace, "name": name, **copy.deepcopy(self.secret_meta.get(
            (namespace, name), {}))}, "data": dict(self.secrets[(namespace, name)])}

    async def create_secret(self, namespace: str, name: str, data: Mapping[str, str],
                            labels: Mapping[str, str] | None = None) -> None:
        self.calls["create_secret"] += 1
        if (namespace, name) in self.secrets:
            raise KubeError("POST Secret: already exists", 409)
        self.secrets[(namespace, name)] = dict(data)
        self.secret_meta[(namespace, name)] = {"labels": dict(labels or {}), "annotations": {}}

    async def patch_secret_data(self, namespace: str, name: str, data: Mapping[str, str | None]) -> None:
        self.calls["patch_secret"] += 1
        if (namespace, name) not in self.secrets:
            raise KubeError("PATCH Secret: not found", 404)
        merge(self.secrets[(namespace, name)], data)

    async def read_crd(self, name: str) -> dict[str, Any]:
        self.calls["read_crd"] += 1
        return {"metadata": {"name": name, **({"deletionTimestamp": "2026-12-01T00:00:00Z"}
                                               if self.crd_deleting else {})}}


_uids = itertools.count(1)


@dataclass
class Harness:
    """The controllers over one simulator and one fake apiserver."""

    sim: Sim
    kube: FakeKube
    runtime: Runtime
    sync: SyncController
    deletion: DeleteController
    events: list[tuple[str, Event]] = field(default_factory=list)
    states: dict[str, ResourceState] = field(default_factory=dict)

    def add(self, name: str, namespace: str = "team", **spec: Any) -> dict[str, Any]:
        """A new OdooEnvironment body (as kopf would hand it over) in the fake apiserver."""
        uid = f"00000000-0000-4000-8000-{next(_uids):012d}"
        body = {"metadata": {"namespace": namespace, "name": name, "uid": uid, "generation": 1,
                             "creationTimestamp": "2026-12-01T00:00:00Z", "annotations": {}},
                "spec": {"projectId": PROJECT_A, **spec}, "status": {}}
        self.kube.objects[(namespace, name)] = body
        self.states[uid] = ResourceState()
        return body

    def state(self, body: Mapping[str, Any]) -> ResourceState:
        return self.states[body["metadata"]["uid"]]

    def sink(self, body: Mapping[str, Any]) -> Callable[[Event], None]:
        return lambda event: self.events.append((body["metadata"]["name"], event))

    def reasons(self, name: str) -> list[str]:
        return [e.reason for n, e in self.events if n == name]

    def handle(self, body: Mapping[str, Any]) -> Handle:
        """The object as the registrations hand it to the controllers, with the ownership index
        over every object in the fake apiserver (as kopf's index ``claims``)."""
        claims: dict[str, list[Claim]] = {}
        for obj in self.kube.objects.values():
            for key, claim in claims_of(obj).items():
                claims.setdefault(key, []).append(claim)
        return Handle(body=body, state=self.state(body), claims=claims, events=self.sink(body),
                      logger=logging.getLogger("tests.controller"))

    async def change(self, body: dict[str, Any]) -> None:
        """What kopf's create/update handler does."""
        await self.sync.reconcile_now(self.handle(body))

    async def list_project(self, key: str = RW, project: str = PROJECT_A) -> None:
        """What the project watch's loop does every interval: list the project once."""
        await self.runtime.fleet.watch(key, project).refresh()

    async def poll(self, body: dict[str, Any]) -> None:
        """One poll turn, made due now."""
        self.state(body).next_poll_at = 0.0
        await self.sync.poll_once(self.handle(body))

    async def delete_step(self, body: dict[str, Any]) -> Any:
        body["metadata"].setdefault("deletionTimestamp", "2026-12-01T00:00:00Z")
        return await self.deletion.step(self.handle(body))


def operator_config(sim: Sim, **overrides: Any) -> OperatorConfig:
    """The operator's configuration for the simulator, default key from :data:`SECRET`."""
    values: dict[str, Any] = {"api_url": sim.base_url + API, "api_key_secret": "/".join(SECRET),
                              "fast_poll_interval": 1.0, "poll_interval": 60.0, "metrics_port": 0}
    values.update(overrides)
    return OperatorConfig.model_validate(values)


@pytest.fixture
async def make_harness(sim: Sim) -> AsyncIterator[Callable[..., Harness]]:
    """Factory: ``make_harness(**config_overrides)`` -> :class:`Harness` with the rw key in the
    default Secret."""
    runtimes: list[Runtime] = []

    def _make(**overrides: Any) -> Harness:
        kube = FakeKube()
        kube.set_key(RW)
        config = operator_config(sim, **overrides)
        runtime = Runtime(config=config, http=make_http_client(config.api_url, timeout=5), kube=kube)
        runtimes.append(runtime)
        return Harness(sim, kube, runtime, SyncController(runtime), DeleteController(runtime))

    yield _make
    for runtime in runtimes:
        await runtime.aclose()


@pytest.fixture
def harness(make_harness: Callable[..., Harness]) -> Harness:
    return make_harness()
