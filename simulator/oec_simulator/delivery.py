"""Webhook deliveries: what changed in the store becomes signed HTTP POSTs to the webhooks that
subscribe to it (docs/oec-api.md §11.6, §1 row 27).

The store's lifecycle is lazy (§10): a task's effect appears when its end time has passed and
someone looks. :class:`DeliveryEngine` looks: :meth:`~DeliveryEngine.scan` compares every
environment and deploy task with what it saw last and emits ``environment.created``,
``environment.status_changed`` (with ``previous_status``), ``environment.deleted`` and
``deploy.started|completed|failed|cancelled``. It runs after every API write and every
:data:`SCAN_INTERVAL` seconds while webhooks exist.

Each delivery is a background task (never on an API request's path): up to
``1 + len(webhook_retry_delays)`` attempts, each signed with the webhook's *current* secret (a
rotated secret signs every later attempt) by the configured scheme (:func:`signature_headers`).
A non-2xx answer or none (timeout, refused connection) is a failed attempt: ``failure_count`` +1,
and ``webhook_deactivate_after`` consecutive ones set ``is_active: false``; a 2xx resets it.
Wire shape (the body's ``attempt`` differs between retries; ``X-OEC-Delivery`` does not)::

    {"id": <event uuid>, "event": ..., "created_at": <RFC 3339>, "webhook_id": ..., "attempt": n,
     "data": {"environment_id", "project_id", "status", "previous_status", ...}}
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from .clock import Clock, iso
from .config import SimulatorConfig
from .store import Store
from .webhooks import Delivery, Webhook, WebhookRegistry

logger = logging.getLogger("oec_simulator.webhooks")

#: Seconds between two scans of the store while webhooks exist (real time).
SCAN_INTERVAL = 0.2
#: ``User-Agent`` of every delivery.
USER_AGENT = "OEC.sh-Webhooks/1.0"
#: Header carrying the unix seconds of the ``timestamp`` scheme.
TIMESTAMP_HEADER = "X-OEC-Timestamp"
#: Characters of a receiver's answer kept in a delivery record.
RESPONSE_BODY_LIMIT = 1000


def signature_headers(scheme: str, header: str, secret: str, body: bytes, ts: int) -> dict[str, str]:
    """The signature header(s) of ``body``: HMAC-SHA256 keyed with ``secret`` over the raw body
    (``hex``, ``prefixed`` = ``sha256=<hex>``, ``base64``) or over ``b"{ts}." + body`` (``timestamp``,
    hex, plus ``X-OEC-Timestamp: ts``)."""
    signed = f"{ts}.".encode() + body if scheme == "timestamp" else body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    if scheme == "base64":
        return {header: base64.b64encode(digest).decode()}
    value = digest.hex()
    if scheme == "prefixed":
        return {header: f"sha256={value}"}
    if scheme == "timestamp":
        return {header: value, TIMESTAMP_HEADER: str(ts)}
    return {header: value}


@dataclass
class _Seen:
    """What the last scan saw of one environment."""

    status: str
    deleted: bool
    tasks: int


class DeliveryEngine:
    """Emits the store's changes to the subscribed webhooks and runs the deliveries.

    ``enabled`` (admin ``POST /_sim/webhooks/deliveries``): False drops new events and stops the
    deliveries in flight (they end ``failed``); the ``/test`` ping is sent either way. ``sent``
    counts attempts made (pings included), ``dropped`` the events dropped while disabled.
    """

    def __init__(self, config: Callable[[], SimulatorConfig], clock: Clock, store: Store,
                 registry: WebhookRegistry) -> None:
        self._config = config
        self._clock = clock
        self._store = store
        self._registry = registry
        self.enabled = True
        self.sent = 0
        self.dropped = 0
        self._http: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._ticker: asyncio.Task[None] | None = None
        self._seen: dict[str, _Seen] | None = None  # None: not primed (no webhooks yet)
        self._open: dict[str, bool] = {}  # deploy task id → started reported

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Start the periodic scan (call inside the serving event loop)."""
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._tick_forever(), name="oec-sim-webhook-scan")

    async def stop(self) -> None:
        """Cancel the scan and every delivery in flight, close the HTTP client."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        await self.cancel_all()
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def cancel_all(self) -> None:
        """Stop every delivery in flight (they end ``failed``)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def reset(self) -> None:
        """Forget what the scans saw and resume sending (``POST /_sim/reset``); deliveries in flight
        are cancelled."""
        for task in list(self._tasks):
            task.cancel()
        self._seen, self._open = None, {}
        self.enabled = True

    def in_flight(self) -> int:
        """Deliveries still running (retries pending included)."""
        return sum(1 for task in self._tasks if not task.done())

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(SCAN_INTERVAL)
            try:
                self.scan()
            except Exception:  # a scan bug must not stop the scanning; it is logged
                logger.exception("webhook scan failed")

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(follow_redirects=False, trust_env=False)
        return self._http

    # ------------------------------------------------------------------ change detection
    def scan(self) -> None:
        """Compare the store with the last scan and emit an event per change. Without webhooks it
        only forgets; the first scan with webhooks (or :meth:`prime`) records the state silently."""
        if not self._registry.hooks:
            self._seen, self._open = None, {}
            return
        self._scan(silent=self._seen is None)

    def prime(self) -> None:
        """Record the store's state without emitting (before the first webhook is added)."""
        if self._seen is None:
            self._scan(silent=True)

    def _scan(self, *, silent: bool) -> None:
        seen = self._seen if self._seen is not None else {}
        self._seen = seen
        self._store.tick()
        now = self._clock.now()
        for env in list(self._store.environments.values()):
            last = seen.get(env.id)
            base = {"environment_id": env.id, "project_id": env.project_id}
            if last is None:
                last = seen[env.id] = _Seen(env.status, env.deleted, 0)
                if not silent and not env.deleted:
                    self.emit("environment.created", env.project_id,
                              {**base, "environment_name": env.name, "status": env.status})
            elif env.status != last.status:
                if not silent:
                    self.emit("environment.status_changed", env.project_id,
                              {**base, "status": env.status, "previous_status": last.status})
                    if env.deleted and not last.deleted:
                        self.emit("environment.deleted", env.project_id,
                                  {**base, "status": env.status, "previous_status": last.status})
                last.status, last.deleted = env.status, env.deleted
            for task_id in env.task_ids[last.tasks:]:
                if self._store.tasks[task_id].type == "deploy":
                    self._open[task_id] = silent
            last.tasks = len(env.task_ids)
        for task_id, started in list(self._open.items()):
            task = self._store.tasks[task_id]
            status = task.status_at(now)
            owner = self._store.environments.get(task.environment_id)
            project_id = owner.project_id if owner is not None else None
            data: dict[str, Any] = {"environment_id": task.environment_id, "project_id": project_id,
                                    "deploy_id": task.id, "status": status}
            ran = task.cancelled_at is None or task.cancelled_at > task.start_at
            if not started and status != "queued" and ran:
                self._open[task_id] = started = True
                if not silent:
                    self.emit("deploy.started", project_id, {**data, "status": "running"})
            if status in ("completed", "failed", "cancelled"):
                del self._open[task_id]
                if not silent:
                    if status == "failed":
                        data["error_message"] = task.error_message
                    self.emit(f"deploy.{status}", project_id, data)

    # ------------------------------------------------------------------ deliveries
    def emit(self, event: str, project_id: str | None, data: dict[str, Any]) -> None:
        """Queue one delivery of ``event`` per active webhook that subscribes to it and sees
        ``project_id`` (org-wide, or that project's); dropped while deliveries are disabled."""
        if not self.enabled:
            self.dropped += 1
            return
        event_id = str(uuid.uuid4())
        now = self._clock.now()
        for hook in list(self._registry.hooks.values()):
            if not hook.wants(event, project_id):
                continue
            delivery = Delivery(id=str(uuid.uuid4()), event=event, event_id=event_id, payload=dict(data),
                                created_at=now)
            hook.deliveries.append(delivery)
            task = asyncio.get_running_loop().create_task(self._deliver(hook, delivery))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, hook: Webhook, delivery: Delivery) -> None:
        try:
            delays = list(self._config().webhook_retry_delays)
            while hook.is_active and hook.id in self._registry.hooks:  # deleted or deactivated: no more attempts
                if await self._attempt(hook, delivery):
                    return
                if delivery.attempt_count > len(delays) or not hook.is_active:
                    break
                await asyncio.sleep(delays[delivery.attempt_count - 1])
            delivery.status = "failed"
        finally:
            if delivery.status == "pending":  # cancelled: deliveries stopped or simulator closing
                delivery.status = "failed"

    def _envelope(self, hook: Webhook, delivery: Delivery) -> bytes:
        return json.dumps({
            "id": delivery.event_id,
            "event": delivery.event,
            "created_at": iso(delivery.created_at),
            "webhook_id": hook.id,
            "attempt": delivery.attempt_count,
            "data": delivery.payload,
        }).encode()

    async def _post(self, hook: Webhook, event: str, delivery_id: str, body: bytes
                    ) -> tuple[int | None, str | None, int, str | None]:
        """One signed POST → ``(status or None, answer text, duration ms, transport error name)``."""
        config = self._config()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-OEC-Event": event,
            "X-OEC-Delivery": delivery_id,
            **signature_headers(config.webhook_signature, config.webhook_signature_header, hook.secret, body,
                                int(self._clock.now())),
        }
        self.sent += 1
        started = time.perf_counter()
        try:
            # Waiting for one of the pool's connections is not the receiver's fault: no pool timeout.
            timeout = httpx.Timeout(config.webhook_timeout_seconds, pool=None)
            response = await self._client().post(hook.url, content=body, headers=headers, timeout=timeout)
        except httpx.HTTPError as exc:
            return None, None, round((time.perf_counter() - started) * 1000), type(exc).__name__
        duration = round((time.perf_counter() - started) * 1000)
        return response.status_code, response.text[:RESPONSE_BODY_LIMIT], duration, None

    async def _attempt(self, hook: Webhook, delivery: Delivery) -> bool:
        """One attempt: POST, record it on the delivery and the webhook; True on a 2xx."""
        delivery.attempt_count += 1
        status, text, duration, error = await self._post(hook, delivery.event, delivery.id,
                                                         self._envelope(hook, delivery))
        now = self._clock.now()
        delivery.response_status, delivery.duration_ms, delivery.delivered_at = status, duration, now
        delivery.response_body = text if error is None else f"delivery failed: {error}"
        hook.last_triggered_at = now
        if status is not None and 200 <= status < 300:
            delivery.status, hook.failure_count = "success", 0
            return True
        hook.failure_count += 1
        limit = self._config().webhook_deactivate_after
        if limit and hook.failure_count >= limit and hook.is_active:
            hook.is_active = False
            logger.info("webhook %s deactivated after %d failed attempts", hook.id, hook.failure_count)
        return False

    async def ping(self, hook: Webhook) -> dict[str, Any]:
        """Send a signed ``ping`` now → ``{success, status_code, duration_ms, message}`` (§11.6);
        no delivery record, ``failure_count`` untouched."""
        body = json.dumps({"id": str(uuid.uuid4()), "event": "ping", "created_at": iso(self._clock.now()),
                           "webhook_id": hook.id, "data": {}}).encode()
        status, _, duration, error = await self._post(hook, "ping", str(uuid.uuid4()), body)
        success = status is not None and 200 <= status < 300
        if error is not None:
            message = f"Could not reach the webhook URL ({error})."
        elif success:
            message = "Test event delivered."
        else:
            message = f"The webhook URL answered HTTP {status}."
        return {"success": success, "status_code": status, "duration_ms": duration, "message": message}
