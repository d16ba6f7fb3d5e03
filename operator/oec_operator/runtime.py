"""Process-wide objects of a running operator: configuration, the shared HTTP client and the
Kubernetes client. Created once at start-up (kept in kopf's ``memo``), closed at clean-up."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import httpx
import kubernetes

from oec_operator.config import OperatorConfig
from oec_operator.credentials import describe, resolve_api_key
from oec_operator.oec.client import OecClient, make_http_client
from oec_operator.spec import SecretKeyRef


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
        core: ``CoreV1Api`` used to read credential Secrets.
    """

    config: OperatorConfig
    http: httpx.AsyncClient
    core: kubernetes.client.CoreV1Api

    @classmethod
    def create(cls, config: OperatorConfig) -> Runtime:
        """Build the runtime from the configuration (no network calls)."""
        http = make_http_client(config.api_url, timeout=config.request_timeout)
        return cls(config=config, http=http, core=kubernetes.client.CoreV1Api(load_kubernetes_client()))

    async def api_for(self, namespace: str, ref: SecretKeyRef | None) -> tuple[OecClient, str]:
        """An OEC client with the resource's credentials and a description of their source.

        Raises:
            CredentialsError: no usable API key.
        """
        key = await resolve_api_key(self.core, namespace, ref, self.config)
        return OecClient(self.http, key), describe(namespace, ref, self.config)

    async def aclose(self) -> None:
        """Close the HTTP and Kubernetes clients."""
        await self.http.aclose()
        await asyncio.to_thread(self.core.api_client.close)


@dataclass
class ResourceState:
    """In-memory state of one ``OdooEnvironment`` in this process (kopf's per-object memo).

    Attributes:
        lock: serializes reconciles of the object (change handlers and the timer run
            concurrently in kopf).
        environment_id: the OEC id, known before the status patch lands.
        next_poll_at: event-loop time (seconds) before which the timer skips the object.
        failures: consecutive transient API failures (for backoff).
    """

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    environment_id: str | None = None
    next_poll_at: float = 0.0
    failures: int = 0
