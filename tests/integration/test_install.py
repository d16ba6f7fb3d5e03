"""The install manifests (``deploy/``) render and are accepted by the real apiserver; the operator
pod meets the "restricted" Pod Security Standard. (Their RBAC is proven in ``test_rbac.py``.)"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from oec_testkit.manifests import BACKUP_CRDS, PEERING_CRD

from .conftest import CRD, ROOT, kubectl_run

pytestmark = pytest.mark.integration

DEPLOY = ROOT / "deploy"


def render(kube: Any, directory: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(kubectl_run(kube, "kustomize", str(directory)).stdout) if d]


def dry_run(kube: Any, objects: list[dict[str, Any]], namespace: str) -> str:
    """``kubectl apply --dry-run=server`` of ``objects`` moved into ``namespace``; return stderr."""
    moved = []
    for original in objects:
        obj = copy.deepcopy(original)
        if "namespace" in obj["metadata"]:
            obj["metadata"]["namespace"] = namespace
        for subject in obj.get("subjects", []):
            subject["namespace"] = namespace
        moved.append(obj)
    proc = kubectl_run(kube, "apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump_all(moved))
    return proc.stderr


def test_crd_base_is_the_crd_and_apply_f_crds_still_works(kube: Any, crd: Path) -> None:
    peering = [d for d in yaml.safe_load_all(PEERING_CRD.read_text()) if d]
    by_name = lambda docs: sorted(docs, key=lambda d: d["metadata"]["name"])  # noqa: E731
    backups = [yaml.safe_load(path.read_text()) for path in BACKUP_CRDS]
    assert by_name(render(kube, DEPLOY / "crd")) == by_name([yaml.safe_load(CRD.read_text()), *backups, *peering])
    assert {d["spec"]["names"]["kind"] for d in backups} == {"OdooBackup", "OdooBackupSchedule", "OdooRestore"}
    assert {d["spec"]["names"]["kind"] for d in peering} == {"ClusterKopfPeering", "KopfPeering"}
    # crds/Kustomization has no .yaml suffix, so `kubectl apply -f crds/` applies only the CRDs.
    kubectl_run(kube, "apply", "--dry-run=server", "-f", str(ROOT / "crds"))


@pytest.mark.parametrize("overlay", ["default", "namespaced", "default-webhooks"])
def test_install_is_accepted_and_the_pod_is_restricted(kube: Any, namespace: str, crd: Path, overlay: str) -> None:
    objects = render(kube, DEPLOY / overlay)
    kinds = {o["kind"] for o in objects}
    assert {"Namespace", "CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
            "Deployment"} <= kinds
    (ns,) = [o for o in objects if o["kind"] == "Namespace"]
    assert ns["metadata"]["name"] == "oec-system"
    assert all(o["metadata"].get("namespace") in (None, "oec-system", "team-a", "team-b") for o in objects)
    # The test namespace stands in for oec-system, with its Pod Security labels.
    labels = [f"{k}={v}" for k, v in ns["metadata"]["labels"].items() if k.startswith("pod-security")]
    assert "pod-security.kubernetes.io/enforce=restricted" in labels
    kubectl_run(kube, "label", "namespace", namespace, "--overwrite", *labels)
    others = [o for o in objects if o["kind"] not in ("Namespace", "CustomResourceDefinition")]

    warnings = dry_run(kube, others, namespace)

    assert "Warning" not in warnings, warnings
    # Control: the check is live (a pod that may run as root is flagged).
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    spec = deployment["spec"]["template"]["spec"]
    spec["securityContext"]["runAsNonRoot"] = False
    del spec["containers"][0]["securityContext"]["runAsNonRoot"]
    assert 'would violate PodSecurity "restricted' in dry_run(kube, [deployment], namespace)


def test_deployment_matches_the_contract(kube: Any) -> None:
    objects = render(kube, DEPLOY / "default")
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    spec = deployment["spec"]
    # Two replicas, one acting (kopf peering, docs/kopf.md §6); a surge pod waits as the standby.
    assert spec["replicas"] == 2 and spec["strategy"]["type"] == "RollingUpdate"
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == "oec-operator"
    (container,) = pod["containers"]
    assert container["image"] == "oec-operator:latest"
    assert "--standalone" not in container["command"]
    assert {"name": "POD_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in container["env"]
    assert not [e for e in container["env"] if e["name"] == "OEC_PEERING_PRIORITY"]  # equal: all would pause
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]} and context["runAsNonRoot"] is True
    assert isinstance(context["runAsUser"], int) and context["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert {"requests", "limits"} <= set(container["resources"])


def test_webhook_overlay_routes_the_public_path_to_every_replicas_receiver(kube: Any) -> None:
    objects = render(kube, DEPLOY / "default-webhooks")
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    (service,) = [o for o in objects if o["kind"] == "Service"]
    (ingress,) = [o for o in objects if o["kind"] == "Ingress"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    # The receiver's port is named, the Service selects every replica (a standby forwards).
    assert ports["webhook"] == 8082
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["targetPort"] == "webhook"
    # The URL registered with OEC.sh is the Ingress host and only the receiver's path is routed.
    rule = ingress["spec"]["rules"][0]
    (path,) = rule["http"]["paths"]
    assert env["OEC_WEBHOOK_URL"] == f"https://{rule['host']}{path['path']}"
    assert path["path"] == "/oec/webhook" and path["pathType"] == "Exact"
    assert path["backend"]["service"]["name"] == service["metadata"]["name"]
    assert rule["host"] in ingress["spec"]["tls"][0]["hosts"]
    assert "cert-manager.io/cluster-issuer" in ingress["metadata"]["annotations"]
    # Without the component nothing of it is installed (a cluster without inbound internet).
    plain = render(kube, DEPLOY / "default")
    assert not [o for o in plain if o["kind"] in ("Service", "Ingress")]
    (plain_deployment,) = [o for o in plain if o["kind"] == "Deployment"]
    plain_env = plain_deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    assert "OEC_WEBHOOK_URL" not in {e["name"] for e in plain_env}
