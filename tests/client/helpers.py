"""Helpers shared by the client's tests against the simulator."""

from __future__ import annotations

from typing import Any

from oec_operator.oec.client import OecClient
from tests.simulator.sim_helpers import PROJECT_A, Sim


async def running_environment(sim: Sim, api: OecClient, name: str = "shop") -> str:
    """Create a development environment through the client and let its first deploy finish; its id."""
    env = await api.create_environment(PROJECT_A, name=name, environment_type="development", idempotency_key=name)
    sim.clock.advance(5)
    return env.id


async def requests_sent(sim: Sim, since: int = 0) -> list[dict[str, Any]]:
    """What reached the API: ``(method, path, body, Idempotency-Key)`` entries of the request log."""
    entries: list[dict[str, Any]] = (await sim.admin.get("/requests", params={"since": since})).json()
    return entries
