"""Process-wide objects of a running operator: configuration, the shared OEC.sh HTTP client and
rate limiters, the project watches, the Kubernetes client, the Secret cache and the status writers.
Created once at start-up (kept in kopf's ``memo``), closed at clean-up."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx

from oec_operator import metrics
from oec_operator.domain.polling import DirectSource, EnvironmentSource, Fleet, WatchedSource
from oec_operator.domain.pushhealth import Mode, PushHealth
from oec_operator.kube.client import KubeClient
from oec_operator.kube.credentials import CredentialsError, describe, resolve_api_key, secret_of
from oec_operator.kube.secrets import SecretCache
from oec_operator.kube.status import StatusWriter
from oec_operator.models.backups import OdooBackupScheduleStatus, OdooBackupStatus, OdooRestoreStatus
from oec_operator.models.spec import SecretKeyRef
from oec_operator.models.status import Status
from oec_operator.oec.client import OecClient, make_http_client
from oec_operator.oec.keygate import KeyGate
from oec_operator.oec.ratelimit import Priority, RateLimiter
from oec_operator.settings import BACKUP_PLURAL, RESTORE_PLURAL, SCHEDULE_PLURAL, OperatorConfig
from oec_operator.webhooks.book import SecretBook
from oec_operator.webhooks.calibrate import Calibrator
from oec_operator.webhooks.scheme import SignatureScheme

if TYPE_CHECKING:
    import kopf

    from oec_operator.controller.push import PushHub
    from oec_operator.webhooks.registration import Registrar, WebhookState

#: Steady intervals (``OEC_POLL_INTERVAL``) an unannounced change or a failed verification keeps
#: a key in poll mode (``docs/webhooks.md`` §6).
PUSH_MEMORY_INTERVALS = 3


@dataclass
class Runtime:
    """Shared state of the operator process.

    Attributes:
        config: the :class:`OperatorConfig`.
        http: the one ``httpx.AsyncClient`` of all OEC.sh calls.
        kube: the Kubernetes client (through kopf's session).
        secrets: the cached Secret reader (API keys).
        status: the one status writer of ``OdooEnvironment``; backup_status, schedule_status,
            restore_status: those of ``OdooBackup``, ``OdooBackupSchedule``, ``OdooRestore``.
        limiters: one :class:`RateLimiter` per API key (by the key's SHA-256), ``batched`` only.
        fleet: the project watches of the batched design.
        keys: the process-wide gate on refused API keys (``docs/oec-api.md`` §4 brute-force block).
        wakers: ``namespace/name`` of an ``OdooEnvironment`` -> wakes its poll loop to reconcile now
            (e.g. once a restore of it ended, ``docs/backups.md`` §3).
        stale_backups: ``namespace/name`` of the ``OdooEnvironment`` objects whose
            ``status.backups`` is to be read again at their next reconcile, before their time slot
            (an ``OdooBackup`` of theirs completed, ``docs/backups.md`` §5).
        push: where webhook hints go (set at start-up, ``docs/webhooks.md`` §2).
        push_health: key id (``OecClient.key_id``) -> its :class:`PushHealth` (:meth:`health`).
        registrar: keeps one webhook per API key in use (``OEC_WEBHOOK_URL`` set only,
            ``docs/webhooks.md`` §5); told of each key (and project) a reconcile uses.
        webhooks: the webhook secrets deliveries are verified with (``docs/webhooks.md`` §3).
        calibrator: the recent webhook pings, to learn the signature scheme (``docs/webhooks.md`` §3).
    """

    config: OperatorConfig
    http: httpx.AsyncClient
    kube: KubeClient
    secrets: SecretCache = field(init=False)
    status: StatusWriter[Status] = field(init=False)
    backup_status: StatusWriter[OdooBackupStatus] = field(init=False)
    schedule_status: StatusWriter[OdooBackupScheduleStatus] = field(init=False)
    restore_status: StatusWriter[OdooRestoreStatus] = field(init=False)
    phases: metrics.PhaseTracker = field(default_factory=metrics.PhaseTracker)
    limiters: dict[str, RateLimiter] = field(default_factory=dict)
    keys: KeyGate = field(default_factory=KeyGate)
    fleet: Fleet = field(init=False)
    wakers: dict[str, Callable[[], None]] = field(default_factory=dict)
    stale_backups: set[str] = field(default_factory=set)
    push: PushHub | None = None
    push_health: dict[str, PushHealth] = field(default_factory=dict)
    registrar: Registrar | None = None
    webhooks: SecretBook = field(init=False)
    calibrator: Calibrator = field(default_factory=Calibrator)

    def __post_init__(self) -> None:
        self.secrets = SecretCache(self.kube.read_secret_data, self.config.secret_cache_ttl)
        self.status = StatusWriter(self.kube)
        self.backup_status = StatusWriter(self.kube, OdooBackupStatus, BACKUP_PLURAL)
        self.schedule_status = StatusWriter(self.kube, OdooBackupScheduleStatus, SCHEDULE_PLURAL)
        self.restore_status = StatusWriter(self.kube, OdooRestoreStatus, RESTORE_PLURAL)
        self.webhooks = SecretBook(SignatureScheme.from_config(self.config))
        self.fleet = Fleet(lambda key: self.client(key, Priority.POLL),
                           lambda key: self._limiter(key).bucket(write=False).limit if self.batched else 1e9,
                           fast=self.config.fast_poll_interval, stretch=self._stretch, on_changes=self._listed_changes)

    @classmethod
    def create(cls, config: OperatorConfig, settings: kopf.OperatorSettings) -> Runtime:
        """Build the runtime from the configuration (no network calls)."""
        http = make_http_client(config.api_url, timeout=config.request_timeout)
        return cls(config=config, http=http, kube=KubeClient(settings))

    @property
    def batched(self) -> bool:
        """True for the batched design (``OEC_POLLING=batched``, the default)."""
        return self.config.polling == "batched"

    def _limiter(self, api_key: str) -> RateLimiter:
        digest = hashlib.sha256(api_key.strip().encode()).hexdigest()
        limiter = self.limiters.get(digest)
        if limiter is None:
            limiter = self.limiters[digest] = RateLimiter(
                read_limit=self.config.rate_limit_reads, write_limit=self.config.rate_limit_writes,
                mode=self.config.rate_limit_mode, on_wait=metrics.observe_budget_wait,
            )
        return limiter

    def client(self, api_key: str, priority: Priority = Priority.CHANGE) -> OecClient:
        """An OEC client for ``api_key`` on the shared connection pool, through the key's shared
        rate limiter (batched design), at ``priority``, through the process-wide :class:`KeyGate`
        (a refused key is not sent again while it could get the address blocked)."""
        limiter = self._limiter(api_key) if self.batched else None
        return OecClient(self.http, api_key, observer=metrics.observe_api_call, limiter=limiter, priority=priority,
                         gate=self.keys)

    def source(self, api_key: str, project_id: str, api: OecClient) -> EnvironmentSource:
        """Where a reconcile with this key reads the environments of ``project_id`` (the key's
        webhook is registered on its first use, ``docs/webhooks.md`` §5)."""
        if self.registrar is not None:
            self.registrar.track(api, project_id)
        if not self.batched:
            return DirectSource(api, project_id)
        return WatchedSource(self.fleet.watch(api_key, project_id), api)

    async def api_key(self, namespace: str, ref: SecretKeyRef | None) -> tuple[str, str]:
        """The resource's API key and a description of its source (for messages).

        Raises:
            CredentialsError: no usable API key.
        """
        return await resolve_api_key(self.secrets, namespace, ref, self.config), describe(namespace, ref, self.config)

    def key_refused(self, namespace: str, ref: SecretKeyRef | None) -> None:
        """The API refused the key of this resource: read its Secret again on next use (it may
        have been rotated since it was cached)."""
        secret = secret_of(namespace, ref, self.config)
        if secret is not None:
            self.secrets.invalidate(secret[0], secret[1])

    async def default_api_key(self) -> str | None:
        """The operator's default key, or ``None`` when it has none."""
        try:
            key, _ = await self.api_key("", None)
        except CredentialsError:
            return None
        return key

    def wake(self, key: str) -> None:
        """Make the ``OdooEnvironment`` with this key (``namespace/name``) reconcile now, if its poll
        loop runs in this process."""
        waker = self.wakers.get(key)
        if waker is not None:
            waker()

    def backup_completed(self, key: str) -> None:
        """A backup of the ``OdooEnvironment`` with this key (``namespace/name``) completed: if its
        poll loop runs in this process, it reads ``status.backups`` again and reconciles now."""
        if key in self.wakers:
            self.stale_backups.add(key)
            self.wake(key)

    def health(self, key_id: str) -> PushHealth:
        """The push health of the key with this id (``OecClient.key_id``), created on first use
        (in poll mode until its webhook proves itself, ``docs/webhooks.md`` §6). A project-scoped
        key's webhooks are known to the receiver as ``<key id>.<project id>`` (§5): their
        deliveries count for the key."""
        key_id = key_id.split(".", 1)[0]
        health = self.push_health.get(key_id)
        if health is None:
            config = self.config
            health = self.push_health[key_id] = PushHealth(
                key_id, stretch=config.webhook_poll_stretch, memory=PUSH_MEMORY_INTERVALS * config.poll_interval,
                state_ttl=2 * config.webhook_check_interval, on_switch=self._push_switched)
            metrics.PUSH_MODE.labels(key_id).set(0)
        return health

    def webhook_state(self, state: WebhookState) -> None:
        """What the registrar saw of a key's webhook, for its push health (``docs/webhooks.md`` §5);
        if no check follows in time (the checks fail), the key drops to poll when this state expires,
        without waiting for a stretched list to look at the mode (§6)."""
        health = self.health(state.key_id)
        health.webhook_state(state.usable, state.is_active, state.failure_count, state.failing)
        delay = health.state_expires_in()
        if delay is not None:
            asyncio.get_running_loop().call_later(delay, health.mode)

    def _stretch(self, key_id: str) -> float:
        """The factor on the steady list interval of the key's watches (1.0 without webhooks)."""
        health = self.push_health.get(key_id)
        return 1.0 if health is None else health.stretch()

    def _listed_changes(self, key_id: str, env_ids: list[str]) -> None:
        """A list of the key saw these environments change: its push health judges whether the
        webhooks announced them, and looks again once the grace for a late hint is over."""
        health = self.push_health.get(key_id)
        if health is None:
            return
        health.poll_saw_change(env_ids)
        delay = health.pending()
        if delay is not None:
            asyncio.get_running_loop().call_later(delay, health.mode)

    def _push_switched(self, key_id: str, mode: Mode) -> None:
        """A key's push health switched: publish it; back in poll mode, its watches plan their next
        list at the normal interval at once."""
        metrics.PUSH_MODE.labels(key_id).set(1 if mode == "push" else 0)
        if mode == "poll":
            self.fleet.kick(key_id)

    async def aclose(self) -> None:
        """Stop the project watches, close the HTTP client."""
        if self.push is not None:
            await self.push.aclose()
        await self.fleet.aclose()
        await self.http.aclose()
