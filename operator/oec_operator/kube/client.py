"""The operator's one Kubernetes client: the calls it makes outside kopf's handler machinery go
through kopf's own API client, so they share kopf's session (the login handler's connection pool
and credentials, exec plugins included) and its re-login after an HTTP 401
(``docs/kopf.md`` §3).

kopf's API client lives in a private module (``kopf._cogs.clients``); this is the only module
that touches it, and ``pyproject.toml`` pins kopf to the minor version it was written for. Errors
leave this module as :class:`KubeError` only. Works inside the operator's tasks (where kopf's
credentials vault is set), not in a separate process (``kubectl oec`` uses the ``kubernetes``
client).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import aiohttp
import kopf
from kopf._cogs.clients import api as kopf_api
from kopf._cogs.clients import errors as kopf_errors

from oec_operator.settings import GROUP, PLURAL, VERSION

logger = logging.getLogger(__name__)

#: Seconds between retries of a failed request (5xx, 429, connection errors; kopf's defaults
#: retry for about a minute, too long for a reconcile that must report what it saw).
RETRY_BACKOFFS = (0.5, 1.0, 2.0)
#: A ``merge-patch`` content type (``application/json`` would be read as a strategic merge).
MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}
#: API group and version of kopf's peering resources (``crds/kopfpeerings.kopf.dev.yaml``).
PEERING_GROUP, PEERING_VERSION = "kopf.dev", "v1"


class KubeError(Exception):
    """A Kubernetes API call failed: ``status`` is the HTTP status (``None``: no answer, e.g. the
    apiserver is unreachable); the message names the call, never a Secret's content."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class KubeClient:
    """Async calls to the apiserver through kopf's client.

    The object calls take the kind's ``plural`` (``oec.sh/v1alpha1``: ``odooenvironments``, the
    default, ``odoobackups``, ``odoobackupschedules``, ``odoorestores``; names in
    :mod:`oec_operator.settings`).

    Args:
        settings: kopf's operator settings (timeouts), from the start-up handler.
    """

    def __init__(self, settings: kopf.OperatorSettings) -> None:
        self._settings = settings

    async def _call(self, method: str, url: str, payload: object | None = None,
                    headers: Mapping[str, str] | None = None) -> Any:
        try:
            response = await kopf_api.request(
                method, url, payload=payload, headers=dict(headers or {}), settings=self._settings,
                backoffs=RETRY_BACKOFFS, logger=logger,
            )
            async with response:
                return await response.json()
        except kopf_errors.APIError as exc:
            raise KubeError(f"{method.upper()} {url}: HTTP {exc.status}", exc.status) from None
        except (aiohttp.ClientError, TimeoutError, kopf_errors.APISessionClosed) as exc:
            raise KubeError(f"{method.upper()} {url}: {type(exc).__name__}") from None

    @staticmethod
    def _resource_url(namespace: str | None, name: str | None = None, subresource: str | None = None,
                      plural: str = PLURAL) -> str:
        parts = [f"/apis/{GROUP}/{VERSION}"]
        if namespace is not None:
            parts.append(f"namespaces/{namespace}")
        parts.append(plural)
        if name is not None:
            parts.append(name)
        if subresource is not None:
            parts.append(subresource)
        return "/".join(parts)

    async def patch_status(self, namespace: str, name: str, patch: Mapping[str, Any], *,
                           plural: str = PLURAL) -> dict[str, Any]:
        """Merge-patch the status subresource of an object (an ``OdooEnvironment`` by default).

        Returns:
            The object as the apiserver returned it.

        Raises:
            KubeError: the write failed (404: the object is gone).
        """
        result: dict[str, Any] = await self._call(
            "patch", self._resource_url(namespace, name, "status", plural), {"status": dict(patch)}, MERGE_PATCH)
        return result

    async def patch_metadata(self, namespace: str, name: str, metadata: Mapping[str, Any], *,
                             plural: str = PLURAL) -> None:
        """Merge-patch an object's metadata (an ``OdooEnvironment`` by default; with a
        ``resourceVersion`` in it the patch is conditional: a 409 when the object changed since).

        Raises:
            KubeError: the write failed.
        """
        await self._call("patch", self._resource_url(namespace, name, plural=plural),
                         {"metadata": dict(metadata)}, MERGE_PATCH)

    async def get_object(self, namespace: str, name: str, *, plural: str = PLURAL) -> dict[str, Any] | None:
        """One object, or ``None`` when there is no such object (HTTP 404).

        Raises:
            KubeError: the read failed otherwise.
        """
        try:
            obj: dict[str, Any] = await self._call("get", self._resource_url(namespace, name, plural=plural))
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise
        return obj

    async def list_objects(self, namespace: str | None = None, *, plural: str = PLURAL,
                           label_selector: str | None = None) -> list[dict[str, Any]]:
        """The objects of a kind in ``namespace`` (``None``: the whole cluster), those whose labels
        match ``label_selector`` (the list query syntax, e.g.
        :meth:`oec_operator.models.backups.LabelSelector.query`) when given.

        Raises:
            KubeError: the list failed.
        """
        url = self._resource_url(namespace, plural=plural)
        if label_selector:
            url += "?" + urlencode({"labelSelector": label_selector})
        listing = await self._call("get", url)
        return list(listing.get("items") or [])

    async def create_object(self, namespace: str, body: Mapping[str, Any], *, plural: str = PLURAL) -> dict[str, Any]:
        """Create an object (``body`` with ``apiVersion``, ``kind``, ``metadata``, ``spec``).

        Returns:
            The object as created.

        Raises:
            KubeError: the write failed (409: an object of that name exists already; 422: invalid).
        """
        created: dict[str, Any] = await self._call("post", self._resource_url(namespace, plural=plural), dict(body))
        return created

    async def delete_object(self, namespace: str, name: str, *, plural: str = PLURAL, uid: str | None = None) -> bool:
        """Delete an object; with ``uid`` only that very object (a precondition: a new object of the
        same name is left alone, HTTP 409).

        Returns:
            False when there was no such object (HTTP 404), True when the deletion was accepted.

        Raises:
            KubeError: the deletion failed otherwise.
        """
        options = {"kind": "DeleteOptions", "apiVersion": "v1",
                   **({"preconditions": {"uid": uid}} if uid is not None else {})}
        try:
            await self._call("delete", self._resource_url(namespace, name, plural=plural), options)
        except KubeError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def read_crd(self, name: str) -> dict[str, Any]:
        """A CustomResourceDefinition.

        Raises:
            KubeError: the read failed (404: there is no such CRD).
        """
        crd: dict[str, Any] = await self._call("get", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
        return crd

    async def read_secret_data(self, namespace: str, name: str) -> dict[str, str]:
        """The ``data`` of a Secret (base64 values, as the apiserver sends them).

        Raises:
            KubeError: the read failed (404: no such Secret; 403: not permitted).
        """
        secret = await self._call("get", f"/api/v1/namespaces/{namespace}/secrets/{name}")
        return dict(secret.get("data") or {})

    async def read_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A whole Secret (``metadata`` and base64 ``data``), or ``None`` when there is none (404).

        Raises:
            KubeError: the read failed otherwise (403: not permitted).
        """
        try:
            secret: dict[str, Any] = await self._call("get", f"/api/v1/namespaces/{namespace}/secrets/{name}")
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise
        return secret

    async def create_secret(self, namespace: str, name: str, data: Mapping[str, str],
                            labels: Mapping[str, str] | None = None) -> None:
        """Create an ``Opaque`` Secret with ``data`` (base64 values).

        Raises:
            KubeError: the write failed (409: it exists already).
        """
        body = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": name, "namespace": namespace, "labels": dict(labels or {})}, "data": dict(data)}
        await self._call("post", f"/api/v1/namespaces/{namespace}/secrets", body)

    async def patch_secret_data(self, namespace: str, name: str, data: Mapping[str, str | None]) -> None:
        """Merge-patch a Secret's ``data`` (base64 values; ``None`` removes a key).

        Raises:
            KubeError: the write failed (404: no such Secret).
        """
        await self._call("patch", f"/api/v1/namespaces/{namespace}/secrets/{name}", {"data": dict(data)}, MERGE_PATCH)

    async def create_cluster_peering(self, name: str, status: Mapping[str, Any]) -> bool:
        """Create kopf's ``ClusterKopfPeering`` ``name`` (``kopf.dev/v1``) with ``status``.

        Returns:
            False when it exists already (HTTP 409), True when it was created.

        Raises:
            KubeError: the write failed (404: the peering CRD is not installed).
        """
        body = {"apiVersion": f"{PEERING_GROUP}/{PEERING_VERSION}", "kind": "ClusterKopfPeering",
                "metadata": {"name": name}, "status": dict(status)}
        try:
            await self._call("post", f"/apis/{PEERING_GROUP}/{PEERING_VERSION}/clusterkopfpeerings", body)
        except KubeError as exc:
            if exc.status == 409:
                return False
            raise
        return True

    async def patch_cluster_peering(self, name: str, status: Mapping[str, Any]) -> dict[str, Any]:
        """Merge-patch the ``status`` of the ``ClusterKopfPeering`` ``name`` (kopf's keep-alive format).

        Returns:
            The object's ``status`` after the patch (every peer's entry).

        Raises:
            KubeError: the write failed (404: no such object).
        """
        body = await self._call("patch", f"/apis/{PEERING_GROUP}/{PEERING_VERSION}/clusterkopfpeerings/{name}",
                                {"status": dict(status)}, MERGE_PATCH)
        return dict(body.get("status") or {})
