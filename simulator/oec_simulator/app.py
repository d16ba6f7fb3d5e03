"""aiohttp application of the OEC.sh API simulator: :func:`create_app`.

The public API lives under ``/api/public/v1`` (routes in ``api.py``), the admin API under ``/_sim``
(``admin.py``). The API middleware implements the cross-cutting parts of the contract, in this order:

1. request log entry (``GET /_sim/requests``), request counters (``GET /_sim/stats``) and one
   stderr log line per request (method, path, status; never a key);
2. unknown route → 404 ``not_found`` / 405; disabled ``/actions/…`` aliases → 404 (§1 row 6);
3. brute-force IP block → 429 ``ip_blocked`` (§4);
4. authentication → 401 codes; refused keys count towards the IP block (§4);
5. read-only key on POST/PUT/PATCH/DELETE → 403 ``read_only_key`` (§4);
6. rate limit → 429 ``rate_limit_exceeded`` (§6, §1 rows 7-8); ``X-RateLimit-*`` on every
   authenticated answer;
7. fault rules (``POST /_sim/faults``, ``faultrules.py``): an injected 429 answers without consuming
   the key's budget; other kinds consume it, then ``when: before`` answers (error, conflict) or drops
   the connection (reset, timeout) instead of running the handler;
8. idempotency (§7) around [per-route latency, then the handler]. Latency is slept inside the
   idempotency lock, so a duplicate sent during a slow first request waits and replays. Handlers are
   not cancelled when the client disconnects (aiohttp's default), so a slow create still completes;
9. ``when: after`` fault rules: the handler's answer (and its state change, and its idempotency
   cache entry) stands, but the client gets the injected error or a dropped connection.

After a write (any POST/PUT/PATCH/DELETE), the webhook delivery engine scans the store so that the
write's effect is delivered at once (``delivery.py``; it also scans periodically).

Before all of this, an outage window (``POST /_sim/outage``) answers every API request 503 or resets
its connection. A dropped request is logged with ``status: null`` and counted as ``reset``/``timeout``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator

from aiohttp import web

from . import connection
from .admin import add_admin_routes
from .api import PRINCIPAL_KEY, RAW_BODY_KEY, ROUTES, SIM_KEY, Handler
from .auth import WRITE_METHODS, Principal
from .clock import Clock
from .config import SimulatorConfig
from .endpoints import API_PREFIX, IDEMPOTENCY_HEADERS, is_alias, logical_route
from .errors import ApiError, RequestValidationError, not_found, render
from .faultrules import FaultRule
from .faults import conflict_for, error_for, outage_error, rate_limit_for
from .idempotency import StoredResponse, check_key, fingerprint
from .ratelimit import RateDecision
from .runtime import Simulator

logger = logging.getLogger("oec_simulator")
#: Set on a request whose connection a fault dropped: ``"reset"`` or ``"timeout"``.
DROPPED_KEY = web.RequestKey("oec_dropped", str)


def _error_response(exc: ApiError | RequestValidationError, sim: Simulator) -> web.Response:
    status, body, headers = render(exc, sim.config.error_envelope)
    return web.json_response(body, status=status, headers=headers)


def _rate_limit_error(decision: RateDecision, sim: Simulator) -> ApiError:
    """429 ``rate_limit_exceeded`` shaped by ``config.rate_limit_headers`` (§6, §1 row 8)."""
    mode = sim.config.rate_limit_headers
    if decision.bucket == "write":
        what = f"{decision.used} write requests this minute (limit {decision.limit})"
    elif decision.bucket == "read":
        what = f"{decision.used} read requests this minute (limit {decision.limit})"
    else:
        what = f"{decision.used} requests in the last 60 seconds (limit {decision.limit})"
    message = f"Rate limit exceeded. You have made {what}."
    extras: dict[str, object] = {}
    headers: dict[str, str] = {}
    if mode != "none":
        message += f" Retry in {decision.retry_after} seconds."
        extras["retry_after"] = decision.retry_after
    if mode == "full":
        headers = {"Retry-After": str(decision.retry_after), **decision.headers()}
    return ApiError(429, "rate_limit_exceeded", message, extras=extras, headers=headers)


def _idempotency_key(sim: Simulator, request: web.Request, route: str) -> tuple[str, str] | None:
    """``(header name, value)`` of the idempotency key honoured on this route, if any (§1 row 4)."""
    own = IDEMPOTENCY_HEADERS.get(route)
    if own is None:
        return None
    names = [own]
    if sim.config.idempotency_headers == "either":
        names.append("Idempotency-Key" if own == "X-Idempotency-Key" else "X-Idempotency-Key")
    for name in names:
        value = request.headers.get(name)
        if value is not None:
            return name, value
    return None


async def _dispatch(sim: Simulator, request: web.Request, handler: Handler, route: str) -> web.Response:
    """Idempotency, latency and the handler; returns the (possibly replayed) response."""

    async def compute() -> StoredResponse:
        """Sleep the route's latency, run the handler, capture status + body for caching."""
        latency = sim.config.latency
        delay = latency.get(route, latency.get("*", 0.0))
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            response = await handler(request)
        except (ApiError, RequestValidationError) as exc:
            response = _error_response(exc, sim)
        assert isinstance(response, web.Response)
        body = response.body if isinstance(response.body, bytes) else b""
        return StoredResponse(response.status, body, response.content_type if body else None,
                              response.headers.get("Retry-After"))

    key = _idempotency_key(sim, request, route)
    if key is None:
        stored = await compute()
    else:
        header, value = key
        check_key(value, header)
        scope = ("org", request.method, request.path, value)
        stored = await sim.idempotency.run(
            scope,
            fingerprint(request[RAW_BODY_KEY]),
            compute,
            ttl=sim.config.idempotency_ttl_seconds,
            strict=sim.config.idempotency_mode == "strict",
            wait_inflight=sim.config.idempotency_inflight == "wait",
        )
    headers = {"Retry-After": stored.retry_after} if stored.retry_after else None
    if stored.body:
        return web.Response(status=stored.status, body=stored.body, content_type=stored.content_type,
                            headers=headers)
    return web.Response(status=stored.status, headers=headers)


