"""Tasks the operator starts that leave the environment's phase alone: a quick update, a restart,
a start or a stop (``docs/reconciliation.md``, Power state and requests).

One task at a time runs on an environment (409 ``task_in_progress``, ``docs/oec-api.md`` §11.3), and
these tasks do not show in the environment's status while they run (a stop leaves it ``running``
until it is done). So a task the operator started is kept in ``status.task`` and read
(``GET /deployments/{id}``) until it ended; nothing else is sent meanwhile. Then the next owed task
is chosen, in this order: a quick-update request (``spec.deploy.request`` with a quick-update
mode), a restart (the annotation ``oec.sh/restart-requested-at``, or a size that applies on
restart), the power state (``spec.powerState``). A deploy is not one of them: it moves the phase and
is owed through ``status.pendingDeploy`` (:mod:`oec_operator.domain.reconcile`).

Every task goes out with an ``Idempotency-Key`` that names what it answers (the request id, the
token, the time the size was sent, or the environment's ``updated_at`` for a start or stop), so a
lost answer is asked again under the same key and never starts a second task.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from oec_operator.domain.outcome import Event
from oec_operator.models.conditions import seconds_since
from oec_operator.models.status import PendingResources, Status, TaskRef
from oec_operator.oec.errors import OecConflictError, OecNotFoundError, OecRateLimitError
from oec_operator.oec.models import ActionAccepted, Environment
from oec_operator.oec.ratelimit import Priority

if TYPE_CHECKING:
    from oec_operator.domain.reconcile import Context, Settled

#: What each task is called in Events: (requested, completed, failed) reasons.
EVENT_REASONS = {
    "quick_update": ("QuickUpdateStarted", "QuickUpdated", "QuickUpdateFailed"),
    "restart": ("RestartRequested", "Restarted", "RestartFailed"),
    "start": ("StartRequested", "Started", "StartFailed"),
    "stop": ("StopRequested", "Stopped", "StopFailed"),
}
#: ``status.task.action`` of a task the API named in a 409 that someone else started.
OTHER = "other"


def task_key(action: str, uid: str, token: str) -> str:
    """``Idempotency-Key`` of one task: the action, the resource's UID and what it answers."""
    return f"oec-operator-{action.replace('_', '-')}-{uid}-{hashlib.sha256(token.encode()).hexdigest()[:16]}"


@dataclass(frozen=True)
class Owed:
    """The next task owed: the API call and what it settles once accepted.

    Attributes:
        action: ``quick_update``, ``restart``, ``start`` or ``stop``.
        key: its ``Idempotency-Key``; reason: said in its Event and condition.
        handled: the status fields it settles (a handled token or request id).
        mode / modules: a quick update's ``mode`` and ``modules``.
    """

    action: str
    key: str
    reason: str
    handled: Status
    mode: str | None = None
    modules: tuple[str, ...] | None = None


#: The phase each task leaves when it completed: seen in the project's list, it needs no task read.
END_PHASES = {"stop": "stopped", "start": "running"}


def shown_by(env: Environment, action: str) -> bool:
    """Whether the environment's phase shows that a ``start`` or ``stop`` completed (these tasks
    leave the phase alone until they end, ``docs/oec-api.md`` §10)."""
    return END_PHASES.get(action) == env.status


def next_read(ref: TaskRef, fast: float, slow: float) -> float:
    """Seconds until the running task is read again: the task's age, between the fast and the
    steady interval (a task that takes minutes is read a handful of times, not every fast poll;
    the project's list, polled fast meanwhile, wakes the resource when the environment changes)."""
    age = seconds_since(ref.requested_at) or 0.0
    return max(fast, min(slow, age))


