"""Prometheus metrics of the operator (prometheus_client), served on ``OEC_METRICS_PORT``.

The metrics and their labels are listed in the README (Metrics and logs).
"""

from __future__ import annotations

import datetime
import re
import threading
import time
from collections import Counter as Tally
from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

RECONCILES = Counter("oec_operator_reconciles", "Reconciles of OdooEnvironments by result", ["result"])
API_REQUESTS = Counter(
    "oec_operator_api_requests", "OEC.sh API requests by endpoint and status code", ["endpoint", "method", "code"]
)
API_LATENCY = Histogram(
    "oec_operator_api_request_duration_seconds", "OEC.sh API request latency", ["endpoint", "method"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
RATE_LIMIT_WAIT = Counter("oec_operator_rate_limit_wait_seconds", "Seconds the OEC.sh API asked the operator to wait")
RATE_LIMIT_REMAINING = Gauge("oec_operator_rate_limit_remaining", "Last X-RateLimit-Remaining the OEC.sh API sent")
BUDGET_WAIT = Counter(
    "oec_operator_rate_limit_budget_wait_seconds", "Seconds OEC.sh requests waited for the key's client-side budget",
    ["bucket"],
)
RESOURCES = Gauge("oec_operator_resources", "OdooEnvironments by OEC.sh environment status", ["phase"])
#: Terminal results of the operator's backups (``OdooBackup`` objects and final backups):
#: ``completed`` or ``failed``, each counted once, when the status first shows it.
BACKUPS = Counter("oec_operator_backups", "Backups the operator made or followed, by terminal result", ["result"])

#: Webhook deliveries by the receiver's answer (``docs/webhooks.md`` §4): ``accepted``,
#: ``duplicate``, ``ping``, ``ignored`` (202: names no environment), ``unverified`` (401),
#: ``malformed`` (400), ``unknown_environment`` (202, or 404 when configured), ``too_large`` (413), ``flooded`` (429),
#: ``unavailable`` (503: not ready, or the hand-over failed).
WEBHOOK_EVENTS = Counter("oec_operator_webhook_events", "Webhook deliveries by result", ["result"])
#: 1 while a key's webhooks are healthy and its project lists run at the stretched interval
#: (push), 0 while they run at the normal interval (poll); ``key`` is the key's id (SHA-256 prefix).
PUSH_MODE = Gauge("oec_operator_push_mode", "1: push (webhooks healthy, polling stretched), 0: poll", ["key"])
#: Webhook registration steps (docs/webhooks.md §5): ``created``, ``updated``, ``deleted`` (a
#: duplicate of ours), ``rotated``, ``reactivated``, ``calibrated``, ``uncalibrated`` (no scheme
#: matched the test ping), ``refused`` (the API refused the webhook, e.g. a non-public URL).
WEBHOOK_REGISTRATIONS = Counter("oec_operator_webhook_registrations", "Webhook registration steps by result",
                                ["result"])

_ID = re.compile(r"/[0-9a-fA-F-]{36}(?=/|$)")


def endpoint_of(path: str) -> str:
    """The path template of an API path (ids replaced by ``{id}``) to keep label cardinality low."""
    return _ID.sub("/{id}", "/" + path.lstrip("/"))


def observe_api_call(method: str, path: str, status: int | None, seconds: float,
                     remaining: str | None, retry_after: float | None) -> None:
    """Record one OEC.sh API call (the :class:`~oec_operator.oec.client.OecClient` observer)."""
    endpoint = endpoint_of(path)
    API_REQUESTS.labels(endpoint, method, str(status) if status is not None else "transport").inc()
    API_LATENCY.labels(endpoint, method).observe(seconds)
    if remaining is not None and remaining.isdigit():
        RATE_LIMIT_REMAINING.set(int(remaining))
    if retry_after:
        RATE_LIMIT_WAIT.inc(retry_after)


def observe_budget_wait(bucket: str, seconds: float) -> None:
    """Record a wait for the client-side budget (the :class:`~oec_operator.oec.ratelimit.RateLimiter` observer)."""
    BUDGET_WAIT.labels(bucket).inc(seconds)


class PhaseTracker:
    """Counts resources by phase for ``oec_operator_resources`` (uid -> phase)."""

    def __init__(self) -> None:
        self._phases: dict[str, str] = {}

    def set(self, uid: str, phase: str | None) -> None:
        """Record the phase of one resource (``None`` = unknown)."""
        self._phases[uid] = phase or "unknown"
        self._publish()

    def forget(self, uid: str) -> None:
        """The resource is gone."""
        self._phases.pop(uid, None)
        self._publish()

    def _publish(self) -> None:
        counts = Tally(self._phases.values())
        for labels in list(RESOURCES._metrics):  # drop phases no resource has any more
            if labels[0] not in counts:
                RESOURCES.remove(*labels)
        for phase, count in counts.items():
            RESOURCES.labels(phase).set(count)


class LatestBackups(Collector):
    """``oec_operator_latest_backup_age_seconds{namespace,environment}``: seconds since the newest
    completed backup of each ``OdooEnvironment`` the operator knows of, computed at scrape time
    (so the age grows between backups without any write)."""

    def __init__(self) -> None:
        self._completed: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()  # scrapes run in the metrics server's thread

    def observe(self, namespace: str, environment: str, completed_at: datetime.datetime | None) -> None:
        """A completed backup of ``namespace/environment`` (kept when newer than the one known)."""
        if completed_at is None:
            return
        if completed_at.tzinfo is None:
            completed_at = completed_at.replace(tzinfo=datetime.UTC)
        stamp = completed_at.timestamp()
        with self._lock:
            if stamp > self._completed.get((namespace, environment), float("-inf")):
                self._completed[(namespace, environment)] = stamp

    def forget(self, namespace: str, environment: str) -> None:
        """The environment is gone: drop its series."""
        with self._lock:
            self._completed.pop((namespace, environment), None)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("oec_operator_latest_backup_age_seconds",
                                   "Seconds since the newest completed backup of each OdooEnvironment",
                                   labels=["namespace", "environment"])
        now = time.time()
        with self._lock:
            items = list(self._completed.items())
        for (namespace, environment), stamp in items:
            family.add_metric([namespace, environment], max(0.0, now - stamp))
        yield family


LATEST_BACKUPS = LatestBackups()
REGISTRY.register(LATEST_BACKUPS)


def backup_finished(result: str) -> None:
    """Count one backup that reached a terminal ``result`` (``completed`` or ``failed``) in
    ``oec_operator_backups_total``; call once per backup, when its status first shows it."""
    BACKUPS.labels(result).inc()


def backup_completed(namespace: str, environment: str, completed_at: datetime.datetime | None) -> None:
    """Record a completed backup of the ``OdooEnvironment`` ``namespace/environment`` for
    ``oec_operator_latest_backup_age_seconds`` (any backup: an ``OdooBackup``, a final backup, or
    the newest one of ``status.backups.latest``, whoever made it)."""
    LATEST_BACKUPS.observe(namespace, environment, completed_at)


def serve(port: int, address: str = "0.0.0.0") -> None:  # noqa: S104 - the pod's metrics port
    """Start the ``/metrics`` HTTP server in a background thread (``port`` 0 = disabled)."""
    if port:
        start_http_server(port, addr=address)
