"""Domain logic: make one OEC.sh environment match one ``OdooEnvironment`` and describe the result.

Knows nothing of Kubernetes or kopf (the controller turns an :class:`Outcome` into a status update
and Events, and gives a ``persist`` callback for intents that must be recorded *before* an action) and
nothing of HTTP (it calls :class:`~oec_operator.oec.client.OecClient` and decides on the typed
errors of :mod:`oec_operator.oec.errors`). The rules are in ``docs/reconciliation.md``.

One :func:`reconcile` is level-based and safe to repeat at any time:

1. paused -> no API call at all;
2. find the environment: the recorded id, else ``spec.environmentId`` (adoption), else create it
   (name-conflict check, ``createRequest`` intent, POST with a UID-derived idempotency key);
   environments are read through an :class:`~oec_operator.polling.EnvironmentSource` (the
   project's batched list, or a direct read for a user's change);
3. ``Manage``: PATCH what differs from the spec (a spec change, or drift when this generation was
   already reconciled), then deploy if a branch changed (``deployPolicy: OnChange``) or a redeploy
   token is new, through a ``pendingDeploy`` intent and an idempotency key, once no task runs;
   a write the API refused for good is not sent again until something changes
   (:mod:`oec_operator.domain.refusals`);
4. read ``GET /environments/{id}/status`` when the source wants it (in flight, changed, after a
   deploy) and map the environment onto conditions; the status read is a detail: when the key's
   budget is short it is deferred, never waited for.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from oec_operator.domain import freshness, refusals, resources, tasks, waiting
from oec_operator.domain.assess import ASSESSED_REASONS, assess, observed_status, owe_deploy, phase_events
from oec_operator.domain.failures import stalled_outcome
from oec_operator.domain.fieldwrites import FieldWrites
from oec_operator.domain.operations import Day2, assess_day2
from oec_operator.domain.outcome import Event, Outcome, ResourceRef
from oec_operator.domain.polling import EnvironmentSource
from oec_operator.models.conditions import READY, RECONCILING, STALLED, Condition, merge_conditions, seconds_since
from oec_operator.models.requests import Requests
from oec_operator.models.spec import DeployRequest, OdooEnvironmentSpec
from oec_operator.models.status import CreateRequest, PendingDeploy, RefusedWrite, Status
from oec_operator.oec.client import OecClient
from oec_operator.oec.errors import (
    OecConflictError,
    OecError,
    OecNotFoundError,
    OecRateLimitError,
    OecValidationError,
)
from oec_operator.oec.models import TRANSITIONAL_STATES, Environment, EnvironmentHealth
from oec_operator.oec.ratelimit import Priority

#: ``persist(update)`` writes a status update right away (an intent, before its action).
Persist = Callable[[Status], Awaitable[object]]
T = TypeVar("T")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def _unhandled(token: str | None, handled: str | None) -> str | None:
    """An annotation's token when it asks for something not done yet (not the one last handled)."""
    return token if token and token != handled else None


def create_key(uid: str, recreate_token: str | None = None) -> str:
    """``X-Idempotency-Key`` of the create for the resource with this UID (and recreate token)."""
    base = f"oec-operator-create-{uid}"
    return f"{base}-{_digest(recreate_token)}" if recreate_token else base


def desired_changes(spec: OdooEnvironmentSpec, metadata_name: str, env: Environment) -> dict[str, str]:
    """Fields to PATCH so that ``env`` matches the spec: ``{"name": ..., "branch": ...}`` subsets.

    ``branch`` is enforced only when the spec sets it (``docs/oec-api.md`` §2: PATCH takes name and
    branch; the environment type cannot change).
    """
    changes: dict[str, str] = {}
    name = spec.display_name(metadata_name)
    if env.name != name:
        changes["name"] = name
    if spec.branch is not None and env.branch != spec.branch:
        changes["branch"] = spec.branch
    return changes


@dataclass
class Settled:
    """Status fields one reconcile settles beside the mirrored ones (intents done or still owed,
    tokens handled)."""

    update: Status = field(default_factory=Status)

    def add(self, update: Status) -> None:
        """Merge ``update`` into :attr:`update`."""
        self.update = self.update.merged(update)


