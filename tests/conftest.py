"""Shared fixtures: a real kube-apiserver for the whole session, and a namespace per test.

``kube`` uses the cluster of ``$OEC_TEST_KUBECONFIG`` when set; otherwise it starts
:class:`oec_testkit.controlplane.ControlPlane` (binaries from ``make k8s-bin``; a missing
build is an error, never a skip) and stops it after the session.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from oec_testkit.controlplane import ControlPlane
from oec_testkit.kubectl import default_kubectl

if TYPE_CHECKING:
    from kubernetes.client import ApiClient


#: Test directories whose modules need the control plane: each must carry ``pytestmark =
#: pytest.mark.integration`` so that ``-m "not integration"`` selects exactly the fast tests.
INTEGRATION_DIRS = ("integration", "chaos")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Refuse a test module under an integration directory that lacks the ``integration`` marker."""
    unmarked = sorted({str(item.path) for item in items
                       if item.path.parent.name in INTEGRATION_DIRS and item.get_closest_marker("integration") is None})
    if unmarked:
        raise pytest.UsageError(f"integration test modules without pytestmark = pytest.mark.integration: {unmarked}")


@dataclass
class Kube:
    """Handle on the test cluster.

    ``kubeconfig``: admin kubeconfig path; ``kubectl``: kubectl path (from the bin dir, else PATH);
    ``control_plane``: the local :class:`ControlPlane`, or None for an external cluster.
    """

    kubeconfig: str
    kubectl: str
    control_plane: ControlPlane | None = None

    def api_client(self, token: str | None = None) -> ApiClient:
        """Return a new ``kubernetes.client.ApiClient`` for the kubeconfig (admin).

        With ``token``, the same server and CA but authenticating only with that bearer token.
        """
        from kubernetes import client, config

        cfg = client.Configuration()
        config.load_kube_config(config_file=self.kubeconfig, client_configuration=cfg)
        if token is not None:
            cfg.cert_file = cfg.key_file = None
            cfg.api_key = {"authorization": token}
            cfg.api_key_prefix = {"authorization": "Bearer"}
            cfg.refresh_api_key_hook = None
        return client.ApiClient(cfg)

    def mint_token(self, namespace: str, service_account: str, seconds: int = 3600) -> str:
        """Return a TokenRequest bearer token for an existing ServiceAccount (``seconds`` >= 600)."""
        from kubernetes import client

        with self.api_client() as api:
            resp = client.CoreV1Api(api).create_namespaced_service_account_token(
                service_account,
                namespace,
                client.AuthenticationV1TokenRequest(
                    spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=seconds)
                ),
            )
        assert resp.status is not None and resp.status.token, resp
        return str(resp.status.token)


@pytest.fixture(scope="session")
def kube() -> Iterator[Kube]:
    """The session's cluster (see module docstring); fails if the control plane cannot start."""
    external = os.environ.get("OEC_TEST_KUBECONFIG")
    if external:
        yield Kube(kubeconfig=external, kubectl=default_kubectl())
        return
    cp = ControlPlane()
    cp.start()  # on failure: processes are stopped, logs stay in cp.state_dir (named in the error)
    try:
        yield Kube(kubeconfig=str(cp.kubeconfig), kubectl=str(cp.kubectl), control_plane=cp)
    finally:
        cp.stop()


@contextlib.contextmanager
def fresh_namespace(kube: Kube, label: str) -> Iterator[str]:
    """A new namespace named after ``label`` (made unique); deleted afterwards without waiting.

    (Without a namespace controller it stays Terminating; names are unique, so that is harmless.)
    """
    from kubernetes import client

    slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")[:40].strip("-")
    name = f"t-{slug}-{uuid.uuid4().hex[:6]}"
    with kube.api_client() as api:
        core = client.CoreV1Api(api)
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        yield name
        with contextlib.suppress(client.ApiException):
            core.delete_namespace(name)


@pytest.fixture
def namespace(kube: Kube, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace named after the test (:func:`fresh_namespace`)."""
    with fresh_namespace(kube, request.node.name) as name:
        yield name


@pytest.fixture(scope="module")
def module_namespace(kube: Kube, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace shared by the tests of one module (:func:`fresh_namespace`)."""
    with fresh_namespace(kube, request.module.__name__.rsplit(".", 1)[-1]) as name:
        yield name