async def follow(ctx: Context, env: Environment, extra: Settled,
                 events: list[Event]) -> tuple[str, str, str | None] | None:
    """Whether the task in ``status.task`` ended: a start or stop whose end phase the environment
    shows did; otherwise the task is read (``GET /deployments/{id}``, a detail read: when the key's
    read budget is short it is read later). While it runs nothing else is sent; once it ended it
    is cleared and reported (an Event; a failure as a Warning with the API's message).

    Returns:
        ``(action, final task status, requested at)`` of a task that ended now, else ``None``.

    Raises:
        OecError: the read failed (the task stays recorded).
    """
    ref = ctx.status.task
    if ref is None:
        return None
    error: str | None = None
    if shown_by(env, ref.action):
        state = "completed"
    else:
        try:
            task = await ctx.api.with_priority(Priority.DETAIL).get_task(ref.id)
        except OecNotFoundError:
            state = "unknown"  # the API no longer knows the task: nothing to wait for
        except OecRateLimitError:
            return None  # no read budget to spare now: read it at the next poll
        else:
            if not task.finished:
                return None
            state, error = task.status, task.error_message
    extra.add(Status(task=None))
    if ref.action in EVENT_REASONS:
        _, done, failed = EVENT_REASONS[ref.action]
        if state == "completed":
            events.append(Event("Normal", done, f"task {ref.id} completed: {ref.reason}"))
        else:
            events.append(Event("Warning", failed, f"task {ref.id} ({ref.reason}) ended {state}"
                                + (f": {error}" if error else "")))
    return ref.action, state, ref.requested_at


def owed(ctx: Context, env: Environment, pending: PendingResources | None) -> list[Owed]:
    """The tasks the spec and annotations ask for, in the order they go out (one at a time),
    given the environment's phase and the size still pending (``pending``): a quick-update
    request, a restart (token or size), the power state.

    Only in ``running`` and ``stopped``: a transitional phase is waited for, ``failed``/``error``
    need a deploy, and ``paused`` is the platform's (never started by the operator).
    """
    uid, request, restart = ctx.ref.uid, ctx.pending_request, ctx.pending_restart
    quick = request if request is not None and request.mode != "Deploy" else None
    # A key names the request id or token and the one handled before it: one used again later is
    # a new request, not a replay of the first one's answer.
    after_request = ctx.status.last_handled_deploy_request or ""
    after_restart = ctx.status.last_handled_restart_at or ""
    tasks: list[Owed] = []
    if env.status == "running":
        if quick is not None:
            tasks.append(Owed("quick_update", task_key("quick-update", uid, f"{after_request}\0{quick.id}"),
                              f"{quick.mode} requested ({quick.id})", Status(last_handled_deploy_request=quick.id),
                              mode=quick.api_mode,
                              modules=quick.update_modules if quick.mode.endswith("Specific") else None))
        # A size is not applied by a restart just before a stop: the next start applies it.
        resize = pending is not None and ctx.spec.resize_policy == "Restart" and ctx.spec.power_state == "Running"
        if restart or resize:
            token = f"{after_restart}\0{restart}" if restart else f"resize {pending.since if pending else ''}"
            reason = f"restart requested ({restart})" if restart else "restart to apply the new size"
            tasks.append(Owed("restart", task_key("restart", uid, token), reason,
                              Status(last_handled_restart_at=restart) if restart else Status()))
        if ctx.spec.power_state == "Stopped":
            tasks.append(Owed("stop", task_key("stop", uid, env.updated_at or ""), "spec.powerState is Stopped",
                              Status()))
    elif env.status == "stopped" and ctx.spec.power_state == "Running":
        handled = Status(last_handled_restart_at=restart) if restart else Status()  # a start is a restart
        tasks.append(Owed("start", task_key("start", uid, env.updated_at or ""), "spec.powerState is Running",
                          handled))
    return tasks


def skipped(ctx: Context, env: Environment, extra: Settled, events: list[Event]) -> None:
    """Requests that cannot run on an environment stopped on purpose (``spec.powerState:
    Stopped``): a restart or a quick update is marked handled with an Event saying why, so that
    a stopped environment stays ``Ready``."""
    if env.status != "stopped" or ctx.spec.power_state != "Stopped":
        return
    if ctx.pending_restart:
        extra.add(Status(last_handled_restart_at=ctx.pending_restart))
        events.append(Event("Normal", "RestartSkipped", "the environment is stopped (spec.powerState: Stopped); "
                                                        "nothing to restart"))
    request = ctx.pending_request
    if request is not None and request.mode != "Deploy":
        extra.add(Status(last_handled_deploy_request=request.id))
        events.append(Event("Warning", "RequestSkipped", f"{request.mode} request {request.id} not run: the "
                            "environment is stopped (spec.powerState: Stopped); use mode Deploy or start it"))


def task_request(env: Environment, task: Owed) -> str:
    """The write a task is, as refusals name it: ``POST /environments/{id}/<action>``."""
    return f"POST /environments/{env.id}/{task.action.replace('_', '-')}"