@dataclass
class Context:
    """Everything one reconcile needs.

    Attributes:
        api: client bound to the resource's credentials.
        spec: the parsed spec; ``ref``: the resource's identity; ``requests``: its annotations.
        status: the resource's status; intents persisted during the reconcile are merged in.
        known_environment_id: the OEC id this process recorded (may be ahead of ``status``).
        claimed_by: ``namespace/name`` of another resource that owns the target environment.
        fast_poll / slow_poll: seconds to the next poll while in flight / when steady.
        now: RFC 3339 time of this reconcile.
        write: writes a status update at once (see :meth:`persist`).
        source: where environments are read from (batched list or direct reads).
        fresh: a user's change triggered this reconcile: read the environment now.
        refresh: a webhook asked for a fresh read (a new ``oec.sh/refresh-requested-at``,
            ``docs/webhooks.md`` §2): read the environment now even without a user's change.
        detailed: the environment as it was when its ``/status`` was last read (``None``: never).
        gone_grace: seconds after an environment's create during which no 404 means "deleted"
            (``OEC_EXTERNAL_DELETE_GRACE_PERIOD``).
        domain_claimed_by: ``namespace/name`` of another resource that has the same ``spec.domain``.
        restoring: what restores the environment now (an ``OdooRestore`` running, ``docs/backups.md``
            §3), or ``None``: meanwhile no write and no task of this resource's own is sent.
        fields: the day-2 writes of this reconcile (refused per field, :mod:`oec_operator.domain.fieldwrites`).
        backup_check_interval / backup_check_offset: seconds between two reads of the newest
            backup (0: never) and this object's offset within them (:mod:`oec_operator.domain.freshness`).
        backups_stale: read the newest backup at this reconcile, whatever the slot (one of its
            ``OdooBackup`` objects completed, ``docs/backups.md`` §5).
    """

    api: OecClient
    spec: OdooEnvironmentSpec
    ref: ResourceRef
    requests: Requests
    status: Status
    known_environment_id: str | None
    claimed_by: str | None
    fast_poll: float
    slow_poll: float
    now: str
    write: Persist
    source: EnvironmentSource
    fresh: bool = False
    refresh: bool = False
    detailed: Environment | None = None
    gone_grace: float = 30.0
    domain_claimed_by: str | None = None
    backup_check_interval: float = 0.0
    backup_check_offset: float = 0.0
    backups_stale: bool = False
    restoring: str | None = None
    fields: FieldWrites = field(init=False)
    #: A refused write was recorded or held back in this reconcile (``status.refusedWrite`` stays).
    refused: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.fields = FieldWrites(self.status.refused_fields or (), self.api.key_id, self.ref.generation,
                                  self.requests, self.now, retry_after=self.slow_poll)

    @property
    def recorded_id(self) -> str | None:
        """The environment this resource already manages (status, else this process's memory)."""
        return self.status.environment_id or self.known_environment_id

    @property
    def reconciled_before(self) -> bool:
        """True when the current generation was reconciled already (a difference is then drift): its
        ``Ready`` condition was written by :func:`assess` for this generation. A condition stamped
        with it by a failed attempt (a transient error, a refusal) does not count: the user's change
        is still owed and is reported as ``Updated`` once applied."""
        ready = self.status.condition(READY) or {}
        return ready.get("observedGeneration") == self.ref.generation and ready.get("reason") in ASSESSED_REASONS

    @property
    def read_fresh(self) -> bool:
        """Read the environment now rather than from the project's list: a user's change (a new
        generation or a new token) or a webhook's refresh request, not a repeated or annotation-only
        run of a change handler."""
        owed = self.pending_redeploy or self.pending_recreate or self.pending_restart or self.pending_request
        return self.fresh and (not self.reconciled_before or bool(owed) or self.refresh
                               or self.requests.reconcile_token != self.status.last_handled_reconcile_at)

    @property
    def pending_recreate(self) -> str | None:
        """A recreate token not handled yet."""
        return _unhandled(self.requests.recreate_token, self.status.last_handled_recreate_at)

    @property
    def pending_redeploy(self) -> str | None:
        """A redeploy token not handled yet."""
        return _unhandled(self.requests.redeploy_token, self.status.last_handled_redeploy_at)

    @property
    def pending_restart(self) -> str | None:
        """A restart token (``oec.sh/restart-requested-at``) not handled yet."""
        return _unhandled(self.requests.restart_token, self.status.last_handled_restart_at)

    @property
    def pending_request(self) -> DeployRequest | None:
        """``spec.deploy.request`` when its ``id`` was not handled yet."""
        request = self.spec.deploy.request
        return request if request is not None and request.id != self.status.last_handled_deploy_request else None

    async def persist(self, update: Status) -> None:
        """Write ``update`` to the status now (an intent, before its action) and keep it in
        :attr:`status`.

        Raises:
            Whatever ``write`` raises (the action must then not be taken).
        """
        await self.write(update)
        self.status = self.status.merged(update)

    def hold_back(self, request: str, body: Mapping[str, Any], situation: Any = None) -> refusals.Prints:
        """Raise the remembered refusal of this write when nothing changed since
        (:mod:`oec_operator.domain.refusals`); else return the write's fingerprints
        (``situation``: what a read showed that could lift a refusal, e.g. the project's environments).

        Raises:
            OecError: the write was refused for good and would be refused again.
        """
        print_ = refusals.prints(request, body, self.api.key_id, self.ref.generation, self.requests, situation)
        known = refusals.held_back(self.status.refused_write, print_)
        if known is not None:
            self.refused = True
            raise known
        return print_

    async def attempt(self, request: str, body: Mapping[str, Any], send: Callable[[], Awaitable[T]],
                      situation: Any = None) -> T:
        """Send a write (``send()``) unless it was refused for good with nothing changed since;
        a new refusal for good is recorded in ``status.refusedWrite`` before it is raised.

        Raises:
            OecError: the API's answer, or the remembered one (nothing sent).
        """
        return await refusals.send_unless_refused(self.status.refused_write, self.hold_back(request, body, situation),
                                                  request, self.now, send, self._record_refusal)

    async def _record_refusal(self, refused: RefusedWrite) -> None:
        self.refused = True
        await self.persist(Status(refused_write=refused))

    async def queued(self, send: Awaitable[T], what: str) -> T:
        """Await a write queued for the API key's budget and, while it waits longer than the fast
        interval, say until when (``RateLimited``, :mod:`oec_operator.domain.waiting`); ``what``
        completes "waiting ... to <what>".

        Raises:
            Whatever ``send`` raises, or the status write of the message.
        """
        async def say(wait: float) -> None:
            message = (f"waiting until about {waiting.until(wait)} for the API key's write budget (OEC.sh rate "
                       f"limit) to {what}; nothing to do")
            conditions = [Condition(READY, "False", "RateLimited", message),
                          Condition(RECONCILING, "True", "RateLimited", message)]
            await self.persist(Status(conditions=tuple(merge_conditions(
                self.status.conditions, conditions, generation=self.ref.generation, now=self.now))))

        return await waiting.announced(send, estimate=lambda queued: self.api.budget_wait(write=True, queued=queued),
                                       say=say, threshold=self.fast_poll, every=max(1.0, self.fast_poll))

    def stall(self, reason: str, message: str) -> Outcome:
        """A stalled outcome looked at again after the steady interval."""
        return stalled_outcome(reason, message, next_poll=self.slow_poll)


