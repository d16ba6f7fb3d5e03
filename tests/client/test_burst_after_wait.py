"""No burst after a wait whose end the API did not state (``docs/oec-api.md`` §6): the client and its
rate limiter against the simulator over real HTTP, in the older API form (one rolling bucket per
key, 429 without ``Retry-After`` or a body hint) while another client of the same key fills it."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time

from oec_operator.oec.client import OecClient, make_http_client
from oec_operator.oec.errors import OecRateLimitError
from oec_operator.oec.ratelimit import Priority, RateLimiter
from oec_simulator.clock import Clock
from tests.simulator.sim_helpers import API, PROJECT_A, StartSim

LIMIT = 60  # requests per rolling 60 s: one a second at the budget's pace
QUEUED = 11


def _busiest_second(times: list[float]) -> int:
    """Most requests in any one second (a half-open window starting at a request)."""
    return max((sum(1 for t in times if start <= t < start + 1.0) for start in times), default=0)


async def test_after_an_unstated_wait_one_probe_goes_first_and_the_queue_drains_at_the_budgets_pace(
    start_sim: StartSim,
) -> None:
    clock = Clock()  # the wall clock, moved forward to place the other client's requests
    sim = await start_sim(clock=clock, rate_limit_mode="single", rate_limit_headers="none", write_limit=LIMIT)
    # M is a full minute; the other client spends 8 requests at M - 59.5 (they leave the rolling
    # window at M + 0.5) and the other 52 at M - 5: the key's window is full until M + 0.5.
    minute = math.ceil((clock.now() + 60) / 60) * 60
    clock.advance(minute - 59.5 - clock.now())
    for _ in range(8):
        assert (await sim.api.get("/projects")).status_code == 200
    clock.advance(minute - 5 - clock.now())
    for _ in range(LIMIT - 8):
        assert (await sim.api.get("/projects")).status_code == 200

    sent: list[tuple[float, int | None]] = []

    def observe(method: str, path: str, status: int | None, *_: object) -> None:
        sent.append((time.monotonic(), status))

    # The limiter reads the API's calendar minute from the simulator's clock (its wall clock).
    limiter = RateLimiter(read_limit=LIMIT, write_limit=LIMIT, mode="single", wall=clock.now)
    async with make_http_client(sim.base_url + API) as http:
        api = OecClient(http, "oec_live_rw_" + "A" * 43, observer=observe, limiter=limiter, priority=Priority.POLL)
        try:
            await api.list_environments(PROJECT_A)
            raise AssertionError("the window of the key is full: the first list must be refused")
        except OecRateLimitError as exc:
            # No hint: 1 s past the next full minute (§6 fallback chain), about 6 s.
            assert 5 <= exc.retry_after <= 7
        refused_at = sent[0][0]

        async def one() -> None:
            with contextlib.suppress(OecRateLimitError):  # counted by the observer
                await api.list_environments(PROJECT_A)

        tasks = [asyncio.create_task(one()) for _ in range(QUEUED)]
        await asyncio.sleep(0.2)
        assert len(sent) == 1, "nothing may be sent before the wait is over"
        # The wait ends about 6 s after the refusal; 8 more seconds at one a second follow.
        await asyncio.wait(tasks, timeout=15)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    after = [(at, status) for at, status in sent[1:]]
    assert after and after[0][0] - refused_at >= 5.0, "requests went out before the wait was over"
    times = [at for at, _ in after]
    refused = [at - refused_at for at, status in after if status == 429]
    busiest = _busiest_second(times)
    print(f"after the wait: {len(after)} requests, busiest second {busiest}, 429s {len(refused)}",
          [(round(at - refused_at, 2), status) for at, status in after])
    assert busiest <= 2, f"{busiest} requests in one second after the wait: a burst"
    assert len(refused) <= 1, f"{len(refused)} requests refused after the wait (at {refused})"
    assert sum(1 for _, status in after if status == 200) >= 6, "the queue did not drain after the probe"
