"""Webhooks of the public API: the webhook objects, their rules and the mutation bucket
(docs/oec-api.md §11.6, §1 row 27).

:class:`WebhookRegistry` keeps the webhooks and their delivery records; the API handlers
(``api.py``) call it, the delivery engine (``delivery.py``) reads it and records its attempts in
it. Secrets are ``whsec_`` + 32 random url-safe bytes; they appear only in the create and
rotate-secret answers and in the admin view, never in a log line.
"""

from __future__ import annotations

import ipaddress
import math
import secrets
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from .clock import Clock, iso
from .errors import ApiError, field_error, not_found

#: Events a webhook may subscribe to: the reference's ten and the vendor client's two more (§11.6).
WEBHOOK_EVENTS = (
    "deploy.started",
    "deploy.completed",
    "deploy.failed",
    "deploy.cancelled",
    "environment.created",
    "environment.deleted",
    "environment.status_changed",
    "automation_rule.triggered",
    "automation_rule.completed",
    "automation_rule.failed",
    "environment.ready",
    "monitoring.alert",
)
#: Events per webhook at most (§11.6).
MAX_EVENTS = 10
#: Delivery records kept per webhook by the public API's list (newest first, §11.6).
PUBLIC_DELIVERIES = 50
#: Delivery records kept per webhook in all (the admin API shows them all up to this bound).
KEPT_DELIVERIES = 10_000
#: Window of the webhook-mutation bucket, seconds (§11.6: 10 per minute).
MUTATION_WINDOW = 60.0

Event = Literal[
    "deploy.started", "deploy.completed", "deploy.failed", "deploy.cancelled", "environment.created",
    "environment.deleted", "environment.status_changed", "automation_rule.triggered",
    "automation_rule.completed", "automation_rule.failed", "environment.ready", "monitoring.alert",
]
Url = Annotated[str, StringConstraints(min_length=1, max_length=2048)]
Description = Annotated[str, StringConstraints(max_length=500)]
Format = Literal["raw", "slack", "teams", "discord"]


def _unique(events: list[Event]) -> list[Event]:
    """The events in their first order, without repeats."""
    return list(dict.fromkeys(events))


class CreateWebhookBody(BaseModel):
    """Body of ``POST /webhooks`` (§11.6): ``url`` (≤ 2048), ``events`` (1-10 known events),
    ``description`` (≤ 500), ``project_id`` (null = org-wide), ``format``, ``is_active``."""

    model_config = ConfigDict(extra="ignore")

    url: Url
    events: Annotated[list[Event], Field(min_length=1, max_length=MAX_EVENTS)]
    description: Description | None = None
    project_id: uuid.UUID | None = None
    format: Format = "raw"
    is_active: bool = True

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[Event]) -> list[Event]:
        return _unique(value)


class PatchWebhookBody(BaseModel):
    """Body of ``PATCH /webhooks/{id}`` (§11.6): any of ``url``, ``events``, ``description``,
    ``format``, ``is_active``; unknown fields ignored."""

    model_config = ConfigDict(extra="ignore")

    url: Url | None = None
    events: Annotated[list[Event], Field(min_length=1, max_length=MAX_EVENTS)] | None = None
    description: Description | None = None
    format: Format | None = None
    is_active: bool | None = None

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[Event] | None) -> list[Event] | None:
        return _unique(value) if value is not None else None


def check_url(url: str, *, allow_insecure: bool) -> None:
    """422 on ``url`` unless it is https to a public host (§11.6); ``allow_insecure`` (the test
    flag ``webhook_allow_insecure_urls``) also takes http and loopback/private addresses."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in (("http", "https") if allow_insecure else ("https",)) or not host:
        raise field_error("body", "url", "URL must use https", "value_error")
    if allow_insecure:
        return
    if host == "localhost" or host.endswith(".localhost"):
        raise field_error("body", "url", "URL must not point to a private or loopback address", "value_error")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return  # a host name: not resolved here
    if not address.is_global:
        raise field_error("body", "url", "URL must not point to a private or loopback address", "value_error")


def new_secret() -> str:
    """A fresh webhook signing secret."""
    return "whsec_" + secrets.token_urlsafe(32)


@dataclass
class Delivery:
    """One delivery of one event to one webhook, with its attempts (§11.6 delivery record).
    ``status``: ``pending`` until an attempt succeeds (``success``) or the retries run out
    (``failed``). Times are epoch seconds of the simulator's clock."""

    id: str
    event: str
    event_id: str
    payload: dict[str, Any]
    created_at: float
    status: str = "pending"
    attempt_count: int = 0
    response_status: int | None = None
    duration_ms: int | None = None
    delivered_at: float | None = None
    response_body: str | None = None

    def view(self) -> dict[str, Any]:
        """The delivery record of ``GET /webhooks/{id}/deliveries``."""
        return {
            "id": self.id,
            "event": self.event,
            "status": self.status,
            "attempt_count": self.attempt_count,
            "response_status": self.response_status,
            "duration_ms": self.duration_ms,
            "delivered_at": iso(self.delivered_at),
            "created_at": iso(self.created_at),
            "response_body": self.response_body,
        }


