"""Webhook registration in a real operator process (``docs/webhooks.md`` §5): with exactly the
shipped RBAC (the operator ClusterRole and ``deploy/rbac/webhook_secret_role.yaml``), a real
apiserver and the simulator process, the first resource's key gets one webhook, the webhook
Secret is created with a calibrated scheme, and the receiver verifies the webhook's pings."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from . import test_rbac
from .conftest import RW_KEY, Cluster, Simulator, environment, kubectl_run, wait_for
from .test_rbac import Access, assert_no_refusal, find, free_port, grant_operator_role

pytestmark = pytest.mark.integration

WEBHOOK_SECRET = "oec-operator-webhooks"


def grant_webhook_roles(access: Access, rbac_manifests: list[dict[str, Any]], namespace: str) -> Path:
    """The shipped operator roles and the webhook Secret's Role, with ``namespace`` standing in
    for ``oec-system``; returns the operator's kubeconfig."""
    kubeconfig = grant_operator_role(access, rbac_manifests, namespace)
    role, binding = find(rbac_manifests, "Role", WEBHOOK_SECRET), find(rbac_manifests, "RoleBinding", WEBHOOK_SECRET)
    for obj in (role, binding):
        obj["metadata"]["namespace"] = namespace
    binding["subjects"][0]["namespace"] = namespace
    access.apply(role, binding)
    return kubeconfig
# The RBAC tests' fixtures: the test's ServiceAccount grants, the rendered deploy/rbac.
access, rbac_manifests = test_rbac.access, test_rbac.rbac_manifests


@pytest.fixture
def insecure_urls(simulator: Simulator) -> Iterator[httpx.Client]:
    """The simulator accepts loopback webhook URLs for this test (its documented test flag); the
    test's webhooks are deleted afterwards (the simulator and its key serve the whole session)."""
    simulator.configure(webhook_allow_insecure_urls=True)
    api = httpx.Client(base_url=simulator.api_url, headers={"Authorization": f"Bearer {RW_KEY}"}, timeout=10,
                       trust_env=False)
    before = {h["id"] for h in hooks(api)}
    yield api
    for hook in hooks(api):
        if hook["id"] not in before:
            api.delete(f"/webhooks/{hook['id']}")
    simulator.configure(webhook_allow_insecure_urls=False)
    api.close()


def hooks(api: httpx.Client) -> list[dict[str, Any]]:
    body = api.get("/webhooks", params={"limit": 100}).json()
    return list(body["items"] if isinstance(body, dict) else body)


def secret_data(cluster: Cluster) -> dict[str, str]:
    proc = kubectl_run(cluster.kube, "-n", cluster.namespace, "get", "secret", WEBHOOK_SECRET, "-o", "json",
                       check=False)
    if proc.returncode != 0:
        return {}
    return {k: base64.b64decode(v).decode() for k, v in (json.loads(proc.stdout).get("data") or {}).items()}


def test_the_first_resource_registers_its_key_with_exactly_the_shipped_rbac(
    cluster: Cluster, simulator: Simulator, operator_factory: Any, access: Access,
    rbac_manifests: list[dict[str, Any]], insecure_urls: httpx.Client,
) -> None:
    kubeconfig = grant_webhook_roles(access, rbac_manifests, cluster.namespace)
    port = free_port()
    url = f"http://127.0.0.1:{port}/oec/webhook"
    op = operator_factory(kubeconfig=kubeconfig, args=[], OEC_API_KEY="",
                          OEC_API_KEY_SECRET=f"{cluster.namespace}/oec-api-key", OEC_WEBHOOK_URL=url,
                          OEC_WEBHOOK_PORT=str(port), OEC_WEBHOOK_ADDRESS="127.0.0.1",
                          OEC_WEBHOOK_SECRET=f"{cluster.namespace}/{WEBHOOK_SECRET}")
    access.operators.append(op)
    project = simulator.new_project("webhook-registration")
    cluster.apply(environment("hooked", project))

    key_id = hashlib.sha256(RW_KEY.encode()).hexdigest()[:16]
    wait_for(lambda: f"{key_id}.scheme" in secret_data(cluster), timeout=60, what="a calibrated webhook in the Secret")
    ours = [h for h in hooks(insecure_urls) if h["url"] == url]
    assert len(ours) == 1 and ours[0]["id"] == secret_data(cluster)[f"{key_id}.id"]
    # The receiver verifies the webhook's deliveries: the ping is answered 202, not 401.
    assert insecure_urls.post(f"/webhooks/{ours[0]['id']}/test").json()["status_code"] == 202
    assert_no_refusal(op)
    assert secret_data(cluster)[f"{key_id}.secret"] not in op.output()