def _send(ctx: Context, env_id: str, task: Owed) -> Callable[[], Awaitable[ActionAccepted]]:
    api = ctx.api
    if task.action == "quick_update":
        modules = list(task.modules) if task.modules else None
        return lambda: api.quick_update(env_id, mode=task.mode or "pull_restart", modules=modules,
                                        idempotency_key=task.key)
    action = {"restart": api.restart, "start": api.start, "stop": api.stop}[task.action]
    return lambda: action(env_id, idempotency_key=task.key)


async def start_next(ctx: Context, env: Environment, extra: Settled, events: list[Event],
                     pending: PendingResources | None,
                     finished: tuple[str, str, str | None] | None = None, *, refreshed: bool = False) -> Environment:
    """Send the first owed task (:func:`owed`) that can go out and record it in ``status.task``; one
    refused (now or before) or invalid does not hold back the next (a broken request in Git never
    cancels the nightly stop). A 409 ``task_in_progress`` records the task the API named instead,
    to wait for its end.

    ``finished``: the operator's task that ended in this reconcile (:func:`follow`). When it
    failed or was cancelled and the same action is owed again for no new token or request id
    (a start, a stop, a restart for a size), it is not sent again (under the
    same key the API would only replay the failed task, at every poll; under a new one it would
    loop): it is held back like a refused write until something changes (the spec, a token, the
    API key or the environment), and the resource stalls with the task's end.

    A task whose key is the one last accepted (``status.lastTaskKey``) is not sent: the API would
    only replay that task, and the environment it was chosen from (the project's list) predates
    its end; the environment is read afresh instead.

    Returns:
        The environment, read afresh when the list's entry was found older than the last task.

    Raises:
        OecError: a transient failure (a refusal for good stalls the field instead).
    """
    skipped(ctx, env, extra, events)
    for task in owed(ctx, env, pending):  # one that cannot go out does not hold back the next one
        request = ctx.spec.deploy.request
        if task.action == "quick_update" and request and request.mode == "ReinitializeSpecific" and (
                request.confirm != env.name):
            ctx.fields.invalid.append(
                f"spec.deploy.request.confirm must be the environment's name {env.name!r} to reinitialize modules "
                "(odoo -i can reset their data)")
            continue
        body = {"key": task.key, "phase": env.status, "mode": task.mode, "modules": list(task.modules or ())}
        write = task_request(env, task)
        if (finished is not None and finished[0] == task.action and finished[1] in ("failed", "cancelled")
                and not task.handled.model_fields_set):  # a new token or request id is sent all the same
            retry = ("a new oec.sh/restart-requested-at, " if task.action == "restart" else "") + (
                "a spec change or a new oec.sh/reconcile-requested-at")
            ctx.fields.hold(write, body, 202, f"task_{finished[1]}",
                            f"the {task.action.replace('_', ' ')} task ended {finished[1]}; not sent again until "
                            f"{retry} (see the {EVENT_REASONS[task.action][2]} Event)")
            continue
        if task.key == ctx.status.last_task_key and not ctx.fields.remembers(write):
            if refreshed:
                continue  # done under this key already; the API shows nothing newer yet
            fresh = await ctx.source.environment(env.id, fresh=True)
            return await start_next(ctx, fresh, extra, events, pending, finished, refreshed=True)
        try:
            what = f"{task.action.replace('_', ' ')} the environment ({task.reason})"
            accepted = await ctx.queued(ctx.fields.send(write, body, _send(ctx, env.id, task)), what)
        except OecConflictError as exc:
            if exc.code != "task_in_progress" or not exc.task_id:
                raise
            extra.add(Status(task=TaskRef(id=exc.task_id, action=OTHER,
                                          reason="a task started outside this resource", requested_at=ctx.now)))
            return env
        if accepted is None:
            continue  # refused (now or before): the next owed task goes out all the same
        extra.add(task.handled)
        extra.add(Status(last_task_key=task.key))
        extra.add(Status(task=TaskRef(id=accepted.task_id, action=task.action, reason=task.reason,
                                      requested_at=ctx.now)))
        events.append(Event("Normal", EVENT_REASONS[task.action][0],
                            f"task {accepted.task_id} started: {task.reason}"))
        return env
    return env
