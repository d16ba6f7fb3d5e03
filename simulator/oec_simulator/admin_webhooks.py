"""Admin endpoints of webhooks (docs/oec-api.md §11.6; the engine in ``delivery.py``). They show the
secrets: the admin API is a test tool and is never exposed (loopback only, no auth).

* ``GET /_sim/webhooks`` → ``{"deliveries_enabled": bool, "sent": n, "dropped": n, "in_flight": n,
  "webhooks": [Webhook + {secret, owner, deliveries: {success, failed, pending}, attempts}]}``
  (``sent``: POST attempts made, pings included; ``dropped``: events not sent because deliveries
  were stopped; ``in_flight``: deliveries still running or waiting to retry).
* ``POST /_sim/webhooks/deliveries`` ``{"enabled": bool}`` → same shape: ``false`` stops sending
  (new events are dropped, deliveries in flight end ``failed``), ``true`` resumes for new events.
* ``GET /_sim/webhooks/{id}/deliveries`` → every kept delivery record (not only the 50 newest),
  newest first, each with ``event_id`` and ``payload`` (the event's ``data``).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from .admin_common import AdminError, read_body, sim_of
from .runtime import Simulator


class DeliveriesSwitch(BaseModel):
    """Body of ``POST /_sim/webhooks/deliveries``."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool


def _overview(sim: Simulator) -> dict[str, Any]:
    return {
        "deliveries_enabled": sim.delivery.enabled,
        "sent": sim.delivery.sent,
        "dropped": sim.delivery.dropped,
        "in_flight": sim.delivery.in_flight(),
        "webhooks": [sim.webhooks.admin_view(hook) for hook in sim.webhooks.hooks.values()],
    }


async def list_webhooks(request: web.Request) -> web.Response:
    """``GET /_sim/webhooks`` → every webhook with its secret and delivery counts."""
    return web.json_response(_overview(sim_of(request)))


async def switch_deliveries(request: web.Request) -> web.Response:
    """``POST /_sim/webhooks/deliveries`` ``{"enabled": bool}`` → the overview after the switch."""
    body = await read_body(request, DeliveriesSwitch)
    sim = sim_of(request)
    sim.delivery.enabled = body.enabled
    if not body.enabled:
        await sim.delivery.cancel_all()
    return web.json_response(_overview(sim))


async def list_deliveries(request: web.Request) -> web.Response:
    """``GET /_sim/webhooks/{id}/deliveries`` → all kept delivery records, newest first."""
    hook = sim_of(request).webhooks.hooks.get(request.match_info["webhook_id"])
    if hook is None:
        raise AdminError(404, "not_found", "No such webhook.")
    return web.json_response([{**d.view(), "event_id": d.event_id, "payload": d.payload}
                              for d in reversed(hook.deliveries)])


#: (method, path under /_sim, handler), registered by ``admin.add_admin_routes``.
ROUTES = [
    ("GET", "/webhooks", list_webhooks),
    ("POST", "/webhooks/deliveries", switch_deliveries),
    ("GET", "/webhooks/{webhook_id}/deliveries", list_deliveries),
]
