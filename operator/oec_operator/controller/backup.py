"""Keeping one ``OdooBackup`` true (``docs/backups.md`` §1): create its one OEC.sh backup safely
(:mod:`oec_operator.domain.backups`), follow it until it ends, then watch its expiry.

One loop per object (:meth:`BackupController.run`, kopf's daemon) does everything, so the steps of
one object never overlap in a process; kopf's peering keeps a second process from acting
(``docs/kopf.md`` §6). Every step reads the object's status through the status writer (its own
writes included) and writes what it learned; the status alone is what survives a crash.

Knows nothing of kopf: the caller passes the object's body (kept current), an Event sink and a
logger.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pydantic

from oec_operator import metrics
from oec_operator.controller.state import EventSink, Logger
from oec_operator.controller.sync import resource_ref, spread
from oec_operator.domain.backups import BackupBusy, BackupsUnsupported, Phase, ensure_backup, marker, phase_of
from oec_operator.domain.failures import backoff, classify, retry_delay
from oec_operator.domain.outcome import Event, ResourceRef
from oec_operator.domain.restore import environment_key
from oec_operator.kube.client import KubeError
from oec_operator.kube.credentials import CredentialsError
from oec_operator.models import conditions as cond
from oec_operator.models.backups import OdooBackupSpec, OdooBackupStatus
from oec_operator.models.conditions import Condition
from oec_operator.models.spec import OdooEnvironmentSpec, SecretKeyRef
from oec_operator.oec.client import OecClient
from oec_operator.oec.errors import OecAuthError, OecError, OecNotFoundError, OecPermissionError
from oec_operator.oec.models import Backup
from oec_operator.oec.ratelimit import Priority
from oec_operator.runtime import Runtime

#: Seconds between reads of a completed backup (verification, expiry changes), spread per object.
COMPLETED_CHECK_INTERVAL = 86400.0
#: Seconds after the start of its daily slot within which a completed backup's read is due.
CHECK_SLACK = 5.0
#: Longest wait between reads of a pending or running backup, seconds.
MAX_FOLLOW_INTERVAL = 300.0
#: Seconds between looks at a backup whose API has no backup route (a newer API may add it).
UNSUPPORTED_RETRY = 3600.0
#: Phases after which nothing changes any more.
FINAL = (Phase.FAILED, Phase.EXPIRED)






def follow_interval(elapsed: float | None, fast: float) -> float:
    """Seconds until the next read of a pending or running backup: a tenth of the time it has
    run so far, at least ``fast`` (the fast poll interval), at most :data:`MAX_FOLLOW_INTERVAL`."""
    return max(fast, min(MAX_FOLLOW_INTERVAL, (elapsed or 0.0) / 10.0))


def status_of(backup: Backup) -> OdooBackupStatus:
    """The status fields a backup read from the API fills (never a download URL). ``completedAt``
    and ``expiresAt`` only for a backup that exists (Completed, Expired): the API sets them on a
    failed one too, where they would show a completion and an expiry a month ahead of nothing."""
    phase = phase_of(backup.status)
    kept = phase in (Phase.COMPLETED, Phase.EXPIRED)
    return OdooBackupStatus(
        backup_id=backup.id, task_id=backup.task_id, environment_id=backup.environment_id,
        oec_status=backup.status, backup_type=backup.backup_type, phase=phase.value,
        database_size=backup.database_size, filestore_size=backup.filestore_size,
        total_size=backup.total_size, compressed_size=backup.compressed_size,
        started_at=cond.rfc3339(backup.started_at), completed_at=cond.rfc3339(backup.completed_at) if kept else None,
        expires_at=cond.rfc3339(backup.expires_at) if kept else None, verified=backup.is_verified,
    )


def conditions_of(phase: Phase, backup_id: str | None, error: str | None) -> tuple[list[Condition], tuple[str, ...]]:
    """The conditions of a phase (``docs/backups.md`` §1) and the condition types to remove."""
    if phase is Phase.COMPLETED:
        return [Condition(cond.READY, "True", "Completed", f"backup {backup_id} completed")], \
            (cond.RECONCILING, cond.STALLED)
    if phase is Phase.FAILED:
        return cond.stalled("BackupFailed", f"backup {backup_id} failed: {error or 'no reason given by OEC.sh'}"), \
            (cond.RECONCILING,)
    if phase is Phase.EXPIRED:
        return cond.stalled("Expired", f"backup {backup_id} expired: OEC.sh no longer keeps its data"), \
            (cond.RECONCILING,)
    word = "waits to start" if phase is Phase.PENDING else "runs"
    message = f"backup {backup_id} {word}"
    return [Condition(cond.READY, "False", phase.value, message),
            Condition(cond.RECONCILING, "True", phase.value, message)], (cond.STALLED,)


@dataclass
class BackupState:
    """What this process remembers of one ``OdooBackup``: consecutive transient failures, and
    whether its completion is shown in the backup-age metric yet."""

    failures: int = 0
    shown: bool = False


@dataclass(frozen=True)
class BackupHandle:
    """One ``OdooBackup`` as the controller gets it: the body (kept current by the caller), its
    memory in this process, its Event sink and logger."""

    body: Mapping[str, Any]
    state: BackupState
    events: EventSink
    logger: Logger


@dataclass
class _Step:
    """The result of one step: the status update, Events and the next step's delay (``None``:
    nothing more to do)."""

    update: OdooBackupStatus = field(default_factory=OdooBackupStatus)
    conditions: list[Condition] = field(default_factory=list)
    remove: tuple[str, ...] = ()
    events: list[Event] = field(default_factory=list)
    delay: float | None = None
    observed: bool = False
    transient: bool = False
    #: The ``OdooEnvironment`` was read and is the backup's (the same OEC.sh environment): only
    #: then is the backup's age shown for it.
    environment_exists: bool = False


class BackupController:
    """Drives ``OdooBackup`` objects (one instance per process).

    Args:
        runtime: the process's shared clients (credentials, rate-limited OEC clients, the
            ``OdooBackup`` status writer ``runtime.backup_status``).
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.config = runtime.config
        self.writer = runtime.backup_status
        #: The current time (UTC); replaceable in tests.
        self.now: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC)

    async def run(self, obj: BackupHandle) -> None:
        """Step until the backup is Failed or Expired (a Completed one is looked at again when it
        expires and once a day); runs until then or until cancelled."""
        while True:
            delay = await self.step(obj)
            if delay is None:
                return
            await asyncio.sleep(delay)

    async def step(self, obj: BackupHandle) -> float | None:
        """One step: act, write the status, post Events.

        Returns:
            Seconds until the next step, ``None`` when the object needs none (Failed, Expired).
        """
        ref = resource_ref(obj.body)
        previous = self.writer.view(ref.uid, obj.body.get("status"))
        try:
            result = await self._step(obj, ref, previous)
        except CredentialsError as exc:
            result = self._stalled("CredentialsNotFound", str(exc), self.config.poll_interval)
        except KubeError as exc:
            result = self._retry(obj, "ProgressingWithRetry", f"cannot read or write Kubernetes objects ({exc}); "
                                 "retrying")
        except Exception as exc:  # a bug must not end the loop in silence or spin
            obj.logger.exception("OdooBackup step failed unexpectedly")
            result = self._retry(obj, "ProgressingWithRetry", f"unexpected {type(exc).__name__}; see the operator log")
        obj.state.failures = obj.state.failures + 1 if result.transient else 0
        await self._apply(obj, ref, previous, result)
        return result.delay

    async def _apply(self, obj: BackupHandle, ref: ResourceRef, previous: OdooBackupStatus, result: _Step) -> None:
        """Write the step's status (only what changed) and post its Events; count terminal results."""
        fields = {name: getattr(result.update, name) for name in result.update.model_fields_set}
        conditions = cond.merge_conditions(previous.conditions, result.conditions, generation=ref.generation,
                                           remove=result.remove)
        fields["conditions"] = tuple(conditions)
        if result.observed:
            fields["observed_generation"] = ref.generation
        update = previous.changes(OdooBackupStatus.model_validate(fields))
        if _same_conditions(previous.conditions, conditions):
            update = OdooBackupStatus.model_validate(
                {name: getattr(update, name) for name in update.model_fields_set if name != "conditions"})
        if update.model_fields_set:
            try:
                await self.writer.write(ref.namespace, ref.name, ref.uid, update)
            except KubeError as exc:
                if exc.status != 404:
                    obj.logger.warning(f"cannot write the status ({exc}); retrying")
                result.delay = self.config.fast_poll_interval if result.delay is not None else None
                return
        phase = update.phase if "phase" in update.model_fields_set else None
        # Counted when seen ending: one first seen ended (the record of a final backup, which the
        # deletion counted, or an adopted old backup) is not counted again.
        if phase in ("Completed", "Failed") and previous.phase in (Phase.PENDING.value, Phase.RUNNING.value):
            metrics.backup_finished(str(phase).lower())
        after = previous.merged(update)
        # A deleted environment's series stays gone (its final backup's record outlives it).
        if after.phase == "Completed" and after.completed_at and result.environment_exists:
            env = OdooBackupSpec.from_body(obj.body["spec"]).environment_ref.name
            metrics.backup_completed(ref.namespace, env, cond.parse_time(after.completed_at))
            obj.state.shown = True
            if phase == "Completed":  # seen completing: the environment shows it at once (docs/backups.md §5)
                self.runtime.backup_completed(environment_key(ref.namespace, env))
        ready = previous.condition(cond.READY) or {}
        for event in result.events:
            if event.reason == previous.phase:  # Completed / Expired: said once, not at every read
                continue
            if event.type == "Warning" and (ready.get("reason"), ready.get("message")) == (event.reason, event.message):
                continue
            obj.events(event)

    async def _step(self, obj: BackupHandle, ref: ResourceRef, previous: OdooBackupStatus) -> _Step:
        try:
            spec = OdooBackupSpec.from_body(obj.body["spec"])
        except pydantic.ValidationError as exc:
            return self._stalled("InvalidSpec", f"the spec is invalid: {exc.errors()[0]['msg']}", None)
        phase = Phase(previous.phase) if previous.phase else None
        if phase in FINAL:
            return _Step(delay=None)
        if phase is Phase.COMPLETED and previous.backup_id:
            due = self._completed_due(ref, previous)
            if due is not None:
                if not obj.state.shown:  # first look in this process: show its age if the environment exists
                    env = await self.runtime.kube.get_object(ref.namespace, spec.environment_ref.name)
                    due.environment_exists = _is_of(env, previous.environment_id)
                return due
        env_name = spec.environment_ref.name
        environment = await self.runtime.kube.get_object(ref.namespace, env_name)
        environment_id = previous.environment_id or (environment or {}).get("status", {}).get("environmentId")
        backup_id = previous.backup_id or spec.backup_id
        if not backup_id and not environment_id:
            what = ("not found in the namespace" if environment is None
                    else "has no OEC.sh environment yet (status.environmentId is empty)")
            message = f"waiting for OdooEnvironment {env_name}: it {what}"
            return _Step(conditions=[Condition(cond.READY, "False", "EnvironmentNotReady", message),
                                     Condition(cond.RECONCILING, "True", "EnvironmentNotReady", message)],
                         remove=(cond.STALLED,), update=OdooBackupStatus(phase=Phase.PENDING.value, message=message),
                         delay=self.config.poll_interval / 2)
        key_ref = self._credentials(environment, spec)
        key, hint = await self.runtime.api_key(ref.namespace, key_ref)
        api = self.runtime.client(key, Priority.CHANGE)
        try:
            if backup_id:
                backup = await api.get_backup(backup_id)
            else:
                assert environment_id is not None
                backup = await self._create(api, ref, spec, previous, environment_id)
        except BackupBusy as exc:
            step = self._retry(obj, exc.reason, str(exc))
            step.update = OdooBackupStatus(message=str(exc))
            return step
        except BackupsUnsupported as exc:
            return self._stalled("BackupsUnsupported", f"{exc}; backups cannot be taken through this API",
                                 UNSUPPORTED_RETRY)
        except OecNotFoundError as exc:
            if backup_id:
                return self._not_found(backup_id, previous, exc)
            message = f"the OEC.sh environment {environment_id} of OdooEnvironment {env_name} was not found"
            current_id = (environment or {}).get("status", {}).get("environmentId")
            if environment is None or current_id != environment_id:  # deleted (or replaced): no backup, ever
                message = f"{message}: it was deleted before its backup was taken; nothing was backed up"
                return _Step(update=OdooBackupStatus(phase=Phase.FAILED.value, message=message),
                             conditions=cond.stalled("EnvironmentGone", message), remove=(cond.RECONCILING,),
                             observed=True, events=[Event("Warning", "EnvironmentGone", message)])
            step = self._retry(obj, "EnvironmentNotReady", f"{message}; waiting")
            step.delay = self.config.poll_interval
            return step
        except OecError as exc:
            if isinstance(exc, OecAuthError | OecPermissionError):
                self.runtime.key_refused(ref.namespace, key_ref)  # read a rotated Secret next time
            transient, reason, message = classify(exc, hint)
            if not transient:
                return self._stalled(reason, message, self.config.poll_interval)
            step = self._retry(obj, "RateLimited" if reason == "RateLimited" else "ProgressingWithRetry", message)
            step.delay = retry_delay(exc, obj.state.failures + 1, self.config.fast_poll_interval)
            return step
        step = self._observed(ref, backup)
        step.environment_exists = _is_of(environment, backup.environment_id)
        return step

    async def _create(self, api: OecClient, ref: ResourceRef, spec: OdooBackupSpec, previous: OdooBackupStatus,
                      environment_id: str) -> Backup:
        """The object's one backup, found or created (``domain/backups.py``); the intent is
        written to the status before the POST."""
        async def record_intent() -> None:
            message = f"backup of {environment_id} requested"
            conditions = cond.merge_conditions(
                previous.conditions, [Condition(cond.READY, "False", "Pending", message),
                                      Condition(cond.RECONCILING, "True", "Pending", message)],
                generation=ref.generation, remove=(cond.STALLED,))
            await self.writer.write(ref.namespace, ref.name, ref.uid, OdooBackupStatus(
                create_requested_at=cond.now_rfc3339(), environment_id=environment_id, phase=Phase.PENDING.value,
                message=message, conditions=tuple(conditions)))

        return await ensure_backup(
            api, environment_id, mark=marker(ref.uid), include_filestore=spec.include_filestore,
            retention=spec.retention, notes=spec.notes, requested=previous.create_requested_at is not None,
            record_intent=record_intent)

    def _observed(self, ref: ResourceRef, backup: Backup) -> _Step:
        """The step after reading (or creating) the backup: its fields, conditions, next read."""
        phase = phase_of(backup.status)
        update = status_of(backup)
        conditions, remove = conditions_of(phase, backup.id, backup.error_message)
        step = _Step(update=update, conditions=conditions, remove=remove)
        if phase is Phase.FAILED:
            message = conditions[0].message
            step.update = update.model_copy(update={"message": message})
            step.events.append(Event("Warning", "BackupFailed", message))
            step.observed = True
        elif phase is Phase.EXPIRED:
            step.update = update.model_copy(update={"message": conditions[0].message})
            step.events.append(Event("Normal", "Expired", conditions[0].message))
            step.observed = True
        elif phase is Phase.COMPLETED:
            step.update = update.model_copy(update={"message": conditions[0].message})
            expiry = f", expires {update.expires_at}" if update.expires_at else ", never expires"
            step.events.append(Event("Normal", "Completed",
                                     f"{conditions[0].message} ({_size(backup.total_size)}{expiry})"))
            step.observed = True
            now = self.now()
            step.delay = min(self._slot(ref, update.completed_at, now)[1],
                             self._until(cond.parse_time(update.expires_at), now))
        else:
            started = backup.started_at or backup.created_at
            elapsed = None if started is None else (self.now() - (
                started if started.tzinfo else started.replace(tzinfo=datetime.UTC))).total_seconds()
            step.update = update.model_copy(update={"message": conditions[0].message})
            step.delay = follow_interval(elapsed, self.config.fast_poll_interval)
        return step

    def _completed_due(self, ref: ResourceRef, previous: OdooBackupStatus) -> _Step | None:
        """A completed backup between its daily reads: Expired once ``expiresAt`` passed (no API
        call), else a wait until the next read or the expiry; ``None`` when a read is due."""
        now = self.now()
        expires = cond.parse_time(previous.expires_at)
        if expires is not None and expires <= now:
            conditions, remove = conditions_of(Phase.EXPIRED, previous.backup_id, None)
            return _Step(update=OdooBackupStatus(phase=Phase.EXPIRED.value, message=conditions[0].message),
                         conditions=conditions, remove=remove, observed=True, delay=None,
                         events=[Event("Normal", "Expired", conditions[0].message)])
        due, wait = self._slot(ref, previous.completed_at, now)
        return None if due else _Step(delay=min(wait, self._until(expires, now)))

    def _slot(self, ref: ResourceRef, completed_at: str | None, now: datetime.datetime) -> tuple[bool, float]:
        """A completed backup's daily reads: whether one is due now, and the seconds until the
        next slot. Slots are a day apart from ``completedAt`` plus an offset per object (so a
        restart does not read every completed backup at once)."""
        completed = cond.parse_time(completed_at) or now
        since = (now - completed).total_seconds() - spread(ref.uid) * COMPLETED_CHECK_INTERVAL
        if since < 0:
            return False, -since
        into_day = since % COMPLETED_CHECK_INTERVAL
        return into_day < CHECK_SLACK, COMPLETED_CHECK_INTERVAL - into_day

    @staticmethod
    def _until(expires: datetime.datetime | None, now: datetime.datetime) -> float:
        return float("inf") if expires is None else max(1.0, (expires - now).total_seconds() + 1.0)

    def _not_found(self, backup_id: str, previous: OdooBackupStatus, exc: OecError) -> _Step:
        """``GET /backups/{id}`` answered 404: a completed backup's data is gone (Expired); any
        other backup is unknown to OEC.sh (Failed)."""
        if previous.phase == Phase.COMPLETED.value:
            conditions, remove = conditions_of(Phase.EXPIRED, backup_id, None)
            return _Step(update=OdooBackupStatus(phase=Phase.EXPIRED.value, message=conditions[0].message),
                         conditions=conditions, remove=remove, observed=True,
                         events=[Event("Normal", "Expired", conditions[0].message)])
        message = f"OEC.sh has no backup {backup_id} ({exc.status} {exc.code})"
        return _Step(update=OdooBackupStatus(phase=Phase.FAILED.value, message=message),
                     conditions=cond.stalled("BackupNotFound", message), remove=(cond.RECONCILING,),
                     observed=True, events=[Event("Warning", "BackupNotFound", message)])

    @staticmethod
    def _credentials(environment: Mapping[str, Any] | None, spec: OdooBackupSpec) -> SecretKeyRef | None:
        """The API key's Secret: the environment's, else ``spec.credentialsSecretRef``, else ``None``
        (the operator's key)."""
        if environment is not None:
            try:
                env_ref = OdooEnvironmentSpec.from_body(environment.get("spec") or {}).credentials_secret_ref
            except pydantic.ValidationError:
                env_ref = None
            if env_ref is not None:
                return env_ref
        return spec.credentials_secret_ref

    def _stalled(self, reason: str, message: str, delay: float | None) -> _Step:
        return _Step(update=OdooBackupStatus(message=message), conditions=cond.stalled(reason, message),
                     remove=(cond.RECONCILING,), observed=True, events=[Event("Warning", reason, message)],
                     delay=delay)

    def _retry(self, obj: BackupHandle, reason: str, message: str) -> _Step:
        """A wait that needs no user action: ``Reconciling=True`` with ``reason``, backoff."""
        return _Step(conditions=[Condition(cond.RECONCILING, "True", reason, message)], remove=(cond.STALLED,),
                     delay=backoff(self.config.fast_poll_interval, obj.state.failures + 1), transient=True)

    @staticmethod
    def deleted(body: Mapping[str, Any]) -> Event:
        """The Event posted when an ``OdooBackup`` is deleted: its data stays in OEC.sh (the API
        has no delete route, ``docs/oec-api.md`` §11.5)."""
        status = body.get("status") or {}
        backup_id, requested = status.get("backupId"), status.get("createRequestedAt")
        if backup_id:
            what = f"backup {backup_id}"
        elif requested:  # sent, the answer not recorded: it may exist
            uid = str((body.get("metadata") or {}).get("uid"))
            what = (f"a backup was requested at {requested} and may have been made (its notes carry "
                    f"[{marker(uid)}]); if so, it")
        else:
            what = "no backup was made for it, and nothing"
        return Event("Normal", "BackupKept", f"OdooBackup deleted; {what} stays in OEC.sh (the operator never "
                                             "deletes backup data; OEC.sh removes it when its retention ends)")


def _is_of(environment: Mapping[str, Any] | None, environment_id: str | None) -> bool:
    """Whether the ``OdooEnvironment`` exists and is the OEC.sh environment ``environment_id`` (not
    a later one of the same name, or one deleted)."""
    return environment is not None and (environment.get("status") or {}).get("environmentId") == environment_id


def _same_conditions(old: tuple[Mapping[str, Any], ...], new: list[dict[str, Any]]) -> bool:
    strip = ("lastTransitionTime",)
    return [{k: v for k, v in c.items() if k not in strip} for c in old] == \
        [{k: v for k, v in c.items() if k not in strip} for c in new]


def _size(value: int | None) -> str:
    """Bytes as ``12.3 MB`` (decimal units), ``size unknown`` when ``None``."""
    if value is None:
        return "size unknown"
    amount = float(value)
    for unit in ("B", "kB", "MB", "GB"):
        if amount < 1000 or unit == "GB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1000
    return f"{amount:.1f} TB"