def paused_outcome(ctx: Context) -> Outcome:
    """``oec.sh/paused: "true"``: no API call; only the ``Paused`` condition changes."""
    return Outcome(
        conditions=[Condition("Paused", "True", "Paused", "reconciliation is paused by the annotation oec.sh/paused")],
        next_poll=ctx.slow_poll,
    )


async def reconcile(ctx: Context) -> Outcome:
    """Reconcile once (see the module docstring).

    Returns:
        The :class:`Outcome`. Conditions that need a user change come back as stalled outcomes.

    Raises:
        OecError: transient and other API failures; the caller maps them with
            :func:`oec_operator.failures.error_outcome`.
    """
    if ctx.requests.paused:
        return paused_outcome(ctx)
    outcome = await _reconcile(ctx)
    if ctx.status.refused_write is not None and not ctx.refused:  # nothing refused any more
        outcome.status = outcome.status.merged(Status(refused_write=None))
    if ctx.requests.reconcile_token:
        outcome.status = outcome.status.merged(Status(last_handled_reconcile_at=ctx.requests.reconcile_token))
    return outcome


def _conflict(ctx: Context) -> Outcome | None:
    """A stall when this resource may not manage the environment it points at, else ``None``."""
    spec, recorded = ctx.spec, ctx.recorded_id
    if spec.environment_id and recorded and recorded != spec.environment_id:
        return ctx.stall(
            "Conflict",
            f"this resource manages environment {recorded} but spec.environmentId names {spec.environment_id}, "
            "and spec.environmentId cannot change once set; create a new OdooEnvironment to adopt the other "
            f"environment; to go on with {recorded}, set deletionPolicy: Orphan, delete this resource and "
            f"create it again with spec.environmentId: {recorded}",
        )
    if ctx.claimed_by:
        return ctx.stall(
            "Conflict",
            f"environment {recorded or spec.environment_id} is already managed by OdooEnvironment "
            f"{ctx.claimed_by}; only one resource may manage an environment",
        )
    return None


