"""Size and custom domain: PATCH what differs from ``spec.resources`` and ``spec.domain``, and know
which size the environment runs with (``docs/reconciliation.md``, Size and domain).

``PATCH /environments/{id}`` takes ``cpu_cores``, ``ram_mb``, ``disk_gb`` and ``domain``; a size
takes effect only at the next deploy, restart or start (``docs/oec-api.md`` §11.2), and the
environment object may show the new size at once. So the size sent is recorded first in
``status.pendingResources`` (with the time it was sent), ``status.cpuCores``/``ramMb``/``diskGb``
keep the size the environment runs with, and the pending size becomes the applied one when a task
that restarts the environment completes after it was sent. Each field is its own write
(:mod:`oec_operator.domain.fieldwrites`): an API that refuses ``domain`` or caps RAM stalls that
field only.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING

from oec_operator.domain.outcome import Event
from oec_operator.models.status import PendingResources, Status
from oec_operator.oec.models import Environment, EnvironmentHealth

if TYPE_CHECKING:
    from oec_operator.domain.reconcile import Context, Settled

#: The size fields as the API names them (``docs/oec-api.md`` §11.2).
SIZE_FIELDS = ("cpu_cores", "ram_mb", "disk_gb")
#: Tasks whose completion applies a size sent before them (``docs/oec-api.md`` §11.2).
RESTARTING_ACTIONS = frozenset({"restart", "start", "quick_update", "deploy"})


def size_changes(desired: Mapping[str, float | int], env: Environment,
                 pending: PendingResources | None) -> dict[str, float | int]:
    """The size fields to PATCH: those of ``desired`` (``Resources.api_fields()``) that differ from
    what was last asked for: the PATCH still pending for the field, else the environment's value
    (an API that shows the running size until a restart must not get the same PATCH at every
    poll, nor keep a pending size that the spec reverted to the running one)."""
    changes: dict[str, float | int] = {}
    confirmed = pending is not None and not pending.unconfirmed
    for name, value in desired.items():
        asked = getattr(pending, name) if confirmed else None
        if (asked if asked is not None else getattr(env, name)) == value:
            continue
        changes[name] = value
    return changes


async def converge_size(ctx: Context, env: Environment, events: list[Event]) -> Environment:
    """PATCH each size field that differs; the size sent is recorded in ``status.pendingResources``
    before it is sent (so a status write lost after the PATCH cannot make the new size look
    applied).

    Returns:
        The environment as the last PATCH answered it.

    Raises:
        OecError: a transient failure (a refusal for good stalls the field instead).
    """
    previous = ctx.status.pending_resources
    if previous is not None and previous.applies_on != ctx.spec.resize_policy:  # the policy changed meanwhile
        previous = previous.model_copy(update={"applies_on": ctx.spec.resize_policy})
        await ctx.persist(Status(pending_resources=previous))
    changes = size_changes(ctx.spec.resources.api_fields(), env, previous)
    if not changes or env.status in ("destroying", "deleted"):
        if previous is not None and previous.unconfirmed and not changes:  # the environment shows them
            await ctx.persist(Status(pending_resources=previous.model_copy(update={"unconfirmed": None})))
        return env
    kept = previous.model_dump(include=set(SIZE_FIELDS), exclude_none=True) if previous else {}
    known_deploy = ctx.status.last_deploy.id if ctx.status.last_deploy else None
    intent = PendingResources(**{**kept, **changes}, applies_on=ctx.spec.resize_policy, since=ctx.now,
                              after_deploy=previous.after_deploy if previous else known_deploy, unconfirmed=True)
    # What runs now: the environment's value of a field with nothing pending (a size changed and
    # applied outside Kubernetes shows there); a field already pending keeps the status's value.
    running = {n: getattr(env, n) for n in changes if previous is None or getattr(previous, n) is None}
    await ctx.persist(Status(pending_resources=intent, **running))
    sent: dict[str, float | int] = {}
    for name, value in changes.items():
        answer = await ctx.fields.send(f"PATCH /environments/{env.id} {name}", {name: value},
                                       functools.partial(ctx.api.update_environment, env.id, **{name: value}))
        if answer is not None:
            env, sent[name] = answer, value
            ctx.source.record(env)
    # Every PATCH answered; a refused field keeps what was pending for it before.
    restored = {n: getattr(previous, n) if previous else None for n in changes if n not in sent}
    pending = intent.model_copy(update={**restored, "unconfirmed": None}) if sent else previous
    has_size = pending is not None and any(getattr(pending, n) is not None for n in SIZE_FIELDS)
    await ctx.persist(Status(pending_resources=pending if has_size else None))
    if sent:
        listed = ", ".join(f"{k} {v}" for k, v in sent.items())
        when = "a restart" if ctx.spec.resize_policy == "Restart" else "the next deploy"
        events.append(Event("Normal", "ResizeRequested", f"sent the new size ({listed}); it applies at {when}"))
    return env


def resize_applied(pending: PendingResources, finished: tuple[str, str, str | None] | None,
                   health: EnvironmentHealth | None) -> bool:
    """Whether a task that restarts the environment completed after the size was sent.

    Args:
        pending: ``status.pendingResources``.
        finished: ``(action, task status, requested at)`` of the operator's task that ended in this
            reconcile, or ``None``.
        health: ``GET /environments/{id}/status`` when read: its ``last_deploy`` counts when it
            completed and is not the deploy known when the size was sent (a later deploy, by
            anyone; a deploy running at that time does not count).
    """
    if finished is not None:
        action, state, requested_at = finished
        if action in RESTARTING_ACTIONS and state == "completed" and (requested_at or "") >= (pending.since or ""):
            return True
    deploy = health.last_deploy if health else None
    if deploy is None or deploy.status != "completed" or deploy.id == pending.after_deploy:
        return False
    # No deploy was known when the size was sent: only one that started after it counts.
    return pending.after_deploy is not None or (deploy.started_at or "") >= (pending.since or "")


def mirrored_size(previous: Status, env: Environment, pending: PendingResources | None) -> Status:
    """``status.cpuCores``/``ramMb``/``diskGb``: the environment's values, except those a pending
    PATCH changed, which keep the size the environment runs with (as the status last showed it)."""
    values = {name: getattr(env, name) for name in SIZE_FIELDS}
    if pending is not None:
        for name in SIZE_FIELDS:
            if getattr(pending, name) is not None and getattr(previous, name) is not None:
                values[name] = getattr(previous, name)
    return Status(**values)


def applied(pending: PendingResources) -> Status:
    """The size update once ``pending`` applied: its values become the running size."""
    values = {name: getattr(pending, name) for name in SIZE_FIELDS if getattr(pending, name) is not None}
    return Status(**values, pending_resources=None) if values else Status(pending_resources=None)


async def converge_domain(ctx: Context, env: Environment, events: list[Event]) -> Environment:
    """PATCH ``domain`` when ``spec.domain`` is set (``""``: back to the platform subdomain) and
    differs from the environment's ``custom_domain``, unless another resource claims the same
    domain (then nothing is sent: the condition says who).

    Raises:
        OecError: a transient failure (a refusal for good stalls the field instead).
    """
    want = ctx.spec.domain
    if want is None or want == (env.custom_domain or "") or ctx.domain_claimed_by or env.status in (
            "destroying", "deleted"):
        return env
    target = env.id
    answer = await ctx.fields.send(f"PATCH /environments/{target} domain", {"domain": want},
                                   lambda: ctx.api.update_environment(target, domain=want))
    if answer is None:
        return env
    ctx.source.record(answer)
    message = f"set the custom domain {want}" if want else f"removed the custom domain {env.custom_domain}"
    events.append(Event("Normal", "DomainSet", message))
    return answer


def settle(pending: PendingResources | None, finished: tuple[str, str, str | None] | None,
           health: EnvironmentHealth | None, extra: Settled, events: list[Event]) -> PendingResources | None:
    """Move a pending size to the applied one when a restarting task completed after it was sent
    (:func:`resize_applied`).

    Returns:
        ``status.pendingResources`` after this reconcile (``None``: nothing pending).
    """
    if pending is None or not resize_applied(pending, finished, health):
        return pending
    extra.add(applied(pending))
    events.append(Event("Normal", "Resized", "the environment runs with the new size"))
    return None
