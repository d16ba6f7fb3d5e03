"""A synchronous client of the simulator's admin API (``/_sim/...``, see ``admin.py`` and
``admin_faults.py``).

Used by the integration tests, the chaos suite and the benchmark (``oec_testkit``, which also
starts the simulator as a process)::

    with SimulatorAdmin("http://127.0.0.1:PORT") as admin:
        project = admin.new_project("demo")
        ...

Every method raises :class:`httpx.HTTPStatusError` when the simulator answers an error (admin
errors are ``{"error", "message", "detail"?}``). Times are epoch seconds of the simulator clock,
durations seconds. The admin API has no auth and is never rate-limited or logged, so nothing here
shows up in ``requests()`` or ``stats()``.
"""

from __future__ import annotations

import uuid
from types import TracebackType
from typing import Any

import httpx

from .admin_common import ADMIN_PREFIX

JSON = dict[str, Any]


class SimulatorAdmin:
    """The admin API of the simulator at ``base_url`` (``http://HOST:PORT``, without a path).

    ``timeout``: seconds per request. ``http`` is the underlying :class:`httpx.Client` on
    ``base_url`` (proxy settings of the environment ignored), for calls this class has no method
    for; its paths include the prefix, e.g. ``http.get("/_sim/clock")``.
    """

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout, trust_env=False)

    def close(self) -> None:
        """Close the HTTP connections."""
        self.http.close()

    def __enter__(self) -> SimulatorAdmin:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _call(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        response = self.http.request(method, ADMIN_PREFIX + path, json=body, params=params)
        response.raise_for_status()
        return response.json()

    # ---------------------------------------------------------------- state

    def health(self) -> JSON:
        """``GET /_sim/health`` → ``{"status": "ok", "environments": live count, "requests": logged count}``."""
        return dict(self._call("GET", "/health"))

    def reset(self) -> None:
        """``POST /_sim/reset``: drop environments, tasks, request log, rate limits, idempotency cache,
        IP blocks, fault rules, outage and webhooks; projects, keys, config and stats stay."""
        self._call("POST", "/reset")

    def config(self) -> JSON:
        """``GET /_sim/config`` → the runtime config (no projects, keys or start-up fault fields)."""
        return dict(self._call("GET", "/config"))

    def configure(self, **changes: Any) -> JSON:
        """``PATCH /_sim/config`` with ``changes`` (field → value, all-or-nothing; e.g.
        ``deploy_seconds=2.0``, ``latency={"create_environment": 3.0}``) → the updated config."""
        return dict(self._call("PATCH", "/config", changes))

    # ---------------------------------------------------------------- projects and keys

    def create_project(self, name: str, **fields: Any) -> JSON:
        """``POST /_sim/projects`` ``{name, **fields}`` → the Project (``id``, ``name``, ...).

        ``fields``: ``id``, ``default_branch`` (default ``"main"``), ``odoo_version`` (``"17.0"``),
        ``server_id`` (omitted: one derived from the id; ``None``: no server), ``git_repo_url``,
        ``git_provider``. 409 if the id exists.
        """
        return dict(self._call("POST", "/projects", {"name": name, **fields}))

    def new_project(self, name: str, default_branch: str = "main", odoo_version: str = "17.0") -> str:
        """Create a project on a fresh random server; return its id."""
        project = self.create_project(name, default_branch=default_branch, odoo_version=odoo_version,
                                      server_id=str(uuid.uuid4()))
        return str(project["id"])

    def list_keys(self) -> list[JSON]:
        """``GET /_sim/keys`` → ``[{key_id, tier, scope, project_id, revoked, expires_at}]`` (never the key)."""
        return list(self._call("GET", "/keys"))

    def add_key(self, key: str, **fields: Any) -> JSON:
        """``POST /_sim/keys`` ``{key, **fields}`` → ``{key_id, tier, scope, project_id}``.

        ``fields``: ``scope`` (``"org"``, the default, or ``"project"``), ``project_id``,
        ``expires_at`` (ISO 8601). The tier comes from the key's ``ro``/``rw`` infix.
        """
        return dict(self._call("POST", "/keys", {"key": key, **fields}))

    def revoke_key(self, key: str) -> bool:
        """``POST /_sim/keys/revoke`` → whether a key with this value was known (and is now revoked)."""
        return bool(self._call("POST", "/keys/revoke", {"key": key})["revoked"])

    # ---------------------------------------------------------------- what the API was asked

    def requests(self, since: int = 0) -> list[JSON]:
        """``GET /_sim/requests?since=`` → logged public-API requests with ``seq > since``, oldest first.

        Entry: ``{seq, time (ISO 8601), method, path, query, status (null: dropped by a fault),
        idempotency_key, x_idempotency_key, confirm_delete, body}`` (``requestlog.py``).
        """
        return list(self._call("GET", "/requests", params={"since": since}))

    def last_seq(self) -> int:
        """``seq`` of the newest logged request (0 when the log is empty); pass it as ``since``."""
        return max((int(r["seq"]) for r in self.requests()), default=0)

    def clear_requests(self) -> int:
        """``DELETE /_sim/requests`` → how many entries were dropped (``seq`` keeps counting)."""
        return int(self._call("DELETE", "/requests")["cleared"])

    def stats(self) -> JSON:
        """``GET /_sim/stats`` → cumulative counters since start (``stats.py``): ``{requests, reads,
        writes, rate_limited, by_route: {route: {status: n}}, by_key: {key_id: {reads, writes,
        rate_limited}}, time}``."""
        return dict(self._call("GET", "/stats"))

    # ---------------------------------------------------------------- environments

    def environments(self) -> list[JSON]:
        """``GET /_sim/environments`` → every environment the simulator had, in the API's shape plus
        ``deleted``, ``deleted_at``, ``active_task_id``, ``fail_next_deploy``, ``fail_log``,
        ``fail_message``, ``destroy_seconds``, ``requested`` and ``applied`` (``{cpu_cores, ram_mb,
        disk_gb}`` asked for vs running with), ``sizes_pending`` and ``domain_verify_at``."""
        return list(self._call("GET", "/environments"))

    def environment(self, env_id: str) -> JSON:
        """One environment's admin view (see :meth:`environments`); ``KeyError`` if unknown."""
        for env in self.environments():
            if env["id"] == env_id:
                return env
        raise KeyError(env_id)

    def tasks(self, env_id: str) -> list[JSON]:
        """``GET /_sim/environments/{env_id}/tasks`` → its tasks, newest first: the API's task object
        plus ``update_modules`` (a deploy's), ``mode``/``modules`` (a quick-update's) and
        ``applied_sizes`` (``{cpu_cores, ram_mb, disk_gb}`` its completion applied, or None)."""
        return list(self._call("GET", f"/environments/{env_id}/tasks"))

    def patch_environment(self, env_id: str, **fields: Any) -> JSON:
        """``PATCH /_sim/environments/{env_id}``, as an edit in the OEC.sh dashboard → its admin view.

        ``fields``: ``name``, ``branch``, ``status``, ``domain`` (``""`` removes it), ``cpu_cores``,
        ``ram_mb``, ``disk_gb`` (requested, as a PATCH), ``apply_sizes`` (True: they run at once),
        ``custom_domain_verified``, ``fail_next_deploy``, ``fail_log`` (lines of the next failing
        deploy's ``/logs``), ``fail_message``, ``destroy_seconds`` (s; None: configured).
        """
        return dict(self._call("PATCH", f"/environments/{env_id}", fields))

    def delete_environment(self, env_id: str) -> JSON:
        """``DELETE /_sim/environments/{env_id}``: gone at once, outside the API → its admin view."""
        return dict(self._call("DELETE", f"/environments/{env_id}"))

    # ---------------------------------------------------------------- clock

    def clock(self) -> JSON:
        """``GET /_sim/clock`` → ``{now (epoch s), iso, offset (s)}``."""
        return dict(self._call("GET", "/clock"))

    def advance_clock(self, seconds: float) -> JSON:
        """``POST /_sim/clock`` ``{advance_seconds}``: jump the simulated clock forward (tasks due by
        then complete, OEC's own scheduled backups due by then appear) → the clock view."""
        return dict(self._call("POST", "/clock", {"advance_seconds": seconds}))

    # ---------------------------------------------------------------- backups

    def backups(self, env_id: str) -> JSON:
        """``GET /_sim/environments/{env_id}/backups`` → ``{environment_id, backups, counts}``: every
        backup (expired ones included), newest first, as the API shows it plus ``phase``,
        ``include_filestore`` and ``restores``; ``counts``: ``{creates, restores, by_type, by_status}``
        (``creates``: accepted ``POST …/backups``)."""
        return dict(self._call("GET", f"/environments/{env_id}/backups"))

    def complete_backup(self, backup_id: str) -> JSON:
        """``POST /_sim/backups/{backup_id}/complete``: a pending or running backup completes now."""
        return dict(self._call("POST", f"/backups/{backup_id}/complete"))

    def fail_backup(self, backup_id: str, message: str | None = None) -> JSON:
        """``POST /_sim/backups/{backup_id}/fail``: a pending or running backup fails now (with
        ``message`` as its ``error_message``)."""
        return dict(self._call("POST", f"/backups/{backup_id}/fail", {"message": message} if message else {}))

    def fail_next_backup(self, env_id: str, message: str | None = None) -> JSON:
        """The next backup of ``env_id`` fails (``PATCH /_sim/environments/{env_id}``)."""
        fields: dict[str, Any] = {"fail_next_backup": True}
        if message:
            fields["backup_fail_message"] = message
        return self.patch_environment(env_id, **fields)

    # ---------------------------------------------------------------- webhooks

    def webhooks(self) -> JSON:
        """``GET /_sim/webhooks`` → ``{deliveries_enabled, sent, dropped, in_flight, webhooks: [Webhook +
        {secret, owner, deliveries: {success, failed, pending}, attempts}]}``."""
        return dict(self._call("GET", "/webhooks"))

    def webhook_secret(self, webhook_id: str) -> str:
        """The current signing secret of a webhook (from :meth:`webhooks`); KeyError if unknown."""
        for hook in self.webhooks()["webhooks"]:
            if hook["id"] == webhook_id:
                return str(hook["secret"])
        raise KeyError(webhook_id)

    def set_deliveries(self, enabled: bool) -> JSON:
        """``POST /_sim/webhooks/deliveries``: ``False`` stops sending (new events dropped, deliveries
        in flight end ``failed``); ``True`` resumes for new events. → :meth:`webhooks`."""
        return dict(self._call("POST", "/webhooks/deliveries", {"enabled": enabled}))

    def webhook_deliveries(self, webhook_id: str) -> list[JSON]:
        """``GET /_sim/webhooks/{id}/deliveries`` → every kept delivery record, newest first, with
        ``event_id`` and ``payload``."""
        return list(self._call("GET", f"/webhooks/{webhook_id}/deliveries"))

    # ---------------------------------------------------------------- faults

    def inject(self, **rule: Any) -> list[JSON]:
        """``POST /_sim/faults`` one rule → every installed rule (``faultrules.py``).

        Without ``kind`` it is a one-shot error: ``status``, ``code``, ``message``, ``count``,
        ``route``, ``method``, ``retry_after`` (s); with ``kind`` (``error``, ``latency``, ``reset``,
        ...) the kind's fields plus ``when``, ``share``, ``start``/``until``.
        """
        return list(self._call("POST", "/faults", rule))

    def clear_faults(self) -> int:
        """``DELETE /_sim/faults`` → how many rules were removed (an outage stays)."""
        return int(self._call("DELETE", "/faults")["cleared"])