async def _reconcile(ctx: Context) -> Outcome:
    conflict = _conflict(ctx)
    if conflict is not None:
        return conflict
    target = ctx.recorded_id or ctx.spec.environment_id
    events: list[Event] = []
    extra = Settled()
    found = await _create(ctx, events, extra) if target is None else await _find(ctx, target, events, extra)
    if isinstance(found, Outcome):
        return found
    env, deployed = found, False
    hands_off = ctx.spec.observe_only or ctx.restoring is not None  # a restore runs: one task at a time
    if not hands_off:
        env, deployed = await _converge(ctx, env, events, extra)
    finished = await tasks.follow(ctx, env, extra, events)
    if finished is not None and not tasks.shown_by(env, finished[0]):
        env = await ctx.source.environment(env.id, fresh=True)  # the list's entry may predate the task's end
    pending = resources.settle(ctx.status.pending_resources, finished, None, extra, events)
    running = ctx.status.task is not None and finished is None
    if not (hands_off or deployed or running or extra.update.pending_deploy is not None):
        env = await tasks.start_next(ctx, env, extra, events, pending, finished)
    if deployed:  # the API accepted a deploy: it is under way, whatever the list showed before
        env = env.model_copy(update={"status": "deploying"})
    detailed = ctx.detailed
    if any(e.reason == "Created" for e in events) or (detailed is None and _status_shows(ctx.status, env)):
        detailed = env  # just created (nothing runs yet), or the status holds this entry's health
    read = await _read_health(ctx, env, detailed, deployed)
    if isinstance(read, Outcome):
        return read
    health, detailed, deferred = read
    if health is not None and health.status:
        env = env.model_copy(update={"status": health.status})
    log_tail = await _failure_log(ctx, env, health)
    if ctx.backups_stale or freshness.due(ctx.status.backups, env.created_at, interval=ctx.backup_check_interval,
                     offset=ctx.backup_check_offset):
        backups = await freshness.read_latest(ctx.api, env.id, ctx.now)  # docs/backups.md §5
        if backups is not None:
            extra.add(Status(backups=backups))
    outcome = Outcome(status=observed_status(env, health, ctx.now).merged(extra.update), detailed=detailed)
    assess(env, health, outcome, ctx.fast_poll, ctx.slow_poll)
    if extra.update.pending_deploy is not None:
        owe_deploy(outcome, extra.update.pending_deploy)
    if extra.update.pending_deploy is not None or deployed:
        outcome.next_poll = ctx.fast_poll  # a deploy is owed or was just started
    if deferred is not None:  # try the detail again once the budget frees up, spread out
        outcome.next_poll = min(outcome.next_poll, max(ctx.fast_poll, deferred * random.uniform(1.0, 2.0)))  # noqa: S311
    outcome.events = events + phase_events(ctx.status.phase, env, health, log_tail)
    pending = resources.settle(pending, None, health, extra, outcome.events)
    outcome.status = outcome.status.merged(extra.update).merged(Status(refused_fields=ctx.fields.status()))
    task = extra.update.task if "task" in extra.update.model_fields_set else ctx.status.task
    assess_day2(ctx.spec, ctx.status, env, Day2(task=task, pending=pending, refused=ctx.fields.message(),
                                                invalid="; ".join(ctx.fields.invalid) or None,
                                                domain_claimed_by=ctx.domain_claimed_by,
                                                restoring=ctx.restoring,
                                                domain_refused=any(r.endswith(" domain") for r in ctx.fields.refused)),
                outcome, ctx.fast_poll)
    if extra.update.pending_deploy is not None:  # Ready=True Stopped is not ready while a deploy is owed
        owe_deploy(outcome, extra.update.pending_deploy)
    if task is not None and not outcome.failed:  # read a long task a handful of times, not every fast poll
        outcome.next_poll = tasks.next_read(task, ctx.fast_poll, ctx.slow_poll)
    return outcome


async def _read_health(ctx: Context, env: Environment, detailed: Environment | None,
                       deployed: bool) -> tuple[EnvironmentHealth | None, Environment | None, float | None] | Outcome:
    """Read ``GET /environments/{id}/status`` when the source wants it (or after a deploy we
    started, where the read is part of it; otherwise it is a detail that may wait).

    Returns:
        ``(health or None, the environment as last detailed, seconds until the detail is worth
        reading again or None)``, or the outcome of an environment that is gone: the read answered
        404 and the project's list, read now, no longer shows it. A 404 while the list still shows
        it, or within the grace period after the create, is a detail lagging behind: read again soon.
    """
    if not (deployed or ctx.source.wants_detail(env, detailed)):
        return None, detailed, None
    api = ctx.api if deployed else ctx.api.with_priority(Priority.DETAIL)
    try:
        health = await api.get_environment_status(env.id)
    except OecNotFoundError:
        if await _still_listed(ctx, env):
            return None, detailed, ctx.fast_poll
        return _gone(ctx, env.id)
    except OecRateLimitError as exc:
        return None, detailed, exc.retry_after
    except OecError:
        return None, detailed, None  # health is informative; the environment itself was read fine
    return health, None if deployed else env, None


async def _still_listed(ctx: Context, env: Environment) -> bool:
    """After a detail read of ``env`` answered 404: whether that may be a lag rather than a
    deletion (within the grace period after the create, the project's list read now still shows
    it, or that list cannot be read now)."""
    if _in_grace(ctx, env):
        return True
    try:
        return await ctx.source.listed(env.id) is not None
    except OecError:
        return True  # no second observation: read again soon


