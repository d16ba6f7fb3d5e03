"""Admin API under ``/_sim`` (no auth, never rate-limited, not in the request log): inspection and
control of the simulator for tests, demos and benchmarks.

Endpoints (JSON in, JSON out; errors ``{"error", "message", "detail"?}`` with 400/404/409/422):

* ``GET /_sim/health`` → ``{"status": "ok", "environments": int, "requests": int}``
* ``GET /_sim/requests?since=SEQ`` → ``[request entry]`` with ``seq > since`` (default 0; see
  ``requestlog.py``); ``DELETE`` → ``{"cleared": int}``
* ``GET /_sim/stats`` → ``{requests, reads, writes, rate_limited, by_route: {route: {status: n}},
  by_key: {key_id: {reads, writes, rate_limited}}, time}`` (see ``stats.py``; cumulative since start
  or the last ``DELETE /_sim/stats`` → ``{"cleared": int}``; ``POST /_sim/reset`` keeps them)
* ``GET /_sim/environments`` → ``[environment + {deleted, deleted_at, active_task_id, fail_next_deploy}]``
  (gone ones included)
* ``PATCH /_sim/environments/{id}`` ``{name?, branch?, status?, fail_next_deploy?}`` → that object
* ``DELETE /_sim/environments/{id}`` → that object with ``deleted: true`` (gone at once)
* ``GET /_sim/projects`` → ``[Project]``; ``POST /_sim/projects`` ``{id?, name, default_branch?,
  odoo_version?, server_id?, git_repo_url?, git_provider?}`` → 201 Project (409 if the id exists)
* ``GET /_sim/keys`` → ``[{key_id, tier, scope, project_id, revoked, expires_at}]`` (never the key);
  ``POST /_sim/keys`` ``{key, scope: "org"|"project", project_id?, expires_at?}`` → 201
  ``{key_id, tier, scope, project_id}``; ``POST /_sim/keys/revoke`` ``{key}`` → ``{"revoked": bool}``
* ``GET /_sim/config`` → config without projects/keys; ``PATCH /_sim/config`` ``{field: value}`` →
  the updated config
* ``POST /_sim/reset`` → ``{"status": "reset"}`` (environments, tasks, request log, rate limits,
  idempotency cache, IP blocks, faults; keeps projects, keys, config)
* ``GET /_sim/clock`` → ``{now, iso, offset}``; ``POST /_sim/clock`` ``{advance_seconds}`` → same
* ``GET /_sim/faults`` → ``[Fault]``; ``POST /_sim/faults`` Fault → 201 ``[Fault]``;
  ``DELETE /_sim/faults`` → ``{"cleared": int}``
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from .api import SIM_KEY
from .clock import iso
from .config import KeyConfig, ProjectConfig
from .errors import ApiError
from .faults import Fault
from .runtime import Simulator
from .schemas import AdminClockAdvance, AdminEnvironmentPatch, AdminKeyRevoke

ADMIN_PREFIX = "/_sim"
ModelT = TypeVar("ModelT", bound=BaseModel)


class _AdminError(Exception):
    def __init__(self, status: int, error: str, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.status, self.error, self.message, self.detail = status, error, message, detail


def _sim(request: web.Request) -> Simulator:
    return request.app[SIM_KEY]


async def _body(request: web.Request, model: type[ModelT]) -> ModelT:
    raw = await request.read()
    try:
        data = json.loads(raw) if raw.strip() else {}
    except ValueError as exc:
        raise _AdminError(400, "invalid_json", "The request body is not valid JSON.") from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        detail = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        raise _AdminError(422, "validation_error", "Invalid admin request.", detail) from exc


@web.middleware
async def admin_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Render admin failures as ``{"error", "message", "detail"?}``."""
    if not request.path.startswith(ADMIN_PREFIX + "/"):
        return await handler(request)
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except _AdminError as exc:
        body: dict[str, Any] = {"error": exc.error, "message": exc.message}
        if exc.detail is not None:
            body["detail"] = exc.detail
        return web.json_response(body, status=exc.status)
    except ApiError as exc:
        return web.json_response({"error": exc.code, "message": exc.message}, status=exc.status)


async def health(request: web.Request) -> web.Response:
    """``GET /_sim/health`` → ``{"status": "ok", "environments": n, "requests": n}``."""
    sim = _sim(request)
    live = [e for e in sim.store.all_environments() if not e.deleted]
    return web.json_response({"status": "ok", "environments": len(live), "requests": len(sim.requests)})


async def list_requests(request: web.Request) -> web.Response:
    """``GET /_sim/requests?since=SEQ`` → logged API requests with ``seq > since``, in arrival order."""
    raw = request.query.get("since", "0")
    try:
        since = int(raw)
    except ValueError:
        raise _AdminError(400, "invalid_query", "since must be an integer request seq.") from None
    return web.json_response(_sim(request).requests.entries(since))


async def clear_requests(request: web.Request) -> web.Response:
    """``DELETE /_sim/requests`` → ``{"cleared": n}``."""
    log = _sim(request).requests
    count = len(log)
    log.clear()
    return web.json_response({"cleared": count})


async def get_stats(request: web.Request) -> web.Response:
    """``GET /_sim/stats`` → cumulative request counters (shape in ``stats.py``); ``time`` = sim clock."""
    sim = _sim(request)
    return web.json_response(sim.stats.snapshot(sim.clock.now()))


