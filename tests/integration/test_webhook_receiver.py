"""The webhook receiver in a running operator process (``docs/webhooks.md`` §4): started with the
operator on ``OEC_WEBHOOK_PORT``, it refuses a forged delivery and counts it."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from oec_operator.settings import WEBHOOK_PATH
from oec_testkit.ports import free_ports

from .conftest import wait_for

pytestmark = pytest.mark.integration


def test_the_operator_serves_the_receiver_and_refuses_a_forged_delivery(operator_factory: Any) -> None:
    webhook_port, metrics_port = free_ports(2)
    operator_factory(OEC_WEBHOOK_PORT=str(webhook_port), OEC_WEBHOOK_ADDRESS="127.0.0.1",
                     OEC_WEBHOOK_URL=f"http://127.0.0.1:{webhook_port}{WEBHOOK_PATH}",
                     OEC_METRICS_PORT=str(metrics_port), OEC_METRICS_ADDRESS="127.0.0.1")
    base = f"http://127.0.0.1:{webhook_port}"

    def healthy() -> bool | None:
        try:
            return httpx.get(f"{base}/healthz", timeout=5).status_code == 200 or None
        except httpx.HTTPError:
            return None

    wait_for(healthy, timeout=30, what="the webhook receiver answering /healthz")
    body = json.dumps({"id": "forged-1", "event": "environment.status_changed",
                       "data": {"environment_id": "4b0e6a1c-1111-4111-8111-000000000001"}}).encode()
    answer = httpx.post(base + WEBHOOK_PATH, content=body, headers={"X-OEC-Signature": "ab" * 32}, timeout=5)
    assert (answer.status_code, answer.json()) == (401, {"result": "unverified"})
    metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    assert 'oec_operator_webhook_events_total{result="unverified"} 1.0' in metrics
