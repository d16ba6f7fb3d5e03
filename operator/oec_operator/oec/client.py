"""Async client of the OEC.sh public REST API (environments, actions, tasks, logs, backups, webhooks).

It knows nothing of Kubernetes. One ``httpx.AsyncClient`` (connection pool, timeouts, base URL)
is shared by every :class:`OecClient`; an ``OecClient`` binds it to one API key. Every method
maps to one endpoint of ``docs/oec-api.md`` §11 and raises the typed errors of
:mod:`oec_operator.oec.errors` for any non-2xx answer or transport failure.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError, model_validator

from oec_operator.oec.errors import (
    OecBackupsUnsupportedError,
    OecError,
    OecNotFoundError,
    OecRateLimitError,
    OecServerError,
    OecTransportError,
    error_from_response,
)
from oec_operator.oec.keygate import KeyGate
from oec_operator.oec.models import (
    RETENTION_TYPES,
    ActionAccepted,
    Backup,
    BackupDownload,
    BackupPage,
    Environment,
    EnvironmentHealth,
    RestoreAccepted,
    Task,
    TaskLog,
    Webhook,
    WebhookDelivery,
    WebhookTest,
)
from oec_operator.oec.ratelimit import WINDOW_MARGIN, Priority, RateLimiter
from oec_operator.oec.transport import BoundedTransport

#: Production base URL (``docs/oec-api.md`` §2).
DEFAULT_BASE_URL = "https://api.oec.sh/api/public/v1"
#: Accepted API key format (``docs/oec-api.md`` §4, decision 26).
API_KEY_PATTERN = re.compile(r"^oec_live_(ro|rw)_[A-Za-z0-9_-]{20,200}$")
#: The client never asks for more log lines than the vendor client allows (``docs/oec-api.md`` §2).
MAX_LOG_LINES = 1000
#: Connections to the API at once (httpx's default pool size).
MAX_CONNECTIONS = 100
#: Modes of ``POST /environments/{id}/quick-update`` (``docs/oec-api.md`` §11.3); the ``*_specific``
#: ones need ``modules``.
QUICK_UPDATE_MODES = ("pull_restart", "update_all", "update_specific", "reinitialize_specific")
#: Fields of ``PATCH /environments/{id}`` (``docs/oec-api.md`` §11.2: SEED ``name``, ``branch``; the
#: vendor client's ``domain``, ``cpu_cores``, ``ram_mb``, ``disk_gb``).
PATCH_FIELDS = ("name", "branch", "domain", "cpu_cores", "ram_mb", "disk_gb")
#: Bounds of a backup download link's lifetime, seconds (``docs/oec-api.md`` §11.5).
DOWNLOAD_EXPIRY_RANGE = (300, 3600)
#: Longest backup ``notes`` the API takes (``docs/oec-api.md`` §11.5).
MAX_BACKUP_NOTES = 500
#: Fields of ``PATCH /webhooks/{id}`` (``docs/oec-api.md`` §11.6).
WEBHOOK_PATCH_FIELDS = ("url", "events", "description", "format", "is_active")
#: Largest page of ``GET /webhooks`` (offset pagination, ``docs/oec-api.md`` §8).
WEBHOOK_PAGE = 100


M = TypeVar("M", bound=BaseModel)


def _parse(model: type[M], response: httpx.Response) -> M:
    """Decode a 2xx body into ``model``; an unexpected body is a server error, never a crash."""
    try:
        return model.model_validate(response.json())
    except (ValueError, ValidationError):
        raise OecServerError(
            f"unexpected {response.status_code} answer body for {model.__name__}", status=response.status_code,
            code="invalid_response",
        ) from None


def validate_api_key(api_key: str) -> str:
    """Check an API key's format before any request (``docs/oec-api.md`` §4).

    Args:
        api_key: the key, ``oec_live_ro_...`` or ``oec_live_rw_...``.

    Returns:
        The tier, ``"ro"`` or ``"rw"``.

    Raises:
        ValueError: the key does not match the documented format; the message never contains
            the key itself.
    """
    match = API_KEY_PATTERN.match(api_key.strip())
    if not match:
        raise ValueError(
            "the OEC.sh API key has an invalid format (expected oec_live_ro_... or oec_live_rw_...)"
        )
    return match.group(1)


def make_http_client(base_url: str = DEFAULT_BASE_URL, *, timeout: float = 30.0,
                     max_connections: int = MAX_CONNECTIONS) -> httpx.AsyncClient:
    """Create the shared HTTP client.

    Args:
        base_url: API root, e.g. ``https://api.oec.sh/api/public/v1`` or a simulator's
            ``http://127.0.0.1:8765/api/public/v1``.
        timeout: per-request timeout in seconds (connect timeout is capped at 10 s); the vendor
            client uses 30 s (``docs/oec-api.md`` §3). Time spent waiting for a free connection is
            not part of it (:class:`~oec_operator.oec.transport.BoundedTransport`).
        max_connections: connections to the API at most; further requests wait for one.

    Returns:
        An ``httpx.AsyncClient`` that never follows redirects (the API never redirects,
        ``docs/oec-api.md`` §3) and ignores proxy environment variables.
    """
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=min(20, max_connections))
    return httpx.AsyncClient(
        base_url=base_url.rstrip("/") + "/",
        timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        follow_redirects=False,
        trust_env=False,
        transport=BoundedTransport(limits=limits, trust_env=False),
        headers={"Accept": "application/json", "User-Agent": "oec-operator"},
    )


#: ``observer(method, path, status or None, seconds, X-RateLimit-Remaining or None, retry_after or None)``
Observer = Callable[[str, str, int | None, float, str | None, float | None], None]


class OecBudgetDeferred(OecRateLimitError):
    """A detail read was not sent: the key's budget is kept for more important requests now.
    Nothing reached the API; ``retry_after`` says when the budget frees up (seconds)."""


def request_priority(method: str, path: str, base: Priority) -> Priority:
    """The priority of one request: deletes first, then creates (``POST /projects/{id}/environments``),
    never lower than ``base`` (the priority of the work the client does)."""
    if method == "DELETE":
        return Priority.DELETE
    if method == "POST" and path.startswith("/projects/") and path.endswith("/environments"):
        return min(base, Priority.CREATE)
    return base


def is_webhook_mutation(method: str, path: str) -> bool:
    """Whether a request creates, updates or deletes a webhook: those also count against the key's
    10/min webhook-mutation budget (``docs/oec-api.md`` §11.6); test and rotate-secret do not."""
    parts = path.strip("/").split("/")
    return parts[0] == "webhooks" and (
        (method == "POST" and len(parts) == 1) or (method in ("PATCH", "DELETE") and len(parts) == 2)
    )


class OecClient:
    """The OEC.sh API bound to one API key.

    Args:
        http: the shared client from :func:`make_http_client` (not closed by this object).
        api_key: the bearer key. It is sent only in the ``Authorization`` header and never
            appears in ``repr``, logs or exception messages.
        observer: called after every request (metrics); never given the key or bodies.
        limiter: the key's shared :class:`RateLimiter` (``None`` = no client-side limit).
        priority: the priority of this client's requests (see :func:`request_priority`);
            :attr:`Priority.DETAIL` requests are never queued: without spare budget they raise
            :class:`OecBudgetDeferred`.
        gate: the process-wide :class:`KeyGate` (``None`` = none): a key the API refused is not
            sent again until the refusals can no longer get the address blocked (§4).
    """

    def __init__(self, http: httpx.AsyncClient, api_key: str, observer: Observer | None = None,
                 limiter: RateLimiter | None = None, priority: Priority = Priority.CHANGE,
                 gate: KeyGate | None = None) -> None:
        self._http = http
        self._auth = {"Authorization": f"Bearer {api_key.strip()}"}
        #: Identifies the key without revealing it (16 hex digits of its SHA-256).
        self.key_id = key_id_of(api_key)
        self._observer = observer
        self._limiter = limiter
        self._gate = gate
        self.priority = priority

    def __repr__(self) -> str:
        return f"OecClient(base_url={str(self._http.base_url)!r}, priority={self.priority.name})"

    def with_priority(self, priority: Priority) -> OecClient:
        """The same key, limiter and connection pool at another priority."""
        clone = object.__new__(OecClient)
        clone.__dict__.update(self.__dict__)
        clone.priority = priority
        return clone

    def budget_wait(self, *, write: bool, queued: bool = False) -> float:
        """Seconds a request sent now would wait for the key's budget (0 without a limiter);
        ``queued``: for a request that is already waiting (it is not counted ahead of itself)."""
        if self._limiter is None:
            return 0.0
        wait = self._limiter.estimated_wait(write=write)
        bucket = self._limiter.bucket(write)
        if queued and bucket.waiting:
            wait -= (bucket.window + WINDOW_MARGIN) / bucket.limit
        return max(0.0, wait)

    async def _admit(self, method: str, path: str) -> bool:
        """Wait for (or, for detail reads, check) the key's budget; returns whether it is a write.

        Raises:
            OecBudgetDeferred: a detail read found no spare budget.
        """
        write = method != "GET"
        if self._limiter is None:
            return write
        priority = request_priority(method, path, self.priority)
        if is_webhook_mutation(method, path):
            await self._limiter.acquire_webhook(priority=min(priority, Priority.CHANGE))
            await self._limiter.acquire(write=True, priority=min(priority, Priority.CHANGE))
        elif priority == Priority.DETAIL:
            if not self._limiter.try_acquire(write=write):
                wait = self._limiter.seconds_until_free(write=write)
                raise OecBudgetDeferred(f"{method} {path} deferred: the API budget is reserved for other requests",
                                        retry_after=max(1.0, wait), code="budget_deferred")
        else:
            await self._limiter.acquire(write=write, priority=priority)
        return write

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        if self._gate is None:
            return await self._send(method, path, json=json, params=params, headers=headers)
        tracked = self._gate.admit(self.key_id)
        status: int | None = None
        error: OecError | None = None
        try:
            response = await self._send(method, path, json=json, params=params, headers=headers)
            status = response.status_code
            return response
        except OecError as exc:
            status, error = exc.status, exc
            raise
        finally:
            self._gate.answered(self.key_id, tracked=tracked, status=status, error=error)

    async def _send(
        self,
        method: str,
        path: str,
        *,
        json: Mapping[str, Any] | None,
        params: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
    ) -> httpx.Response:
        write = await self._admit(method, path)
        granted_at = self._limiter.now() if self._limiter is not None else 0.0
        webhook = is_webhook_mutation(method, path)
        started = time.perf_counter()
        try:
            response = await self._http.request(
                method,
                path.lstrip("/"),
                json=json,
                params=params,
                headers={**self._auth, **(headers or {})},
            )
        except httpx.TransportError as exc:
            if self._limiter is not None:
                self._limiter.unanswered(write=write, granted_at=granted_at)
                if webhook:
                    self._limiter.webhook_answered(granted_at=granted_at, ok=False)
            self._observe(method, path, None, started, None, None)
            # The exception text may carry the URL but never headers; keep only its kind.
            raise OecTransportError(f"{type(exc).__name__} on {method} {path}", code="transport") from None
        except asyncio.CancelledError:
            if self._limiter is not None:
                self._limiter.unanswered(write=write, granted_at=granted_at)
                if webhook:
                    self._limiter.webhook_answered(granted_at=granted_at, ok=False)
            raise
        wall = self._limiter.wall_time() if self._limiter is not None else None
        error = error_from_response(response, now=wall) if response.status_code >= 300 else None
        retry_after = getattr(error, "retry_after", None)
        if self._limiter is not None:
            self._learn(self._limiter, write, webhook, error, response, granted_at)
        self._observe(method, path, response.status_code, started, response.headers.get("x-ratelimit-remaining"),
                      retry_after)
        if error is not None:
            raise error
        return response

    @staticmethod
    def _learn(limiter: RateLimiter, write: bool, webhook: bool, error: OecError | None, response: httpx.Response,
               granted_at: float) -> None:
        """Feed an answer to the key's limiter (``docs/oec-api.md`` §6, §11.6)."""
        if webhook:
            if isinstance(error, OecRateLimitError) and error.code == "webhook_mutation_rate_limit":
                # Only the webhook-mutation budget is spent out; the write budget is not.
                limiter.webhook_rate_limited(retry_after=error.retry_after, stated=error.stated)
                limiter.observe(write=write, headers=response.headers, granted_at=granted_at)
                return
            limiter.webhook_answered(granted_at=granted_at, ok=True)
        if isinstance(error, OecRateLimitError):
            # The wait is what the API says (not "remaining 0" of a whole window); an IP
            # block stops every request, not just this bucket (``docs/oec-api.md`` §4).
            for bucket in (True, False) if error.code == "ip_blocked" else (write,):
                limiter.rate_limited(write=bucket, retry_after=error.retry_after, headers=response.headers,
                                     stated=error.stated)
        else:
            limiter.observe(write=write, headers=response.headers, granted_at=granted_at)

    def _observe(self, method: str, path: str, status: int | None, started: float, remaining: str | None,
                 retry_after: float | None) -> None:
        if self._observer is not None:
            self._observer(method, path, status, time.perf_counter() - started, remaining, retry_after)

    async def list_environments(self, project_id: str, *, status: str | None = None) -> list[Environment]:
        """``GET /projects/{project_id}/environments``: every environment, oldest first.

        Args:
            project_id: project UUID.
            status: optional status filter (case-insensitive on the API side, §11.2).

        Raises:
            OecError: any API or transport failure; ``OecNotFoundError`` for an unknown project.
        """
        params = {"status": status} if status else None
        response = await self._request("GET", f"/projects/{project_id}/environments", params=params)
        try:
            body = response.json()
            items = body.get("data", []) if isinstance(body, dict) else body
            return [Environment.model_validate(item) for item in items]
        except (ValueError, ValidationError, AttributeError, TypeError):
            raise OecServerError(
                f"unexpected {response.status_code} answer body for the environment list",
                status=response.status_code, code="invalid_response",
            ) from None

    async def create_environment(
        self,
        project_id: str,
        *,
        name: str,
        environment_type: str,
        idempotency_key: str,
        branch: str | None = None,
        domain: str | None = None,
        cpu_cores: float | None = None,
        ram_mb: int | None = None,
        disk_gb: int | None = None,
    ) -> Environment:
        """``POST /projects/{project_id}/environments`` with ``X-Idempotency-Key`` (§2, §7, §11.2).

        A retry with the same key within 24 h returns the first answer and creates nothing.

        Args:
            project_id: project UUID.
            name: display name (1-255 characters).
            environment_type: ``development``, ``staging`` or ``production``.
            idempotency_key: stable key for this logical create (1-255 characters).
            branch: git branch; ``None`` lets the API use the project's default branch.
            domain, cpu_cores, ram_mb, disk_gb: the vendor client's optional fields (§11.2), sent
                only when given: custom domain, CPU cores (0.25-32), RAM in MB (256-131072), disk
                in GB (1-1000). ``None`` leaves the API's default (sizes by environment type).

        Returns:
            The created environment (status ``deploying`` or ``pending``).

        Raises:
            OecError: e.g. ``OecValidationError`` (422) naming the field, ``OecPermissionError``
                for a read-only key.
        """
        body: dict[str, Any] = {"name": name, "environment_type": environment_type}
        body.update(_given(branch=branch, domain=domain, cpu_cores=cpu_cores, ram_mb=ram_mb, disk_gb=disk_gb))
        response = await self._request(
            "POST",
            f"/projects/{project_id}/environments",
            json=body,
            headers={"X-Idempotency-Key": idempotency_key},
        )
        return _parse(Environment, response)

    async def get_environment(self, environment_id: str) -> Environment:
        """``GET /environments/{env_id}`` (§11.2).

        Raises:
            OecNotFoundError: the environment is deleted or not visible to this key.
            OecError: any other failure.
        """
        response = await self._request("GET", f"/environments/{environment_id}")
        return _parse(Environment, response)

    async def update_environment(self, environment_id: str, **fields: str | float | None) -> Environment:
        """``PATCH /environments/{env_id}`` with only the given (not ``None``) fields (§2, §11.2).

        Nothing is redeployed: ``name``/``branch`` take effect on the next deploy, the sizes on the
        next deploy or restart (``docs/oec-api.md`` §1 row 32). The fields are keyword arguments so
        that a caller can pass the differences it computed as ``**changes``.

        Args:
            environment_id: environment UUID.
            fields: any of :data:`PATCH_FIELDS`: ``name``, ``branch`` (≤ 255 characters each),
                ``domain`` (hostname, optional leading ``*.``; ``""`` removes the custom domain),
                ``cpu_cores`` (0.25-32), ``ram_mb`` (256-131072, MB), ``disk_gb`` (1-1000, GB,
                never smaller).

        Returns:
            The environment as the API shows it after the PATCH.

        Raises:
            ValueError: no field given, or a field not in :data:`PATCH_FIELDS` (nothing is sent).
            OecValidationError: a field refused (``field`` names it), e.g. by an older API that
                takes only ``name`` and ``branch`` (type ``extra_forbidden``, §1 row 31), a disk
                shrink, or ``quota_exceeded`` above the plan's limit (§1 rows 33-34).
            OecConflictError: e.g. ``domain_in_use`` (§1 row 35) or ``invalid_state``.
            OecError: any other API or transport failure.
        """
        body = _patch_body("update_environment", PATCH_FIELDS, fields)
        response = await self._request("PATCH", f"/environments/{environment_id}", json=body)
        return _parse(Environment, response)

    async def delete_environment(self, environment_id: str) -> ActionAccepted | None:
        """``DELETE /environments/{env_id}`` with ``X-Confirm-Delete: true`` (§2, decision 3).

        Returns:
            The destroy task (HTTP 202), or ``None`` when the API answers 204 without a body.

        Raises:
            OecNotFoundError: already gone (callers treat it as success).
            OecConflictError: ``task_in_progress`` (e.g. a destroy already running).
            OecError: any other failure.
        """
        response = await self._request(
            "DELETE", f"/environments/{environment_id}", headers={"X-Confirm-Delete": "true"}
        )
        if response.status_code == 204 or not response.content:
            return None
        return _parse(ActionAccepted, response)

    async def get_environment_status(self, environment_id: str) -> EnvironmentHealth:
        """``GET /environments/{env_id}/status``: health and last deploy (§2, §9.2)."""
        response = await self._request("GET", f"/environments/{environment_id}/status")
        return _parse(EnvironmentHealth, response)

    async def get_logs(
        self, environment_id: str, *, task_id: str | None = None, lines: int = 200
    ) -> TaskLog:
        """``GET /environments/{env_id}/logs``: a task's step log (§11.4).

        Args:
            environment_id: environment UUID.
            task_id: the task; ``None`` = the latest task.
            lines: number of lines, clamped to 1..1000 (the vendor client's bound, §2).
        """
        params: dict[str, Any] = {"lines": max(1, min(MAX_LOG_LINES, int(lines)))}
        if task_id:
            params["task_id"] = task_id
        response = await self._request("GET", f"/environments/{environment_id}/logs", params=params)
        return _parse(TaskLog, response)

    async def get_task(self, task_id: str) -> Task:
        """``GET /deployments/{task_id}``: any task, also after its environment is gone (§11.3)."""
        response = await self._request("GET", f"/deployments/{task_id}")
        return _parse(Task, response)

    async def _action(
        self, environment_id: str, path: str, idempotency_key: str, body: Mapping[str, Any] | None = None
    ) -> ActionAccepted:
        """``POST /environments/{env_id}/{path}`` with ``Idempotency-Key`` → the 202 answer (§9.4)."""
        response = await self._request(
            "POST",
            f"/environments/{environment_id}/{path}",
            json=body,
            headers={"Idempotency-Key": idempotency_key},
        )
        return _parse(ActionAccepted, response)

    async def deploy(
        self, environment_id: str, *, idempotency_key: str, update_modules: list[str] | None = None
    ) -> ActionAccepted:
        """``POST /environments/{env_id}/deploy`` with ``Idempotency-Key`` (§7, §11.3).

        Args:
            environment_id: environment UUID.
            idempotency_key: stable key for this logical deploy; reused on every retry.
            update_modules: Odoo modules to update (≤ 50 names ``^[a-z0-9_]{1,64}$``, or
                ``["all"]``), sent as ``{"update_modules": [...]}``; ``None`` or empty: no body.

        Raises:
            OecConflictError: ``task_in_progress`` (``task_id`` names the running task) or
                ``invalid_state``.
            OecValidationError: a module name refused (``field`` ``update_modules.N``).
            OecError: any other failure.
        """
        body = {"update_modules": list(update_modules)} if update_modules else None
        return await self._action(environment_id, "deploy", idempotency_key, body)

    async def start(self, environment_id: str, *, idempotency_key: str) -> ActionAccepted:
        """``POST /environments/{env_id}/start`` (no body, ``Idempotency-Key``; §11.3): start a
        ``stopped`` environment.

        Raises:
            OecConflictError: ``task_in_progress`` (``task_id``) or ``invalid_state`` (not
                ``stopped``, e.g. ``paused`` by the platform; §1 row 19).
            OecError: any other failure.
        """
        return await self._action(environment_id, "start", idempotency_key)

    async def stop(self, environment_id: str, *, idempotency_key: str) -> ActionAccepted:
        """``POST /environments/{env_id}/stop`` (no body, ``Idempotency-Key``; §11.3): stop a
        ``running`` or ``paused`` environment, data kept.

        Raises:
            OecConflictError: ``task_in_progress`` (``task_id``) or ``invalid_state`` (§1 row 19).
            OecError: any other failure.
        """
        return await self._action(environment_id, "stop", idempotency_key)

    async def restart(self, environment_id: str, *, idempotency_key: str) -> ActionAccepted:
        """``POST /environments/{env_id}/restart`` (no body, ``Idempotency-Key``; §11.3): restart a
        ``running`` environment; it applies PATCHed sizes (§1 row 32).

        Raises:
            OecConflictError: ``task_in_progress`` (``task_id``) or ``invalid_state`` (§1 row 19).
            OecError: any other failure.
        """
        return await self._action(environment_id, "restart", idempotency_key)

    async def quick_update(
        self, environment_id: str, *, mode: str, idempotency_key: str, modules: list[str] | None = None
    ) -> ActionAccepted:
        """``POST /environments/{env_id}/quick-update`` ``{"mode", "modules"?}`` with
        ``Idempotency-Key`` (§11.3): pull and restart without a rebuild, on a ``running`` environment.

        Args:
            environment_id: environment UUID.
            mode: one of :data:`QUICK_UPDATE_MODES`; ``reinitialize_specific`` runs ``odoo -i``,
                which can reset the modules' data.
            idempotency_key: stable key for this logical update; reused on every retry.
            modules: module names, required for (and only sent with) the ``*_specific`` modes.

        Raises:
            ValueError: an unknown mode, a ``*_specific`` mode without modules, or modules with
                another mode (nothing is sent).
            OecConflictError: ``task_in_progress`` (``task_id``) or ``invalid_state`` (§1 row 19).
            OecError: any other failure.
        """
        if mode not in QUICK_UPDATE_MODES:
            raise ValueError(f"unknown quick-update mode {mode!r}")
        specific = mode.endswith("_specific")
        if specific != bool(modules):
            raise ValueError(f"quick-update mode {mode!r} {'needs' if specific else 'takes no'} modules")
        body: dict[str, Any] = {"mode": mode}
        if modules:
            body["modules"] = list(modules)
        return await self._action(environment_id, "quick-update", idempotency_key, body)

    async def create_backup(
        self, environment_id: str, *, retention_type: str, include_filestore: bool = True, notes: str | None = None
    ) -> Backup:
        """``POST /environments/{env_id}/backups`` ``{"backup_type": "manual", ...}`` (§11.5).

        The API takes **no idempotency key** here: a retry after a lost answer may create a second
        backup, so callers look for their backup (``notes`` marker, :meth:`list_backups`) before
        sending again.

        Args:
            environment_id: environment UUID.
            retention_type: one of :data:`~oec_operator.oec.models.RETENTION_TYPES` (sent always:
                the API's default is ``permanent``).
            include_filestore: back up the filestore too (the API's default).
            notes: free text, ≤ 500 characters.

        Returns:
            The new backup (status ``pending``).

        Raises:
            ValueError: unknown retention type or notes too long (nothing is sent).
            OecConflictError: ``backup_in_progress`` (a backup of this environment runs; ``task_id``)
                or ``task_in_progress`` (another task runs) or ``invalid_state``.
            OecBackupsUnsupportedError: the API has no create route (404/405 while the environment
                exists; §1 row 28). One extra ``GET /environments/{id}`` tells it from a gone one.
            OecNotFoundError: the environment is gone.
            OecError: any other failure.
        """
        if retention_type not in RETENTION_TYPES:
            raise ValueError(f"unknown backup retention type {retention_type!r}")
        if notes is not None and len(notes) > MAX_BACKUP_NOTES:
            raise ValueError(f"backup notes longer than {MAX_BACKUP_NOTES} characters")
        body = _given(backup_type="manual", include_filestore=include_filestore, retention_type=retention_type,
                      notes=notes)
        path = f"/environments/{environment_id}/backups"
        try:
            response = await self._request("POST", path, json=body)
        except OecError as exc:
            if exc.status == 405:
                raise OecBackupsUnsupportedError("the API has no backup-create route", status=405,
                                                 code="backups_unsupported") from None
            if isinstance(exc, OecNotFoundError):
                await self.get_environment(environment_id)  # raises OecNotFoundError when it is gone
                raise OecBackupsUnsupportedError("the API has no backup-create route", status=404,
                                                 code="backups_unsupported") from None
            raise
        return _parse(Backup, response)

    async def list_backups(
        self, environment_id: str, *, page: int = 1, page_size: int = 20, status: str | None = None,
        backup_type: str | None = None,
    ) -> BackupPage:
        """``GET /environments/{env_id}/backups``: one page, newest first, also after the environment
        is deleted (§11.5).

        Args:
            environment_id: environment UUID.
            page: page number from 1; page_size: 1-100 (clamped).
            status, backup_type: optional filters, values of the API's enum set (§1 row 28); a value
                the API does not know → ``OecValidationError``.
        """
        params: dict[str, Any] = {"page": max(1, int(page)), "page_size": max(1, min(100, int(page_size)))}
        params.update(_given(status=status, backup_type=backup_type))
        response = await self._request("GET", f"/environments/{environment_id}/backups", params=params)
        return _parse(BackupPage, response)

    async def get_backup(self, backup_id: str) -> Backup:
        """``GET /backups/{backup_id}`` (§11.5). Raises ``OecNotFoundError`` when unknown (or, on an
        API with the reference enums, expired)."""
        response = await self._request("GET", f"/backups/{backup_id}")
        return _parse(Backup, response)

    async def backup_download(self, backup_id: str, *, expires_in: int = 300) -> BackupDownload:
        """``GET /backups/{backup_id}/download?expires_in=``: presigned links of a completed backup
        (§11.5). The links are bearer credentials: show them to the user, never log or store them.

        Args:
            backup_id: backup UUID.
            expires_in: link lifetime in seconds, 300-3600.

        Raises:
            ValueError: ``expires_in`` out of range (nothing is sent).
            OecBadRequestError: the backup is not completed (``"Backup is not in COMPLETED status"``).
            OecError: any other failure.
        """
        low, high = DOWNLOAD_EXPIRY_RANGE
        if not low <= expires_in <= high:
            raise ValueError(f"expires_in must be {low}..{high} seconds")
        response = await self._request("GET", f"/backups/{backup_id}/download", params={"expires_in": expires_in})
        return _parse(BackupDownload, response)

    async def restore_backup(self, backup_id: str, *, idempotency_key: str) -> RestoreAccepted:
        """``POST /backups/{backup_id}/restore`` with ``Idempotency-Key`` and ``X-Confirm-Restore:
        true`` (§11.5): replaces the data of the backup's own environment (the API takes a
        ``pre_restore`` safety backup first). Follow ``task_id`` with :meth:`get_task`.

        Raises:
            OecBadRequestError: the backup is not completed.
            OecConflictError: ``task_in_progress`` (``task_id``) or ``invalid_state`` (environment
                gone or not restorable).
            OecError: any other failure.
        """
        response = await self._request(
            "POST", f"/backups/{backup_id}/restore",
            headers={"Idempotency-Key": idempotency_key, "X-Confirm-Restore": "true"},
        )
        return _parse(RestoreAccepted, response)

    async def list_webhooks(self) -> list[Webhook]:
        """``GET /webhooks``: every webhook the key sees, all offset pages (``docs/oec-api.md``
        §8, §11.6; a project key sees only its project's). No secrets.

        Raises:
            OecError: any API or transport failure (also a page body of an unexpected shape).
        """
        hooks: list[Webhook] = []
        offset = 0
        while True:
            response = await self._request("GET", "/webhooks", params={"limit": WEBHOOK_PAGE, "offset": offset})
            page = _parse(_WebhookPage, response)
            hooks.extend(page.items)
            offset += len(page.items)
            if not page.has_more or not page.items:
                return hooks

    async def create_webhook(self, url: str, events: list[str], *, idempotency_key: str,
                             project_id: str | None = None, description: str | None = None) -> Webhook:
        """``POST /webhooks`` with ``X-Idempotency-Key`` (``docs/oec-api.md`` §11.6): a ``raw``,
        active webhook. Counts against the write budget and the 10/min webhook-mutation budget.

        Args:
            url: https URL the deliveries go to (≤ 2048; private/loopback addresses are refused).
            events: 1-10 event names (e.g. ``environment.status_changed``).
            idempotency_key: stable key for this logical create; a retry returns the first answer.
            project_id: the project for a project-scoped key (required then); ``None`` = org-wide.
            description: free text, ≤ 500 characters.

        Returns:
            The webhook with its ``secret`` (sent only in this answer; never log it).

        Raises:
            OecValidationError: URL, events or ``project_id`` refused (``field`` names it).
            OecRateLimitError: ``webhook_mutation_rate_limit`` (or the write budget).
            OecError: any other failure.
        """
        body = _given(url=url, events=list(events), project_id=project_id, description=description)
        response = await self._request("POST", "/webhooks", json=body,
                                       headers={"X-Idempotency-Key": idempotency_key})
        return _parse(Webhook, response)

    async def get_webhook(self, webhook_id: str) -> Webhook:
        """``GET /webhooks/{id}`` (§11.6): ``is_active``, ``failure_count``, ``last_triggered_at``.

        Raises:
            OecNotFoundError: deleted or not visible to this key.
            OecError: any other failure.
        """
        response = await self._request("GET", f"/webhooks/{webhook_id}")
        return _parse(Webhook, response)

    async def update_webhook(self, webhook_id: str, **fields: Any) -> Webhook:
        """``PATCH /webhooks/{id}`` with only the given (not ``None``) fields of
        :data:`WEBHOOK_PATCH_FIELDS` (§11.6); counts against the webhook-mutation budget.

        Raises:
            ValueError: no field, or a field not in :data:`WEBHOOK_PATCH_FIELDS` (nothing is sent).
            OecValidationError / OecNotFoundError / OecRateLimitError / OecError: as the API answers.
        """
        body = _patch_body("update_webhook", WEBHOOK_PATCH_FIELDS, fields)
        response = await self._request("PATCH", f"/webhooks/{webhook_id}", json=body)
        return _parse(Webhook, response)

    async def delete_webhook(self, webhook_id: str) -> None:
        """``DELETE /webhooks/{id}`` → 204, with its delivery history (§11.6); counts against the
        webhook-mutation budget.

        Raises:
            OecNotFoundError: already gone (callers treat it as success).
            OecError: any other failure.
        """
        await self._request("DELETE", f"/webhooks/{webhook_id}")

    async def test_webhook(self, webhook_id: str) -> WebhookTest:
        """``POST /webhooks/{id}/test``: the API sends a signed ``ping`` now and answers how the
        receiver took it (§11.6); no delivery record. Used to calibrate the signature scheme."""
        response = await self._request("POST", f"/webhooks/{webhook_id}/test")
        return _parse(WebhookTest, response)

    async def rotate_webhook_secret(self, webhook_id: str) -> str:
        """``POST /webhooks/{id}/rotate-secret`` → the new secret; the old one stops signing at once
        (§11.6). Never log the returned value.

        Raises:
            OecServerError: the answer carries no secret.
            OecError: any other failure.
        """
        response = await self._request("POST", f"/webhooks/{webhook_id}/rotate-secret")
        return _parse(_RotatedSecret, response).secret

    async def webhook_deliveries(self, webhook_id: str) -> list[WebhookDelivery]:
        """``GET /webhooks/{id}/deliveries``: the 50 newest delivery records, newest first (§11.6)."""
        response = await self._request("GET", f"/webhooks/{webhook_id}/deliveries")
        return _parse(_DeliveryList, response).root


