"""The webhook receiver: an HTTP server that OEC.sh posts deliveries to (``docs/webhooks.md`` §4).

``POST`` :data:`~oec_operator.settings.WEBHOOK_PATH` takes a delivery; ``GET /healthz`` answers
200. A delivery is only a hint: once verified, it asks the :class:`Sink` to refresh the one
environment it names from the API (``docs/webhooks.md`` §2); nothing of its payload is written
anywhere. The order of the checks makes a hostile sender cheap: the in-flight cap and the size cap
before anything is read or computed, then the signature (HMAC) before the JSON is parsed.

Answers (JSON ``{"result": ...}``, each counted in ``oec_operator_webhook_events_total{result}``):
202 ``accepted`` / ``duplicate`` / ``ping`` / ``ignored`` (names no environment), 400 ``malformed``,
401 ``unverified``, 404 ``unknown_environment``, 413 ``too_large``, 429 ``flooded`` and 503
``unavailable`` (both with ``Retry-After``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web

from oec_operator import metrics
from oec_operator.settings import WEBHOOK_PATH, OperatorConfig
from oec_operator.webhooks.book import SecretBook
from oec_operator.webhooks.calibrate import Calibrator
from oec_operator.webhooks.scheme import lower

logger = logging.getLogger(__name__)

#: The largest body taken (bytes); larger ones are answered 413 (``docs/webhooks.md`` §4).
MAX_BODY = 64 * 1024
#: Seconds a flooded (429) or not yet ready (503) receiver asks the sender to wait.
RETRY_AFTER = 5
#: Seconds between two INFO lines with the counts of answers.
SUMMARY_EVERY = 60.0
#: Seconds open deliveries get to finish when the receiver stops (then they are cancelled).
SHUTDOWN = 5.0
#: De-duplication entries kept at most (the oldest go first).
SEEN_MAX = 65536
#: What an environment id may look like (anything else in a verified delivery is malformed).
_ENV_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: What a delivery's own id may look like to serve as its de-duplication key.
_EVENT_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


class Sink(Protocol):
    """Where verified deliveries go (the push hub, ``docs/webhooks.md`` §2)."""

    async def hint(self, key_id: str, env_id: str, event: str) -> bool:
        """Refresh the environment ``env_id`` soon (debounced, charged to the key's read budget);
        False when no object of this cluster owns it."""

    def delivered(self, key_id: str) -> None:
        """A verified delivery for this key arrived (push health credit)."""


def environment_of(payload: dict[str, Any]) -> str | None:
    """The environment id a delivery names (``data.environment_id``, ``data.environment.id`` or
    ``environment_id``), ``None`` when it names none.

    Raises:
        ValueError: it names one that is not an id.
    """
    data = payload.get("data")
    found: object = None
    if isinstance(data, dict):
        found = data.get("environment_id")
        if found is None and isinstance(data.get("environment"), dict):
            found = data["environment"].get("id")
    if found is None:
        found = payload.get("environment_id")
    if found is None:
        return None
    if not isinstance(found, str) or not _ENV_ID.match(found):
        raise ValueError("environment id is not an id")
    return found


def dedup_key(payload: dict[str, Any], body: bytes) -> str:
    """What makes two deliveries the same: the event's own ``id`` (the same on every retry,
    whose ``attempt`` differs), else the SHA-256 of the body."""
    event_id = payload.get("id")
    if isinstance(event_id, str) and _EVENT_ID.match(event_id):
        return "id:" + event_id
    return "sha256:" + hashlib.sha256(body).hexdigest()


class Receiver:
    """The receiver's HTTP application and server.

    Args:
        config: ``webhook_address``, ``webhook_port``, ``webhook_dedup_window`` (s) and
            ``webhook_max_inflight``.
        book: the secrets deliveries are verified with.
        calibrator: gets every ping.
        sink: gets verified deliveries; ``None`` (not ready yet): they are answered 503.
        wall: Unix seconds (time stamps of signatures); mono: monotonic seconds (windows).

    Attributes:
        on_unverified: called with the ``key_id`` whose webhook id a refused delivery names (a
            sign of a wrong secret or scheme for that key; push health).
        reload: reads the webhook Secret into the book again (rate-limited by its owner, the
            registrar; True when it was read). Awaited once when a delivery names a webhook id
            the book does not know: another replica may have registered it after this one read
            the Secret (a standby started with the active one, ``docs/webhooks.md`` §2).
    """

    def __init__(self, config: OperatorConfig, book: SecretBook, calibrator: Calibrator, sink: Sink | None = None,
                 *, wall: Callable[[], float] = time.time, mono: Callable[[], float] = time.monotonic) -> None:
        self.config, self.book, self.calibrator, self.sink = config, book, calibrator, sink
        self.on_unverified: Callable[[str], None] | None = None
        self.reload: Callable[[], Awaitable[bool]] | None = None
        self._wall, self._mono = wall, mono
        self._inflight = 0
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._counts: Counter[str] = Counter()
        self._summary_at = mono()
        self._runner: web.AppRunner | None = None
        self.app = web.Application(client_max_size=MAX_BODY)
        self.app.router.add_post(WEBHOOK_PATH, self._post)
        self.app.router.add_get("/healthz", self._health)

    async def start(self) -> None:
        """Serve on ``webhook_address:webhook_port``.

        Raises:
            OSError: the port cannot be bound.
        """
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.config.webhook_address, self.config.webhook_port).start()
        logger.info("Webhook receiver listening on %s:%s%s", self.config.webhook_address,
                    self.config.webhook_port, WEBHOOK_PATH)

    async def stop(self) -> None:
        """Stop serving (open deliveries get :data:`SHUTDOWN` seconds to finish)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _health(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    def _answer(self, status: int, result: str, request: web.Request, size: int | None = None) -> web.Response:
        """Count and log the answer and build it."""
        metrics.WEBHOOK_EVENTS.labels(result=result).inc()
        self._counts[result] += 1
        if status >= 400:
            logger.debug("Webhook delivery refused: %s %s from %s (%s bytes)", status, result, request.remote, size)
        if (now := self._mono()) - self._summary_at >= SUMMARY_EVERY:
            logger.info("Webhook deliveries in the last %.0f s: %s", now - self._summary_at,
                        ", ".join(f"{name} {count}" for name, count in sorted(self._counts.items())))
            self._counts.clear()
            self._summary_at = now
        headers = {"Retry-After": str(RETRY_AFTER)} if status in (429, 503) else None
        return web.json_response({"result": result}, status=status, headers=headers)

    async def _post(self, request: web.Request) -> web.Response:
        if self._inflight >= self.config.webhook_max_inflight:
            return self._answer(429, "flooded", request)
        self._inflight += 1
        try:
            return await self._delivery(request)
        finally:
            self._inflight -= 1

    async def _delivery(self, request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > MAX_BODY:
            return self._answer(413, "too_large", request, request.content_length)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._answer(413, "too_large", request)
        headers = lower(request.headers)
        key_id = self.book.match(headers, body, self._wall())
        if key_id is None:
            key_id = await self._reloaded(headers, body)
        if key_id is None:
            return self._unverified(request, headers, body)
        try:
            payload = json.loads(body)
            if not isinstance(payload, dict):
                raise ValueError("not an object")
            event = payload.get("event") or headers.get("x-oec-event") or ""
            env_id = environment_of(payload)
        except (ValueError, UnicodeDecodeError):
            return self._answer(400, "malformed", request, len(body))
        if event == "ping":
            self.calibrator.observe(headers, body)
            self._credit(key_id)
            return self._answer(202, "ping", request)
        if self.sink is None:
            return self._answer(503, "unavailable", request)
        self._credit(key_id)
        seen = (key_id, dedup_key(payload, body))
        if self._duplicate(seen):
            return self._answer(202, "duplicate", request)
        if env_id is None:
            return self._answer(202, "ignored", request)
        try:
            known = await self.sink.hint(key_id, env_id, str(event))
        except Exception as error:
            self._seen.pop(seen, None)  # the sender retries it
            logger.warning("Webhook delivery not handed on: %s", type(error).__name__)
            return self._answer(503, "unavailable", request)
        if not known:
            self._seen.pop(seen, None)  # a retry asks again (the object may exist by then)
            return self._answer(self.config.webhook_unknown_environment_status, "unknown_environment", request)
        return self._answer(202, "accepted", request)

    async def _reloaded(self, headers: dict[str, str], body: bytes) -> str | None:
        """The key that signed a delivery naming a webhook id the book does not know, once the
        webhook Secret was read again (no OEC.sh API call; a flood of such deliveries costs at
        most one Secret read per the registrar's reload interval); None when none did."""
        _, webhook_id = _claims(body)
        if self.reload is None or not webhook_id or self.book.key_of(webhook_id) is not None:
            return None
        if not await self.reload():
            return None
        return self.book.match(headers, body, self._wall())

    def _unverified(self, request: web.Request, headers: dict[str, str], body: bytes) -> web.Response:
        """A delivery no known secret signed: 401; a ping still goes to the calibrator (the
        configured scheme may be the wrong one); a known webhook id it names is reported."""
        event, webhook_id = _claims(body)
        if event == "ping":
            self.calibrator.observe(headers, body)
        key_id = self.book.key_of(webhook_id) if webhook_id else None
        if key_id is not None and self.on_unverified is not None:
            self.on_unverified(key_id)
        return self._answer(401, "unverified", request, len(body))

    def _credit(self, key_id: str) -> None:
        if self.sink is not None:
            self.sink.delivered(key_id)

    def _duplicate(self, seen: tuple[str, str]) -> bool:
        """True when ``seen`` came within ``webhook_dedup_window``; else remembers it."""
        now = self._mono()
        window = self.config.webhook_dedup_window
        while self._seen and (len(self._seen) >= SEEN_MAX or next(iter(self._seen.values())) + window < now):
            self._seen.popitem(last=False)
        at = self._seen.get(seen)
        if at is not None and at + window >= now:
            return True
        self._seen[seen] = now
        self._seen.move_to_end(seen)
        return False


def _claims(body: bytes) -> tuple[object, str | None]:
    """The ``event`` and ``webhook_id`` an (unverified) body claims, if any."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None, None
    if not isinstance(payload, dict):
        return None, None
    webhook_id = payload.get("webhook_id")
    return payload.get("event"), webhook_id if isinstance(webhook_id, str) else None


async def serve(config: OperatorConfig, book: SecretBook, calibrator: Calibrator,
                sink: Sink | None = None) -> Receiver | None:
    """Start the receiver (every replica, the standby ones too: OEC.sh may post to any), or
    nothing when ``webhook_url`` is unset (no webhooks: nothing else changes) or ``webhook_port`` is 0.

    Raises:
        OSError: the port cannot be bound.
    """
    if not config.webhook_port or not config.webhook_url:
        return None
    receiver = Receiver(config, book, calibrator, sink)
    await receiver.start()
    return receiver
