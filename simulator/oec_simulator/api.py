"""Public API handlers under ``/api/public/v1`` (docs/oec-api.md §2, §8, §9, §11.1-§11.6).

Handlers run after the middleware in ``app.py`` has authenticated the key, rate-limited the request,
applied fault injection, latency and idempotency; they raise
:class:`~oec_simulator.errors.ApiError` / ``RequestValidationError`` for error answers.
:data:`ROUTES` pairs each endpoint of ``endpoints.py`` with its handler: ``(method, path, handler,
route name)``.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from aiohttp import web

from . import backups as bk
from .auth import Principal
from .config import ProjectConfig
from .endpoints import ACTIONS, API_PREFIX, ENDPOINTS, logical_route
from .errors import ApiError, field_error, not_found
from .runtime import Simulator
from .schemas import (
    CreateBackupBody,
    CreateEnvironmentBody,
    CreateProjectBody,
    DeployBody,
    PatchEnvironmentBody,
    PatchProjectBody,
    QuickUpdateBody,
    RestoreBody,
    StrictCreateEnvironmentBody,
    parse_body,
    refuse_mcp_patch_fields,
)
from .store import MCP_FILTER_STATUSES, SEED_STATUSES, Environment, Project
from .webhooks import PUBLIC_DELIVERIES, CreateWebhookBody, PatchWebhookBody, Webhook, check_url

SIM_KEY = web.AppKey("oec_simulator", Simulator)
PRINCIPAL_KEY = web.RequestKey("oec_principal", Principal)
RAW_BODY_KEY = web.RequestKey("oec_raw_body", bytes)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
T = TypeVar("T")


# ---------------------------------------------------------------------------- helpers
def _sim(request: web.Request) -> Simulator:
    return request.app[SIM_KEY]


def _principal(request: web.Request) -> Principal:
    return request[PRINCIPAL_KEY]


def _raw(request: web.Request) -> bytes:
    raw: bytes = request.get(RAW_BODY_KEY, b"")  # aiohttp types get() as Any even for a RequestKey
    return raw


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


def _path_uuid(request: web.Request, name: str) -> str:
    """Path parameter ``name`` as a canonical UUID string; 422 ``uuid_parsing`` otherwise."""
    value = request.match_info[name]
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise field_error(
            "path", name, "Input should be a valid UUID, invalid character or length", "uuid_parsing"
        ) from None


def _ensure_visible(sim: Simulator, principal: Principal, project_id: str) -> None:
    """404 ``not_found`` (or 403 ``project_scoped_key`` in the variant) for another project's resource."""
    if principal.sees_project(project_id):
        return
    if sim.config.not_visible_status == 403:
        raise ApiError(403, "project_scoped_key", "This API key is scoped to a different project.")
    raise not_found()


def _require_org(principal: Principal) -> None:
    if principal.scope != "org":
        raise ApiError(403, "org_scope_required", "This operation needs an organization-scoped API key.")


def _confirmed(sim: Simulator, request: web.Request, header: str = "X-Confirm-Delete") -> None:
    """Check ``X-Confirm-Delete: true`` (or ``X-Confirm-Restore``): 400 ``confirmation_required`` or
    the 422 variant (§1 row 18)."""
    value = request.headers.get(header)
    if value == "true":
        return
    if sim.config.confirm_status == 422:
        if value is None:
            raise field_error("header", header.lower(), "Field required", "missing")
        raise field_error("header", header.lower(), "Input should be 'true'", "literal_error")
    what = "Deleting" if header == "X-Confirm-Delete" else "Restoring"
    raise ApiError(400, "confirmation_required", f"{what} requires the header {header}: true.")


def _visible_project(request: web.Request) -> Project:
    sim = _sim(request)
    project = sim.store.get_project(_path_uuid(request, "project_id"))
    _ensure_visible(sim, _principal(request), project.id)
    return project


