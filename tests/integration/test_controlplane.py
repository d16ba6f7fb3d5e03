"""The local control plane is a real Kubernetes 1.36 API: CEL validation and RBAC really apply."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
from kubernetes import client

if TYPE_CHECKING:
    from tests.conftest import Kube

pytestmark = pytest.mark.integration

T = TypeVar("T")


def _retry(fn: Callable[[], T], *, until: float = 10.0, statuses: tuple[int, ...] = (403, 404)) -> T:
    """Call ``fn`` until it stops raising ApiException with one of ``statuses`` (``until`` seconds)."""
    deadline = time.monotonic() + until
    while True:
        try:
            return fn()
        except client.ApiException as e:
            if e.status not in statuses or time.monotonic() > deadline:
                raise
        time.sleep(0.1)


def test_version_is_1_36(kube: Kube) -> None:
    with kube.api_client() as api:
        info = client.VersionApi(api).get_code()
    assert (info.major, info.minor) == ("1", "36")
    assert info.git_version.startswith("v1.36.")

    out = subprocess.run(
        [kube.kubectl, "--kubeconfig", kube.kubeconfig, "version", "-o", "json"],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    )
    versions = json.loads(out.stdout)
    assert versions["clientVersion"]["minor"] == "36"
    assert versions["serverVersion"]["gitVersion"] == info.git_version


def test_crd_cel_rule_is_enforced(kube: Kube, namespace: str) -> None:
    group = f"cel-{uuid.uuid4().hex[:8]}.test.oec.sh"
    crd: Any = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {
                                        "minReplicas": {"type": "integer"},
                                        "maxReplicas": {"type": "integer"},
                                    },
                                    "x-kubernetes-validations": [
                                        {
                                            "rule": "self.minReplicas <= self.maxReplicas",
                                            "message": "minReplicas must not exceed maxReplicas",
                                        }
                                    ],
                                }
                            },
                        }
                    },
                }
            ],
        },
    }
    with kube.api_client() as api:
        ext = client.ApiextensionsV1Api(api)
        custom = client.CustomObjectsApi(api)
        ext.create_custom_resource_definition(crd)
        try:
            deadline = time.monotonic() + 20
            while True:
                status = ext.read_custom_resource_definition(f"widgets.{group}").status
                conds = (status.conditions if status else None) or []
                if any(c.type == "Established" and c.status == "True" for c in conds):
                    break
                assert time.monotonic() < deadline, f"CRD not Established: {conds}"
                time.sleep(0.1)

            def widget(name: str, lo: int, hi: int) -> dict[str, Any]:
                return {
                    "apiVersion": f"{group}/v1",
                    "kind": "Widget",
                    "metadata": {"name": name},
                    "spec": {"minReplicas": lo, "maxReplicas": hi},
                }

            _retry(
                lambda: custom.create_namespaced_custom_object(group, "v1", namespace, "widgets", widget("ok", 1, 3)),
                statuses=(404,),
            )
            with pytest.raises(client.ApiException) as exc:
                custom.create_namespaced_custom_object(group, "v1", namespace, "widgets", widget("bad", 5, 2))
            assert exc.value.status == 422
            assert "minReplicas must not exceed maxReplicas" in str(exc.value.body)
            listing: Any = custom.list_namespaced_custom_object(group, "v1", namespace, "widgets")
            assert [o["metadata"]["name"] for o in listing["items"]] == ["ok"]
        finally:
            ext.delete_custom_resource_definition(f"widgets.{group}")


def test_rbac_is_enforced_for_service_account_tokens(kube: Kube, namespace: str) -> None:
    sa = "probe"
    role_name = f"oec-test-list-ns-{uuid.uuid4().hex[:8]}"
    with kube.api_client() as admin_api:
        core = client.CoreV1Api(admin_api)
        rbac = client.RbacAuthorizationV1Api(admin_api)
        core.create_namespaced_service_account(
            namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=sa))
        )
        token = kube.mint_token(namespace, sa, seconds=600)

        with kube.api_client(token=token) as sa_api:
            review = client.AuthenticationV1Api(sa_api).create_self_subject_review(client.V1SelfSubjectReview())
            assert review.status is not None and review.status.user_info is not None
            assert review.status.user_info.username == f"system:serviceaccount:{namespace}:{sa}"

            sa_core = client.CoreV1Api(sa_api)
            with pytest.raises(client.ApiException) as exc:
                sa_core.list_namespace()
            assert exc.value.status == 403

            rbac.create_cluster_role(
                client.V1ClusterRole(
                    metadata=client.V1ObjectMeta(name=role_name),
                    rules=[client.V1PolicyRule(api_groups=[""], resources=["namespaces"], verbs=["list"])],
                )
            )
            try:
                rbac.create_cluster_role_binding(
                    client.V1ClusterRoleBinding(
                        metadata=client.V1ObjectMeta(name=role_name),
                        role_ref=client.V1RoleRef(
                            api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=role_name
                        ),
                        subjects=[client.RbacV1Subject(kind="ServiceAccount", name=sa, namespace=namespace)],
                    )
                )
                # The RBAC authorizer reads through an informer: allow it to catch up.
                names = [n.metadata.name for n in _retry(sa_core.list_namespace, statuses=(403,)).items if n.metadata]
                assert namespace in names
                # Still nothing beyond the binding.
                with pytest.raises(client.ApiException) as exc:
                    sa_core.list_namespaced_secret(namespace)
                assert exc.value.status == 403
            finally:
                for delete in (rbac.delete_cluster_role_binding, rbac.delete_cluster_role):
                    with contextlib.suppress(client.ApiException):
                        delete(role_name)
