"""One client-side rate limiter per OEC.sh API key, shared by every request made with that key.

The API counts reads and writes of a key in separate buckets (``docs/oec-api.md`` §6 and §1 row 7:
120 reads and 20 writes per calendar minute by default; older API versions: one rolling 60 s
bucket per key). The limiter keeps a sliding log of the requests it let through: at most
``limit`` in any ``window`` seconds. That is never more than the API allows in a calendar minute
(any calendar minute is one such window) nor in a rolling one, and it still lets a steady stream
use the whole budget, so the operator slows down *before* a 429 instead of after.

It is fed by what the API answers:

* ``X-RateLimit-Limit`` and ``X-RateLimit-Window`` replace the configured limit and window of the
  bucket (the API knows the plan's real budget);
* ``X-RateLimit-Limit`` minus ``X-RateLimit-Remaining`` is what the API counted in the frame of
  the request (§6: a fixed calendar minute; the rolling window in ``single`` mode). More than this
  limiter has in its log for that frame means another client spends the same key: the difference
  is booked as used for one window. (Comparing with the whole sliding log instead would miss it
  whenever the log still holds the previous minute's requests.)
* a 429 closes the bucket until its ``retry_after`` has passed (``docs/oec-api.md`` §6 fallback chain,
  computed by :func:`oec_operator.oec.errors.retry_after_seconds`). When the API did not state
  that time (the fallback guessed it), the bucket reopens with one *probe*: nothing else is sent
  until the probe is answered (:meth:`RateLimiter.observe`); another 429 closes it again.
* after any closed bucket reopens (after the probe, when there is one), grants are *paced* for
  one window: at most one per ``window / limit`` seconds, so a queue built up during the wait
  drains at the budget's pace instead of in one burst the API may refuse again.

Webhook create/update/delete also count against a third bucket of the key, 10 per rolling minute
(``docs/oec-api.md`` §11.6, 429 ``webhook_mutation_rate_limit``): :meth:`RateLimiter.acquire_webhook`
before the write budget, :meth:`RateLimiter.webhook_rate_limited` on that 429.

Waiting requests are served by :class:`Priority` (deletes, then creates, then user changes, then
routine polls), first come first served within a priority. Detail reads (health, logs) never
wait: :meth:`RateLimiter.try_acquire` grants them only while a quarter of the window is left.

This is the project's own code because no library models the API's split read/write budget fed
by its headers; it is pure asyncio and knows nothing of HTTP or Kubernetes.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from enum import IntEnum
from typing import Literal

#: Seconds added to each window, so that requests granted just inside a window but arriving a
#: little later at the API are still counted in the window the limiter assumed.
WINDOW_MARGIN = 0.5
#: Largest limit taken from the API's headers (a bound on what a header can make us store).
MAX_LIMIT = 1_000_000
#: Seconds into a calendar minute before a header-less 429 teaches the limit (clock skew).
LEARN_AFTER = 2.0
#: A limit learned from a header-less 429 never goes below this share of the configured one.
LEARNED_FLOOR = 0.1
#: Share of a bucket that detail reads (:meth:`RateLimiter.try_acquire`) leave to everything else.
DETAIL_RESERVE = 0.25
#: Webhook create/update/delete per window (``docs/oec-api.md`` §11.6).
WEBHOOK_MUTATIONS = 10
#: Windows after which a probe that got no answer (lost, cancelled) is given up and another sent.
PROBE_TIMEOUT_WINDOWS = 1.0


class Priority(IntEnum):
    """Who goes first when the budget is short (lower value = sooner)."""

    DELETE = 0
    CREATE = 1
    CHANGE = 2
    POLL = 3
    DETAIL = 4


Bucket = Literal["read", "write"]

#: ``on_wait(bucket, seconds)``: a request waited ``seconds`` for budget (metrics).
WaitObserver = Callable[[str, float], None]


class _Bucket:
    """Sliding-log budget: at most ``limit`` grants in any ``window + WINDOW_MARGIN`` seconds."""

    def __init__(self, name: str, limit: int, window: float, clock: Callable[[], float]) -> None:
        self.name = name
        self.limit = max(1, int(limit))
        self.floor = max(1, int(self.limit * LEARNED_FLOOR))
        self.announced = False  # the API has told this bucket's limit in a header
        self.window = float(window)
        self._clock = clock
        #: ``(clock time, booked)``: requests let through (``booked=False``) and requests another
        #: client made with the key (``booked=True``), oldest first.
        self._grants: deque[tuple[float, bool]] = deque()
        self.closed_until = 0.0
        #: The API did not state when the bucket reopens: the next grant is a probe.
        self.probing = False
        #: Clock time the outstanding probe was granted (``None``: none outstanding).
        self.probe_at: float | None = None
        #: Until this clock time grants are paced (one per ``window / limit`` seconds).
        self.paced_until = 0.0
        self._last_grant = -math.inf
        self._probe_fut: asyncio.Future[None] | None = None
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._timer: asyncio.TimerHandle | None = None

    def _expire(self, now: float) -> None:
        horizon = now - self.window - WINDOW_MARGIN
        while self._grants and self._grants[0][0] <= horizon:
            self._grants.popleft()

    def used(self) -> int:
        """Grants in the current window."""
        self._expire(self._clock())
        return len(self._grants)

    def next_free(self) -> float:
        """Clock time at which the next grant is possible (``<= now`` when possible now)."""
        now = self._clock()
        self._expire(now)
        at = now
        if len(self._grants) >= self.limit:
            at = self._grants[len(self._grants) - self.limit][0] + self.window + WINDOW_MARGIN
        at = max(at, self.closed_until)
        if self.probe_at is not None:  # nothing more until the probe is answered (or lost)
            at = max(at, self.probe_at + PROBE_TIMEOUT_WINDOWS * self.window)
        if at < self.paced_until and self._last_grant >= self.closed_until:  # since the reopening
            at = max(at, self._last_grant + self.window / self.limit)
        return at

    def grants(self) -> list[float]:
        """Clock times of the requests this limiter let through in the current window."""
        self._expire(self._clock())
        return [at for at, booked in self._grants if not booked]

    def grant(self) -> None:
        now = self._clock()
        self._grants.append((now, False))
        self._last_grant = now
        if self.probing:
            self.probe_at = now

    def close(self, seconds: float, *, stated: bool) -> None:
        """Send nothing for ``seconds``; then pace the grants for one window, after a probe
        when the API did not state the time (``stated=False``)."""
        self.closed_until = max(self.closed_until, self._clock() + max(0.0, seconds))
        self.probing, self.probe_at = self.probing or not stated, None
        self.paced_until = max(self.paced_until, self.closed_until + self.window)

    def answered(self, granted_at: float, *, ok: bool) -> None:
        """A request granted at ``granted_at`` got an answer other than 429 (``ok``) or none at all.
        The outstanding probe's answer opens the bucket (paced for one window); without an answer
        the next grant is a probe again."""
        if self.probe_at is None or granted_at < self.probe_at:
            return
        self.probe_at, self._probe_fut = None, None
        if ok:
            self.probing = False
            self.paced_until = max(self.paced_until, self._clock() + self.window)

    def book(self, count: int) -> None:
        """Count ``count`` requests made elsewhere with the same key as made now."""
        now = self._clock()
        self._grants.extend(itertools.repeat((now, True), max(0, count)))

    def known_since(self, start: float) -> int:
        """Requests in the log (ours and booked ones) from clock time ``start`` on."""
        return sum(1 for at, _ in self._grants if at >= start)

    @property
    def waiting(self) -> int:
        return sum(1 for *_, fut in self._waiters if not fut.done())

    def enqueue(self, priority: int, seq: int) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, seq, fut))
        self.pump()
        return fut

    def pump(self) -> None:
        """Grant waiters in priority order while the budget allows; re-arm for the next slot."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._waiters:
            _, _, fut = self._waiters[0]
            if fut.done():  # cancelled while waiting
                heapq.heappop(self._waiters)
                continue
            at = self.next_free()
            now = self._clock()
            if at > now:
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(at - now, self.pump)
                return
            heapq.heappop(self._waiters)
            self.grant()
            if self.probe_at is not None:
                self._probe_fut = fut
            fut.set_result(None)

    def dropped(self, fut: asyncio.Future[None]) -> None:
        """A granted waiter was cancelled before it could send: if it held the probe, the next
        grant probes again."""
        if fut is self._probe_fut and self.probe_at is not None:
            self.answered(self.probe_at, ok=False)
            self.pump()


