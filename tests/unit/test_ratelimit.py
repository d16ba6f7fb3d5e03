"""The shared per-key rate limiter (``oec_operator.oec.ratelimit``) on a real event loop, with
windows of a fraction of a second."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from oec_operator.oec.ratelimit import WINDOW_MARGIN, Priority, RateLimiter

WINDOW = 0.3
SPAN = WINDOW + WINDOW_MARGIN


async def _grant_times(limiter: RateLimiter, n: int, *, write: bool = False,
                       priority: Priority = Priority.POLL) -> list[float]:
    times: list[float] = []

    async def one() -> None:
        await limiter.acquire(write=write, priority=priority)
        times.append(time.monotonic())

    await asyncio.gather(*(one() for _ in range(n)))
    return sorted(times)


async def test_never_more_than_the_limit_in_any_window_yet_the_whole_budget_is_used() -> None:
    limiter = RateLimiter(read_limit=4, write_limit=2, window=WINDOW)
    start = time.monotonic()
    times = await _grant_times(limiter, 12)
    # The times are taken when each task resumes, a little after its grant (more on a loaded
    # machine); a fifth read let into a window would come at once, not 0.1 s short of a span.
    for i in range(len(times) - 4):
        assert times[i + 4] - times[i] >= SPAN - 0.1, "a fifth read inside one window"
    # 12 reads at 4 per window: the third window opens after two spans, not a span later.
    assert times[-1] - start < 3 * SPAN - 0.2


async def test_reads_and_writes_have_separate_budgets_in_split_mode_and_one_in_single_mode() -> None:
    split = RateLimiter(read_limit=3, write_limit=1, window=WINDOW)
    await split.acquire(write=True, priority=Priority.CHANGE)
    assert split.seconds_until_free(write=True) > 0
    assert split.seconds_until_free(write=False) == 0, "a write must not spend the read budget"
    single = RateLimiter(read_limit=3, write_limit=1, window=WINDOW, mode="single")
    await single.acquire(write=True, priority=Priority.CHANGE)
    assert single.seconds_until_free(write=False) > 0, "older API: one bucket for every request"


async def test_deletes_and_creates_go_before_routine_polls() -> None:
    limiter = RateLimiter(read_limit=1, write_limit=1, window=WINDOW)
    await limiter.acquire(write=True, priority=Priority.CHANGE)  # the bucket is now full
    order: list[str] = []

    async def wait(name: str, priority: Priority) -> None:
        await limiter.acquire(write=True, priority=priority)
        order.append(name)

    tasks = [asyncio.create_task(wait("poll", Priority.POLL))]
    await asyncio.sleep(0.01)
    tasks.append(asyncio.create_task(wait("change", Priority.CHANGE)))
    await asyncio.sleep(0.01)
    tasks.append(asyncio.create_task(wait("delete", Priority.DELETE)))
    await asyncio.sleep(0.01)
    tasks.append(asyncio.create_task(wait("create", Priority.CREATE)))
    await asyncio.gather(*tasks)
    assert order == ["delete", "create", "change", "poll"]


async def test_a_429_closes_the_bucket_for_the_time_the_api_gave() -> None:
    limiter = RateLimiter(read_limit=100, write_limit=100, window=WINDOW)
    limiter.rate_limited(write=False, retry_after=0.4)
    started = time.monotonic()
    await limiter.acquire(write=False, priority=Priority.DELETE)
    assert time.monotonic() - started >= 0.39
    assert limiter.seconds_until_free(write=True) == 0, "a read 429 leaves the write budget alone"


async def test_remaining_below_our_count_books_the_difference_as_spent_elsewhere() -> None:
    limiter = RateLimiter(read_limit=10, write_limit=10, window=WINDOW, wall=lambda: 1_000_000.0)
    await limiter.acquire(write=False, priority=Priority.POLL)
    # Another client of the same key has spent 7 more: the API says 2 are left.
    limiter.observe(write=False, headers={"x-ratelimit-limit": "10", "x-ratelimit-remaining": "2"})
    assert limiter.snapshot()["read"]["used"] == 8
    await _grant_times(limiter, 2)
    assert limiter.seconds_until_free(write=False) > 0, "the 11th request in the window must wait"


async def test_another_client_is_noticed_when_the_log_still_holds_the_previous_minute() -> None:
    # A steady stream at the whole budget (20 a minute, docs/oec-api.md §6) fills the sliding log with
    # the previous calendar minute; another client then spends half of the key right after the
    # full minute. The API counts only this minute, so our share of it must shrink to what is left.
    clock = [940.5]
    minute = 1000.0  # the clock time of a full calendar minute
    limiter = RateLimiter(read_limit=20, write_limit=20, window=60, clock=lambda: clock[0],
                          wall=lambda: 6_000_000 + clock[0] - minute)

    def headers(counted: int) -> dict[str, str]:
        return {"x-ratelimit-limit": "20", "x-ratelimit-remaining": str(20 - counted), "x-ratelimit-window": "60"}

    for i in range(20):  # 940.5 ... 997.5, every 3 s: the whole budget of the previous minute
        clock[0] = 940.5 + 3 * i
        await limiter.acquire(write=False, priority=Priority.POLL)
        limiter.observe(write=False, headers=headers(i + 1), granted_at=clock[0])
    assert limiter.snapshot()["read"]["used"] == 20, "answers that match our own count book nothing"

    clock[0] = 1003.0  # another client spent 10 at 1000.5; our first request of the minute:
    await limiter.acquire(write=False, priority=Priority.POLL)
    clock[0] = 1003.2
    limiter.observe(write=False, headers=headers(11), granted_at=1003.0)
    limiter.observe(write=False, headers=headers(11), granted_at=1003.0)  # a second answer: no double count
    assert limiter.snapshot()["read"]["used"] == 20 + 1 + 10 - 1  # 940.5 has left the 60.5 s log

    ours = 1
    while clock[0] < minute + 59.5:
        clock[0] += 0.5
        if limiter.seconds_until_free(write=False) == 0:
            await limiter.acquire(write=False, priority=Priority.POLL)
            ours += 1
    assert ours + 10 <= 20, f"{ours} of ours and 10 of the other client's in one calendar minute"
    assert ours >= 9, f"only {ours} of the 10 requests left in the minute were used"


async def test_the_limit_the_api_announces_replaces_the_configured_one() -> None:
    limiter = RateLimiter(read_limit=120, write_limit=2, window=WINDOW)
    limiter.observe(write=True, headers={"x-ratelimit-limit": "50", "x-ratelimit-remaining": "49"})
    started = time.monotonic()
    await _grant_times(limiter, 40, write=True)
    # Held to the configured 2, the third write would wait a whole span.
    assert time.monotonic() - started < SPAN, "writes were held to the configured 2 despite the API's 50"
    limiter.observe(write=False, headers={"x-ratelimit-limit": "1", "x-ratelimit-remaining": "0"})
    assert limiter.seconds_until_free(write=False) > 0


async def test_detail_reads_never_wait_and_leave_a_reserve() -> None:
    limiter = RateLimiter(read_limit=8, write_limit=1, window=WINDOW)
    granted = sum(limiter.try_acquire(write=False) for _ in range(8))
    assert granted == 6, "detail reads must leave a quarter of the window to the rest"
    assert limiter.seconds_until_free(write=False) == 0, "the reserve is still there for others"
    await limiter.acquire(write=False, priority=Priority.POLL)


async def test_detail_reads_yield_to_waiting_requests() -> None:
    limiter = RateLimiter(read_limit=1, write_limit=1, window=WINDOW)
    await limiter.acquire(write=False, priority=Priority.POLL)
    waiter = asyncio.create_task(limiter.acquire(write=False, priority=Priority.POLL))
    await asyncio.sleep(SPAN + 0.05)
    await waiter
    assert not limiter.try_acquire(write=False)


async def test_a_cancelled_waiter_gives_its_turn_to_the_next() -> None:
    limiter = RateLimiter(read_limit=1, write_limit=1, window=WINDOW)
    await limiter.acquire(write=False, priority=Priority.POLL)
    first = asyncio.create_task(limiter.acquire(write=False, priority=Priority.DELETE))
    second = asyncio.create_task(limiter.acquire(write=False, priority=Priority.POLL))
    await asyncio.sleep(0.01)
    first.cancel()
    # Granted when the slot frees (one span); a turn kept by the cancelled waiter costs another span.
    await asyncio.wait_for(second, timeout=2 * SPAN - 0.1)
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_a_429_without_headers_teaches_the_limit_of_the_calendar_minute() -> None:
    wall = [1_000_040.0]  # 20 s into a calendar minute
    limiter = RateLimiter(read_limit=30, write_limit=20, window=WINDOW, wall=lambda: wall[0])
    for _ in range(7):
        await limiter.acquire(write=False, priority=Priority.POLL)
    # The 7th was refused by the API, with no X-RateLimit-Limit: it allows 6 a minute.
    limiter.rate_limited(write=False, retry_after=0.01)
    assert limiter.snapshot()["read"]["limit"] == 6
    wall[0] = 1_000_080.5  # half a second into the next minute: the clocks may disagree
    limiter.rate_limited(write=False, retry_after=0.01)
    assert limiter.snapshot()["read"]["limit"] == 6
    refusal = {"x-ratelimit-limit": "9", "x-ratelimit-remaining": "0"}
    limiter.rate_limited(write=False, retry_after=0.01, headers=refusal)
    assert limiter.snapshot()["read"]["limit"] == 9, "an announced limit is the truth"
    assert limiter.snapshot()["read"]["used"] == 7, "a 429's 'remaining 0' books nothing: retry_after says when"


async def test_a_header_less_429_from_an_api_that_tells_its_limit_teaches_nothing() -> None:
    limiter = RateLimiter(read_limit=30, write_limit=20, window=WINDOW, wall=lambda: 1_000_040.0)
    limiter.observe(write=False, headers={"x-ratelimit-limit": "30", "x-ratelimit-remaining": "29"})
    for _ in range(3):
        await limiter.acquire(write=False, priority=Priority.POLL)
    limiter.rate_limited(write=False, retry_after=0.01)
    assert limiter.snapshot()["read"]["limit"] == 30


async def _steady(limiter: RateLimiter, clock: list[float], start: float, count: int, counted: list[int]) -> None:
    """``count`` reads 3 s apart from ``start``; each answer says the API counted ``counted[i]``."""
    for i in range(count):
        clock[0] = start + 3 * i
        await limiter.acquire(write=False, priority=Priority.POLL)
        limiter.observe(write=False, granted_at=clock[0], headers={
            "x-ratelimit-limit": "20", "x-ratelimit-remaining": str(20 - counted[i]), "x-ratelimit-window": "60"})


async def test_a_clock_a_second_ahead_of_the_api_books_nothing_at_the_full_minute() -> None:
    # Our clock is 1 s ahead: a request 0.5 s into our minute lands in the API's previous one,
    # whose count (all of ours) must not be taken for another client's.
    clock = [944.0]
    limiter = RateLimiter(read_limit=20, write_limit=20, window=60, clock=lambda: clock[0],
                          wall=lambda: 6_000_000 + clock[0] - 1000.0)
    await _steady(limiter, clock, 944.0, 19, list(range(1, 20)))  # 944 ... 998
    clock[0] = 1000.5
    await limiter.acquire(write=False, priority=Priority.POLL)
    limiter.observe(write=False, granted_at=1000.5, headers={
        "x-ratelimit-limit": "20", "x-ratelimit-remaining": "0", "x-ratelimit-window": "60"})
    assert limiter.snapshot()["read"]["used"] == 20, "our own requests were booked as another client's"


async def test_a_rolling_window_api_counts_our_previous_minute_and_that_books_nothing() -> None:
    # single mode (older API, docs/oec-api.md §1 row 7): the API counts the last 60 s, not the minute.
    clock = [900.0]
    limiter = RateLimiter(read_limit=20, write_limit=20, window=60, mode="single", clock=lambda: clock[0],
                          wall=lambda: 6_000_000 + clock[0] - 1000.0)
    await _steady(limiter, clock, 970.0, 20, [min(20, i + 1) for i in range(20)])  # 970 ... 1027
    assert limiter.snapshot()["write"]["used"] == 20, "a rolling count of our own requests was booked"


async def test_an_answer_slower_than_the_window_books_nothing() -> None:
    clock = [1000.0]
    limiter = RateLimiter(read_limit=100, write_limit=20, window=60, clock=lambda: clock[0],
                          wall=lambda: 6_000_000 + clock[0] - 1000.0)
    for _ in range(60):  # 60 reads in the minute's first seconds
        await limiter.acquire(write=False, priority=Priority.POLL)
    clock[0] = 1055.0
    await limiter.acquire(write=False, priority=Priority.POLL)
    clock[0] = 1063.5  # its answer arrives after the first 60 have left the log
    limiter.observe(write=False, granted_at=1055.0, headers={
        "x-ratelimit-limit": "100", "x-ratelimit-remaining": "39", "x-ratelimit-window": "60"})
    assert limiter.snapshot()["read"]["used"] == 1, "requests that left the log were booked as another client's"


async def _granted_within(limiter: RateLimiter, tasks: list[asyncio.Task[None]], seconds: float) -> int:
    await asyncio.sleep(seconds)
    return sum(1 for t in tasks if t.done())


async def test_after_an_unstated_wait_one_probe_goes_first_and_the_rest_waits_for_its_answer() -> None:
    # docs/oec-api.md §6: a 429 without Retry-After, body retry_after or X-RateLimit-Reset.
    limiter = RateLimiter(read_limit=30, write_limit=30, window=WINDOW)
    limiter.rate_limited(write=False, retry_after=0.1, stated=False)
    tasks = [asyncio.create_task(limiter.acquire(write=False, priority=Priority.POLL)) for _ in range(5)]
    assert await _granted_within(limiter, tasks, 0.05) == 0, "sent before the wait was over"
    assert await _granted_within(limiter, tasks, 0.15) == 1, "not exactly one probe after the wait"
    before_second_probe = limiter.now()
    limiter.rate_limited(write=False, retry_after=0.1, stated=False)  # the probe got 429 again
    assert await _granted_within(limiter, tasks, 0.05) == 1, "the queue went on after the probe's 429"
    assert await _granted_within(limiter, tasks, 0.1) == 2, "not one new probe after the second wait"
    limiter.observe(write=False, headers={}, granted_at=before_second_probe)  # an answer to a request before the probe
    assert await _granted_within(limiter, tasks, 0.05) == 2, "an older request's answer opened the bucket"
    limiter.observe(write=False, headers={})  # the probe's answer: open, paced (one per 0.01 s)
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=1)


async def test_a_probe_without_an_answer_lets_the_next_request_probe() -> None:
    limiter = RateLimiter(read_limit=30, write_limit=30, window=WINDOW)
    limiter.rate_limited(write=False, retry_after=0.01, stated=False)
    await limiter.acquire(write=False, priority=Priority.POLL)
    granted_at = limiter.now()
    second = asyncio.create_task(limiter.acquire(write=False, priority=Priority.POLL))
    third = asyncio.create_task(limiter.acquire(write=False, priority=Priority.POLL))
    await asyncio.sleep(0.05)
    assert not second.done(), "a second request went out while the probe was unanswered"
    limiter.unanswered(write=False, granted_at=granted_at)  # e.g. the connection was reset
    await asyncio.wait_for(second, timeout=0.1)
    await asyncio.sleep(0.05)
    assert not third.done(), "the second request is the new probe: the third waits for its answer"
    third.cancel()


async def test_a_reopened_bucket_drains_its_queue_at_the_budgets_pace() -> None:
    # Stated wait (the current API's Retry-After): no probe, but no burst either: 6 per 0.3 s
    # window means one every 0.05 s for the window after the reopening.
    limiter = RateLimiter(read_limit=6, write_limit=6, window=WINDOW)
    limiter.rate_limited(write=False, retry_after=0.1)
    times = await _grant_times(limiter, 4)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= WINDOW / 6 - 0.01, f"granted {gaps} apart: a burst after the reopening"
