"""Batched observation of OEC.sh environments: one list per project per interval serves every
resource of that project.

A :class:`ProjectWatch` (one per API key and project) calls ``GET /projects/{id}/environments``
(``docs/oec-api.md`` §11.2) on its own schedule and keeps what it saw. Resources read their environment
from it instead of calling the API, and are woken when their entry changes. The schedule adapts:
the fast interval while any resource of the project has work in flight, the shortest steady
interval its resources ask for otherwise, never below a floor that keeps all lists of one key
within a share of its read budget (:class:`Fleet`), each interval with +-10 % jitter and the first
one at a random offset, so a restart does not make every project poll at once (a resumed resource
whose status is complete subscribes without reading and waits for that first list:
:meth:`oec_operator.controller.sync.SyncController._sync`).

So the reads a minute of a key are about ``P * 60 / T`` for ``P`` projects at a steady interval
of ``T`` seconds, plus one read per change (a user's spec change, a detail read after an
environment changed), whatever the number of resources.

Sources (:class:`WatchedSource`, :class:`DirectSource`) are what :mod:`oec_operator.domain.reconcile`
reads through; ``DirectSource`` is the naive design (every reconcile reads the environment and
its status), kept for comparison (``OEC_POLLING=direct``, ``make bench``).

Knows nothing of Kubernetes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from oec_operator.domain.failures import backoff
from oec_operator.oec.client import OecClient, key_id_of
from oec_operator.oec.errors import OecError, OecNotFoundError, OecRateLimitError, OecTransportError
from oec_operator.oec.models import Environment
from oec_operator.oec.ratelimit import Priority

#: Share of a key's read budget that the lists of all its projects may use together.
LIST_SHARE = 0.5
#: Jitter of every interval (+-10 %).
JITTER = 0.1


@dataclass
class Interest:
    """A resource that wants to hear about one environment.

    Attributes:
        wake: called (from the event loop) when the environment's entry changed or vanished.
        steady: the resource's steady poll interval, seconds.
        busy: work in flight (transitional phase or a deploy owed): the project polls fast.
    """

    wake: Callable[[], None]
    steady: float
    busy: bool = False


@dataclass
class _Seen:
    env: Environment
    at: float  # clock time the data was read: a list's start, or a direct answer's arrival


class ProjectWatch:
    """The environments of one project as seen through one API key.

    Args:
        api: client at :attr:`~oec_operator.oec.ratelimit.Priority.POLL` priority.
        project_id: the project UUID.
        fast: fast interval in seconds (``OEC_FAST_POLL_INTERVAL``).
        floor: seconds; the shortest interval allowed now (see :meth:`Fleet.floor`).
        clock: monotonic clock in seconds.
        stretch: factor applied to the steady interval now (the key's push health,
            ``docs/webhooks.md`` §6); never to the fast one.
        on_changes: called with the ids of the environments whose status a list found changed,
            or that appeared or vanished, since the previous list (what a webhook should have
            announced; the key's push health judges it).
        key_id: the id of the watch's API key (``OecClient.key_id``).
    """

    def __init__(self, api: OecClient, project_id: str, *, fast: float, floor: Callable[[], float],
                 clock: Callable[[], float] = time.monotonic, stretch: Callable[[], float] = lambda: 1.0,
                 on_changes: Callable[[list[str]], None] | None = None, key_id: str = "") -> None:
        self.api = api
        self.key_id = key_id
        self.project_id = project_id
        self.fast = fast
        self._floor = floor
        self._clock = clock
        self._stretch = stretch
        self._on_changes = on_changes
        self._seen: dict[str, _Seen] = {}
        self._present: dict[str, Environment] = {}  # the entries of the last list, as listed
        self._listed_at: float | None = None
        self._failure: OecError | None = None
        self._failures = 0
        self._retry_at = 0.0
        self._inflight: asyncio.Future[None] | None = None
        self._interests: dict[str, dict[str, Interest]] = {}  # env id -> resource uid -> interest
        self._task: asyncio.Task[None] | None = None
        self._kick = asyncio.Event()

    # -- subscriptions -------------------------------------------------------------------
    def subscribe(self, env_id: str, uid: str, interest: Interest) -> None:
        """Register (or update) a resource's interest in ``env_id``; starts the poll loop."""
        before = self.interval()
        for other, by_uid in list(self._interests.items()):
            if other != env_id and by_uid.pop(uid, None) is not None and not by_uid:
                del self._interests[other]
        self._interests.setdefault(env_id, {})[uid] = interest
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"watch {self.project_id}")
        elif self.interval() < before:
            self._kick.set()  # something became busy: do not wait out a long steady interval

    def unsubscribe(self, uid: str) -> None:
        """Forget a resource; the loop ends once nobody is interested."""
        for env_id, by_uid in list(self._interests.items()):
            if by_uid.pop(uid, None) is not None and not by_uid:
                del self._interests[env_id]
        if not self._interests:
            self._kick.set()

    @property
    def running(self) -> bool:
        """True while the poll loop runs."""
        return self._task is not None and not self._task.done()

    def in_use(self) -> bool:
        """Subscribed to, or listed within the last two minutes (e.g. for creates)."""
        return self.interested or (self._listed_at is not None and self._clock() - self._listed_at < 120)

    @property
    def interested(self) -> bool:
        """True while any resource is subscribed."""
        return bool(self._interests)

    def interval(self) -> float:
        """Seconds between lists now (before jitter): fast while busy, else the shortest steady
        times the key's push stretch (``docs/webhooks.md`` §6)."""
        interests = [i for by_uid in self._interests.values() for i in by_uid.values()]
        stretch = self._stretch() if interests else 1.0
        steady = [self.fast if i.busy else i.steady * stretch for i in interests]
        return max(min(steady, default=self.fast), self._floor())

    def kick(self) -> None:
        """Plan the next list again now (the interval changed, e.g. push health dropped to poll)."""
        self._kick.set()

    def stale_after(self) -> float:
        """Age in seconds beyond which a cached entry is not trusted: two intervals and a fast one."""
        return 2 * self.interval() + self.fast

    # -- reads ---------------------------------------------------------------------------
    def record(self, env: Environment) -> None:
        """Keep an environment read or changed outside the lists (a POST, PATCH or GET answer)."""
        self._seen[env.id] = _Seen(env, self._clock())

    async def environment(self, env_id: str, *, max_age: float) -> Environment:
        """The environment as last seen, no older than ``max_age`` seconds (else listed again).

        Absence from a list is confirmed with ``GET /environments/{id}``: never conclude
        "deleted" from the list alone (``docs/oec-api.md`` §1 row 13).

        Raises:
            OecNotFoundError: the environment is gone.
            OecError: the list (or the confirming read) failed.
        """
        seen = self._seen.get(env_id)
        if seen is not None and self._clock() - seen.at <= max_age:
            return seen.env
        await self.refresh(max_age=max_age)
        seen = self._seen.get(env_id)
        if seen is not None:
            return seen.env
        env = await self.api.get_environment(env_id)
        self.record(env)
        return env

    async def refresh_environment(self, env_id: str) -> bool:
        """Read one environment now (``GET /environments/{id}`` through the watch's client at
        detail priority: only from the key's spare read budget, never queued, so a burst of
        deliveries, e.g. during a mass create, never delays a create, a delete or a list; the
        project's list covers what it skips) because a webhook named it (``docs/webhooks.md`` §2); keep it and wake
        its interests when it changed. A 404 alone proves nothing (``docs/oec-api.md`` §1 row 13):
        it is followed by a list of the project started after it (:meth:`listed`), which wakes the
        interests when the environment is absent from it too; their reconcile then applies its own
        rules (the grace period after a create, ``ExternallyDeleted``).

        Returns:
            True when the environment changed (or is gone from the project's list).

        Raises:
            OecBudgetDeferred: no spare read budget now (nothing was sent).
            OecError: the read failed otherwise.
        """
        before, asked = self._seen.get(env_id), self._clock()
        try:
            env = await self.api.with_priority(Priority.DETAIL).get_environment(env_id)
        except OecNotFoundError:
            return await self.listed(env_id, since=asked) is None  # the list wakes them when absent
        self.record(env)
        if before is not None and before.env == env:
            return False
        self._wake(env_id)
        return True

    def _wake(self, env_id: str) -> None:
        for interest in self._interests.get(env_id, {}).values():
            interest.wake()

    def now(self) -> float:
        """The watch's clock, seconds (for :meth:`listed`'s ``since``)."""
        return self._clock()

    async def listed(self, env_id: str, *, since: float | None = None) -> Environment | None:
        """The environment's entry in a list of the project started at or after ``since`` (the
        watch's clock, default: now), shared with such a list in flight (at most one list per
        call), ``None`` when that list does not show it or the project is gone: the second
        observation after a direct read sent at ``since`` answered 404 (``docs/reconciliation.md``,
        Decisions: Adopt, Externally deleted). An older list may predate the environment's create,
        so it is never the answer.

        Raises:
            OecError: the list failed (now or recently), except 404.
        """
        since = self._clock() if since is None else since
        try:
            while self._listed_at is None or self._listed_at < since:
                if self._inflight is not None:  # shared; one started before ``since`` is not enough
                    await asyncio.shield(self._inflight)
                    continue
                await self.refresh(max_age=self._clock() - since)
        except OecNotFoundError:
            return None
        return self._present.get(env_id)

    async def environments(self, *, max_age: float) -> list[Environment]:
        """Every environment of the project, from a list no older than ``max_age`` seconds."""
        if self._listed_at is None or self._clock() - self._listed_at > max_age:
            await self.refresh(max_age=max_age)
        return [seen.env for seen in self._seen.values()]

    async def refresh(self, *, max_age: float = 0.0) -> None:
        """List the project once, shared by every concurrent caller, and wake the interests of
        entries that changed or vanished. A failure is kept until its retry time (the API's
        ``retry_after`` for a 429, else exponential backoff from the fast interval) and raised to
        callers meanwhile, so failing lists never multiply.

        Raises:
            OecError: the list failed (now or recently).
        """
        if self._inflight is not None:
            await asyncio.shield(self._inflight)
            return
        if self._listed_at is not None and self._clock() - self._listed_at <= max_age:
            return
        if self._failure is not None and self._clock() < self._retry_at:
            failure = self._failure
            if isinstance(failure, OecRateLimitError):  # tell what is left of the wait
                raise OecRateLimitError(failure.message, retry_after=max(1.0, self._retry_at - self._clock()),
                                        status=failure.status, code=failure.code, extras=failure.extras,
                                        stated=failure.stated)
            raise failure
        inflight: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._inflight = inflight
        try:
            await self._list()
        except BaseException as exc:
            # Waiters see an interruption (cancellation) as a transient failure of the list.
            error = exc if isinstance(exc, OecError) else OecTransportError(
                f"list of project {self.project_id} interrupted", code="interrupted")
            inflight.set_exception(error)
            inflight.exception()  # retrieved here; every waiter re-raises it
            raise
        else:
            inflight.set_result(None)
        finally:
            self._inflight = None

    async def _list(self) -> None:
        started = self._clock()
        try:
            listed = await self.api.list_environments(self.project_id)
        except OecError as exc:
            self._failures += 1
            delay = exc.retry_after if isinstance(exc, OecRateLimitError) else backoff(self.fast, self._failures)
            self._failure, self._retry_at = exc, self._clock() + delay
            raise
        self._failure, self._failures = None, 0
        changed: set[str] = set()
        announced: list[str] = []  # what a webhook announces: a new status, a create, a delete
        present = {env.id: env for env in listed}
        self._present = present
        for env in listed:
            seen = self._seen.get(env.id)
            if seen is not None and seen.at > started:
                continue  # read or changed by us after this list started: newer than the list
            if seen is None or seen.env != env:
                changed.add(env.id)
            if (seen.env.status != env.status) if seen is not None else self._listed_at is not None:
                announced.append(env.id)  # a new status, or an environment new since the previous list
            self._seen[env.id] = _Seen(env, started)
        for env_id in list(self._seen):
            if env_id not in present and self._seen[env_id].at <= started:
                del self._seen[env_id]
                changed.add(env_id)
                announced.append(env_id)
        self._listed_at = started
        for env_id in changed:
            self._wake(env_id)
        if announced and self._on_changes is not None:
            self._on_changes(announced)

    async def _run(self) -> None:
        """The poll loop: list every interval (from the last list) while anyone is interested."""
        while self._interests:
            interval, now = self.interval(), self._clock()
            if self._listed_at is None:
                delay = random.uniform(0, interval)  # noqa: S311 - spread projects after a restart
            else:
                delay = self._listed_at + interval * random.uniform(1 - JITTER, 1 + JITTER) - now  # noqa: S311
            if self._failure is not None:
                delay = max(delay, self._retry_at - now)
            self._kick.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, delay)):  # not wait_for: no inner task to outlive a cancel
                    await self._kick.wait()
                continue  # kicked: the interval or the interests changed, compute the delay again
            if self._interests:
                with contextlib.suppress(OecError):
                    await self.refresh()

    async def aclose(self) -> None:
        """Stop the poll loop."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


class Fleet:
    """Every :class:`ProjectWatch` of the process, by API key and project.

    Args:
        client_for: ``client_for(api_key)`` -> a POLL-priority client for that key.
        read_budget: ``read_budget(api_key)`` -> reads per minute of the key (its limiter's).
        fast: fast interval, seconds.
        stretch: ``stretch(key_id)`` -> the factor on the steady interval of that key's watches
            (its push health, ``docs/webhooks.md`` §6); 1.0 by default.
        on_changes: ``on_changes(key_id, env_ids)``: a list of that key saw these environments
            change (:class:`ProjectWatch`'s ``on_changes``).
    """

    def __init__(self, client_for: Callable[[str], OecClient], read_budget: Callable[[str], float],
                 *, fast: float, stretch: Callable[[str], float] = lambda _: 1.0,
                 on_changes: Callable[[str, list[str]], None] | None = None) -> None:
        self._client_for = client_for
        self._read_budget = read_budget
        self.fast = fast
        self._stretch = stretch
        self._on_changes = on_changes
        self._watches: dict[tuple[str, str], ProjectWatch] = {}
        self._by_uid: dict[str, ProjectWatch] = {}
        self._env_of: dict[str, str] = {}  # resource uid -> its environment id
        self._routes: dict[str, dict[str, None]] = {}  # environment id -> resource uids (ordered)

    def watch(self, api_key: str, project_id: str) -> ProjectWatch:
        """The watch of ``project_id`` through ``api_key`` (created on first use)."""
        digest = hashlib.sha256(api_key.encode()).hexdigest()
        key = (digest, project_id)
        watch = self._watches.get(key)
        if watch is None:
            key_id, on_changes = key_id_of(api_key), self._on_changes
            watch = ProjectWatch(self._client_for(api_key), project_id, fast=self.fast,
                                 floor=lambda: self.floor(digest, api_key), stretch=lambda: self._stretch(key_id),
                                 on_changes=None if on_changes is None else lambda ids: on_changes(key_id, ids),
                                 key_id=key_id)
            self._watches[key] = watch
        return watch

    def route(self, env_id: str) -> ProjectWatch | None:
        """The watch through which the resource subscribed to ``env_id`` in this process reads it
        (``None``: no such resource here): where a webhook's hint goes (``docs/webhooks.md`` §2)."""
        for uid in self._routes.get(env_id, {}):
            watch = self._by_uid.get(uid)
            if watch is not None:
                return watch
        return None

    def kick(self, key_id: str) -> None:
        """Make every watch of the key (``OecClient.key_id``) plan its next list again now."""
        for watch in self._watches.values():
            if watch.key_id == key_id:
                watch.kick()

    def _unroute(self, uid: str) -> None:
        env_id = self._env_of.pop(uid, None)
        if env_id is None:
            return
        uids = self._routes.get(env_id, {})
        uids.pop(uid, None)
        if not uids:
            self._routes.pop(env_id, None)

    def floor(self, digest: str, api_key: str) -> float:
        """Shortest list interval (seconds) for one key's projects: all its watches (those of
        resources being created included) together stay within :data:`LIST_SHARE` of its read
        budget."""
        active = sum(1 for (d, _), w in self._watches.items() if d == digest and w.in_use())
        return max(1, active) * 60.0 / max(1.0, self._read_budget(api_key) * LIST_SHARE)

    def subscribe(self, watch: ProjectWatch, env_id: str, uid: str, interest: Interest) -> None:
        """Point resource ``uid`` at ``env_id`` in ``watch`` (and nowhere else)."""
        previous = self._by_uid.get(uid)
        if previous is not None and previous is not watch:
            previous.unsubscribe(uid)
        self._by_uid[uid] = watch
        if self._env_of.get(uid) != env_id:
            self._unroute(uid)
            self._env_of[uid] = env_id
            self._routes.setdefault(env_id, {})[uid] = None
        watch.subscribe(env_id, uid, interest)

    def forget(self, uid: str) -> None:
        """Resource ``uid`` is gone or stopped."""
        watch = self._by_uid.pop(uid, None)
        self._unroute(uid)
        if watch is not None:
            watch.unsubscribe(uid)
        for key in [k for k, w in self._watches.items() if not w.interested and not w.running]:
            del self._watches[key]

    async def aclose(self) -> None:
        """Stop every poll loop."""
        for watch in list(self._watches.values()):
            await watch.aclose()


class EnvironmentSource(Protocol):
    """Where a reconcile reads environments from."""

    async def environment(self, env_id: str, *, fresh: bool) -> Environment:
        """The environment (``fresh``: read now, for a user's change).

        Raises:
            OecNotFoundError: it is gone: a direct read answered 404 and the project's list does not
                show it (two observations; a 404 alone may be a read lagging behind a create).
            OecError: the read failed.
        """

    async def environments(self) -> list[Environment]:
        """Every environment of the resource's project (the name-conflict check before a create)."""

    async def listed(self, env_id: str) -> Environment | None:
        """The environment's entry in a list of the project started now (never an older one, which
        may predate the environment's create), ``None`` when absent (the second observation after
        a direct read answered 404).

        Raises:
            OecError: the list failed (a 404 of the project means absent).
        """

    def record(self, env: Environment) -> None:
        """An environment the reconcile got from a write's answer."""

    def wants_detail(self, env: Environment, detailed: Environment | None) -> bool:
        """Whether to read ``GET /environments/{id}/status`` for ``env``; ``detailed`` is the
        environment as it was when its status was last read (``None``: never)."""


async def confirmed_read(api: OecClient, env_id: str,
                         listed: Callable[[str], Awaitable[Environment | None]]) -> Environment:
    """``GET /environments/{id}``; a 404 counts only when ``listed(env_id)`` (the project's list
    read now) does not show the environment either, else its listed entry is the answer (the
    detail read may lag behind a create; the mirror of :meth:`ProjectWatch.environment`, which
    confirms a list's absence with this read).

    Raises:
        OecNotFoundError: both observations agree that it is gone. OecError: a read failed.
    """
    try:
        return await api.get_environment(env_id)
    except OecNotFoundError:
        entry = await listed(env_id)
        if entry is None:
            raise
        return entry


class WatchedSource:
    """The batched design: reads come from the project's :class:`ProjectWatch`; ``/status`` once
    per change of the environment's entry (a new phase, branch, name...), not on every poll."""

    def __init__(self, watch: ProjectWatch, api: OecClient) -> None:
        self.watch = watch
        self.api = api

    async def environment(self, env_id: str, *, fresh: bool) -> Environment:
        if fresh:
            asked = self.watch.now()  # a 404 is confirmed by a list started after the read was sent
            env = await confirmed_read(self.api, env_id, lambda listed: self.watch.listed(listed, since=asked))
            self.watch.record(env)
            return env
        return await self.watch.environment(env_id, max_age=self.watch.stale_after())

    async def environments(self) -> list[Environment]:
        return await self.watch.environments(max_age=self.watch.interval())

    async def listed(self, env_id: str) -> Environment | None:
        return await self.watch.listed(env_id)

    def record(self, env: Environment) -> None:
        self.watch.record(env)

    def wants_detail(self, env: Environment, detailed: Environment | None) -> bool:
        return detailed != env


class DirectSource:
    """The naive design: every reconcile reads the environment and its status itself."""

    def __init__(self, api: OecClient, project_id: str) -> None:
        self.api = api
        self.project_id = project_id

    async def environment(self, env_id: str, *, fresh: bool) -> Environment:
        return await confirmed_read(self.api, env_id, self.listed)

    async def environments(self) -> list[Environment]:
        return await self.api.list_environments(self.project_id)

    async def listed(self, env_id: str) -> Environment | None:
        try:
            return next((env for env in await self.environments() if env.id == env_id), None)
        except OecNotFoundError:
            return None

    def record(self, env: Environment) -> None:
        return None

    def wants_detail(self, env: Environment, detailed: Environment | None) -> bool:
        return True