class RateLimiter:
    """The read and write budget of one API key.

    Args:
        read_limit: reads per window (``docs/oec-api.md`` §6: 120).
        write_limit: writes per window (§6: 20 for a full-access key).
        window: window length in seconds (§6: 60).
        mode: ``"split"`` (reads and writes counted apart, the current API) or ``"single"``
            (one bucket for every method, limit ``write_limit``: older API, §1 row 7).
        clock: monotonic clock in seconds (tests pass a fake one).
        wall: wall clock in seconds since the epoch (to find the API's calendar minute).
        on_wait: called with ``(bucket, seconds)`` after a request waited for budget.
        webhook_limit: webhook create/update/delete per window (§11.6: 10), on top of the writes.
    """

    def __init__(
        self,
        *,
        read_limit: int = 120,
        write_limit: int = 20,
        window: float = 60.0,
        mode: Literal["split", "single"] = "split",
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        on_wait: WaitObserver | None = None,
        webhook_limit: int = WEBHOOK_MUTATIONS,
    ) -> None:
        self._clock = clock
        self._wall = wall
        self._on_wait = on_wait
        self._seq = itertools.count()
        self.mode = mode
        write = _Bucket("write", write_limit, window, clock)
        self._buckets: dict[Bucket, _Bucket] = {
            "write": write,
            "read": write if mode == "single" else _Bucket("read", read_limit, window, clock),
        }
        self._webhook = _Bucket("webhook", webhook_limit, window, clock)

    def bucket(self, write: bool) -> _Bucket:
        """The bucket a request counts against."""
        return self._buckets["write" if write else "read"]

    async def acquire(self, *, write: bool, priority: Priority) -> None:
        """Wait until the request may be sent, then count it.

        Raises:
            asyncio.CancelledError: the waiting task was cancelled (nothing counted).
        """
        await self._acquire(self.bucket(write), priority)

    async def acquire_webhook(self, *, priority: Priority) -> None:
        """Wait for the webhook-mutation budget (§11.6), then count one; the caller then also
        :meth:`acquire` the write budget. Raises ``asyncio.CancelledError`` like :meth:`acquire`."""
        await self._acquire(self._webhook, priority)

    def webhook_rate_limited(self, *, retry_after: float, stated: bool = True) -> None:
        """The API answered 429 ``webhook_mutation_rate_limit``: no webhook mutation for
        ``retry_after`` seconds (a probe first when ``stated`` is False); reads and other writes
        go on."""
        self._webhook.close(retry_after, stated=stated)
        self._webhook.pump()

    def webhook_answered(self, *, granted_at: float, ok: bool) -> None:
        """A webhook mutation granted at ``granted_at`` got an answer other than its 429 (``ok``) or
        none: the outstanding probe, if it was this one, opens (or re-probes) the bucket."""
        self._webhook.answered(granted_at, ok=ok)
        self._webhook.pump()

    async def _acquire(self, bucket: _Bucket, priority: Priority) -> None:
        started = self._clock()
        fut = bucket.enqueue(int(priority), next(self._seq))
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                bucket.dropped(fut)  # granted just before: the slot stays used (conservative)
            raise
        waited = self._clock() - started
        if waited > 0 and self._on_wait is not None:
            self._on_wait(bucket.name, waited)

    def try_acquire(self, *, write: bool) -> bool:
        """Count and allow the request only if nobody waits and more than :data:`DETAIL_RESERVE`
        of the bucket is left now; otherwise ``False`` (nothing counted)."""
        bucket = self.bucket(write)
        spare = bucket.limit - bucket.used()
        if bucket.waiting or bucket.next_free() > self._clock() or spare <= bucket.limit * DETAIL_RESERVE:
            return False
        bucket.grant()
        return True

    def estimated_wait(self, *, write: bool) -> float:
        """Seconds a request queued now would wait, roughly: until the next slot, plus one window
        per ``limit`` requests already waiting."""
        bucket = self.bucket(write)
        return self.seconds_until_free(write=write) + bucket.waiting / bucket.limit * (bucket.window + WINDOW_MARGIN)

    def seconds_until_free(self, *, write: bool) -> float:
        """Seconds until the bucket grants again (0 when it would grant now)."""
        return max(0.0, self.bucket(write).next_free() - self._clock())

    def now(self) -> float:
        """The limiter's clock (seconds): pass it as ``granted_at`` to :meth:`observe`."""
        return self._clock()

    def wall_time(self) -> float:
        """The limiter's wall clock (seconds since the epoch): the API's calendar minute is read
        from it, and so is the fallback wait after a 429 that states none (§6)."""
        return self._wall()

    def observe(self, *, write: bool, headers: Mapping[str, str], granted_at: float | None = None) -> None:
        """Learn from an answer's ``X-RateLimit-Limit``/``-Remaining``/``-Window`` (§6).

        ``granted_at`` is the clock time (:meth:`now`) the request was let through (default: now).
        The API's count ``limit - remaining`` covers the frame of that request (its calendar
        minute; the rolling window in ``single`` mode: :meth:`_frame_start`); what it counted
        beyond our requests in that frame and what is booked already is booked as spent by
        another client.
        """
        bucket = self.bucket(write)
        bucket.answered(self._clock() if granted_at is None else granted_at, ok=True)
        limit, remaining, window = (_int(headers.get(h)) for h in
                                    ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-window"))
        if window and window > 0:
            bucket.window = float(window)
        if limit and limit > 0:
            bucket.limit = min(limit, MAX_LIMIT)
            bucket.announced = True
        if remaining is not None and limit:
            now = self._clock()
            at = now if granted_at is None else min(granted_at, now)
            frame_start = self._frame_start(bucket, at, now)
            # An answer so late that the start of its frame has left the log cannot be compared.
            if frame_start > now - bucket.window - WINDOW_MARGIN:
                counted = min(bucket.limit, limit - remaining)
                bucket.book(counted - bucket.known_since(frame_start))
        bucket.pump()

    def _frame_start(self, bucket: _Bucket, at: float, now: float) -> float:
        """Clock time from which the API counted the requests of an answer granted at ``at``.

        ``split`` mode (current API, §6): the calendar minute of ``at``, taken
        :data:`LEARN_AFTER` seconds (a thirtieth of a shorter window) earlier, so that a clock
        ahead of the API's by up to that much never compares the API's previous minute with our
        new one (it can only miss another client in a minute's first seconds). ``single`` mode
        (older API, §1 row 7): the rolling window before ``at``. Comparing all of ours in the
        frame, including requests granted after ``at``, never takes our own requests for another
        client's, whatever order the answers come back in.
        """
        if self.mode == "single":
            return at - bucket.window
        skew = min(LEARN_AFTER, bucket.window / 30)
        wall_at = self._wall() - (now - at) - skew
        return at - skew - wall_at % bucket.window

    def rate_limited(self, *, write: bool, retry_after: float, headers: Mapping[str, str] | None = None,
                     stated: bool = True) -> None:
        """The API answered 429: send nothing in this bucket for ``retry_after`` seconds.

        ``stated``: the API said when requests succeed again (``Retry-After``, body
        ``retry_after``, ``X-RateLimit-Reset``); otherwise the time is a guess (§6 fallback) and
        the bucket reopens with one probe request: the others wait for its answer. Either way the
        grants after the reopening are paced for one window (module docstring).

        The answer's ``X-RateLimit-Limit`` (``headers``), if any, becomes the bucket's limit.
        Without it (older API versions, §1 row 8) the limit is learned from the refusal itself:
        the API accepted the requests of this calendar minute (§6: the key window resets at the
        full minute) but this one, so the bucket's limit becomes that count: only while the API
        never sent the header for this bucket, never raised this way, never below
        :data:`LEARNED_FLOOR` of the configured limit; the next ``X-RateLimit-Limit`` sets it again.
        """
        bucket = self.bucket(write)
        announced = _int((headers or {}).get("x-ratelimit-limit"))
        if announced:
            bucket.limit, bucket.announced = min(announced, MAX_LIMIT), True
        into_minute = self._wall() % 60.0
        # Learn only from an API that never tells its limit (a lone header-less 429 from one that
        # does is not about this budget); right after the full minute the clocks may disagree.
        if not bucket.announced and into_minute >= LEARN_AFTER:
            accepted = sum(1 for g in bucket.grants() if g >= self._clock() - into_minute) - 1
            bucket.limit = max(bucket.floor, min(bucket.limit, accepted))
        bucket.close(retry_after, stated=stated)
        bucket.pump()

    def unanswered(self, *, write: bool, granted_at: float) -> None:
        """The request granted at ``granted_at`` (:meth:`now`) got no answer (transport failure,
        cancellation): if it was the probe, the next request probes again."""
        bucket = self.bucket(write)
        bucket.answered(granted_at, ok=False)
        bucket.pump()

    def snapshot(self) -> dict[str, dict[str, float]]:
        """``{bucket: {limit, used, waiting}}`` for metrics and logs."""
        buckets = [*self._buckets.items(), ("webhook", self._webhook)]
        return {name: {"limit": b.limit, "used": b.used(), "waiting": b.waiting} for name, b in buckets}


def _int(value: str | None) -> int | None:
    try:
        number = float(value) if value is not None else math.nan
    except ValueError:
        return None
    return int(number) if math.isfinite(number) and number >= 0 else None