def test_a_change_made_in_oec_reaches_status_by_webhook_within_seconds(
    cluster: Cluster, simulator: Simulator, operator_factory: Any, insecure_urls: httpx.Client,
) -> None:
    """The whole push path in one operator process: registration, the simulator's delivery, the
    receiver, the hub's targeted read; the steady poll is an hour away, so only the webhook can
    bring the change."""
    port = free_port()
    operator_factory(OEC_POLL_INTERVAL="3600", OEC_MIN_POLL_INTERVAL="3600",
                     OEC_WEBHOOK_URL=f"http://127.0.0.1:{port}/oec/webhook", OEC_WEBHOOK_PORT=str(port),
                     OEC_WEBHOOK_ADDRESS="127.0.0.1", OEC_WEBHOOK_SECRET=f"{cluster.namespace}/{WEBHOOK_SECRET}")
    project = simulator.new_project("webhook-push")
    cluster.apply(environment("pushed", project))

    def phase() -> str | None:
        return ((cluster.get("pushed") or {}).get("status") or {}).get("phase")

    key_id = hashlib.sha256(RW_KEY.encode()).hexdigest()[:16]
    wait_for(lambda: phase() == "running" and f"{key_id}.scheme" in secret_data(cluster), timeout=60,
             what="pushed running and its key's webhook calibrated")
    time.sleep(2.0)  # steady now
    env_id = (cluster.get("pushed") or {})["status"]["environmentId"]
    started = time.monotonic()
    simulator.edit(env_id, status="stopped")  # in the dashboard
    wait_for(lambda: phase() == "stopped", timeout=15, what="the status showing the stop")
    print(f"change in OEC.sh -> status in {time.monotonic() - started:.1f} s")


def test_a_forged_delivery_naming_our_webhook_drops_the_key_to_poll_mode(
    cluster: Cluster, simulator: Simulator, operator_factory: Any, insecure_urls: httpx.Client,
) -> None:
    """Push health hears of a delivery that names our webhook but fails verification (a wrong
    secret or scheme): the key's project lists go back to the normal interval at once."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/oec/webhook"
    op = operator_factory(OEC_WEBHOOK_URL=url, OEC_WEBHOOK_PORT=str(port), OEC_WEBHOOK_ADDRESS="127.0.0.1",
                          OEC_WEBHOOK_SECRET=f"{cluster.namespace}/{WEBHOOK_SECRET}")
    project = simulator.new_project("webhook-forged")
    cluster.apply(environment("forged", project))
    key_id = hashlib.sha256(RW_KEY.encode()).hexdigest()[:16]
    wait_for(lambda: f"{key_id}.scheme" in secret_data(cluster), timeout=60, what="the key's webhook calibrated")
    webhook_id = secret_data(cluster)[f"{key_id}.id"]
    insecure_urls.post(f"/webhooks/{webhook_id}/test")  # a verified delivery: push health's credit
    wait_for(lambda: f"key {key_id}: push mode" in op.output(), timeout=30, what="the key in push mode")
    body = json.dumps({"id": "forged-1", "event": "environment.status_changed", "webhook_id": webhook_id,
                       "data": {"environment_id": "00000000-0000-4000-8000-000000000001"}})
    answer = httpx.post(url, content=body, headers={"Content-Type": "application/json", "X-OEC-Signature": "0" * 64},
                        trust_env=False)
    assert answer.status_code == 401
    wait_for(lambda: f"key {key_id}: poll mode" in op.output(), timeout=10, what="the key back in poll mode")
