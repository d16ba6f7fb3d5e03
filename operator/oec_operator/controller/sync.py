"""Keeping one ``OdooEnvironment`` in sync: when to reconcile, with which credentials, what to do
with the result.

- :meth:`SyncController.reconcile_now`: a user's change (create, spec or annotations): reconcile
  at once, reading the environment afresh;
- :meth:`SyncController.run`: the object's poll loop: reconcile when the project's batched list
  saw the environment change (:mod:`oec_operator.domain.polling`) or when the object's next poll
  is due (fast while work is in flight, the steady interval otherwise, backoff after errors).

Each reconcile resolves the API key, calls :func:`oec_operator.domain.reconcile.reconcile`, turns
its outcome (or the error that ended it) into a status update, writes it through the status
writer only when something changed, posts the outcome's Events and points the object's interest
in the project's watch at its environment. Knows nothing of kopf: the caller passes the object's
body (a mapping that kopf keeps current), the ownership index and an Event sink.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Mapping
from typing import Any

from oec_operator import metrics
from oec_operator.controller.state import Claims, EventSink, Handle, ResourceState, Restores
from oec_operator.domain.assess import merge_status
from oec_operator.domain.failures import backoff, error_outcome, stalled_outcome
from oec_operator.domain.outcome import Event, Outcome, ResourceRef
from oec_operator.domain.ownership import DOMAIN_PREFIX, claimed_by, claims_of
from oec_operator.domain.polling import EnvironmentSource, Interest, WatchedSource
from oec_operator.domain.reconcile import Context, reconcile
from oec_operator.domain.restore import environment_key
from oec_operator.kube.client import KubeError
from oec_operator.kube.credentials import CredentialsError
from oec_operator.models import conditions as cond
from oec_operator.models.conditions import Condition
from oec_operator.models.requests import Requests
from oec_operator.models.spec import OdooEnvironmentSpec
from oec_operator.models.status import Status
from oec_operator.oec.errors import OecAuthError, OecError, OecPermissionError
from oec_operator.oec.ratelimit import Priority
from oec_operator.runtime import Runtime

#: A status that changed in nothing but ``lastSyncTime`` is written again only after this many
#: steady poll intervals, plus up to as many again spread by object (so thousands of steady
#: resources neither rewrite their status every poll nor all in the same second).
SYNC_TIME_REFRESH_INTERVALS = 5


def resource_ref(body: Mapping[str, Any]) -> ResourceRef:
    """The identity of the object in ``body``."""
    meta = body["metadata"]
    return ResourceRef(namespace=str(meta["namespace"]), name=str(meta["name"]), uid=str(meta["uid"]),
                       generation=int(meta.get("generation") or 0))


def owner_of(claims: Claims, body: Mapping[str, Any], *, domain: bool = False) -> str | None:
    """``namespace/name`` of another resource that owns the environment this one points at
    (``domain``: the custom domain in its ``spec.domain``)."""
    mine = {key: claim for key, claim in claims_of(body).items() if key.startswith(DOMAIN_PREFIX) == domain}
    if not mine:
        return None
    target, claim = next(iter(mine.items()))
    return claimed_by(claims.get(target, []), claim)


def restoring(restores: Restores, ref: ResourceRef) -> str | None:
    """What restores the object's environment now (the index of running ``OdooRestore`` objects),
    or ``None``."""
    running = sorted(restores.get(environment_key(ref.namespace, ref.name), ()))
    return ", ".join(running) or None


def shown(previous: Status, failure: Event | Condition) -> bool:
    """Whether the Ready condition already says this failure (same reason and message): then it
    is not reported again (a stalled resource would otherwise repeat it on every poll)."""
    ready = previous.condition(cond.READY) or {}
    return (ready.get("reason"), ready.get("message")) == (failure.reason, failure.message)


def post_events(events: EventSink, outcome: Outcome, previous: Status) -> None:
    """Post the outcome's Events; a Warning the Ready condition already shows is not repeated."""
    for event in outcome.events:
        if event.type == "Warning" and shown(previous, event):
            continue
        events(event)