async def clear_stats(request: web.Request) -> web.Response:
    """``DELETE /_sim/stats`` → ``{"cleared": n}`` (requests counted before), counters back to zero."""
    return web.json_response({"cleared": _sim(request).stats.clear()})


async def list_environments(request: web.Request) -> web.Response:
    """``GET /_sim/environments`` → every environment, gone ones with ``deleted: true``."""
    store = _sim(request).store
    return web.json_response([store.admin_view(e) for e in store.all_environments()])


async def patch_environment(request: web.Request) -> web.Response:
    """``PATCH /_sim/environments/{id}`` → direct edit of name/branch/status/fail_next_deploy."""
    store = _sim(request).store
    body = await _body(request, AdminEnvironmentPatch)
    env = store.admin_update(request.match_info["env_id"], body.model_dump(exclude_unset=True))
    return web.json_response(store.admin_view(env))


async def remove_environment(request: web.Request) -> web.Response:
    """``DELETE /_sim/environments/{id}`` → the environment is gone at once."""
    store = _sim(request).store
    env = store.admin_remove(request.match_info["env_id"])
    return web.json_response(store.admin_view(env))


async def list_projects(request: web.Request) -> web.Response:
    """``GET /_sim/projects`` → every active project."""
    store = _sim(request).store
    return web.json_response([store.project_view(p) for p in store.list_projects()])


async def create_project(request: web.Request) -> web.Response:
    """``POST /_sim/projects`` → 201 Project; ``server_id: null`` makes a project without a server."""
    store = _sim(request).store
    spec = await _body(request, ProjectConfig)
    if str(spec.id) in store.projects:
        raise _AdminError(409, "conflict", "A project with this id already exists.")
    return web.json_response(store.project_view(store.add_project(spec)), status=201)


async def list_keys(request: web.Request) -> web.Response:
    """``GET /_sim/keys`` → key metadata (never key values)."""
    return web.json_response(_sim(request).keys.summary())


async def add_key(request: web.Request) -> web.Response:
    """``POST /_sim/keys`` → 201 ``{key_id, tier, scope, project_id}``."""
    spec = await _body(request, KeyConfig)
    principal = _sim(request).keys.add(spec)
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
    body = await _body(request, AdminKeyRevoke)
    return web.json_response({"revoked": _sim(request).keys.revoke(body.key)})


async def get_config(request: web.Request) -> web.Response:
    """``GET /_sim/config`` → runtime config (no projects, no keys)."""
    return web.json_response(_sim(request).config.runtime_view())


async def patch_config(request: web.Request) -> web.Response:
    """``PATCH /_sim/config`` ``{field: value, ...}`` → updated runtime config (all-or-nothing)."""
    config = _sim(request).config
    raw = await request.read()
    try:
        patch = json.loads(raw) if raw.strip() else {}
    except ValueError as exc:
        raise _AdminError(400, "invalid_json", "The request body is not valid JSON.") from exc
    if not isinstance(patch, dict):
        raise _AdminError(422, "validation_error", "The body must be a JSON object.")
    try:
        config.apply_patch(patch)
    except ValidationError as exc:
        detail = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        raise _AdminError(422, "validation_error", "Invalid configuration.", detail) from exc
    except ValueError as exc:
        raise _AdminError(422, "validation_error", str(exc)) from exc
    return web.json_response(config.runtime_view())


async def reset(request: web.Request) -> web.Response:
    """``POST /_sim/reset`` → ``{"status": "reset"}``."""
    _sim(request).reset()
    return web.json_response({"status": "reset"})


def _clock_view(sim: Simulator) -> dict[str, Any]:
    now = sim.clock.now()
    return {"now": now, "iso": iso(now), "offset": sim.clock.offset}


async def get_clock(request: web.Request) -> web.Response:
    """``GET /_sim/clock`` → ``{now (epoch s), iso, offset (s)}``."""
    return web.json_response(_clock_view(_sim(request)))


async def advance_clock(request: web.Request) -> web.Response:
    """``POST /_sim/clock`` ``{advance_seconds}`` → clock view after the jump."""
    body = await _body(request, AdminClockAdvance)
    sim = _sim(request)
    sim.clock.advance(body.advance_seconds)
    return web.json_response(_clock_view(sim))


async def list_faults(request: web.Request) -> web.Response:
    """``GET /_sim/faults`` → pending faults."""
    return web.json_response([f.model_dump() for f in _sim(request).faults.pending])


async def add_fault(request: web.Request) -> web.Response:
    """``POST /_sim/faults`` Fault → 201 pending faults."""
    fault = await _body(request, Fault)
    faults = _sim(request).faults
    faults.add(fault)
    return web.json_response([f.model_dump() for f in faults.pending], status=201)


async def clear_faults(request: web.Request) -> web.Response:
    """``DELETE /_sim/faults`` → ``{"cleared": n}``."""
    faults = _sim(request).faults
    count = len(faults.pending)
    faults.clear()
    return web.json_response({"cleared": count})


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
        ("GET", "/faults", list_faults),
        ("POST", "/faults", add_fault),
        ("DELETE", "/faults", clear_faults),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, ADMIN_PREFIX + path, handler)