class _WebhookPage(BaseModel):
    """One offset page of ``GET /webhooks`` (``docs/oec-api.md`` §8); a plain array or a ``data``
    list is read as one last page (the API's pagination styles differ between routes)."""

    model_config = ConfigDict(extra="ignore")

    items: list[Webhook]
    has_more: bool = False

    @model_validator(mode="before")
    @classmethod
    def _other_shapes(cls, data: Any) -> Any:
        if isinstance(data, list):
            return {"items": data}
        if isinstance(data, dict) and "items" not in data and isinstance(data.get("data"), list):
            return {**data, "items": data["data"]}
        return data


class _RotatedSecret(BaseModel):
    model_config = ConfigDict(extra="ignore")

    secret: str = Field(repr=False, min_length=1)


class _DeliveryList(RootModel[list[WebhookDelivery]]):
    """The plain JSON array of ``GET /webhooks/{id}/deliveries`` (an ``items``/``data`` list is read too)."""

    @model_validator(mode="before")
    @classmethod
    def _wrapped(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return data.get("items", data.get("data", data))
        return data


def key_id_of(api_key: str) -> str:
    """The id of an API key in logs, metrics and the webhook Secret: 16 hex characters of its SHA-256."""
    return hashlib.sha256(api_key.strip().encode()).hexdigest()[:16]


def _patch_body(method: str, allowed: Iterable[str], fields: Mapping[str, Any]) -> dict[str, Any]:
    """The body of a PATCH: the given (not ``None``) ``fields``.

    Raises:
        ValueError: a field not in ``allowed``, or none given (nothing is sent).
    """
    unknown = sorted(set(fields) - set(allowed))
    if unknown:
        raise ValueError(f"{method}: not a PATCH field: {', '.join(unknown)}")
    body = _given(**fields)
    if not body:
        raise ValueError(f"{method} needs at least one field")
    return body


def _given(**fields: Any) -> dict[str, Any]:
    """The fields whose value is not ``None`` (``""`` and ``0`` are kept), in the given order."""
    return {name: value for name, value in fields.items() if value is not None}


__all__ = [
    "DEFAULT_BASE_URL",
    "PATCH_FIELDS",
    "QUICK_UPDATE_MODES",
    "OecBudgetDeferred",
    "OecClient",
    "OecError",
    "is_webhook_mutation",
    "key_id_of",
    "make_http_client",
    "validate_api_key",
]