def _consume(sim: Simulator, principal: Principal, *, is_write: bool, dry_run: bool) -> RateDecision:
    config = sim.config
    return sim.limiter.consume(
        principal.key_id,
        principal.tier,
        is_write,
        mode=config.rate_limit_mode,
        read_limit=config.read_limit,
        write_limit=config.write_limit,
        dry_run=dry_run,
    )


def _dropped(request: web.Request, how: str) -> web.Response:
    """Mark the request as dropped (``reset``/``timeout``); the returned response is never sent."""
    request[DROPPED_KEY] = how
    return web.Response(status=500)


def _active_task(sim: Simulator, request: web.Request) -> str | None:
    """The active task id of the environment in the request path, if any."""
    raw = request.match_info.get("env_id")
    if raw is None:
        return None
    try:
        env_id = str(uuid.UUID(raw))
    except ValueError:
        return None
    sim.store.tick()
    env = sim.store.environments.get(env_id)
    return env.active_task_id if env is not None else None


async def _apply_fault(sim: Simulator, request: web.Request, rule: FaultRule) -> web.Response:
    """The answer of a firing rule (``rate_limit`` is answered earlier): an error, a conflict, or a
    dropped connection. Called instead of the handler (``when: before``) or after it (``after``)."""
    if rule.kind == "reset":
        connection.reset(request)
        return _dropped(request, "reset")
    if rule.kind == "timeout":
        await connection.hold_then_close(request, _hold(rule))
        return _dropped(request, "timeout")
    if rule.kind == "conflict":
        return _error_response(conflict_for(rule, _active_task(sim, request)), sim)
    return _error_response(error_for(rule), sim)


def _hold(rule: FaultRule) -> float:
    """Seconds a ``timeout`` rule holds the request (default 35, past the vendor client's 30 s, §3)."""
    return rule.hold_seconds if rule.hold_seconds is not None else 35.0