def _status_shows(status: Status, env: Environment) -> bool:
    """Whether ``status`` already holds the health of ``env`` as it is now (read in the same phase,
    nothing changed since): then a restarted operator need not read it again."""
    return (status.health is not None and status.health.phase == env.status == status.phase
            and status.updated_at == env.updated_at and status.branch == env.branch)


async def _create(ctx: Context, events: list[Event], extra: Settled) -> Environment | Outcome:
    """Create the environment: refuse a same-named one we did not create, record the request, POST.

    The request (key and body) is written to ``status.createRequest`` before the POST and replayed
    unchanged after a crash, so the API's idempotency cache answers it even in its strict mode
    (a different body under the same key is refused there, ``docs/oec-api.md`` §1 decision 5).
    A definitive refusal (:func:`refused_create`) of the first POST under the key drops the
    request, so a deletion sends nothing; a refused replay keeps it, since the earlier attempt's
    outcome is unknown (an API that checks the key or the quota before its idempotency cache
    refuses the replay of a create that did happen).
    """
    spec, api = ctx.spec, ctx.api
    if spec.observe_only:
        return ctx.stall("InvalidSpec", "managementPolicy Observe needs spec.environmentId")
    recorded = None if ctx.status.environment_id else ctx.status.create_request
    first = recorded is None  # no earlier POST under this key can have created anything
    recreate = ctx.pending_recreate
    request = recorded or CreateRequest(key=create_key(ctx.ref.uid, recreate), name=spec.display_name(ctx.ref.name),
                                        environment_type=spec.environment_type, branch=spec.branch,
                                        requested_at=ctx.now, **spec.resources.api_fields())
    listed: list[Environment] | None = None
    if recorded is None:
        try:
            listed = await ctx.source.environments()
        except OecNotFoundError:
            return _unknown_project(ctx)
        same = [e.id for e in listed if e.name == request.name]
        if same:
            return ctx.stall(
                "Conflict",
                f"OEC.sh project {spec.project_id} already has an environment named {request.name!r} "
                f"({', '.join(same)}); set spec.environmentId: {same[0]} to adopt it, or choose another spec.name",
            )
    write = _create_write(spec.project_id, request)
    # The project's environments: removing one may free the quota that refused the create.
    situation = None if listed is None else sorted(env.id for env in listed)
    ctx.hold_back(*write, situation)  # refused for good and nothing changed: not again
    try:
        if recorded is None:
            await ctx.persist(Status(create_request=request, environment_id=None))
        # Say at once when the POST waits for the write budget, and keep saying until when.
        env = await ctx.queued(ctx.attempt(*write, lambda: replay_create(api, spec.project_id, request), situation),
                               "create the environment")
        ctx.source.record(env)
    except OecError as exc:
        forget = first and refused_create(exc)
        if isinstance(exc, OecNotFoundError):
            outcome = _unknown_project(ctx)
            if forget:
                outcome.status = Status(create_request=None)
            return outcome
        if forget:  # the caller reports the refusal; the request is dropped first, a deletion sends nothing
            await ctx.persist(Status(create_request=None))
        raise
    events.append(Event("Normal", "Created", f"created OEC.sh environment {env.id} ({env.name})"))
    extra.add(Status(create_request=None))
    # The create deploys and starts the environment: requests made with it are answered.
    if ctx.pending_request is not None:
        extra.add(Status(last_handled_deploy_request=ctx.pending_request.id))
    if ctx.pending_restart:
        extra.add(Status(last_handled_restart_at=ctx.pending_restart))
    if recreate:
        extra.add(Status(last_handled_recreate_at=recreate))
    return env


def _unknown_project(ctx: Context) -> Outcome:
    return ctx.stall(
        "InvalidSpec",
        f"OEC.sh project {ctx.spec.project_id} does not exist or is not visible to this API key; "
        "check the credentials, or delete this resource and create one with a valid projectId",
    )


def _create_write(project_id: str, request: CreateRequest) -> tuple[str, dict[str, Any]]:
    """The create as a write to remember a refusal of (:meth:`Context.attempt`)."""
    body = request.model_dump(exclude={"requested_at"})
    return f"POST /projects/{project_id}/environments", {k: v for k, v in body.items()
                                                         if v is not None or k not in resources.SIZE_FIELDS}


def refused_create(exc: OecError) -> bool:
    """Whether the answer to a create proves that it created nothing: a definitive 4xx (400, 401,
    402, 403, 404, 422 but ``idempotency_key_mismatch``, which says an earlier request under the key
    was accepted). Timeouts, lost connections, 5xx, 429 and 409 (``concurrent_action``: the first
    request may still be running) prove nothing (``docs/oec-api.md`` §5.3, §7)."""
    if exc.status is None or exc.status in (409, 429) or not 400 <= exc.status < 500:
        return False
    return exc.code != "idempotency_key_mismatch"


