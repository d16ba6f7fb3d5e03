"""The Prometheus endpoint of a running operator."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest

from .conftest import RW_KEY, Cluster, Simulator, environment, wait_for

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_metrics_count_reconciles_api_calls_and_phases(
    cluster: Cluster, simulator: Simulator, operator_factory: Any
) -> None:
    port = free_port()
    operator_factory(OEC_METRICS_PORT=str(port), OEC_METRICS_ADDRESS="127.0.0.1")
    project = simulator.new_project("metrics")
    cluster.apply(environment("measured", project))
    cluster.wait_ready("measured")

    def scrape() -> str:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        except httpx.HTTPError:
            return ""

    running = 'oec_operator_resources{phase="running"} 1.0'
    text = wait_for(lambda: t if running in (t := scrape()) else None,
                    timeout=20, what="metrics showing one running resource")
    assert 'oec_operator_reconciles_total{result="success"}' in text
    created = 'oec_operator_api_requests_total{code="201",endpoint="/projects/{id}/environments",method="POST"} 1.0'
    assert created in text
    assert 'oec_operator_api_request_duration_seconds_bucket{endpoint="/environments/{id}/status"' in text
    assert "oec_operator_rate_limit_remaining" in text
    assert RW_KEY not in text


def test_json_logs_carry_the_resource_on_every_line_about_it(
    cluster: Cluster, simulator: Simulator, operator_factory: Any
) -> None:
    import json

    operator = operator_factory(args=["-n", cluster.namespace, "--log-format=json"])
    project = simulator.new_project("json-logs")
    simulator.admin.post("/_sim/faults", json={"status": 503, "count": 1}).raise_for_status()
    cluster.apply(environment("logged", project))
    cluster.wait_ready("logged")
    lines = [line for line in operator.output().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    about = [r for r in records if (r.get("object") or {}).get("kind") == "OdooEnvironment"]
    assert about, "no log line about the resource"
    for record in about:
        ref = record.get("object") or {}
        assert (ref.get("namespace"), ref.get("name")) == (cluster.namespace, "logged"), record
    assert any(r.get("severity") in ("warn", "warning") and "503" in r["message"] for r in about)
    assert RW_KEY not in operator.output()
