"""The operator's requests to the kube-apiserver, read from the apiserver's own ``/metrics``.

Every request the apiserver serves is counted by API Priority and Fairness under the FlowSchema
it matched (``apiserver_flowcontrol_dispatched_requests_total{flow_schema}``): the harness and
the apiserver's loopback client are ``system:masters`` (FlowSchema ``exempt``), the operator runs
as a ServiceAccount (``service-accounts``), so every non-exempt request is the operator's. Secret
reads are ``apiserver_request_total{verb="GET",resource="secrets"}``: only the operator reads
Secrets. :func:`scrape` takes a snapshot, :func:`rates` turns two into requests a second.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from ..controlplane import ControlPlane, ControlPlaneError

__all__ = ["ApiserverCounts", "PhaseRates", "rates", "scrape"]

SECRET_GET = ("GET", "secrets")  # (verb, resource) labels


@dataclass(frozen=True)
class ApiserverCounts:
    """Cumulative counts at ``at`` (monotonic seconds): the operator's requests, its Secret GETs."""

    at: float
    operator_requests: float
    secret_gets: float


@dataclass(frozen=True)
class PhaseRates:
    """The operator's apiserver requests over a phase of ``seconds``: all, and Secret GETs, a second."""

    seconds: float
    requests_per_second: float
    secret_gets_per_second: float


def scrape(cp: ControlPlane) -> ApiserverCounts:
    """Read the apiserver's ``/metrics`` as the admin; raise :class:`ControlPlaneError` if it fails."""
    status, body = cp.request("GET", "/metrics", timeout=30.0)
    if status != 200 or not isinstance(body, str):
        raise ControlPlaneError(f"/metrics: HTTP {status}")
    operator = secrets = 0.0
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "apiserver_flowcontrol_dispatched_requests_total" and labels["flow_schema"] != "exempt":
                operator += sample.value
            elif sample.name == "apiserver_request_total" and (labels["verb"], labels["resource"]) == SECRET_GET:
                secrets += sample.value
    return ApiserverCounts(time.monotonic(), operator, secrets)


def rates(before: ApiserverCounts, after: ApiserverCounts) -> PhaseRates:
    """Requests a second between two snapshots."""
    seconds = max(after.at - before.at, 1e-9)
    return PhaseRates(round(seconds, 1), round((after.operator_requests - before.operator_requests) / seconds, 2),
                      round((after.secret_gets - before.secret_gets) / seconds, 2))