async def replay_create(api: OecClient, project_id: str, request: CreateRequest) -> Environment:
    """``POST /projects/{id}/environments`` exactly as recorded in ``status.createRequest``; a
    repeat within 24 h creates nothing (``docs/oec-api.md`` §7).

    Raises:
        OecError: any API failure.
    """
    return await api.create_environment(
        project_id,
        name=request.name,
        environment_type=request.environment_type,
        branch=request.branch,
        idempotency_key=request.key,
        **request.model_dump(include={"cpu_cores", "ram_mb", "disk_gb"}, exclude_none=True),
    )


async def _find(ctx: Context, target: str, events: list[Event], extra: Settled) -> Environment | Outcome:
    """Read the known or adopted environment; a vanished one (the source's 404 needs the project's
    list and a direct read to agree) is recreated only on request.

    Adopting (``spec.environmentId``, nothing recorded yet) reads it directly; a 404 there while a
    list of the project started after that read shows it is a read lagging behind the create
    (``docs/oec-api.md`` §1 row 30): it is adopted from the listed entry. Only when both agree is
    the id called nonexistent (``Stalled InvalidSpec``, ``docs/reconciliation.md``, Decisions: Adopt).
    """
    spec = ctx.spec
    adopting = not ctx.status.environment_id and spec.environment_id == target
    try:
        env = await ctx.source.environment(target, fresh=ctx.read_fresh or adopting)
    except OecNotFoundError:
        if adopting:
            return ctx.stall(
                "InvalidSpec",
                f"spec.environmentId {target} does not exist or is not visible to this API key "
                f"(GET /environments/{target} answered 404 and project {spec.project_id} does not list it); "
                "check the credentials, or delete this resource and create one with a valid spec.environmentId",
            )
        if ctx.pending_recreate and not spec.observe_only and not spec.environment_id:
            return await _create(ctx, events, extra)
        return _gone(ctx, target)
    if adopting:
        if env.project_id and env.project_id != spec.project_id:
            return ctx.stall(
                "InvalidSpec",
                f"environment {target} belongs to project {env.project_id}, not spec.projectId {spec.project_id}",
            )
        if not spec.observe_only:
            events.append(Event("Normal", "Adopted", f"took over OEC.sh environment {env.id} ({env.name})"))
    if ctx.pending_recreate:
        extra.add(Status(last_handled_recreate_at=ctx.pending_recreate))  # it exists: nothing to recreate
    return env


async def _converge(ctx: Context, env: Environment, events: list[Event],
                    extra: Settled) -> tuple[Environment, bool]:
    """PATCH what differs from the spec (name and branch, then size and domain), then deploy when a
    branch changed, a redeploy or a deploy request is asked.

    Returns:
        The environment after the PATCH, and whether a deploy was started.
    """
    spec, api = ctx.spec, ctx.api
    pending = ctx.status.pending_deploy
    changes = desired_changes(spec, ctx.ref.name, env)
    if changes and env.status not in ("destroying", "deleted"):
        if "branch" in changes and spec.deploy_policy == "OnChange":
            # A new deploy even when one is owed already: under the old key the API may have
            # accepted a deploy of the previous branch, and a replay would answer with that one.
            pending = PendingDeploy(key=f"oec-operator-deploy-{uuid.uuid4()}",
                                    reason=f"branch changed to {changes['branch']}", requested_at=ctx.now,
                                    update_modules=spec.deploy.update_modules,
                                    blocked_by=pending.blocked_by if pending else None)  # still waits for it
            await ctx.persist(Status(pending_deploy=pending))
        before, patched = env, env.id
        env = await ctx.attempt(f"PATCH /environments/{patched}", changes,
                                lambda: api.update_environment(patched, **changes))
        ctx.source.record(env)
        listed = ", ".join(f"{k} {getattr(before, k)!r} -> {v!r}" for k, v in sorted(changes.items()))
        if ctx.reconciled_before:
            events.append(Event("Normal", "DriftCorrected", f"set back what changed outside Kubernetes: {listed}"))
        else:
            events.append(Event("Normal", "Updated", f"updated OEC.sh environment {env.id}: {listed}"))
    # Size and domain before a deploy, so that the deploy applies the size (docs/oec-api.md §11.2).
    env = await resources.converge_size(ctx, env, events)
    env = await resources.converge_domain(ctx, env, events)
    redeploy = ctx.pending_redeploy
    if redeploy and not pending:
        # The key also names the token handled before: a token used again later is a new redeploy.
        previous = ctx.status.last_handled_redeploy_at or ""
        pending = PendingDeploy(key=f"oec-operator-redeploy-{ctx.ref.uid}-{_digest(previous + chr(0) + redeploy)}",
                                reason=f"redeploy requested ({redeploy})", requested_at=ctx.now,
                                update_modules=spec.deploy.update_modules)
        await ctx.persist(Status(pending_deploy=pending))
    request = ctx.pending_request
    if request is not None and request.mode == "Deploy" and (pending is None or pending.request_id != request.id):
        # One deploy per request id (its key names the id, and the id handled before it, so that an
        # id used again later is not answered from the first one's replay); a deploy already owed is folded in.
        reason = f"deploy requested ({request.id})" + (f"; {pending.reason}" if pending else "")
        modules = request.update_modules or spec.deploy.update_modules
        token = "\0".join((ctx.status.last_handled_deploy_request or "", request.id))
        pending = PendingDeploy(key=f"oec-operator-deploy-{ctx.ref.uid}-{_digest(token)}", reason=reason,
                                requested_at=ctx.now, update_modules=modules, request_id=request.id,
                                blocked_by=pending.blocked_by if pending else None)
        await ctx.persist(Status(pending_deploy=pending))
    if not pending:
        return env, False
    if ctx.status.task is not None:  # our own task runs (tasks.follow reads it): a deploy now gets a 409
        extra.add(Status(pending_deploy=pending.model_copy(update={"blocked_by": ctx.status.task.id})))
        return env, False
    if await _task_running(ctx, env, pending):
        extra.add(Status(pending_deploy=pending))  # deploy once that task ended
        return env, False
    target, owed = env.id, pending
    try:
        accepted = await ctx.attempt(f"POST /environments/{target}/deploy", {"key": owed.key, "phase": env.status},
                                     lambda: api.deploy(target, idempotency_key=owed.key,
                                                        update_modules=list(owed.update_modules or ()) or None))
    except OecConflictError as exc:
        if exc.code not in ("task_in_progress", "invalid_state", "concurrent_action"):
            raise
        # Another task runs (wait for the one the API named) or the phase forbids a deploy
        # (kept as a refusal until the phase changes): deploy later.
        extra.add(Status(pending_deploy=pending.model_copy(update={"blocked_by": exc.task_id})))
        return env, False
    extra.add(Status(pending_deploy=None))
    if redeploy:
        extra.add(Status(last_handled_redeploy_at=redeploy))
    if pending.request_id:
        extra.add(Status(last_handled_deploy_request=pending.request_id))
    updating = f"; updating modules {', '.join(pending.update_modules)}" if pending.update_modules else ""
    events.append(Event("Normal", "DeployStarted",
                        f"deploy task {accepted.task_id} started: {pending.reason}{updating}"))
    return env, True


