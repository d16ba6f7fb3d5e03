"""Declarative webhook registration (``docs/webhooks.md`` §5).

For every API key the operator uses, the :class:`Registrar` makes the OEC.sh webhooks match the
configuration: exactly one webhook of ours (``url == OEC_WEBHOOK_URL`` and our description
marker) per key, org-wide (``project_id`` null) for an organization key, one per watched project
for a project-scoped key; the configured events; active; its secret known (kept in the webhook
Secret, :mod:`oec_operator.webhooks.secretstore`) and its signature scheme calibrated with the
``/test`` ping. It re-checks every ``OEC_WEBHOOK_CHECK_INTERVAL`` and rotates the secret every
``OEC_WEBHOOK_ROTATE_AFTER_DAYS`` or when the Secret's rotation annotation asks for it.

Webhook mutations (create, update, delete) go through the key's own 10-a-minute bucket in the
client (``docs/oec-api.md`` §11.6); a 429 ``webhook_mutation_rate_limit`` is waited out. The
webhook secret never appears in logs, events, status or exception text.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets as pysecrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar

from oec_operator import metrics
from oec_operator.kube.client import KubeError
from oec_operator.oec.client import OecClient
from oec_operator.oec.errors import (
    OecError,
    OecPermissionError,
    OecRateLimitError,
    OecTransportError,
    OecValidationError,
)
from oec_operator.oec.models import Webhook
from oec_operator.oec.ratelimit import Priority
from oec_operator.settings import OperatorConfig
from oec_operator.webhooks.book import KeySecrets
from oec_operator.webhooks.scheme import SignatureScheme
from oec_operator.webhooks.scheme import calibrate as match_scheme
from oec_operator.webhooks.secretstore import StoredState, StoredWebhook, WebhookSecretStore

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds to wait for the ``ping`` of ``POST /webhooks/{id}/test``.
PING_TIMEOUT = 10.0
#: ``/test`` pings sent at most in one calibration while each one reaches another replica's receiver.
TEST_PINGS = 3
#: Seconds to wait for a ping at this receiver once the ``/test`` answer says a receiver answered it
#: (the ping is sent before the answer: it went to another replica when it is not here by then).
ANSWERED_WAIT = 1.0
#: Attempts of one webhook mutation (rate limited or unanswered) before the round gives up.
MUTATION_ATTEMPTS = 5
#: Seconds before a round that failed is tried again (at most the check interval).
RETRY_SECONDS = 30.0
#: Least seconds between two early reloads asked by deliveries that failed verification (a
#: Kubernetes read of one Secret, no API call: cheap, and short enough that a reload made a moment
#: before another replica wrote the Secret does not block the calibration pings that follow).
RELOAD_SECONDS = 1.0


class Book(Protocol):
    """The receiver's secrets (:class:`oec_operator.webhooks.book.SecretBook`)."""

    def get(self, key_id: str) -> KeySecrets | None: ...

    def set(self, key_id: str, webhook_id: str, secret: str, now: float,
            scheme: SignatureScheme | None = None) -> None: ...

    def pin(self, key_id: str, scheme: SignatureScheme | None) -> None: ...


class PingSource(Protocol):
    """The receiver's ping catcher (:class:`oec_operator.webhooks.calibrate.Calibrator`)."""

    def cursor(self) -> int: ...

    async def wait_ping(self, webhook_id: str, timeout: float, *,  # noqa: ASYNC109 - as the Calibrator
                        since: int = 0) -> tuple[dict[str, str], bytes] | None: ...

    async def calibrate(self, webhook_id: str, secret: str, timeout: float, *, since: int = 0,  # noqa: ASYNC109
                        default: SignatureScheme | None = None,
                        tolerance: float = 300.0) -> SignatureScheme | None: ...


