"""Fixtures: a simulator served over real HTTP on loopback, talked to with httpx."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from oec_simulator import SIM_KEY, ManualClock, create_app
from oec_simulator.clock import Clock

from .sim_helpers import API, RW, Sim, StartSim, auth, base_config


@pytest.fixture
def clock() -> ManualClock:
    """A clock that stands still, 10 s into a calendar minute."""
    return ManualClock()


@pytest.fixture
async def start_sim() -> AsyncIterator[StartSim]:
    """Factory: ``await start_sim(clock=..., **config_overrides)`` → :class:`Sim`; all stopped afterwards."""
    runners: list[web.AppRunner] = []
    clients: list[httpx.AsyncClient] = []

    async def _start(clock: Clock | None = None, **overrides: Any) -> Sim:
        app = create_app(base_config(**overrides), clock=clock)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        base = f"http://127.0.0.1:{port}"
        api = httpx.AsyncClient(base_url=base + API, headers=auth(RW), timeout=10)
        admin = httpx.AsyncClient(base_url=base + "/_sim", timeout=10)
        clients.extend([api, admin])
        return Sim(base, api, admin, app[SIM_KEY].clock, app[SIM_KEY])

    yield _start
    for client in clients:
        await client.aclose()
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def sim(start_sim: StartSim, clock: ManualClock) -> Sim:
    """Default simulator on a manual clock (deploy 5 s, destroy 3 s, actions 2 s)."""
    return await start_sim(clock=clock)
