"""Admin endpoints of fault injection (rule shapes and semantics in ``faultrules.py``).

Invalid bodies answer **400** ``validation_error`` with ``detail: [{loc, msg, type}]``; times are epoch
seconds of the simulator clock (``GET /_sim/clock``), durations seconds.

* ``GET /_sim/faults`` → ``[FaultRule]``: the rules that can still fire, each with ``id``, ``kind``,
  ``when``, ``route``, ``method``, ``count`` (remaining, or null), ``share``, ``start``, ``until``,
  the kind's fields and ``fired`` (times it fired).
* ``POST /_sim/faults`` ``FaultRule`` or ``[FaultRule]`` → 201 ``[FaultRule]`` (all installed rules).
  A body without ``kind`` is the original one-shot error fault (``{status, code?, message?, count?,
  route?, method?, retry_after?}``).
* ``DELETE /_sim/faults`` → ``{"cleared": n}``; ``DELETE /_sim/faults/{id}`` → ``{"deleted": id}``
  (404 ``not_found`` if there is no such rule).
* ``GET /_sim/faults/seed`` → ``{"seed": n}``; ``POST /_sim/faults/seed`` ``{"seed": n}`` → same
  (share draws restart from the new seed).
* ``GET /_sim/outage`` → ``{"active": bool, "outage": OutageSpec|null, "now": t}``;
  ``POST /_sim/outage`` ``{seconds | until, after_seconds? | start?, mode?: "503"|"reset",
  retry_after?}`` → 201 same shape; ``DELETE /_sim/outage`` → ``{"ended": bool}``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, TypeAdapter

from .admin_common import AdminError, read_body, read_json, sim_of, validate
from .faultrules import FaultRule, OutageSpec
from .runtime import Simulator

_RULE = TypeAdapter(FaultRule)
_RULE_LIST = TypeAdapter(list[FaultRule])


class SeedBody(BaseModel):
    """Body of ``POST /_sim/faults/seed``."""

    model_config = ConfigDict(extra="forbid")

    seed: int


def _rules_view(sim: Simulator) -> list[dict[str, Any]]:
    return [rule.model_dump(mode="json") for rule in sim.faults.rules(sim.clock.now())]


async def list_faults(request: web.Request) -> web.Response:
    """``GET /_sim/faults`` → the rules that can still fire."""
    return web.json_response(_rules_view(sim_of(request)))


async def add_faults(request: web.Request) -> web.Response:
    """``POST /_sim/faults`` one rule or a list → 201 every installed rule."""
    data = await read_json(request)
    rules = validate(_RULE_LIST, data, status=400) if isinstance(data, list) else [validate(_RULE, data, status=400)]
    sim = sim_of(request)
    now = sim.clock.now()
    for rule in rules:
        sim.faults.add(rule, now)
    return web.json_response(_rules_view(sim), status=201)


async def clear_faults(request: web.Request) -> web.Response:
    """``DELETE /_sim/faults`` → ``{"cleared": n}`` (the outage is not touched)."""
    return web.json_response({"cleared": sim_of(request).faults.clear()})


async def delete_fault(request: web.Request) -> web.Response:
    """``DELETE /_sim/faults/{id}`` → ``{"deleted": id}`` or 404."""
    raw = request.match_info["rule_id"]
    if not raw.isdigit() or not sim_of(request).faults.remove(int(raw)):
        raise AdminError(404, "not_found", f"No fault rule with id {raw!r}.")
    return web.json_response({"deleted": int(raw)})


async def get_seed(request: web.Request) -> web.Response:
    """``GET /_sim/faults/seed`` → ``{"seed": n}``."""
    return web.json_response({"seed": sim_of(request).faults.seed})


async def set_seed(request: web.Request) -> web.Response:
    """``POST /_sim/faults/seed`` ``{"seed": n}`` → ``{"seed": n}``."""
    body = await read_body(request, SeedBody, status=400)
    sim_of(request).faults.reseed(body.seed)
    return web.json_response({"seed": body.seed})


def _outage_view(sim: Simulator) -> dict[str, Any]:
    now = sim.clock.now()
    active = sim.faults.outage_at(now)
    outage = sim.faults.outage
    return {"active": active is not None, "outage": outage.model_dump(mode="json") if outage else None, "now": now}


async def get_outage(request: web.Request) -> web.Response:
    """``GET /_sim/outage`` → ``{"active", "outage", "now"}``."""
    return web.json_response(_outage_view(sim_of(request)))


async def start_outage(request: web.Request) -> web.Response:
    """``POST /_sim/outage`` OutageSpec → 201 ``{"active", "outage", "now"}`` (replaces any outage)."""
    spec = await read_body(request, OutageSpec, status=400)
    sim = sim_of(request)
    sim.faults.start_outage(spec, sim.clock.now())
    return web.json_response(_outage_view(sim), status=201)


async def end_outage(request: web.Request) -> web.Response:
    """``DELETE /_sim/outage`` → ``{"ended": bool}`` (whether an outage was set)."""
    return web.json_response({"ended": sim_of(request).faults.end_outage()})


#: (method, path under /_sim, handler), registered by ``admin.add_admin_routes``.
ROUTES = [
    ("GET", "/faults", list_faults),
    ("POST", "/faults", add_faults),
    ("DELETE", "/faults", clear_faults),
    ("GET", "/faults/seed", get_seed),
    ("POST", "/faults/seed", set_seed),
    ("DELETE", "/faults/{rule_id}", delete_fault),
    ("GET", "/outage", get_outage),
    ("POST", "/outage", start_outage),
    ("DELETE", "/outage", end_outage),
]