async def _task_running(ctx: Context, env: Environment, pending: PendingDeploy) -> bool:
    """Whether a task still runs on the environment, so that the owed deploy would be refused
    (one task at a time, 409 ``task_in_progress``, ``docs/oec-api.md`` §11.3, §1 row 19).

    ``deploying``, ``cloning`` and ``destroying`` say so themselves. ``pending`` does not (a
    create without a server queues no task, row 12, and a deploy is allowed then), nor do tasks
    that leave the phase alone (restart, start, stop); for those the deploy is sent once, and a
    409 names the task (``pending.blocked_by``): it is read (``GET /deployments/{id}``, a read)
    until it ended.
    """
    if env.status in TRANSITIONAL_STATES - {"pending"}:
        return True
    if not pending.blocked_by:
        return False
    try:
        task = await ctx.api.get_task(pending.blocked_by)
    except OecNotFoundError:
        return False
    return not task.finished


async def _failure_log(ctx: Context, env: Environment, health: EnvironmentHealth | None) -> str | None:
    """The last lines of a deploy log that just failed (for the DeployFailed Event)."""
    if env.status not in ("failed", "error") or ctx.status.phase == env.status:
        return None
    task = health.last_deploy.id if health and health.last_deploy else None
    try:
        log = await ctx.api.with_priority(Priority.DETAIL).get_logs(env.id, task_id=task, lines=5)
    except OecError:
        return None
    return " | ".join(line for line in log.log.splitlines()[-5:] if line.strip())[:1000] or None


def _gone(ctx: Context, environment_id: str) -> Outcome:
    """The recorded environment is absent from the project's list and answers 404: deleted outside
    Kubernetes, unless it was created less than ``ctx.gone_grace`` seconds ago (then it is read
    again soon, :func:`_unconfirmed`). Never recreated silently."""
    if _in_grace(ctx):
        return _unconfirmed(ctx, environment_id)
    outcome = ctx.stall(
        "ExternallyDeleted",
        f"OEC.sh environment {environment_id} no longer exists (deleted outside Kubernetes); set the annotation "
        "oec.sh/recreate-requested-at to a new value to create a new one, or delete this resource",
    )
    outcome.status = Status(phase="deleted", health=None)
    return outcome