def has_news(previous: Status, update: Status, refresh_after: float) -> bool:
    """Whether ``update`` changes ``previous`` in more than ``lastSyncTime``, or the recorded
    ``lastSyncTime`` is older than ``refresh_after`` seconds (or absent)."""
    if any(getattr(previous, f) != getattr(update, f) for f in update.model_fields_set if f != "last_sync_time"):
        return True
    if "last_sync_time" not in update.model_fields_set:
        return False
    age = cond.seconds_since(previous.last_sync_time)
    return age is None or age >= refresh_after


def spread(uid: str) -> float:
    """A fraction in [0, 1) fixed per object, to spread periodic work over time."""
    return int(hashlib.sha256(uid.encode()).hexdigest()[:8], 16) / 2**32


def result_label(outcome: Outcome, paused: bool) -> str:
    """The ``result`` label of ``oec_operator_reconciles_total``."""
    if paused:
        return "paused"
    if outcome.failed:
        return "retry" if outcome.transient else "stalled"
    return "success"


class SyncController:
    """Reconciles ``OdooEnvironment`` objects (one instance per process).

    Args:
        runtime: the process's shared clients, writer and watches.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.config = runtime.config

    async def reconcile_now(self, obj: Handle) -> None:
        """A new object, a changed spec or changed annotations: reconcile at once."""
        async with obj.state.lock:
            await self._sync(obj, force=True)
        obj.state.wake.set()  # the poll loop picks up the new schedule (e.g. a retry after a failure)

    async def run(self, obj: Handle) -> None:
        """The object's poll loop; runs until cancelled (deletion, shutdown). ``obj.body`` must
        stay current (kopf's daemon body does)."""
        loop, state = asyncio.get_running_loop(), obj.state
        ref = resource_ref(obj.body)
        wake = self.runtime.wakers[environment_key(ref.namespace, ref.name)] = state.mark_changed
        try:
            while True:
                with contextlib.suppress(TimeoutError):  # not wait_for: no inner task to outlive a cancel
                    async with asyncio.timeout(max(0.0, state.next_poll_at - loop.time())):
                        await state.wake.wait()
                state.wake.clear()
                if state.changed:
                    state.changed = False
                    state.next_poll_at = 0.0  # the environment changed: not bound by the schedule
                elif loop.time() < state.next_poll_at:
                    continue  # rescheduled by a change: wait for the new time
                await self.poll_once(obj)
        finally:
            self.runtime.fleet.forget(ref.uid)
            if self.runtime.wakers.get(environment_key(ref.namespace, ref.name)) is wake:
                del self.runtime.wakers[environment_key(ref.namespace, ref.name)]

    async def poll_once(self, obj: Handle) -> None:
        """One turn of the poll loop: reconcile if the object's next poll is due."""
        async with obj.state.lock:
            await self._sync(obj, force=False)

    async def _sync(self, obj: Handle, *, force: bool) -> None:
        """Reconcile once and write the result; ``force`` (a user's change) ignores the poll
        schedule and reads the environment afresh. Call with ``state.lock`` held."""
        runtime, config, body, state = self.runtime, self.config, obj.body, obj.state
        loop = asyncio.get_running_loop()
        if not force and loop.time() < state.next_poll_at:
            return
        ref = resource_ref(body)
        previous = runtime.status.view(ref.uid, body.get("status"))
        if body["metadata"].get("deletionTimestamp") or (not force and previous.empty):
            # Being deleted (the deletion acts), or new (its create handler reconciles it).
            state.next_poll_at = loop.time() + config.fast_poll_interval
            return
        requests = Requests.from_annotations(body["metadata"].get("annotations"))
        slow = requests.steady_interval(config.poll_interval, config.min_poll_interval)
        if not force and await self._resume(obj, ref, previous, requests, slow):
            return
        now = cond.now_rfc3339()
        outcome, ctx, source = await self._reconcile(obj, ref, previous, requests, force, slow, now)
        base = ctx.status if ctx is not None else previous  # intents written meanwhile included
        if outcome.failed and outcome.conditions and not shown(previous, outcome.conditions[0]):
            obj.logger.warning(f"{outcome.conditions[0].reason}: {outcome.conditions[0].message}")
        metrics.RECONCILES.labels(result_label(outcome, requests.paused)).inc()
        state.failures = state.failures + 1 if outcome.transient else 0
        state.environment_id = outcome.status.environment_id or state.environment_id
        state.detailed = outcome.detailed
        state.next_poll_at = loop.time() + outcome.next_poll
        update = merge_status(base, outcome, ref.generation, now, paused=requests.paused)
        current = base
        if has_news(base, update, slow * SYNC_TIME_REFRESH_INTERVALS * (1 + spread(ref.uid))):
            current = await self._write(obj, ref, update) or base
        runtime.phases.set(ref.uid, current.phase)
        if current.backups is not None and current.backups.latest is not None:  # docs/backups.md §5
            metrics.backup_completed(ref.namespace, ref.name, cond.parse_time(current.backups.latest.completed_at))
        post_events(obj.events, outcome, previous)
        if requests.paused:
            runtime.fleet.forget(ref.uid)  # no API calls at all on its behalf, not even in a shared list
        elif isinstance(source, WatchedSource) and current.environment_id:
            runtime.fleet.subscribe(source.watch, current.environment_id, ref.uid,
                                    Interest(wake=state.mark_changed, steady=slow, busy=current.busy))

    async def _resume(self, obj: Handle, ref: ResourceRef, previous: Status, requests: Requests,
                      slow: float) -> bool:
        """The first poll in this process of a steady resource whose status is complete (Ready
        for its generation, nothing in flight): instead of reading now, which would make every
        project list at once after a restart, join the project's watch, whose first list comes at
        a random offset within the interval and wakes the resource (``docs/reliability.md``).

        Returns:
            True when the resource was resumed this way (no reconcile now).
        """
        state, runtime = obj.state, self.runtime
        ready = previous.condition(cond.READY) or {}
        if (state.environment_id is not None or not runtime.batched or requests.paused or previous.busy
                or not previous.environment_id or previous.observed_generation != ref.generation
                or ready.get("status") != "True"):
            return False
        try:
            spec = OdooEnvironmentSpec.from_body(obj.body["spec"])
            key, _ = await runtime.api_key(ref.namespace, spec.credentials_secret_ref)
        except (CredentialsError, ValueError, KubeError):
            return False  # the reconcile says what is wrong
        source = runtime.source(key, spec.project_id, runtime.client(key, Priority.POLL))
        if not isinstance(source, WatchedSource):
            return False
        state.environment_id = previous.environment_id
        state.next_poll_at = asyncio.get_running_loop().time() + slow
        runtime.phases.set(ref.uid, previous.phase)
        runtime.fleet.subscribe(source.watch, previous.environment_id, ref.uid,
                                Interest(wake=state.mark_changed, steady=slow))
        return True

    async def _reconcile(self, obj: Handle, ref: ResourceRef, previous: Status, requests: Requests, force: bool,
                         slow: float, now: str) -> tuple[Outcome, Context | None, EnvironmentSource | None]:
        """Resolve the credentials and reconcile; every failure becomes an outcome.

        Returns:
            The outcome, the reconcile's context (``None`` when it did not start) and the
            environment source it read through (``None`` likewise).
        """
        runtime, config, body, state = self.runtime, self.config, obj.body, obj.state
        hint: str = "the credentials"
        ctx: Context | None = None
        source: EnvironmentSource | None = None
        spec: OdooEnvironmentSpec | None = None
        try:
            spec = OdooEnvironmentSpec.from_body(body["spec"])
            key, hint = await runtime.api_key(ref.namespace, spec.credentials_secret_ref)
            api = runtime.client(key, Priority.CHANGE if force else Priority.POLL)
            source = runtime.source(key, spec.project_id, api)
            refresh = force and requests.refresh_token not in (None, state.refresh_token)
            if refresh and previous.environment_id:  # a hint forwarded by another replica announced it
                runtime.health(api.key_id).hinted(previous.environment_id)
            ctx = Context(
                api=api, spec=spec, ref=ref, requests=requests, status=previous,
                known_environment_id=state.environment_id, claimed_by=owner_of(obj.claims, body),
                fast_poll=config.fast_poll_interval, slow_poll=slow, now=now,
                write=lambda update: runtime.status.write(ref.namespace, ref.name, ref.uid, update),
                source=source, fresh=force, detailed=state.detailed,
                refresh=refresh,
                gone_grace=config.external_delete_grace_period,
                domain_claimed_by=owner_of(obj.claims, body, domain=True),
                backup_check_interval=config.backup_check_interval,
                backup_check_offset=spread(ref.uid) * config.backup_check_interval,
                backups_stale=environment_key(ref.namespace, ref.name) in runtime.stale_backups,
                restoring=restoring(obj.restores, ref),
            )
            outcome = await reconcile(ctx)
            state.refresh_token = requests.refresh_token
            if outcome.status.backups is not None:  # read: stale no longer
                runtime.stale_backups.discard(environment_key(ref.namespace, ref.name))
            state.last_good_key = key
        except CredentialsError as exc:
            outcome = stalled_outcome("CredentialsNotFound", str(exc), next_poll=slow)
        except OecError as exc:
            if isinstance(exc, OecAuthError):
                state.last_good_key = None
            if isinstance(exc, OecAuthError | OecPermissionError) and spec is not None:
                # Read the Secret again at the next poll: a rotated key changes what a held-back
                # refused write waits for (domain/refusals.py), so it is sent with the new key.
                runtime.key_refused(ref.namespace, spec.credentials_secret_ref)
            outcome = error_outcome(
                exc, had_ready=previous.condition(cond.READY) is not None, credentials_hint=hint,
                failures=state.failures + 1, fast_poll=config.fast_poll_interval, slow_poll=slow,
                refused_write=ctx is not None and ctx.refused,
            )
        except KubeError as exc:
            outcome = self._retry_outcome(f"cannot write the status before acting ({exc})", state)
        except Exception as exc:  # a bug must not turn into a hot loop or a frozen status
            obj.logger.exception("reconcile failed unexpectedly")
            outcome = self._retry_outcome(f"unexpected {type(exc).__name__}; see the operator log", state)
        return outcome, ctx, source

    async def _write(self, obj: Handle, ref: ResourceRef, update: Status) -> Status | None:
        """Write a reconcile's status update; on failure retry soon (the body is the truth again).

        Returns:
            The status now stored, ``None`` when the write failed.
        """
        try:
            return await self.runtime.status.write(ref.namespace, ref.name, ref.uid, update)
        except KubeError as exc:
            if exc.status != 404:  # 404: the object is gone; its poll loop is about to be stopped
                obj.logger.warning(f"cannot write the status ({exc}); retrying")
            obj.state.next_poll_at = min(obj.state.next_poll_at,
                                         asyncio.get_running_loop().time() + self.config.fast_poll_interval)
            return None

    def _retry_outcome(self, message: str, state: ResourceState) -> Outcome:
        """A transient failure outside the API (status write, a bug): retry with backoff."""
        delay = backoff(self.config.fast_poll_interval, state.failures + 1)
        return Outcome(failed=True, transient=True, next_poll=delay, conditions=[
            Condition(cond.RECONCILING, "True", "ProgressingWithRetry", f"{message}; retrying")])
