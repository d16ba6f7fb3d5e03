"""Admin API under ``/_sim`` (no auth, never rate-limited, not in the request log): inspection and
control of the simulator for tests, demos and benchmarks.

Endpoints (JSON in, JSON out; errors ``{"error", "message", "detail"?}`` with 400/404/409/422):

* ``GET /_sim/health`` → ``{"status": "ok", "environments": int, "requests": int}``
* ``GET /_sim/requests?since=SEQ`` → ``[request entry]`` with ``seq > since`` (default 0; see
  ``requestlog.py``); ``DELETE`` → ``{"cleared": int}``
* ``GET /_sim/stats`` → ``{requests, reads, writes, rate_limited, by_route: {route: {status: n}},
  by_key: {key_id: {reads, writes, rate_limited}}, time}`` (see ``stats.py``; cumulative since start
  or the last ``DELETE /_sim/stats`` → ``{"cleared": int}``; ``POST /_sim/reset`` keeps them)
* ``GET /_sim/environments`` → ``[environment + {deleted, deleted_at, active_task_id, fail_next_deploy,
  fail_log, fail_message, destroy_seconds, requested, applied, sizes_pending, domain_verify_at}]``
  (gone ones included; ``requested``/``applied``: ``{cpu_cores, ram_mb, disk_gb}`` asked for vs
  running with)
* ``PATCH /_sim/environments/{id}`` ``{name?, branch?, status?, domain?, cpu_cores?, ram_mb?,
  disk_gb?, custom_domain_verified?, apply_sizes?, fail_next_deploy?, fail_log?: [str],
  fail_message?, destroy_seconds?, fail_next_backup?, backup_fail_message?}`` → that object
  (dashboard edits: sizes are requested, applied
  by the next deploy/restart or at once with ``apply_sizes: true``; ``fail_log``/``fail_message``:
  the next deploy fails with these ``/logs`` lines and task ``error_message``; ``destroy_seconds``:
  this environment's destroy duration, s, null = the configured one)
* ``GET /_sim/environments/{id}/tasks`` → its tasks, newest first: the §9.3 task object +
  ``{update_modules, mode, modules, applied_sizes}`` (what each was asked; sizes it applied)
* ``GET /_sim/environments/{id}/backups`` → ``{environment_id, backups: [Backup + {phase,
  include_filestore, restores}], counts: {creates, restores, by_type, by_status}}``: every backup,
  expired ones included, newest first (``creates``: accepted ``POST …/backups``)
* ``POST /_sim/backups/{id}/complete`` / ``POST /_sim/backups/{id}/fail`` ``{message?}`` → that
  backup's admin view: a pending or running backup (and its task) finishes now (409 when finished)
* ``DELETE /_sim/environments/{id}`` → that object with ``deleted: true`` (gone at once)
* ``GET /_sim/projects`` → ``[Project]``; ``POST /_sim/projects`` ``{id?, name, default_branch?,
  odoo_version?, server_id?, git_repo_url?, git_provider?}`` → 201 Project (409 if the id exists)
* ``GET /_sim/keys`` → ``[{key_id, tier, scope, project_id, revoked, expires_at}]`` (never the key);
  ``POST /_sim/keys`` ``{key, scope: "org"|"project", project_id?, expires_at?}`` → 201
  ``{key_id, tier, scope, project_id}``; ``POST /_sim/keys/revoke`` ``{key}`` → ``{"revoked": bool}``
* ``GET /_sim/config`` → config without the start-up fields (projects, keys, faults, fault_seed,
  outage); ``PATCH /_sim/config`` ``{field: value}`` →
  the updated config
* ``POST /_sim/reset`` → ``{"status": "reset"}`` (environments, tasks, request log, rate limits,
  idempotency cache, IP blocks, fault rules, outage, webhooks; keeps projects, keys, config, stats)
* ``GET /_sim/clock`` → ``{now, iso, offset}``; ``POST /_sim/clock`` ``{advance_seconds}`` → same
* ``/_sim/faults``, ``/_sim/faults/{id}``, ``/_sim/faults/seed``, ``/_sim/outage``: fault injection
  (see ``admin_faults.py``; these answer 400 on an invalid body)
* ``/_sim/webhooks``, ``/_sim/webhooks/deliveries``, ``/_sim/webhooks/{id}/deliveries``: webhooks
  with their secrets, stop/resume sending, every delivery record (see ``admin_webhooks.py``)
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import ValidationError

from . import admin_faults, admin_webhooks
from .admin_common import ADMIN_PREFIX, AdminError, admin_errors, read_body, read_json, sim_of, validation_detail
from .clock import iso
from .config import KeyConfig, ProjectConfig
from .runtime import Simulator
from .schemas import AdminBackupFinish, AdminClockAdvance, AdminEnvironmentPatch, AdminKeyRevoke


async def health(request: web.Request) -> web.Response:
    """``GET /_sim/health`` → ``{"status": "ok", "environments": n, "requests": n}``."""
    sim = sim_of(request)
    live = [e for e in sim.store.all_environments() if not e.deleted]
    return web.json_response({"status": "ok", "environments": len(live), "requests": len(sim.requests)})


async def list_requests(request: web.Request) -> web.Response:
    """``GET /_sim/requests?since=SEQ`` → logged API requests with ``seq > since``, in arrival order."""
    raw = request.query.get("since", "0")
    try:
        since = int(raw)
    except ValueError:
        raise AdminError(400, "invalid_query", "since must be an integer request seq.") from None
    return web.json_response(sim_of(request).requests.entries(since))


async def clear_requests(request: web.Request) -> web.Response:
    """``DELETE /_sim/requests`` → ``{"cleared": n}``."""
    log = sim_of(request).requests
    count = len(log)
    log.clear()
    return web.json_response({"cleared": count})


async def get_stats(request: web.Request) -> web.Response:
    """``GET /_sim/stats`` → cumulative request counters (shape in ``stats.py``); ``time`` = sim clock."""
    sim = sim_of(request)
    return web.json_response(sim.stats.snapshot(sim.clock.now()))


async def clear_stats(request: web.Request) -> web.Response:
    """``DELETE /_sim/stats`` → ``{"cleared": n}`` (requests counted before), counters back to zero."""
    return web.json_response({"cleared": sim_of(request).stats.clear()})


async def list_environments(request: web.Request) -> web.Response:
    """``GET /_sim/environments`` → every environment, gone ones with ``deleted: true``."""
    store = sim_of(request).store
    return web.json_response([store.admin_view(e) for e in store.all_environments()])


async def patch_environment(request: web.Request) -> web.Response:
    """``PATCH /_sim/environments/{id}`` → direct edit of name/branch/status and the failure/destroy
    switches (:class:`~.schemas.AdminEnvironmentPatch`)."""
    store = sim_of(request).store
    body = await read_body(request, AdminEnvironmentPatch)
    env = store.admin_update(request.match_info["env_id"], body.model_dump(exclude_unset=True))
    return web.json_response(store.admin_view(env))


async def list_tasks(request: web.Request) -> web.Response:
    """``GET /_sim/environments/{id}/tasks`` → tasks with what they were asked, newest first."""
    return web.json_response(sim_of(request).store.admin_tasks(request.match_info["env_id"]))


async def list_backups(request: web.Request) -> web.Response:
    """``GET /_sim/environments/{id}/backups`` → every backup of it with counts (``Store.admin_backups``)."""
    return web.json_response(sim_of(request).store.admin_backups(request.match_info["env_id"]))


def _backup_admin_view(sim: Simulator, backup_id: str) -> dict[str, Any]:
    env_id = sim.store.backups[backup_id].environment_id
    return next(b for b in sim.store.admin_backups(env_id)["backups"] if b["id"] == backup_id)


async def complete_backup(request: web.Request) -> web.Response:
    """``POST /_sim/backups/{id}/complete`` → the backup, completed now."""
    sim = sim_of(request)
    backup = sim.store.admin_finish_backup(request.match_info["backup_id"], fail=False)
    return web.json_response(_backup_admin_view(sim, backup.id))


async def fail_backup(request: web.Request) -> web.Response:
    """``POST /_sim/backups/{id}/fail`` ``{message?}`` → the backup, failed now."""
    sim = sim_of(request)
    body = await read_body(request, AdminBackupFinish)
    backup = sim.store.admin_finish_backup(request.match_info["backup_id"], fail=True, message=body.message)
    return web.json_response(_backup_admin_view(sim, backup.id))


async def remove_environment(request: web.Request) -> web.Response:
    """``DELETE /_sim/environments/{id}`` → the environment is gone at once."""
    store = sim_of(request).store
    env = store.admin_remove(request.match_info["env_id"])
    return web.json_response(store.admin_view(env))


async def list_projects(request: web.Request) -> web.Response:
    """``GET /_sim/projects`` → every active project."""
    store = sim_of(request).store
    return web.json_response([store.project_view(p) for p in store.list_projects()])


async def create_project(request: web.Request) -> web.Response:
    """``POST /_sim/projects`` → 201 Project; ``server_id: null`` makes a project without a server."""
    store = sim_of(request).store
    spec = await read_body(request, ProjectConfig)
    if str(spec.id) in store.projects:
        raise AdminError(409, "conflict", "A project with this id already exists.")
    return web.json_response(store.project_view(store.add_project(spec)), status=201)


async def list_keys(request: web.Request) -> web.Response:
    """``GET /_sim/keys`` → key metadata (never key values)."""
    return web.json_response(sim_of(request).keys.summary())


async def add_key(request: web.Request) -> web.Response:
    """``POST /_sim/keys`` → 201 ``{key_id, tier, scope, project_id}``."""
    spec = await read_body(request, KeyConfig)
    principal = sim_of(request).keys.add(spec)
    return web.json_response(
        {
            "key_id": principal.key_id,
            "tier": principal.tier,
            "scope": principal.scope,
            "project_id": principal.project_id,
        },
        status=201,
    )


async def revoke_key(request: web.Request) -> web.Response:
    """``POST /_sim/keys/revoke`` ``{key}`` → ``{"revoked": bool}``."""
    body = await read_body(request, AdminKeyRevoke)
    return web.json_response({"revoked": sim_of(request).keys.revoke(body.key)})


async def get_config(request: web.Request) -> web.Response:
    """``GET /_sim/config`` → runtime config (no projects, no keys)."""
    return web.json_response(sim_of(request).config.runtime_view())


async def patch_config(request: web.Request) -> web.Response:
    """``PATCH /_sim/config`` ``{field: value, ...}`` → updated runtime config (all-or-nothing)."""
    config = sim_of(request).config
    patch = await read_json(request)
    if not isinstance(patch, dict):
        raise AdminError(422, "validation_error", "The body must be a JSON object.")
    try:
        config.apply_patch(patch)
    except ValidationError as exc:
        raise AdminError(422, "validation_error", "Invalid configuration.", validation_detail(exc)) from exc
    except ValueError as exc:
        raise AdminError(422, "validation_error", str(exc)) from exc
    return web.json_response(config.runtime_view())


async def reset(request: web.Request) -> web.Response:
    """``POST /_sim/reset`` → ``{"status": "reset"}``."""
    sim_of(request).reset()
    return web.json_response({"status": "reset"})


def _clock_view(sim: Simulator) -> dict[str, Any]:
    now = sim.clock.now()
    return {"now": now, "iso": iso(now), "offset": sim.clock.offset}


async def get_clock(request: web.Request) -> web.Response:
    """``GET /_sim/clock`` → ``{now (epoch s), iso, offset (s)}``."""
    return web.json_response(_clock_view(sim_of(request)))


async def advance_clock(request: web.Request) -> web.Response:
    """``POST /_sim/clock`` ``{advance_seconds}`` → clock view after the jump."""
    body = await read_body(request, AdminClockAdvance)
    sim = sim_of(request)
    sim.clock.advance(body.advance_seconds)
    return web.json_response(_clock_view(sim))


def add_admin_routes(app: web.Application) -> None:
    """Register the ``/_sim`` routes and their error middleware on ``app``."""
    app.middlewares.append(admin_errors)
    routes = [
        ("GET", "/health", health),
        ("GET", "/requests", list_requests),
        ("DELETE", "/requests", clear_requests),
        ("GET", "/stats", get_stats),
        ("DELETE", "/stats", clear_stats),
        ("GET", "/environments", list_environments),
        ("PATCH", "/environments/{env_id}", patch_environment),
        ("DELETE", "/environments/{env_id}", remove_environment),
        ("GET", "/environments/{env_id}/tasks", list_tasks),
        ("GET", "/environments/{env_id}/backups", list_backups),
        ("POST", "/backups/{backup_id}/complete", complete_backup),
        ("POST", "/backups/{backup_id}/fail", fail_backup),
        ("GET", "/projects", list_projects),
        ("POST", "/projects", create_project),
        ("GET", "/keys", list_keys),
        ("POST", "/keys", add_key),
        ("POST", "/keys/revoke", revoke_key),
        ("GET", "/config", get_config),
        ("PATCH", "/config", patch_config),
        ("POST", "/reset", reset),
        ("GET", "/clock", get_clock),
        ("POST", "/clock", advance_clock),
        *admin_faults.ROUTES,
        *admin_webhooks.ROUTES,
    ]
    for method, path, handler in routes:
        app.router.add_route(method, ADMIN_PREFIX + path, handler)