def _unconfirmed(ctx: Context, environment_id: str) -> Outcome:
    """A 404 that does not prove the environment gone yet: keep it as known, read again after the
    fast interval, no Event. A user's change stays owed: no condition is written for a generation
    not reconciled yet (a condition's ``observedGeneration`` would make its PATCH look like drift)."""
    outcome = Outcome(next_poll=ctx.fast_poll, failed=True, transient=True)
    if ctx.reconciled_before:
        outcome.conditions = [Condition(RECONCILING, "True", "ProgressingWithRetry",
                                        f"OEC.sh environment {environment_id} answered 404 within "
                                        f"{ctx.gone_grace:.0f}s of its create; reading it again")]
        outcome.remove = (STALLED,)
    return outcome


def _created_age(ctx: Context, env: Environment | None = None) -> float | None:
    """Seconds since the environment's create by the latest evidence, ``None`` when unknown.

    Evidence: the API's ``createdAt`` (in the status, so it survives a restart, or in ``env``) and
    the operator's own ``createRequest.requestedAt`` (still recorded when the status write after the
    create failed), against the operator's clock; the later stamp counts. An operator clock
    behind the API's lengthens the grace by the skew, one ahead shortens it (keep both on NTP).
    """
    request = ctx.status.create_request
    stamps = (ctx.status.created_at, env.created_at if env else None, request.requested_at if request else None)
    ages = [age for age in map(seconds_since, stamps) if age is not None]
    return min(ages, default=None)  # the latest stamp


def _in_grace(ctx: Context, env: Environment | None = None) -> bool:
    age = _created_age(ctx, env)
    return age is not None and age < ctx.gone_grace


def deletion_action(spec: OdooEnvironmentSpec, requests: Requests, *, crd_deleting: bool) -> str:
    """What deleting the resource does to its environment: ``"orphan"``, ``"wait"`` (paused) or
    ``"delete"`` (``docs/reconciliation.md``, Decisions: Delete)."""
    if spec.observe_only or spec.deletion_policy == "Orphan" or crd_deleting:
        return "orphan"
    if requests.paused:
        return "wait"
    return "delete"


async def created_environment(api: OecClient, project_id: str, request: CreateRequest) -> str | None:
    """The id of an environment whose create may have happened without its id being recorded.

    Replays the recorded create (:func:`replay_create`): within 24 h the API answers with the
    first result and creates nothing; if the first POST never arrived this creates it now, and the
    caller deletes it.

    Returns:
        The environment id, or ``None`` when the API refuses the create (nothing exists then: a
        create accepted under this key within 24 h would be answered from the idempotency cache).

    Raises:
        OecError: any other failure, ``409 concurrent_action`` included (the first request may
            still be running: ask again).
    """
    try:
        env = await replay_create(api, project_id, request)
    except OecConflictError as exc:
        if exc.code != "name_conflict":
            raise
        return None
    except (OecNotFoundError, OecValidationError):
        return None
    return env.id


async def finalize(api: OecClient, environment_id: str,
                   send_delete: Callable[[], Awaitable[object]] | None = None,
                   running_task: str | None = None, on_blocked: Callable[[str], object] | None = None) -> str:
    """One step of deleting the environment; call until it returns ``"gone"``.

    Reads the environment first, so a DELETE is sent only once and never while a task runs
    (each refused DELETE would spend the key's write budget, ``docs/oec-api.md`` §6):
    404 -> ``"gone"``; ``destroying`` -> ``"destroying"``; a deploy or other task still running
    (``pending``, ``deploying``, ``cloning``) -> ``"waiting"``; otherwise ``DELETE`` with
    ``X-Confirm-Delete: true`` -> ``"destroying"`` (a 404 answer -> ``"gone"``; a
    ``409 task_in_progress`` -> ``"waiting"``), ``docs/oec-api.md`` §1 decisions 3 and 19.

    ``send_delete`` sends the DELETE (default: :meth:`OecClient.delete_environment`; the deletion
    passes one that holds back a DELETE refused for good, :mod:`oec_operator.domain.refusals`).
    ``running_task``: a task the operator started that leaves the phase alone (``status.task``: a
    stop, start, restart or quick update, or the task a 409 named before); while it runs ->
    ``"waiting"`` without a DELETE. ``on_blocked(task_id)`` hears of the task a 409 names.

    Raises:
        OecError: any other API failure.
    """
    try:
        env = await api.get_environment(environment_id)
    except OecNotFoundError:
        return "gone"
    if env.status == "destroying":
        return "destroying"
    if env.status in TRANSITIONAL_STATES:
        return "waiting"
    if running_task is not None:
        try:
            if not (await api.get_task(running_task)).finished:
                return "waiting"
        except OecNotFoundError:
            pass  # the API no longer knows the task: nothing to wait for
    try:
        await (send_delete or (lambda: api.delete_environment(environment_id)))()
    except OecNotFoundError:
        return "gone"
    except OecConflictError as exc:
        if exc.code != "task_in_progress":
            raise
        if exc.task_id and on_blocked is not None:
            on_blocked(exc.task_id)
        return "waiting"
    return "destroying"
