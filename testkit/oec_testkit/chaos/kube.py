"""Typed access to one namespace of a cluster through the Python client: :class:`Kube`."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from ..kubectl import Kubectl
from ..manifests import GROUP, PLURAL, VERSION

__all__ = ["Kube"]


class Kube:
    """Typed access to one namespace of a cluster through the Python client (admin kubeconfig).

    Every call has a 10 s timeout so an apiserver that is down fails fast.
    """

    def __init__(self, kubeconfig: str | Path, kubectl: str | Path, namespace: str) -> None:
        from kubernetes import client, config

        self.kubeconfig, self.kubectl_path, self.namespace = str(kubeconfig), str(kubectl), namespace
        self.kubectl = Kubectl(kubectl, kubeconfig)
        self.api = config.new_client_from_config(config_file=self.kubeconfig)
        self.custom: Any = client.CustomObjectsApi(self.api)  # untyped returns
        self.core = client.CoreV1Api(self.api)
        self._client = client

    def install_crd(self) -> None:
        """Install the OdooEnvironment CRD (cluster-wide) and wait until it is Established."""
        self.kubectl.install_crd()

    def create_namespace(self) -> None:
        body = self._client.V1Namespace(metadata=self._client.V1ObjectMeta(name=self.namespace))
        self.core.create_namespace(body, _request_timeout=10)

    def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        return dict(self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, manifest,
                                                                _request_timeout=10))

    def get(self, name: str) -> dict[str, Any] | None:
        try:
            got: dict[str, Any] = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name, _request_timeout=10)
            return got
        except self._client.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def items(self) -> list[dict[str, Any]]:
        out = self.custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, _request_timeout=10)
        return list(out["items"])

    def patch(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Merge-patch the object (e.g. ``{"spec": {"branch": "x"}}``), as ``kubectl patch`` would."""
        return dict(self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name, body,
                                                               _request_timeout=10))

    def delete(self, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name,
                                                    _request_timeout=10)

    def events(self) -> list[dict[str, Any]]:
        return list(self.api.sanitize_for_serialization(
            self.core.list_namespaced_event(self.namespace, _request_timeout=10).items))

    def release_all(self) -> None:
        """Strip finalizers from and delete every OdooEnvironment of the namespace (clean-up)."""
        with contextlib.suppress(Exception):
            for obj in self.items():
                name = obj["metadata"]["name"]
                with contextlib.suppress(Exception):
                    self.patch(name, {"metadata": {"finalizers": None}})
                with contextlib.suppress(Exception):
                    self.delete(name)
        with contextlib.suppress(Exception):
            self.core.delete_namespace(self.namespace, _request_timeout=10)