@dataclass
class Webhook:
    """A webhook (§11.6). ``owner`` is the key id that created it (admin view only)."""

    id: str
    url: str
    events: list[str]
    description: str | None
    project_id: str | None
    format: str
    is_active: bool
    secret: str
    created_at: float
    owner: str
    last_triggered_at: float | None = None
    failure_count: int = 0
    deliveries: deque[Delivery] = field(default_factory=lambda: deque(maxlen=KEPT_DELIVERIES))

    def view(self) -> dict[str, Any]:
        """The webhook object of the public API (no secret)."""
        return {
            "id": self.id,
            "url": self.url,
            "events": list(self.events),
            "description": self.description,
            "project_id": self.project_id,
            "format": self.format,
            "is_active": self.is_active,
            "last_triggered_at": iso(self.last_triggered_at),
            "failure_count": self.failure_count,
            "created_at": iso(self.created_at),
        }

    def wants(self, event: str, project_id: str | None) -> bool:
        """Whether an event of ``project_id`` goes to this webhook: active, subscribed, in scope."""
        return self.is_active and event in self.events and self.project_id in (None, project_id)


class WebhookRegistry:
    """Every webhook, by id, and the per-key webhook-mutation bucket (§11.6: 10 per rolling minute)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.hooks: dict[str, Webhook] = {}
        self._mutations: dict[str, deque[float]] = {}

    def reset(self) -> None:
        """Forget every webhook, its deliveries and the mutation counters (``POST /_sim/reset``)."""
        self.hooks.clear()
        self._mutations.clear()

    def charge_mutation(self, key_id: str, limit: int) -> None:
        """Count one webhook create/update/delete of ``key_id``, or 429 ``webhook_mutation_rate_limit``
        (``retry_after`` whole seconds, also as ``Retry-After``) when ``limit`` were made in the last
        60 s. A refused mutation is not counted."""
        now = self._clock.now()
        stamps = self._mutations.setdefault(key_id, deque())
        while stamps and stamps[0] <= now - MUTATION_WINDOW:
            stamps.popleft()
        if len(stamps) >= limit:
            wait = max(1, math.ceil(stamps[0] + MUTATION_WINDOW - now))
            raise ApiError(
                429,
                "webhook_mutation_rate_limit",
                f"Too many webhook changes: {limit} per minute. Retry in {wait} seconds.",
                extras={"retry_after": wait},
                headers={"Retry-After": str(wait)},
            )
        stamps.append(now)

    def create(self, body: CreateWebhookBody, *, project_id: str | None, owner: str) -> Webhook:
        """Add a webhook from a validated body (URL and scope checked by the caller)."""
        hook = Webhook(
            id=str(uuid.uuid4()),
            url=body.url,
            events=list(body.events),
            description=body.description,
            project_id=project_id,
            format=body.format,
            is_active=body.is_active,
            secret=new_secret(),
            created_at=self._clock.now(),
            owner=owner,
        )
        self.hooks[hook.id] = hook
        return hook

    def get(self, webhook_id: str) -> Webhook:
        """The webhook, or 404 ``not_found``."""
        hook = self.hooks.get(webhook_id)
        if hook is None:
            raise not_found()
        return hook

    def update(self, hook: Webhook, body: PatchWebhookBody) -> Webhook:
        """Apply the given fields; re-activating a webhook clears its ``failure_count``."""
        if body.url is not None:
            hook.url = body.url
        if body.events is not None:
            hook.events = list(body.events)
        if body.description is not None:
            hook.description = body.description
        if body.format is not None:
            hook.format = body.format
        if body.is_active is not None:
            if body.is_active and not hook.is_active:
                hook.failure_count = 0
            hook.is_active = body.is_active
        return hook

    def delete(self, hook: Webhook) -> None:
        """Remove the webhook and its delivery history."""
        self.hooks.pop(hook.id, None)

    def rotate(self, hook: Webhook) -> str:
        """A new secret; the old one signs nothing from now on (§11.6)."""
        hook.secret = new_secret()
        return hook.secret

    def admin_view(self, hook: Webhook) -> dict[str, Any]:
        """The webhook with its secret, owner key id and delivery counts (``GET /_sim/webhooks``)."""
        counts = {"success": 0, "failed": 0, "pending": 0}
        for delivery in hook.deliveries:
            counts[delivery.status] = counts.get(delivery.status, 0) + 1
        return {**hook.view(), "secret": hook.secret, "owner": hook.owner, "deliveries": counts,
                "attempts": sum(d.attempt_count for d in hook.deliveries)}
