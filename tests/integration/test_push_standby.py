"""Two replicas and one webhook URL (``deploy/manager``: ``replicas: 2``, one Service in front of
both, ``docs/webhooks.md`` §2 and §4): OEC.sh may deliver to the standby replica. The standby
verifies the delivery with the secret it read from the webhook Secret (it makes no OEC.sh API
call) and forwards the hint to the active replica, whose object shows the change within seconds
although its steady poll is an hour away. Once the active replica is SIGKILLed and the standby
has taken over, a delivery to it is handled in that process (its own targeted read, no annotation).

Both replicas start before the first resource exists, as a fresh install does: the webhook is
registered (and its Secret written) by the active replica after the standby has already read the
still empty Secret. The webhook's URL is the standby's receiver, so every delivery reaches it.
Both run with exactly the shipped RBAC (the operator ClusterRole and
``deploy/rbac/webhook_secret_role.yaml``): the standby reads the webhook Secret, lists and
annotates ``OdooEnvironment`` objects, and is refused nothing.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from oec_operator.models.requests import REFRESH_REQUESTED_AT
from oec_operator.settings import WEBHOOK_PATH
from oec_testkit.ports import free_ports

from . import test_rbac, test_replicas, test_webhook_registration
from .conftest import RW_KEY, Cluster, OperatorProcess, Simulator, environment, wait_for
from .test_rbac import Access, assert_no_refusal
from .test_replicas import LIFETIME, CountingProxy, peers
from .test_webhook_registration import WEBHOOK_SECRET, grant_webhook_roles, secret_data

pytestmark = pytest.mark.integration

proxies, insecure_urls = test_replicas.proxies, test_webhook_registration.insecure_urls
access, rbac_manifests = test_rbac.access, test_rbac.rbac_manifests
KEY_ID = hashlib.sha256(RW_KEY.encode()).hexdigest()[:16]


def test_a_delivery_to_the_standby_reaches_the_active_replica_and_after_a_takeover_is_handled_locally(
    proxies: Callable[[], CountingProxy], cluster: Cluster, simulator: Simulator,
    operator_factory: Callable[..., OperatorProcess], insecure_urls: httpx.Client, access: Access,
    rbac_manifests: list[dict[str, Any]],
) -> None:
    kubeconfig = grant_webhook_roles(access, rbac_manifests, cluster.namespace)
    project = simulator.new_project("push-standby")
    peering = f"push-standby-{cluster.namespace}"[:63]
    port_a, port_b = free_ports(2)
    url = f"http://127.0.0.1:{port_b}{WEBHOOK_PATH}"  # the "Service" routes every delivery to the standby

    def replica(proxy: CountingProxy, port: int) -> OperatorProcess:
        # As deployed: its own token, every namespace, the default key from its Secret.
        op = operator_factory(kubeconfig=kubeconfig, args=[], OEC_API_KEY="",
                              OEC_API_KEY_SECRET=f"{cluster.namespace}/{test_rbac.SECRET}", OEC_API_URL=proxy.api_url,
                              OEC_PEERING_NAME=peering, OEC_POLL_INTERVAL="3600", OEC_MIN_POLL_INTERVAL="3600",
                              OEC_WEBHOOK_URL=url, OEC_WEBHOOK_PORT=str(port), OEC_WEBHOOK_ADDRESS="127.0.0.1",
                              OEC_WEBHOOK_SECRET=f"{cluster.namespace}/{WEBHOOK_SECRET}")
        access.operators.append(op)  # stopped before the grants go
        return op

    proxy_a, proxy_b = proxies(), proxies()
    a = replica(proxy_a, port_a)
    wait_for(lambda: a.extra_env["POD_ID"] in peers(cluster, peering), timeout=30, what="the active replica peering")
    b = replica(proxy_b, port_b)
    wait_for(lambda: f"standby: {a.extra_env['POD_ID']} with a higher priority is active" in b.output(), timeout=30,
             what="the second replica saying it is the standby")
    # (Both replicas write one log file here.)
    wait_for(lambda: f"Webhook receiver listening on 127.0.0.1:{port_b}" in b.output(), timeout=10,
             what="the standby's receiver")

    def obj() -> dict[str, Any]:
        return cluster.get("pushed") or {}

    def phase() -> str | None:
        return (obj().get("status") or {}).get("phase")

    cluster.apply(environment("pushed", project))
    wait_for(lambda: phase() == "running" and f"{KEY_ID}.secret" in secret_data(cluster), timeout=60,
             what="pushed running and its key's webhook in the Secret")
    webhook_id = secret_data(cluster)[f"{KEY_ID}.id"]
    time.sleep(2.0)  # steady now: the project's next list is an hour away
    env_id = obj()["status"]["environmentId"]

    # 1. A delivery to the standby: forwarded to the active replica through the annotation.
    started = time.monotonic()
    simulator.edit(env_id, status="stopped")  # in the dashboard
    wait_for(lambda: phase() != "running", timeout=15, what="the active replica's status showing the stop")
    print(f"standby: delivery -> the active replica's status in {time.monotonic() - started:.1f} s")
    assert proxy_b.records == [], f"the standby called the OEC.sh API: {proxy_b.records}"
    assert REFRESH_REQUESTED_AT in obj()["metadata"]["annotations"]
    accepted = [d for d in simulator.client.webhook_deliveries(webhook_id)
                if d["event"] == "environment.status_changed" and d["status"] == "success"]
    assert accepted, "no delivery of the stop succeeded"
    assert f"{simulator.client.webhook_secret(webhook_id)}" not in b.output()

    # 2. The active replica dies; the standby takes over and handles deliveries itself.
    wait_for(lambda: phase() == "running", timeout=30, what="the environment started again (powerState Running)")
    a.kill()
    killed = time.monotonic()
    wait_for(lambda: proxy_b.records, timeout=LIFETIME + 15, what="the standby's first API request (takeover)")
    takeover = proxy_b.records[0][0] - killed
    time.sleep(3.0)  # its loop's first reconcile is done; steady again
    assert phase() == "running"
    forwarded = obj()["metadata"]["annotations"][REFRESH_REQUESTED_AT]
    mark = time.monotonic()
    simulator.edit(env_id, status="stopped")
    wait_for(lambda: phase() != "running", timeout=15, what="the new active replica's status showing the stop")
    local = time.monotonic() - mark
    print(f"takeover: first API request {takeover:.1f} s after the kill; then delivery -> status in {local:.1f} s")
    assert any(method == "GET" and path.endswith(f"/environments/{env_id}") for _, method, path, _ in
               proxy_b.since(mark)), "no targeted read of the environment"
    assert obj()["metadata"]["annotations"][REFRESH_REQUESTED_AT] == forwarded, "handled by forwarding, not locally"
    assert_no_refusal(a)
    assert_no_refusal(b)