def _visible_env(request: web.Request) -> Environment:
    sim = _sim(request)
    env = sim.store.get_environment(_path_uuid(request, "env_id"))
    _ensure_visible(sim, _principal(request), env.project_id)
    return env


def _readable_env(request: web.Request) -> Environment:
    """:func:`_visible_env` for the GET detail routes: 404 for ``detail_lag_seconds`` after the
    environment's create (§1 row 30: the detail routes lag behind the project's list)."""
    env = _visible_env(request)
    sim = _sim(request)
    if sim.clock.now() - env.created_at < sim.config.detail_lag_seconds:
        raise not_found()
    return env


def _int_query(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise field_error(
            "query", name, "Input should be a valid integer, unable to parse string as an integer", "int_parsing"
        ) from None
    if value < low:
        raise field_error("query", name, f"Input should be greater than or equal to {low}", "greater_than_equal")
    if value > high:
        raise field_error("query", name, f"Input should be less than or equal to {high}", "less_than_equal")
    return value


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, number = text.partition(":")
        offset = int(number)
        if prefix != "o" or offset < 0:
            raise ValueError(cursor)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise field_error("query", "cursor", "Invalid cursor.", "value_error") from None
    return offset


def _cursor_page(request: web.Request, items: Sequence[T]) -> tuple[list[T], dict[str, Any]]:
    """Cursor pagination (§8): ``limit`` 1-100 (default 20), opaque ``cursor`` → page + pagination."""
    limit = _int_query(request, "limit", 20, 1, 100)
    cursor = request.query.get("cursor")
    offset = _decode_cursor(cursor) if cursor else 0
    page = list(items[offset : offset + limit])
    has_more = offset + limit < len(items)
    return page, {
        "has_more": has_more,
        "next_cursor": _encode_cursor(offset + limit) if has_more else None,
        "total": len(items),
    }


def _accepted(task_id: str, env_id: str) -> web.Response:
    """202 action-accepted body (§9.4)."""
    return _json(
        {
            "task_id": task_id,
            "status": "queued",
            "environment_id": env_id,
            "poll_url": f"{API_PREFIX}/deployments/{task_id}",
        },
        status=202,
    )


# ---------------------------------------------------------------------------- projects (§11.1)
async def list_projects(request: web.Request) -> web.Response:
    """``GET /projects`` → cursor page of Projects visible to the key."""
    sim, principal = _sim(request), _principal(request)
    projects = [p for p in sim.store.list_projects() if principal.sees_project(p.id)]
    page, pagination = _cursor_page(request, projects)
    return _json({"data": [sim.store.project_view(p) for p in page], "pagination": pagination})


async def create_project(request: web.Request) -> web.Response:
    """``POST /projects`` (rw, org key) → 201 Project."""
    sim = _sim(request)
    _require_org(_principal(request))
    body = parse_body(_raw(request), CreateProjectBody)
    spec = ProjectConfig(
        name=body.name,
        server_id=body.server_id,
        default_branch=body.default_branch,
        odoo_version=body.odoo_version,
    )
    project = sim.store.add_project(spec)
    return _json(sim.store.project_view(project), status=201)


async def get_project(request: web.Request) -> web.Response:
    """``GET /projects/{project_id}`` → Project."""
    project = _visible_project(request)
    return _json(_sim(request).store.project_view(project))


async def patch_project(request: web.Request) -> web.Response:
    """``PATCH /projects/{project_id}`` → 200 Project (future deploys only)."""
    project = _visible_project(request)
    body = parse_body(_raw(request), PatchProjectBody)
    changes = body.model_dump(exclude_none=True)
    sim = _sim(request)
    return _json(sim.store.project_view(sim.store.update_project(project.id, changes)))


async def delete_project(request: web.Request) -> web.Response:
    """``DELETE /projects/{project_id}`` (rw, org, ``X-Confirm-Delete``) → 204."""
    sim = _sim(request)
    _require_org(_principal(request))
    _confirmed(sim, request)
    project = _visible_project(request)
    sim.store.delete_project(project.id)
    return web.Response(status=204)


# ---------------------------------------------------------------------------- environments (§11.2)
async def list_environments(request: web.Request) -> web.Response:
    """``GET /projects/{project_id}/environments?status=`` → plain array, oldest first."""
    sim = _sim(request)
    project = _visible_project(request)
    status = request.query.get("status")
    if status is not None:
        status = status.strip().lower()
        allowed = SEED_STATUSES if sim.config.status_filter == "seed" else MCP_FILTER_STATUSES
        if status not in allowed:
            listed = ", ".join(f"'{s}'" for s in allowed)
            raise field_error("query", "status", f"Input should be {listed}", "enum")
    envs = sim.store.list_environments(project.id, status)
    return _json([sim.store.environment_view(e) for e in envs])


async def create_environment(request: web.Request) -> web.Response:
    """``POST /projects/{project_id}/environments`` → 201 Environment (status ``deploying``)."""
    sim = _sim(request)
    project = _visible_project(request)
    model = StrictCreateEnvironmentBody if sim.config.unknown_fields == "reject" else CreateEnvironmentBody
    body = parse_body(_raw(request), model)
    env = sim.store.create_environment(
        project.id,
        name=body.name,
        branch=body.branch,
        environment_type=body.environment_type,
        cpu_cores=body.cpu_cores,
        ram_mb=body.ram_mb,
        disk_gb=body.disk_gb,
        server_id=str(body.vm_id) if body.vm_id else None,
        domain=body.domain,
    )
    return _json(sim.store.environment_view(env), status=201)


async def get_environment(request: web.Request) -> web.Response:
    """``GET /environments/{env_id}`` → Environment; 404 once gone."""
    env = _readable_env(request)
    return _json(_sim(request).store.environment_view(env))


async def patch_environment(request: web.Request) -> web.Response:
    """``PATCH /environments/{env_id}`` body ``{name?, branch?, domain?, cpu_cores?, ram_mb?, disk_gb?}``
    → 200 Environment, no redeploy (sizes apply at the next deploy or restart; §1 rows 31-35)."""
    sim = _sim(request)
    env = _visible_env(request)
    if sim.config.patch_fields == "seed":
        refuse_mcp_patch_fields(_raw(request))
    body = parse_body(_raw(request), PatchEnvironmentBody)
    env = sim.store.update_environment(
        env.id, name=body.name, branch=body.branch, domain=body.domain, sizes=body.sizes()
    )
    return _json(sim.store.environment_view(env))


async def delete_environment(request: web.Request) -> web.Response:
    """``DELETE /environments/{env_id}`` with ``X-Confirm-Delete: true`` → 202 accepted (or 204 variant)."""
    sim = _sim(request)
    _confirmed(sim, request)
    env = _visible_env(request)
    task = sim.store.start_action(env.id, "destroy")
    if sim.config.delete_status == 204:
        return web.Response(status=204)
    return _accepted(task.id, env.id)


async def environment_status(request: web.Request) -> web.Response:
    """``GET /environments/{env_id}/status`` → health object (§9.2)."""
    env = _readable_env(request)
    return _json(_sim(request).store.health_view(env))


async def environment_logs(request: web.Request) -> web.Response:
    """``GET /environments/{env_id}/logs?task_id=&lines=`` → ``{task_id, log, lines, truncated}``."""
    sim = _sim(request)
    env = _readable_env(request)
    lines = _int_query(request, "lines", 200, 1, sim.config.logs_max_lines)
    raw_task = request.query.get("task_id")
    task_id = None
    if raw_task:
        try:
            task_id = str(uuid.UUID(raw_task))
        except ValueError:
            raise field_error("query", "task_id", "Input should be a valid UUID", "uuid_parsing") from None
    return _json(sim.store.logs_view(env, task_id, lines))


# ---------------------------------------------------------------------------- actions and tasks (§11.3)
def _action(task_type: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        sim = _sim(request)
        env = _visible_env(request)
        asked: dict[str, Any] = {}
        if task_type == "deploy":
            deploy = parse_body(_raw(request), DeployBody, required=False)
            asked = {"update_modules": deploy.update_modules}
        elif task_type == "quick_update":
            quick = parse_body(_raw(request), QuickUpdateBody, required=False)
            asked = {"mode": quick.mode, "modules": quick.modules}
        task = sim.store.start_action(env.id, task_type, **asked)
        return _accepted(task.id, env.id)

    handler.__name__ = f"{task_type}_action"
    handler.__doc__ = f"``POST /environments/{{env_id}}/{task_type}`` → 202 action accepted (§9.4)."
    return handler


async def get_deployment(request: web.Request) -> web.Response:
    """``GET /deployments/{task_id}`` → Task (§9.3), also after the environment is gone."""
    sim = _sim(request)
    task = sim.store.get_task(_path_uuid(request, "task_id"))
    env = sim.store.environments[task.environment_id]
    _ensure_visible(sim, _principal(request), env.project_id)
    return _json(sim.store.task_view(task))


async def list_deployments(request: web.Request) -> web.Response:
    """``GET /environments/{env_id}/deployments`` → cursor page of Tasks, newest first."""
    sim = _sim(request)
    env = _readable_env(request)
    page, pagination = _cursor_page(request, sim.store.list_tasks(env.id))
    return _json({"data": [sim.store.task_view(t) for t in page], "pagination": pagination})


# ---------------------------------------------------------------------------- backups (§11.5)
def _enum_query(request: web.Request, name: str, allowed: tuple[str, ...]) -> str | None:
    """Optional enum query parameter; a value not in ``allowed`` → 422 ``enum``."""
    value = request.query.get(name)
    if value is None:
        return None
    value = value.strip().lower()
    if value not in allowed:
        listed = ", ".join(f"'{s}'" for s in allowed)
        raise field_error("query", name, f"Input should be {listed}", "enum")
    return value


def _backups_env(request: web.Request) -> Environment:
    """The environment of a backups route, gone ones included (backups outlive it), visible to the key."""
    sim = _sim(request)
    env = sim.store.backups_of(_path_uuid(request, "env_id"))
    _ensure_visible(sim, _principal(request), env.project_id)
    return env


def _visible_backup(request: web.Request) -> bk.Backup:
    sim = _sim(request)
    backup = sim.store.get_backup(_path_uuid(request, "backup_id"))
    _ensure_visible(sim, _principal(request), backup.project_id)
    return backup


async def list_backups(request: web.Request) -> web.Response:
    """``GET /environments/{env_id}/backups?status=&backup_type=&page=&page_size=`` → page of
    Backups, newest first, also after the environment's deletion (§11.5; §1 row 28)."""
    sim = _sim(request)
    env = _backups_env(request)
    ref = sim.config.backup_enums == "ref"
    status = _enum_query(request, "status", bk.REF_STATUSES if ref else bk.MCP_STATUSES)
    backup_type = _enum_query(request, "backup_type", bk.REF_TYPES if ref else bk.MCP_TYPES)
    page = _int_query(request, "page", 1, 1, 1_000_000)
    page_size = _int_query(request, "page_size", 20, 1, 100)
    backups = sim.store.list_backups(env.id, status=status, backup_type=backup_type)
    now = sim.clock.now()
    chunk = backups[(page - 1) * page_size : page * page_size]
    items = [bk.backup_view(b, now, sim.config) for b in chunk]
    return _json(bk.page_view(items, len(backups), page, page_size, sim.config))


async def create_backup(request: web.Request) -> web.Response:
    """``POST /environments/{env_id}/backups`` → 201 Backup (``pending``); no idempotency key; 409
    while a backup or another task runs; 404 with ``backups_route=missing``."""
    sim = _sim(request)
    if sim.config.backups_route == "missing":
        raise not_found()
    env = _visible_env(request)
    body = parse_body(_raw(request), CreateBackupBody, required=False)
    backup = sim.store.create_backup(
        env.id, include_filestore=body.include_filestore, retention_type=body.retention_type, notes=body.notes
    )
    return _json(bk.backup_view(backup, sim.clock.now(), sim.config), status=201)


async def get_backup(request: web.Request) -> web.Response:
    """``GET /backups/{backup_id}`` → Backup, also after the environment's deletion."""
    sim = _sim(request)
    backup = _visible_backup(request)
    return _json(bk.backup_view(backup, sim.clock.now(), sim.config))


async def backup_download(request: web.Request) -> web.Response:
    """``GET /backups/{backup_id}/download?expires_in=300..3600`` (default 3600) → presigned links of a
    completed backup; otherwise 400 ``{"detail": "Backup is not in COMPLETED status"}``."""
    sim = _sim(request)
    backup = _visible_backup(request)
    expires_in = _int_query(request, "expires_in", 3600, 300, 3600)
    now = sim.clock.now()
    if backup.phase_at(now) != "completed":
        raise ApiError(400, "invalid_state", "Backup is not in COMPLETED status", plain=True)
    return _json(bk.download_view(backup, now, expires_in))


async def restore_backup(request: web.Request) -> web.Response:
    """``POST /backups/{backup_id}/restore`` with ``X-Confirm-Restore: true`` (``Idempotency-Key``
    honoured by the middleware) → 202 ``{task_id, status, environment_id, backup_id}``; into the
    backup's own environment only (a body naming another one → 422 ``cross_environment_restore``)."""
    sim = _sim(request)
    _confirmed(sim, request, "X-Confirm-Restore")
    backup = _visible_backup(request)
    body = parse_body(_raw(request), RestoreBody, required=False)
    target = body.target_environment_id or body.environment_id
    if target is not None and str(target) != backup.environment_id:
        raise ApiError(
            422,
            "cross_environment_restore",
            "A backup can only be restored into the environment it was taken from.",
            extras={"environment_id": backup.environment_id},
        )
    task = sim.store.restore_backup(backup.id)
    return _json(
        {"task_id": task.id, "status": "queued", "environment_id": backup.environment_id, "backup_id": backup.id,
         "poll_url": f"{API_PREFIX}/deployments/{task.id}"},
        status=202,
    )


# ---------------------------------------------------------------------------- webhooks (§11.6)
def _visible_webhook(request: web.Request) -> Webhook:
    """The webhook in the path if the key sees it (org key: all; project key: its project's), else 404."""
    sim = _sim(request)
    hook = sim.webhooks.get(_path_uuid(request, "webhook_id"))
    principal = _principal(request)
    if principal.scope == "project" and hook.project_id != principal.project_id:
        raise not_found()
    return hook


def _charge_mutation(request: web.Request) -> None:
    sim = _sim(request)
    sim.webhooks.charge_mutation(_principal(request).key_id, sim.config.webhook_mutation_limit)


async def list_webhooks(request: web.Request) -> web.Response:
    """``GET /webhooks?limit=&offset=`` → offset page ``{items, total, limit, offset, has_more}`` (§8)."""
    sim, principal = _sim(request), _principal(request)
    limit = _int_query(request, "limit", 50, 1, 100)
    offset = _int_query(request, "offset", 0, 0, 1_000_000)
    hooks = [h for h in sim.webhooks.hooks.values() if principal.scope == "org" or h.project_id == principal.project_id]
    page = hooks[offset : offset + limit]
    return _json({"items": [h.view() for h in page], "total": len(hooks), "limit": limit, "offset": offset,
                  "has_more": offset + limit < len(hooks)})


async def create_webhook(request: web.Request) -> web.Response:
    """``POST /webhooks`` (``X-Idempotency-Key``) → 201 Webhook with its ``secret`` (shown once).
    ``project_id`` is required with a project key and must be its project (422)."""
    sim, principal = _sim(request), _principal(request)
    body = parse_body(_raw(request), CreateWebhookBody)
    check_url(body.url, allow_insecure=sim.config.webhook_allow_insecure_urls)
    project_id = str(body.project_id) if body.project_id else None
    if principal.scope == "project":
        if project_id is None:
            raise field_error("body", "project_id", "project_id is required with a project-scoped API key", "missing")
        if project_id != principal.project_id:
            raise field_error("body", "project_id", "project_id must be the API key's project", "value_error")
    if project_id is not None:
        sim.store.get_project(project_id)
    _charge_mutation(request)
    sim.delivery.prime()  # what exists now is not news to the new webhook
    hook = sim.webhooks.create(body, project_id=project_id, owner=principal.key_id)
    return _json({**hook.view(), "secret": hook.secret}, status=201)


async def get_webhook(request: web.Request) -> web.Response:
    """``GET /webhooks/{webhook_id}`` → Webhook (no secret)."""
    return _json(_visible_webhook(request).view())


async def update_webhook(request: web.Request) -> web.Response:
    """``PATCH /webhooks/{webhook_id}`` body any of ``url, events, description, format, is_active`` → 200."""
    sim = _sim(request)
    hook = _visible_webhook(request)
    body = parse_body(_raw(request), PatchWebhookBody)
    if body.url is not None:
        check_url(body.url, allow_insecure=sim.config.webhook_allow_insecure_urls)
    _charge_mutation(request)
    return _json(sim.webhooks.update(hook, body).view())


async def delete_webhook(request: web.Request) -> web.Response:
    """``DELETE /webhooks/{webhook_id}`` → 204; its delivery history goes with it."""
    hook = _visible_webhook(request)
    _charge_mutation(request)
    _sim(request).webhooks.delete(hook)
    return web.Response(status=204)


async def test_webhook(request: web.Request) -> web.Response:
    """``POST /webhooks/{webhook_id}/test`` → sends a signed ``ping`` now and answers
    ``{success, status_code, duration_ms, message}``; no delivery record."""
    sim = _sim(request)
    hook = _visible_webhook(request)
    return _json(await sim.delivery.ping(hook))


async def rotate_webhook_secret(request: web.Request) -> web.Response:
    """``POST /webhooks/{webhook_id}/rotate-secret`` → ``{secret}``; the old secret signs nothing more."""
    sim = _sim(request)
    hook = _visible_webhook(request)
    return _json({"secret": sim.webhooks.rotate(hook)})


async def list_webhook_deliveries(request: web.Request) -> web.Response:
    """``GET /webhooks/{webhook_id}/deliveries`` → plain array of the 50 newest deliveries, newest first."""
    hook = _visible_webhook(request)
    newest = list(hook.deliveries)[-PUBLIC_DELIVERIES:]
    return _json([d.view() for d in reversed(newest)])


#: Handler of each non-action logical route name; every action route is answered by :func:`_action`.
_HANDLERS: dict[str, Handler] = {
    handler.__name__: handler
    for handler in (
        list_projects, create_project, get_project, patch_project, delete_project, list_environments,
        create_environment, get_environment, patch_environment, delete_environment, environment_status,
        environment_logs, list_deployments, get_deployment, list_backups, create_backup, get_backup,
        backup_download, restore_backup, list_webhooks, create_webhook, get_webhook, update_webhook,
        delete_webhook, test_webhook, rotate_webhook_secret, list_webhook_deliveries,
    )
}


def _handler(name: str) -> Handler:
    logical = logical_route(name) or name
    return _action(logical) if logical in ACTIONS else _HANDLERS[logical]


#: (method, path relative to API_PREFIX, handler, route name) of every endpoint (``endpoints.py``).
ROUTES: list[tuple[str, str, Handler, str]] = [(e.method, e.path, _handler(e.name), e.name) for e in ENDPOINTS]
