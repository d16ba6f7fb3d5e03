"""Runs ``OdooBackupSchedule`` objects (``docs/backups.md`` §2): at each slot of the cron schedule,
one ``OdooBackup`` object per matched environment (the ``OdooBackup`` controller takes the backup),
spread over the schedule's window; old ones garbage-collected; the schedule's status.

One :meth:`ScheduleController.run` loop per schedule object (kopf's daemon): it sleeps on
:mod:`oec_operator.clock` until the next slot or the next environment's turn in the spread window,
and is woken when the spec changes or one of its backups changes. It reads environments and its
own backups from kopf's in-memory indexes (no list request per turn; the registrations in
:mod:`oec_operator.handlers` feed them), so a turn costs only the writes it makes.

The backup's name is deterministic (:func:`oec_operator.domain.schedule.backup_name`): an
``AlreadyExists`` answer means that run was made already, by this process before a crash or by
another one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pydantic

from oec_operator import clock
from oec_operator.controller.state import EventSink, Logger
from oec_operator.controller.sync import spread
from oec_operator.domain import schedule as sch
from oec_operator.domain.outcome import Event
from oec_operator.domain.restore import TERMINAL_PHASES as RESTORE_ENDED
from oec_operator.kube.client import KubeError
from oec_operator.models import conditions as cond
from oec_operator.models.backups import OdooBackupScheduleSpec, OdooBackupScheduleStatus
from oec_operator.models.conditions import parse_time, rfc3339
from oec_operator.runtime import Runtime
from oec_operator.settings import BACKUP_PLURAL, GROUP, RESTORE_PLURAL, VERSION

#: Labels on each ``OdooBackup`` a schedule makes: the schedule's and the environment's names
#: (shortened with a hash beyond 63 characters, :func:`oec_operator.domain.schedule.short`).
SCHEDULE_LABEL = "oec.sh/schedule"
ENVIRONMENT_LABEL = "oec.sh/environment"
#: Annotation on each such ``OdooBackup``: the slot it belongs to (RFC 3339, UTC).
SCHEDULED_AT = "oec.sh/scheduled-at"
#: Argo CD leaves objects made by the operator out of the application's diff and prune.
ARGOCD_COMPARE = ("argocd.argoproj.io/compare-options", "IgnoreExtraneous")
#: Seconds before a turn that failed to reach the apiserver is tried again.
RETRY_SECONDS = 30.0
#: Sleep (s) of a schedule with nothing to do (suspended, invalid): a spec change wakes it.
IDLE = timedelta(days=1)


@dataclass(frozen=True)
class Target:
    """An ``OdooEnvironment`` as a schedule sees it (from kopf's index)."""

    name: str
    uid: str
    labels: Mapping[str, str]
    #: Its ``spec.credentialsSecretRef`` as written (``None``: the operator's key).
    credentials: Mapping[str, Any] | None = None


def target_of(body: Mapping[str, Any]) -> Target:
    """The index entry of an ``OdooEnvironment`` body."""
    meta = body["metadata"]
    credentials = (body.get("spec") or {}).get("credentialsSecretRef")
    return Target(str(meta["name"]), str(meta["uid"]), dict(meta.get("labels") or {}),
                  dict(credentials) if isinstance(credentials, Mapping) else None)


def owned_of(body: Mapping[str, Any]) -> sch.Owned | None:
    """The index entry of an ``OdooBackup`` made by a schedule; ``None`` for one without the
    schedule's labels and annotation (not made by a schedule)."""
    meta = body["metadata"]
    labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
    slot = parse_time(annotations.get(SCHEDULED_AT))
    env = (body.get("spec") or {}).get("environmentRef", {}).get("name") or labels.get(ENVIRONMENT_LABEL)
    if slot is None or not env:
        return None
    status = body.get("status") or {}
    return sch.Owned(str(meta["name"]), str(env), slot, status.get("phase"), parse_time(status.get("completedAt")),
                     uid=str(meta.get("uid") or ""))






@dataclass
class ScheduleState:
    """What this process remembers of one schedule (kopf's per-object memo).

    Attributes:
        wake: set to make the schedule look again now (spec changed, a backup changed).
        handled: ``(slot, environment)`` runs made or skipped by this process, so that a skip is
            counted once even when the slot is looked at again.
        events: where the schedule's Kubernetes Events go (set by the daemon; ``None``: none).
    """

    wake: asyncio.Event = field(default_factory=asyncio.Event)
    handled: set[tuple[datetime, str]] = field(default_factory=set)
    events: EventSink | None = None


class ScheduleController:
    """Runs the ``OdooBackupSchedule`` objects of the process (one instance per process).

    Args:
        runtime: the process's shared clients and status writers.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.kube = runtime.kube
        self.status = runtime.schedule_status
        self._wakes: dict[tuple[str, str], asyncio.Event] = {}

    def poke(self, namespace: str, schedule_label: str) -> None:
        """One of the schedule's backups changed: look again (status, history)."""
        wake = self._wakes.get((namespace, schedule_label))
        if wake is not None:
            wake.set()

    async def run(self, body: Mapping[str, Any], state: ScheduleState, targets: Mapping[str, Iterable[Target]],
                  owned: Mapping[tuple[str, str], Iterable[sch.Owned]], logger: Logger) -> None:
        """The schedule's loop, until cancelled. ``body`` must stay current (kopf's daemon body
        does); ``targets`` (namespace -> its environments) and ``owned`` ((namespace, schedule
        label) -> the schedule's backups) are read afresh at each turn (kopf's live indexes)."""
        namespace = str(body["metadata"]["namespace"])
        key = (namespace, sch.short(str(body["metadata"]["name"])))
        self._wakes[key] = state.wake
        try:
            while True:
                until = await self.turn(body, state, list(targets.get(namespace, ())), list(owned.get(key, ())),
                                        logger)
                await clock.sleep_until(until, state.wake)
        finally:
            if self._wakes.get(key) is state.wake:
                del self._wakes[key]

    async def turn(self, body: Mapping[str, Any], state: ScheduleState, targets: list[Target],
                   owned: list[sch.Owned], logger: Logger) -> datetime:
        """Look at the schedule once: make the runs that are due, collect old backups, write the
        status. Returns when to look again."""
        meta = body["metadata"]
        namespace, name, uid = str(meta["namespace"]), str(meta["name"]), str(meta["uid"])
        generation = int(meta.get("generation") or 0)
        current = self.status.view(uid, body.get("status"))
        now = clock.now()
        try:
            spec = OdooBackupScheduleSpec.from_body(body.get("spec") or {})
            cron = sch.parse(spec.schedule, spec.time_zone)
            if (spec.environment_ref is None) == (spec.selector is None):
                raise sch.InvalidSchedule("selector", "set exactly one of environmentRef and selector")
        except (sch.InvalidSchedule, pydantic.ValidationError) as exc:
            message = str(exc) if isinstance(exc, sch.InvalidSchedule) else f"spec: {exc.errors()[0]['msg']}"
            ready = next((c for c in current.conditions or () if c.get("type") == cond.READY), {})
            if state.events is not None and (ready.get("reason"), ready.get("message")) != ("InvalidSpec", message):
                state.events(Event("Warning", "InvalidSpec", message))  # once per new stall, not per look
            await self._write(namespace, name, uid, current, OdooBackupScheduleStatus(
                next_schedule_time=None, message=message, observed_generation=generation,
                conditions=tuple(cond.merge_conditions(current.conditions, cond.stalled("InvalidSpec", message),
                                                       generation=generation, now=rfc3339(now)))))
            return now + IDLE
        matched = _matched(spec, targets)
        spread_seconds = spec.spread_seconds if spec.spread_seconds is not None else (
            sch.SELECTOR_SPREAD_SECONDS if spec.selector is not None else 0)
        last = parse_time(current.last_schedule_time)
        skipped = current.skipped or 0
        made: list[sch.Owned] = []
        retry = False
        if spec.suspend:
            keep = last if last and now - last <= sch.window(spread_seconds, spec.starting_deadline_seconds) else None
            until, next_time = now + IDLE, None
        else:
            plan = sch.plan(cron, last=last, created=parse_time(meta.get("creationTimestamp")) or now, now=now,
                            spread_seconds=spread_seconds, deadline_seconds=spec.starting_deadline_seconds)
            keep, until, next_time = plan.slot, plan.next, plan.next
            skipped += plan.skipped
            if plan.record is not None:
                # A new slot is recorded before any backup of it exists (after a crash it is
                # resumed, never taken for a new one), and so is a skipped one (counted once).
                current = await self._write(namespace, name, uid, current, OdooBackupScheduleStatus(
                    last_schedule_time=rfc3339(plan.record), skipped=skipped))
                state.handled = {entry for entry in state.handled if entry[0] >= plan.record}
            if plan.slot is not None:
                run = await self._run_slot(namespace, name, uid, spec, plan.slot, matched, owned, state, now,
                                           spread_seconds, logger)
                made, skipped, retry = run.made, skipped + run.skipped, run.failed
                if run.pending is not None:
                    until = min(until, run.pending)
        retry = await self._collect(namespace, owned, spec, keep, logger) or retry
        everything = [*owned, *made]
        message = _message(spec, matched, next_time)
        await self._write(namespace, name, uid, current, OdooBackupScheduleStatus(
            next_schedule_time=rfc3339(next_time),
            last_successful_time=rfc3339(sch.last_successful(everything, parse_time(current.last_successful_time))),
            active=tuple(sch.active(everything)), environments=len(matched), skipped=skipped, message=message,
            observed_generation=generation,
            conditions=tuple(cond.merge_conditions(
                current.conditions, [cond.Condition(cond.READY, "True", "Suspended" if spec.suspend else "Scheduled",
                                                    message)],
                generation=generation, now=rfc3339(now), remove=(cond.STALLED, cond.RECONCILING)))))
        return min(until, now + timedelta(seconds=RETRY_SECONDS)) if retry else until

    async def _run_slot(self, namespace: str, name: str, uid: str, spec: OdooBackupScheduleSpec, slot: datetime,
                        matched: list[Target], owned: list[sch.Owned], state: ScheduleState, now: datetime,
                        spread_seconds: float, logger: Logger) -> _SlotRun:
        """Make the due runs of ``slot``: one ``OdooBackup`` per environment whose turn came, unless
        it is past its deadline or its previous backup still runs (``Forbid``)."""
        result = _SlotRun()
        names = {o.name for o in owned}
        for target in matched:
            fraction = spread(target.uid)
            due = sch.due_at(slot, fraction, spread_seconds)
            if due > now:
                result.pending = due if result.pending is None else min(result.pending, due)
                continue
            backup = sch.backup_name(name, target.name, slot)
            taken = backup in names or sch.alternate_name(name, target.name, slot, uid) in names
            if taken or (slot, target.name) in state.handled:
                continue
            late = sch.missed(slot, fraction, spread_seconds, spec.starting_deadline_seconds, now)
            busy = sch.forbidden(o.phase for o in owned if o.environment == target.name and o.slot != slot)
            if late or busy:
                state.handled.add((slot, target.name))
                result.skipped += 1
                logger.info(f"run {backup} skipped: " + ("past its starting deadline" if late
                                                         else "the previous backup is not finished (Forbid)"))
                continue
            try:
                created, backup = await self._create(namespace, name, uid, spec, target, slot, backup)
            except KubeError as exc:
                logger.warning(f"run {backup} not created, tried again: {exc}")
                result.failed = True
                continue
            state.handled.add((slot, target.name))
            result.made.append(sch.Owned(backup, target.name, slot))
            if created:
                logger.info(f"run {backup} created for environment {target.name}")
        return result

    async def _create(self, namespace: str, name: str, uid: str, spec: OdooBackupScheduleSpec, target: Target,
                      slot: datetime, backup: str) -> tuple[bool, str]:
        """Create the run's ``OdooBackup``; ``False`` when it exists already (that run was made).
        A name taken by another schedule's object is not this run: it is made under
        :func:`~oec_operator.domain.schedule.alternate_name`.

        Returns:
            Whether it was created now, and its name.

        Raises:
            KubeError: the create failed otherwise.
        """
        if not await self._create_named(namespace, name, uid, spec, target, slot, backup):
            existing = await self.kube.get_object(namespace, backup, plural=BACKUP_PLURAL)
            owners = (existing or {}).get("metadata", {}).get("ownerReferences") or []
            if existing is None or any(owner.get("uid") == uid for owner in owners):
                return False, backup
            backup = sch.alternate_name(name, target.name, slot, uid)
            return await self._create_named(namespace, name, uid, spec, target, slot, backup), backup
        return True, backup

    async def _create_named(self, namespace: str, name: str, uid: str, spec: OdooBackupScheduleSpec,
                            target: Target, slot: datetime, backup: str) -> bool:
        """Create the ``OdooBackup`` ``backup``; ``False`` when that name exists already."""
        template = spec.template
        body = {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "OdooBackup",
            "metadata": {
                "name": backup, "namespace": namespace,
                "labels": {SCHEDULE_LABEL: sch.short(name), ENVIRONMENT_LABEL: sch.short(target.name)},
                "annotations": {SCHEDULED_AT: rfc3339(slot), ARGOCD_COMPARE[0]: ARGOCD_COMPARE[1]},
                "ownerReferences": [{"apiVersion": f"{GROUP}/{VERSION}", "kind": "OdooBackupSchedule",
                                     "name": name, "uid": uid, "controller": True}],
            },
            # The environment's key, also once its object is gone (docs/backups.md §1 rule 5).
            "spec": {"environmentRef": {"name": target.name}, "includeFilestore": template.include_filestore,
                     "retention": template.retention, **({"notes": template.notes} if template.notes else {}),
                     **({"credentialsSecretRef": dict(target.credentials)} if target.credentials else {})},
        }
        try:
            await self.kube.create_object(namespace, body, plural=BACKUP_PLURAL)
        except KubeError as exc:
            if exc.status == 409:
                return False
            raise
        return True

    async def _collect(self, namespace: str, owned: list[sch.Owned], spec: OdooBackupScheduleSpec,
                       keep: datetime | None, logger: Logger) -> bool:
        """Delete the backups beyond the history limits (only those very objects: UID
        precondition), except one an unfinished ``OdooRestore`` names in ``spec.backupRef``.
        Returns ``True`` when a deletion failed (looked at again soon)."""
        uids = {o.name: o.uid for o in owned}
        failed = False
        doomed_names = sch.to_collect(owned, successful_limit=spec.successful_history_limit,
                                      failed_limit=spec.failed_history_limit, keep_slot=keep)
        if not doomed_names:
            return False
        try:
            pinned = await self._restored_from(namespace)
        except KubeError as exc:
            logger.warning(f"history not collected, tried again: cannot list the OdooRestore objects ({exc})")
            return True
        for doomed in doomed_names:
            if doomed in pinned:
                logger.info(f"backup {doomed} kept beyond the history limit: OdooRestore {pinned[doomed]} restores it")
                continue
            try:
                if await self.kube.delete_object(namespace, doomed, plural=BACKUP_PLURAL, uid=uids[doomed] or None):
                    logger.info(f"backup {doomed} deleted: beyond the history limit (the data in OEC.sh stays)")
            except KubeError as exc:
                if exc.status != 409:  # 409: another object of that name by now; not ours to delete
                    logger.warning(f"backup {doomed} not deleted, tried again: {exc}")
                    failed = True
        return failed

    async def _restored_from(self, namespace: str) -> dict[str, str]:
        """``OdooBackup`` name -> the unfinished ``OdooRestore`` whose ``spec.backupRef`` names it
        (one list request, only when something is to be collected).

        Raises:
            KubeError: the list failed.
        """
        pinned: dict[str, str] = {}
        for obj in await self.kube.list_objects(namespace, plural=RESTORE_PLURAL):
            ref = ((obj.get("spec") or {}).get("backupRef") or {}).get("name")
            if ref and (obj.get("status") or {}).get("phase") not in RESTORE_ENDED:
                pinned[str(ref)] = str(obj["metadata"]["name"])
        return pinned

    async def _write(self, namespace: str, name: str, uid: str, current: OdooBackupScheduleStatus,
                     update: OdooBackupScheduleStatus) -> OdooBackupScheduleStatus:
        """Write what changed in ``update``; return the status after it."""
        changes = current.changes(update)
        if not changes.model_fields_set:
            return current
        return await self.status.write(namespace, name, uid, changes)


@dataclass
class _SlotRun:
    made: list[sch.Owned] = field(default_factory=list)
    skipped: int = 0
    pending: datetime | None = None
    failed: bool = False


def _matched(spec: OdooBackupScheduleSpec, targets: Iterable[Target]) -> list[Target]:
    """The environments the schedule backs up, by name."""
    if spec.environment_ref is not None:
        chosen = [t for t in targets if t.name == spec.environment_ref.name]
    else:
        assert spec.selector is not None
        chosen = [t for t in targets if spec.selector.matches(t.labels)]
    return sorted(chosen, key=lambda t: t.name)


def _message(spec: OdooBackupScheduleSpec, matched: list[Target], next_time: datetime | None) -> str:
    """The status's human summary."""
    if spec.suspend:
        return "suspended: no new runs until spec.suspend is false"
    if not matched:
        what = (f"environment {spec.environment_ref.name!r} not found" if spec.environment_ref is not None
                else "no environment matches the selector")
        return f"{what}; next run at {rfc3339(next_time)}"
    return f"{len(matched)} environment(s); next run at {rfc3339(next_time)}"
