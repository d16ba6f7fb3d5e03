"""Process-wide objects of a running operator: configuration, the shared HTTP client and the
Kubernetes clients. Created once at start-up (kept in kopf's ``memo``), closed at clean-up."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from typing import Any, cast

import httpx
import kubernetes

from oec_operator import metrics
from oec_operator.config import OperatorConfig
from oec_operator.credentials import CredentialsError, describe, resolve_api_key
from oec_operator.oec.client import OecClient, make_http_client
from oec_operator.oec.models import Environment
from oec_operator.oec.ratelimit import Priority, RateLimiter
from oec_operator.polling import DirectSource, EnvironmentSource, Fleet, WatchedSource
from oec_operator.spec import SecretKeyRef

GROUP, VERSION, PLURAL = "oec.sh", "v1alpha1", "odooenvironments"
CRD_NAME = f"{PLURAL}.{GROUP}"


def load_kubernetes_client() -> kubernetes.client.ApiClient:
    """An API client from the in-cluster service account, else from ``KUBECONFIG``/``~/.kube``."""
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()
    return kubernetes.client.ApiClient()


@dataclass
class Runtime:
    """Shared state of the operator process.

    Attributes:
        config: the :class:`OperatorConfig`.
        http: the one ``httpx.AsyncClient`` of all OEC.sh calls.
        kube: the Kubernetes ``ApiClient`` (Secrets, intent writes to status, the CRD).
        limiters: one :class:`RateLimiter` per API key (by the key's SHA-256), ``batched`` only.
        fleet: the project watches of the batched design.
    """

    config: OperatorConfig
    http: httpx.AsyncClient
    kube: kubernetes.client.ApiClient
    phases: metrics.PhaseTracker = field(default_factory=metrics.PhaseTracker)
    limiters: dict[str, RateLimiter] = field(default_factory=dict)
    fleet: Fleet = field(init=False)

    def __post_init__(self) -> None:
        self.fleet = Fleet(lambda key: self.client(key, Priority.POLL),
                           lambda key: self._limiter(key).bucket(write=False).limit if self.batched else 1e9,
                           fast=self.config.fast_poll_interval)

    @classmethod
    def create(cls, config: OperatorConfig) -> Runtime:
        """Build the runtime from the configuration (no network calls)."""
        http = make_http_client(config.api_url, timeout=config.request_timeout)
        return cls(config=config, http=http, kube=load_kubernetes_client())

    @property
    def batched(self) -> bool:
        """True for the batched design (``OEC_POLLING=batched``, the default)."""
        return self.config.polling == "batched"

    def _limiter(self, api_key: str) -> RateLimiter:
        digest = hashlib.sha256(api_key.strip().encode()).hexdigest()
        limiter = self.limiters.get(digest)
        if limiter is None:
            limiter = self.limiters[digest] = RateLimiter(
                read_limit=self.config.rate_limit_reads, write_limit=self.config.rate_limit_writes,
                mode=self.config.rate_limit_mode, on_wait=metrics.observe_budget_wait,
            )
        return limiter

    def client(self, api_key: str, priority: Priority = Priority.CHANGE) -> OecClient:
        """An OEC client for ``api_key`` on the shared connection pool, through the key's shared
        rate limiter (batched design), at ``priority``."""
        limiter = self._limiter(api_key) if self.batched else None
        return OecClient(self.http, api_key, observer=metrics.observe_api_call, limiter=limiter, priority=priority)

    def source(self, api_key: str, project_id: str, api: OecClient) -> EnvironmentSource:
        """Where a reconcile with this key reads the environments of ``project_id``."""
        if not self.batched:
            return DirectSource(api, project_id)
        return WatchedSource(self.fleet.watch(api_key, project_id), api)

    async def api_key(self, namespace: str, ref: SecretKeyRef | None) -> tuple[str, str]:
        """The resource's API key and a description of its source (for messages).

        Raises:
            CredentialsError: no usable API key.
        """
        core = kubernetes.client.CoreV1Api(self.kube)
        return await resolve_api_key(core, namespace, ref, self.config), describe(namespace, ref, self.config)

    async def default_api_key(self) -> str | None:
        """The operator's default key, or ``None`` when it has none."""
        try:
            key, _ = await self.api_key("", None)
        except CredentialsError:
            return None
        return key

    async def patch_status(self, namespace: str, name: str, fields: dict[str, Any]) -> None:
        """Merge ``fields`` into the object's status now (the status subresource).

        Raises:
            kubernetes.client.exceptions.ApiException: the write failed.
        """
        api = kubernetes.client.CustomObjectsApi(self.kube)
        await asyncio.to_thread(
            api.patch_namespaced_custom_object_status, GROUP, VERSION, namespace, PLURAL, name, {"status": fields}
        )

    async def crd_deleting(self) -> bool:
        """True when the ``OdooEnvironment`` CRD itself is being deleted (operator uninstall).

        Raises:
            kubernetes.client.exceptions.ApiException: the CRD cannot be read.
        """
        api = kubernetes.client.ApiextensionsV1Api(self.kube)
        crd = await asyncio.to_thread(api.read_custom_resource_definition, CRD_NAME)
        return crd.metadata is not None and crd.metadata.deletion_timestamp is not None

    async def release_finalizers(self, finalizer: str) -> tuple[list[dict[str, Any]], int]:
        """Remove ``finalizer`` from every ``OdooEnvironment`` in the cluster, without any API call
        to OEC.sh (used when the CRD is being deleted: the environments are orphaned).

        One pass. The apiserver marks every object for deletion at the same moment, so a patch can
        lose the race (409) on a stale ``resourceVersion``; callers repeat while objects remain.

        Returns:
            ``(released bodies, number of objects still carrying the finalizer)``.

        Raises:
            kubernetes.client.exceptions.ApiException: listing failed.
        """
        api = kubernetes.client.CustomObjectsApi(self.kube)
        listing = cast(dict[str, Any], await asyncio.to_thread(api.list_cluster_custom_object, GROUP, VERSION, PLURAL))
        pending = [o for o in listing.get("items", []) if finalizer in (o["metadata"].get("finalizers") or [])]
        released: list[dict[str, Any]] = []
        for obj in pending:
            meta = obj["metadata"]
            # A merge patch replaces the whole list; the resourceVersion makes it conditional, so
            # another controller's finalizer added meanwhile is never dropped.
            patch = {"metadata": {"resourceVersion": meta["resourceVersion"],
                                  "finalizers": [f for f in meta["finalizers"] if f != finalizer]}}
            try:
                await asyncio.to_thread(
                    api.patch_namespaced_custom_object, GROUP, VERSION, meta["namespace"], PLURAL, meta["name"], patch
                )
            except kubernetes.client.exceptions.ApiException:
                continue  # a conflict, or not permitted in this namespace: the next pass re-reads it
            released.append(obj)
        return released, len(pending) - len(released)

    async def aclose(self) -> None:
        """Stop the project watches, close the HTTP and Kubernetes clients."""
        await self.fleet.aclose()
        await self.http.aclose()
        await asyncio.to_thread(self.kube.close)


@dataclass
class ResourceState:
    """In-memory state of one ``OdooEnvironment`` in this process (kopf's per-object memo).

    Attributes:
        lock: serializes reconciles of the object (change handlers and the timer run
            concurrently in kopf).
        environment_id: the OEC id, known before the status patch lands.
        next_poll_at: event-loop time (seconds) before which the timer skips the object.
        failures: consecutive transient API failures (for backoff).
        last_good_key: the last API key that worked for this resource (used to delete the
            environment when its Secret is already gone, e.g. during namespace deletion).
        status: the status this process last wrote (newer than any body snapshot it receives).
        wake: set to make the resource's poll daemon look at its schedule again; with
            ``changed`` (see :meth:`mark_changed`) it reconciles at once.
        changed: the environment's entry in the project's list changed.
        detailed: the environment as it was when its ``/status`` was last read.
    """

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    environment_id: str | None = None
    next_poll_at: float = 0.0
    failures: int = 0
    last_good_key: str | None = field(default=None, repr=False)
    status: dict[str, Any] | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    changed: bool = False
    detailed: Environment | None = None

    def mark_changed(self) -> None:
        """The environment changed in OEC.sh: reconcile now (the project watch's callback)."""
        self.changed = True
        self.wake.set()
