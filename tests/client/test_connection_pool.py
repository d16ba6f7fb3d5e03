"""Requests cancelled while they wait for a connection, against the simulator over real HTTP: no
connection is lost for good (``oec_operator.oec.transport``; the failure it prevents is
encode/httpcore#1093: every later request fails with ``PoolTimeout`` until a restart)."""

from __future__ import annotations

import asyncio
import random

from oec_operator.oec.client import OecClient, make_http_client
from oec_operator.oec.errors import OecTransportError
from tests.simulator.sim_helpers import API, PROJECT_A, RW, StartSim

POOL = 4
BURST = 10 * POOL
LATENCY = 0.05  # seconds the simulator takes for every request


async def test_cancelled_requests_under_contention_leave_every_connection_usable(start_sim: StartSim) -> None:
    sim = await start_sim(latency={"*": LATENCY}, read_limit=1_000_000)
    rng = random.Random(1)
    async with make_http_client(sim.base_url + API, timeout=2.0, max_connections=POOL) as http:
        api = OecClient(http, RW)
        # Bursts of ten times the pool, cancelled at random moments: while waiting for a
        # connection, connecting, or being answered (a handler cancelled by kopf, a shutdown).
        for _ in range(100):
            tasks = [asyncio.create_task(api.list_environments(PROJECT_A)) for _ in range(BURST)]
            await asyncio.sleep(rng.uniform(0, 2 * LATENCY))
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        # A full pool's worth of requests at once still gets through.
        try:
            results = await asyncio.gather(*(api.list_environments(PROJECT_A) for _ in range(POOL)))
        except OecTransportError as exc:
            raise AssertionError(f"the pool lost its connections to cancelled requests: {exc}") from None
    assert len(results) == POOL