async def _serve(sim: Simulator, request: web.Request, handler: Handler) -> web.Response:
    config = sim.config
    outage = sim.faults.outage_at(sim.clock.now())
    if outage is not None:
        if outage.mode == "reset":
            connection.reset(request)
            return _dropped(request, "reset")
        return _error_response(outage_error(outage), sim)
    match_error = request.match_info.http_exception
    if match_error is not None:
        if match_error.status == 405:
            return _error_response(ApiError(405, "method_not_allowed", "Method not allowed."), sim)
        return _error_response(not_found(), sim)
    name = request.match_info.route.name
    route = logical_route(name) or "unknown"
    if is_alias(name) and not config.action_aliases:
        return _error_response(not_found(), sim)

    rate_headers: dict[str, str] = {}
    try:
        ip = request.remote or "unknown"
        sim.guard.check(ip)
        try:
            principal = sim.keys.authenticate(request.headers)
        except ApiError as exc:
            if exc.code != "missing_auth":
                sim.guard.record_refusal(
                    ip,
                    threshold=config.brute_force_threshold,
                    window=config.brute_force_window_seconds,
                    block=config.brute_force_block_seconds,
                )
            raise
        request[PRINCIPAL_KEY] = principal
        is_write = request.method in WRITE_METHODS
        if is_write and principal.tier == "ro":
            rate_headers = _consume(sim, principal, is_write=False, dry_run=True).headers()
            raise ApiError(403, "read_only_key", "This operation requires a full-access (rw) API key.")
        peek = _consume(sim, principal, is_write=is_write, dry_run=True)
        if not peek.allowed:
            raise _rate_limit_error(peek, sim)
        now = sim.clock.now()
        rule = sim.faults.take(route, request.method, now)
        if rule is not None and rule.kind == "rate_limit":
            raise rate_limit_for(rule, now, peek.limit, peek.headers())
        rate_headers = _consume(sim, principal, is_write=is_write, dry_run=False).headers()
        if rule is not None and rule.when == "before":
            response = await _apply_fault(sim, request, rule)
        else:
            response = await _dispatch(sim, request, handler, route)
            if rule is not None:
                response = await _apply_fault(sim, request, rule)
    except (ApiError, RequestValidationError) as exc:
        response = _error_response(exc, sim)
    if response.status != 429:
        for header, value in rate_headers.items():
            response.headers[header] = value
    if request.method in WRITE_METHODS:
        sim.delivery.scan()  # a write's effect is announced at once, not at the next periodic scan
    return response


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Cross-cutting API behaviour (module docstring); admin and other paths pass through."""
    if request.path != API_PREFIX and not request.path.startswith(API_PREFIX + "/"):
        return await handler(request)
    sim = request.app[SIM_KEY]
    too_large: web.HTTPException | None = None
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raw, too_large = b"", exc
    request[RAW_BODY_KEY] = raw
    entry = sim.requests.begin(request.method, request.path, request.query, request.headers, raw)
    status = 500
    try:
        if too_large is not None:
            response = _error_response(ApiError(413, "payload_too_large", "The request body is too large."), sim)
        else:
            response = await _serve(sim, request, handler)
        status = response.status
        return response
    except Exception:
        logger.exception("simulator error on %s %s", request.method, request.path)
        response = _error_response(ApiError(500, "internal_error", "Internal simulator error."), sim)
        status = response.status
        return response
    finally:
        dropped = request.get(DROPPED_KEY)
        sim.requests.finish(entry, None if dropped else status)
        principal = request.get(PRINCIPAL_KEY)
        sim.stats.record(
            method=request.method,
            route=logical_route(request.match_info.route.name) or "unknown",
            outcome=dropped or status,
            key_id=principal.key_id if principal is not None else None,
        )
        logger.info("%s %s %s", request.method, request.path, dropped or status)


def create_app(config: SimulatorConfig, *, clock: Clock | None = None) -> web.Application:
    """Build the simulator application (docs/oec-api.md; public API §11 under ``/api/public/v1``, admin API
    under ``/_sim``). ``config`` is copied; the live copy is ``app[SIM_KEY].config`` (also changed by
    ``PATCH /_sim/config``). ``clock`` defaults to the wall clock (pass a ``ManualClock`` in tests)."""
    sim = Simulator(config.model_copy(deep=True), clock)
    app = web.Application(middlewares=[api_middleware])
    app[SIM_KEY] = sim
    for method, path, handler, name in ROUTES:
        app.router.add_route(method, API_PREFIX + path, handler, name=name)
    add_admin_routes(app)

    async def deliveries(_: web.Application) -> AsyncIterator[None]:
        await sim.delivery.start()
        yield
        await sim.delivery.stop()

    app.cleanup_ctx.append(deliveries)
    return app