@dataclass(frozen=True)
class WebhookState:
    """What a check saw of one key's webhook (push health, ``docs/webhooks.md`` §4): ``usable`` is
    False while it is not registered or its signature scheme matched no ping."""

    key_id: str
    usable: bool
    is_active: bool
    failure_count: int
    failing: bool = False  # its newest delivery that was tried failed (``GET /webhooks/{id}/deliveries``)


def install_id(config: OperatorConfig) -> str:
    """The id of this installation in our webhooks' description: stable across restarts and a lost
    webhook Secret (derived from where that Secret lives, not from its content)."""
    return hashlib.sha256(f"{config.webhook_secret}|{config.webhook_url}".encode()).hexdigest()[:12]


@dataclass
class _Key:
    client: OecClient
    projects: set[str] = field(default_factory=set)
    scoped: bool = False
    reactivated_at: float = float("-inf")
    refused: bool = False


class Registrar:
    """Keeps one webhook of ours per API key (or per key and project) as configured.

    Args:
        config: the operator's configuration (``webhook_*``); ``webhook_url`` must be set.
        store: the webhook Secret.
        book: the receiver's secrets, filled from the Secret at :meth:`load` and on every change.
        pings: where the ``/test`` pings arrive.
        on_state: called after each check of a webhook (push health).
        sleep: how to wait (tests pass one that advances a manual clock).
        wall: seconds since the epoch.
    """

    def __init__(self, config: OperatorConfig, store: WebhookSecretStore, book: Book, pings: PingSource,
                 on_state: Callable[[WebhookState], None] | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 wall: Callable[[], float] = time.time) -> None:
        if not config.webhook_url:
            raise ValueError("the Registrar needs OEC_WEBHOOK_URL")
        self.config = config
        self.url = config.webhook_url
        self.marker = f"oec-operator:{install_id(config)}"
        self._store = store
        self._book = book
        self._pings = pings
        self._on_state = on_state
        self._sleep = sleep
        self._wall = wall
        self._keys: dict[str, _Key] = {}
        self._nonces: dict[str, str] = {}
        self._wake = asyncio.Event()
        self._reloaded_at = float("-inf")
        self._reload: asyncio.Task[None] | None = None
        self._suspects: set[str] = set()  # book names whose deliveries failed verification since their check
        self._default = SignatureScheme.from_config(config)

    def marker_of(self, key_id: str) -> str:
        """What our webhooks of this key carry in their description: org-wide webhooks of one
        organization are visible to all its keys, so each key knows its own by it."""
        return f"{self.marker} key {key_id}"

    def _description(self, key_id: str) -> str:
        return f"Managed by {self.marker_of(key_id)}; do not edit"

    # ------------------------------------------------------------------ inputs

    def stale(self, name: str | None = None) -> None:
        """A delivery named one of our webhooks (book name ``name``) but failed verification: the
        secret may have been rotated by another replica, so read the Secret again now (at most every
        :data:`RELOAD_SECONDS`; never an API call, so forged deliveries cost no read). The next check
        of that webhook tests whether our secret still signs its ping (one ``/test`` per check,
        ``docs/webhooks.md`` §5): someone may have rotated it through the API."""
        if name is not None:
            self._suspects.add(name)
        now = time.monotonic()
        if now - self._reloaded_at < RELOAD_SECONDS or (self._reload is not None and not self._reload.done()):
            return
        self._reloaded_at = now
        self._reload = asyncio.get_running_loop().create_task(self._reload_secret(), name="webhook Secret reload")

    async def reload_now(self) -> bool:
        """A delivery named a webhook id this replica does not know: another replica may have
        registered it (and written the Secret) after this one read the Secret, as a standby
        started with the active replica does. Read the Secret now, unless it was read for this
        less than :data:`RELOAD_SECONDS` ago (a read in flight is waited for); never an API call.

        Returns:
            True when the Secret was read (the book may know more now).
        """
        if self._reload is None or self._reload.done():
            now = time.monotonic()
            if now - self._reloaded_at < RELOAD_SECONDS:
                return False
            self._reloaded_at = now
            self._reload = asyncio.get_running_loop().create_task(self._reload_secret(), name="webhook Secret reload")
        await asyncio.shield(self._reload)
        return True

    async def _reload_secret(self) -> None:
        """Read the Secret into the book (no API call)."""
        try:
            await self.load()
        except KubeError as exc:
            logger.warning("webhook Secret unreadable (%s)", exc)

    def track(self, client: OecClient, project_id: str | None = None) -> None:
        """The operator uses this key (for ``project_id``): register its webhook soon. Cheap when
        already known (called on every use)."""
        key = self._keys.get(client.key_id)
        if key is None:
            key = self._keys[client.key_id] = _Key(client.with_priority(Priority.CHANGE))
            self._wake.set()
        if project_id is not None and project_id not in key.projects:
            key.projects.add(project_id)
            if key.scoped:
                self._wake.set()

    async def load(self) -> StoredState:
        """Read the webhook Secret into the book, so deliveries verify before any API call (and a
        standby replica's receiver follows what the active one wrote).

        Raises:
            KubeError: the Secret could not be read.
        """
        state = await self._store.load()
        for name, entry in state.entries.items():
            known, scheme = self._book.get(name), _scheme(entry.scheme)
            if known is None or (known.webhook_id, known.secret) != (entry.webhook_id, entry.secret):
                self._book.set(name, entry.webhook_id, entry.secret, self._wall(), scheme)
            if scheme is not None and (known is None or known.scheme != scheme):
                self._book.pin(name, scheme)
        return state

    # ------------------------------------------------------------------ loop

    async def run(self) -> None:
        """Load the Secret, then check every key now and every ``webhook_check_interval``; never
        returns (cancel it to stop)."""
        while True:
            try:
                await self.load()
                break
            except KubeError as exc:
                logger.warning("webhook Secret %s/%s unreadable (%s); retrying", self._store.namespace,
                               self._store.name, exc)
                await self._sleep(RETRY_SECONDS)
        while True:
            self._wake.clear()
            failed = not await self.check_all()
            delay = min(RETRY_SECONDS, self.config.webhook_check_interval) if failed \
                else self.config.webhook_check_interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def check_all(self) -> bool:
        """One check of every known key; returns False when one failed (it is tried again soon)."""
        try:
            state = await self.load()
        except KubeError as exc:
            logger.warning("webhook Secret unreadable (%s)", exc)
            return False
        ok = True
        for key_id in list(self._keys):
            try:
                await self.ensure(key_id, state)
            except (OecError, KubeError) as exc:
                ok = False
                logger.warning("webhook registration of key %s failed: %s", key_id, exc)
        # Only a process that checked keys acted on it (a standby replica tracks none).
        if ok and self._keys and state.rotation_requested and state.rotate_token:
            await self._store.handled(state.rotate_token)
        return ok

    async def ensure(self, key_id: str, state: StoredState) -> None:
        """Make the webhooks of one key match the configuration.

        Raises:
            OecError: an API call failed; KubeError: the Secret could not be written.
        """
        key = self._keys[key_id]
        hooks = await key.client.list_webhooks()
        if not key.scoped:
            try:
                await self._ensure_one(key, key_id, None, [w for w in hooks if w.project_id is None], state)
                return
            except (OecValidationError, OecPermissionError) as exc:
                if not _scope_refusal(exc):
                    self._refused(key, exc)
                    return
                key.scoped = True
                logger.info("key %s is project-scoped: one webhook per watched project", key_id)
        for project in sorted(key.projects):
            try:
                await self._ensure_one(key, f"{key_id}.{project}", project,
                                       [w for w in hooks if w.project_id == project], state)
            except OecValidationError as exc:  # e.g. the URL: retried at the next check, not in 30 s
                self._refused(key, exc)

    # ------------------------------------------------------------------ one webhook

    async def _ensure_one(self, key: _Key, name: str, project: str | None, listed: list[Webhook],
                          state: StoredState) -> None:
        """One webhook of ``listed`` (the key's, in this scope) kept as configured. Ours: our URL and
        marker, or the one our Secret names (registered under an earlier ``OEC_WEBHOOK_URL``)."""
        api = key.client
        stored = state.entries.get(name)
        mark = self.marker_of(api.key_id)
        ours = [w for w in listed if (w.url == self.url and mark in (w.description or ""))
                or (stored is not None and w.id == stored.webhook_id)]
        keep = _pick(ours, stored)
        for extra in (w for w in ours if w is not keep):
            await self._mutate(lambda w=extra: api.delete_webhook(w.id))  # type: ignore[misc]
            metrics.WEBHOOK_REGISTRATIONS.labels("deleted").inc()
            logger.info("deleted duplicate webhook %s of key %s", extra.id, key.client.key_id)
        now = self._wall()
        rotated_at: datetime | None
        if keep is None:
            keep = await self._create(key, name, project)
            secret, scheme, rotated_at, changed = keep.secret or "", None, _at(now), True
            if not secret:  # the create answer had no secret (a replay may not carry it)
                secret = await api.rotate_webhook_secret(keep.id)
        else:
            if stored is not None and stored.webhook_id == keep.id:
                secret, scheme, rotated_at, changed = stored.secret, _scheme(stored.scheme), stored.rotated_at, False
            else:  # Secret lost, or made by someone else: only a rotation tells us the secret
                secret, scheme, rotated_at, changed = await api.rotate_webhook_secret(keep.id), None, _at(now), True
                metrics.WEBHOOK_REGISTRATIONS.labels("rotated").inc()
                logger.info("webhook %s of key %s: secret unknown, rotated", keep.id, api.key_id)
            keep = await self._converge(key, keep, now)
            if not changed and name in self._suspects:
                if await self._signs(api, keep.id, secret) is False:
                    # Our secret no longer signs its ping: someone rotated it through the API. Only a
                    # rotation tells us the secret again (else every delivery is a 401 until it is
                    # deactivated).
                    secret, scheme, rotated_at, changed = await api.rotate_webhook_secret(keep.id), None, _at(now), True
                    metrics.WEBHOOK_REGISTRATIONS.labels("rotated").inc()
                    logger.warning("webhook %s of key %s: deliveries fail verification and the test ping is not "
                                   "signed with our secret (rotated outside the operator?): secret rotated",
                                   keep.id, api.key_id)
                self._suspects.discard(name)  # after the probe: its own refused ping is no news
            if not changed and (state.rotation_requested or self._rotation_due(rotated_at, now)):
                # The book keeps the old secret for a grace period (deliveries already signed).
                secret, scheme, rotated_at, changed = await api.rotate_webhook_secret(keep.id), None, _at(now), True
                metrics.WEBHOOK_REGISTRATIONS.labels("rotated").inc()
                logger.info("webhook %s of key %s: secret rotated", keep.id, api.key_id)
        if changed:
            self._book.set(name, keep.id, secret, now)
            await self._store.save(name, StoredWebhook(keep.id, secret, None, rotated_at))
        if scheme is None:
            scheme = await self._calibrate(api, keep.id, secret)
            self._book.pin(name, scheme)
            if scheme is not None:
                await self._store.save(name, StoredWebhook(keep.id, secret, scheme.to_json(), rotated_at))
        if self._on_state is not None:
            failing = keep.failure_count > 0 and await self._failing(api, keep.id)
            self._on_state(WebhookState(api.key_id, scheme is not None, keep.is_active, keep.failure_count, failing))

    async def _failing(self, api: OecClient, webhook_id: str) -> bool:
        """Whether the webhook's newest delivery that was tried failed (one read, only while its
        ``failure_count`` is not 0): ``failure_count`` alone says nothing once it stops rising (a
        receiver still unreachable between two changes), and its semantics are not documented
        (``docs/oec-api.md`` §11.6)."""
        tried = [d for d in await api.webhook_deliveries(webhook_id) if d.attempt_count > 0]
        newest = max(tried, key=lambda d: str(d.created_at or ""), default=None)
        return newest is not None and newest.status != "success"

    async def _create(self, key: _Key, name: str, project: str | None) -> Webhook:
        nonce = self._nonces.setdefault(name, pysecrets.token_hex(8))
        idem = hashlib.sha256(f"{name}|{self.url}|{self.marker}|{nonce}".encode()).hexdigest()
        api = key.client
        created = await self._mutate(lambda: api.create_webhook(
            url=self.url, events=list(self.config.webhook_events), project_id=project,
            description=self._description(api.key_id), idempotency_key=idem))
        self._nonces.pop(name, None)
        metrics.WEBHOOK_REGISTRATIONS.labels("created").inc()
        logger.info("created webhook %s for key %s%s", created.id, api.key_id, f" project {project}" if project else "")
        return created

    async def _converge(self, key: _Key, hook: Webhook, now: float) -> Webhook:
        """One PATCH of what differs (events; URL and marker after ``OEC_WEBHOOK_URL`` changed);
        re-activate an inactive webhook at most once per check interval."""
        api = key.client
        fields: dict[str, object] = {}
        if sorted(hook.events) != sorted(self.config.webhook_events):
            fields["events"] = list(self.config.webhook_events)
        if hook.url != self.url or self.marker_of(api.key_id) not in (hook.description or ""):
            fields.update(url=self.url, description=self._description(api.key_id))
        if fields:
            hook = await self._mutate(lambda: api.update_webhook(hook.id, **fields))
            metrics.WEBHOOK_REGISTRATIONS.labels("updated").inc()
            logger.info("webhook %s of key %s: %s updated", hook.id, api.key_id, ", ".join(sorted(fields)))
        if not hook.is_active and now - key.reactivated_at >= self.config.webhook_check_interval:
            key.reactivated_at = now
            logger.warning("webhook %s of key %s is inactive (failure_count %s): re-activating it; "
                           "polling runs at its normal interval meanwhile", hook.id, api.key_id, hook.failure_count)
            await self._mutate(lambda: api.update_webhook(hook.id, is_active=True))
            metrics.WEBHOOK_REGISTRATIONS.labels("reactivated").inc()
            # The state reported is what the check saw: inactive (push health stays poll) until a
            # check sees it active again.
        return hook

    def _rotation_due(self, rotated_at: datetime | None, now: float) -> bool:
        days = self.config.webhook_rotate_after_days
        if days <= 0:
            return False
        return rotated_at is None or _at(now) - rotated_at >= timedelta(days=days)

    async def _test_ping(self, api: OecClient, webhook_id: str) -> tuple[tuple[dict[str, str], bytes] | None, bool]:
        """``POST /webhooks/{id}/test`` until its ``ping`` reaches this process's receiver, at most
        :data:`TEST_PINGS` times: with several replicas the Service may hand it to another one's
        (the answer's ``status_code`` says some receiver answered). Returns the ping (``None``: none
        came here) and whether another receiver of ours accepted the last one (answered 202)."""
        elsewhere = False
        for _ in range(TEST_PINGS):
            since = self._pings.cursor()
            answer = await api.test_webhook(webhook_id)
            wait = PING_TIMEOUT if answer.status_code is None else ANSWERED_WAIT
            ping = await self._pings.wait_ping(webhook_id, wait, since=since)
            elsewhere = bool(answer.success and answer.status_code == 202)
            if ping is not None or answer.status_code is None:
                return ping, False
        return None, elsewhere

    def _scheme_of(self, secret: str, ping: tuple[dict[str, str], bytes]) -> SignatureScheme | None:
        return match_scheme(secret, ping[0], ping[1], self._wall(), default=self._default,
                            tolerance=self.config.webhook_timestamp_tolerance)

    async def _signs(self, api: OecClient, webhook_id: str, secret: str) -> bool | None:
        """Whether ``secret`` signs the webhook's ``/test`` ping (in any known scheme); ``None``
        when no ping arrived (the receiver is not reached: nothing is known of the secret)."""
        ping, _ = await self._test_ping(api, webhook_id)
        return None if ping is None else self._scheme_of(secret, ping) is not None

    async def _calibrate(self, api: OecClient, webhook_id: str, secret: str) -> SignatureScheme | None:
        """``POST /webhooks/{id}/test`` and match its ``ping`` against the known schemes
        (``docs/webhooks.md`` §3)."""
        ping, elsewhere = await self._test_ping(api, webhook_id)
        if ping is None and elsewhere:
            # The API answers once the ping was answered: another replica behind the same Service
            # got it each time and verified it; with no scheme pinned in the Secret yet, with the
            # configured one.
            metrics.WEBHOOK_REGISTRATIONS.labels("calibrated").inc()
            logger.info("webhook %s: the test pings reached another replica, which verified them with the "
                        "configured signature scheme (header %s)", webhook_id, self._default.header)
            return self._default
        scheme = None if ping is None else self._scheme_of(secret, ping)
        if scheme is None:
            metrics.WEBHOOK_REGISTRATIONS.labels("uncalibrated").inc()
            logger.warning("webhook %s: no signature scheme matched the test ping (%s); keeping the configured "
                           "default, polling stays at its normal interval for this key. Header names seen: %s",
                           webhook_id, "no ping arrived" if ping is None else "ping arrived",
                           ", ".join(sorted(ping[0])) if ping is not None else "none")
            return None
        metrics.WEBHOOK_REGISTRATIONS.labels("calibrated").inc()
        logger.info("webhook %s: signature scheme calibrated (header %s)", webhook_id, scheme.header)
        return scheme

    async def _mutate(self, call: Callable[[], Awaitable[T]]) -> T:
        """One webhook mutation: a 429 (the 10-a-minute bucket) is waited out, an unanswered
        request is sent again (with the same idempotency key for a create)."""
        for attempt in range(1, MUTATION_ATTEMPTS + 1):
            try:
                return await call()
            except OecRateLimitError as exc:
                if attempt == MUTATION_ATTEMPTS:
                    raise
                await self._sleep(exc.retry_after)
            except OecTransportError:
                if attempt == MUTATION_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    def _refused(self, key: _Key, exc: OecError) -> None:
        if not key.refused:
            key.refused = True
            logger.error("OEC.sh refused the webhook for key %s (%s). Set OEC_WEBHOOK_URL to a public https URL "
                         "that routes to the receiver (docs/webhooks.md §5); polling alone meanwhile.",
                         key.client.key_id, exc)
        metrics.WEBHOOK_REGISTRATIONS.labels("refused").inc()
        if self._on_state is not None:
            self._on_state(WebhookState(key.client.key_id, False, False, 0))


def _scope_refusal(exc: OecError) -> bool:
    """A create with ``project_id`` null refused because the key is project-scoped."""
    if isinstance(exc, OecPermissionError):
        return True
    return isinstance(exc, OecValidationError) and (exc.field == "project_id" or "project" in exc.message.lower())


def _pick(ours: Iterable[Webhook], stored: StoredWebhook | None) -> Webhook | None:
    """The webhook to keep: the one the Secret names, else the oldest."""
    hooks = list(ours)
    for hook in hooks:
        if stored is not None and hook.id == stored.webhook_id:
            return hook
    return min(hooks, key=lambda w: (str(w.created_at or ""), w.id), default=None)


def _scheme(text: str | None) -> SignatureScheme | None:
    if not text:
        return None
    try:
        return SignatureScheme.from_json(text)
    except ValueError:
        return None


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)
