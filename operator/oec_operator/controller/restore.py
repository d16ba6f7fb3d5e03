"""Carrying out one ``OdooRestore`` (``docs/backups.md`` §3): check, record the intent, send the
restore once, follow its task, report the way back.

:meth:`RestoreController.step` is called by the object's kopf daemon until it returns ``None``
(a terminal phase). Each step reads what it needs (the ``OdooEnvironment`` and ``OdooBackup`` it
names, the API), decides with :mod:`oec_operator.domain.restore` and writes the status through its
status writer:

- ``Pending`` (or a new object): every check passes -> ``Running`` + ``startedAt`` is written, then
  ``POST /backups/{id}/restore`` is sent with the object's ``Idempotency-Key``, then ``taskId``;
  a check that fails for good -> ``Refused`` (nothing sent); one not ready yet -> look again later;
- ``Running`` without ``taskId`` (a crash or a lost answer after the intent): the POST again,
  under the same key (the API replays it, ``docs/oec-api.md`` §7); a 409 ``task_in_progress``
  waits for that task;
- ``Running`` with ``taskId``: ``GET /deployments/{task_id}`` at a growing interval until the task
  ended -> ``Completed`` (with the ``pre_restore`` safety backup's id) or ``Failed``;
- ``Completed``, ``Failed``, ``Refused``: nothing, ever.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from oec_operator.controller.state import EventSink, Logger
from oec_operator.controller.sync import resource_ref
from oec_operator.domain import restore
from oec_operator.domain.failures import backoff, error_outcome
from oec_operator.domain.outcome import Event, ResourceRef
from oec_operator.domain.restore import Refusal, Wait
from oec_operator.kube.client import KubeError
from oec_operator.kube.credentials import CredentialsError
from oec_operator.models import conditions as cond
from oec_operator.models.backups import OdooBackupStatus, OdooRestoreSpec, OdooRestoreStatus
from oec_operator.models.conditions import Condition
from oec_operator.models.spec import OdooEnvironmentSpec
from oec_operator.models.status import Status
from oec_operator.oec.client import OecClient
from oec_operator.oec.errors import OecAuthError, OecConflictError, OecError, OecNotFoundError, OecPermissionError
from oec_operator.oec.ratelimit import Priority
from oec_operator.runtime import Runtime
from oec_operator.settings import BACKUP_PLURAL

#: 409 codes that mean "another task runs on the environment": wait for it (``docs/oec-api.md`` §11.3).
BUSY_CODES = ("task_in_progress", "concurrent_action", "backup_in_progress")


@dataclass
class RestoreState:
    """What this process remembers of one ``OdooRestore``: consecutive transient failures (backoff)."""

    failures: int = 0


@dataclass(frozen=True)
class RestoreHandle:
    """One ``OdooRestore`` as the registrations hand it over: its body (kept current by kopf), its
    memory, where its Events go and its logger."""

    body: Mapping[str, Any]
    events: EventSink
    logger: Logger
    state: RestoreState = field(default_factory=RestoreState)


@dataclass(frozen=True)
class Target:
    """The environment a restore goes into: the ``OdooEnvironment``'s key, OEC id and API client."""

    key: str
    environment_id: str
    api: OecClient


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def _aware(value: datetime.datetime) -> datetime.datetime:
    """``value`` in UTC (a naive one taken as UTC)."""
    return (value if value.tzinfo else value.replace(tzinfo=datetime.UTC)).astimezone(datetime.UTC)



class RestoreController:
    """Restores backups as ``OdooRestore`` objects ask (one instance per process).

    Args:
        runtime: the process's shared clients (rate limiter, Secret cache, Kubernetes client).
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.config = runtime.config
        self.status = runtime.restore_status

    async def step(self, obj: RestoreHandle) -> float | None:
        """Look at the restore once and act (see the module docstring).

        Returns:
            Seconds until the next step, ``None`` once the restore is terminal (nothing more to do).
        """
        ref = resource_ref(obj.body)
        current = self.status.view(ref.uid, obj.body.get("status"))
        if current.phase in restore.TERMINAL_PHASES:
            return None
        try:
            spec = OdooRestoreSpec.from_body(obj.body["spec"])
        except ValidationError as exc:
            return await self._refuse(obj, ref, current, Refusal("InvalidSpec", f"the spec is invalid: {exc}"))
        hint = f"the credentials of OdooEnvironment {ref.namespace}/{spec.environment_ref.name}"
        try:
            if current.phase == restore.RUNNING:
                delay = await self._running(obj, ref, spec, current)
            else:
                delay = await self._start(obj, ref, spec, current)
        except CredentialsError as exc:
            delay = await self._retry(obj, ref, current, "CredentialsNotFound", str(exc), stalled=True)
        except OecError as exc:
            outcome = error_outcome(exc, had_ready=True, credentials_hint=hint, failures=obj.state.failures + 1,
                                    fast_poll=self.config.fast_poll_interval, slow_poll=self.config.poll_interval)
            reason, message = outcome.conditions[0].reason, outcome.conditions[0].message
            stalled = isinstance(exc, OecAuthError | OecPermissionError) or not outcome.transient
            delay = await self._retry(obj, ref, current, reason, message, stalled=stalled, wait=outcome.next_poll)
        except KubeError as exc:
            delay = await self._retry(obj, ref, current, "ProgressingWithRetry", f"Kubernetes API: {exc}; retrying")
        except Exception as exc:  # a bug or a malformed OdooEnvironment: never a hot loop, never a frozen status
            obj.logger.exception("restore step failed unexpectedly")
            delay = await self._retry(obj, ref, current, "ProgressingWithRetry",
                                      f"unexpected {type(exc).__name__}; see the operator log; retrying")
        else:
            obj.state.failures = 0
        return delay

    # --- before the POST ---------------------------------------------------------------------

    async def _start(self, obj: RestoreHandle, ref: ResourceRef, spec: OdooRestoreSpec,
                     current: OdooRestoreStatus) -> float | None:
        """The checks, the intent, the POST (phase ``Pending`` or new)."""
        now = _now()
        refused = restore.check_not_after(spec.not_after if spec.not_after.tzinfo else
                                          spec.not_after.replace(tzinfo=datetime.UTC), now)
        if refused is not None:
            return await self._refuse(obj, ref, current, refused)
        environment = await self.runtime.kube.get_object(ref.namespace, spec.environment_ref.name)
        env_name = f"{ref.namespace}/{spec.environment_ref.name}"
        if environment is None:
            return await self._wait(obj, ref, current, Wait("WaitingForEnvironment",
                                                            f"OdooEnvironment {env_name} does not exist (yet)"))
        env_spec = OdooEnvironmentSpec.from_body(environment.get("spec") or {})
        names = [] if env_spec.observe_only else [env_spec.display_name(spec.environment_ref.name)]
        environment_id = Status.from_body(environment.get("status")).environment_id
        if spec.confirm_environment_name not in names and not environment_id:
            return await self._wait(obj, ref, current, Wait(
                "WaitingForEnvironment", f"OdooEnvironment {env_name} has no OEC.sh environment yet"))
        target = await self._target(ref.namespace, spec, environment_id or "", env_spec)
        if spec.confirm_environment_name not in names:  # its name in OEC.sh, as the API shows it
            names.append((await target.api.with_priority(Priority.POLL).get_environment(target.environment_id)).name)
        refused = restore.check_confirmation(spec.confirm_environment_name, names, env_name)
        if refused is not None:
            return await self._refuse(obj, ref, current, refused)
        if not environment_id:
            return await self._wait(obj, ref, current, Wait(
                "WaitingForEnvironment", f"OdooEnvironment {env_name} has no OEC.sh environment yet"))
        backup_id = await self._backup_id(ref, spec)
        if not isinstance(backup_id, str):
            return await self._settle(obj, ref, current, backup_id)
        try:
            backup = await target.api.get_backup(backup_id)
        except OecNotFoundError:
            return await self._refuse(obj, ref, current, Refusal(
                "BackupNotFound", f"backup {backup_id} does not exist or is not visible to this API key"))
        checked = restore.check_backup(backup, environment_id)
        if checked is not None:
            return await self._settle(obj, ref, current, checked)
        message = f"restoring backup {backup_id} into environment {environment_id} ({env_name})"
        current = await self._write(ref, current, OdooRestoreStatus(
            phase=restore.RUNNING, started_at=cond.rfc3339(now), requested_at=cond.rfc3339(now), backup_id=backup_id,
            environment_id=environment_id, message=message),
            [Condition(cond.READY, "False", "Restoring", message),
             Condition(cond.RECONCILING, "True", "Restoring", message)], remove=(cond.STALLED,))
        return await self._send(obj, ref, current, target, _aware(spec.not_after))

    async def _backup_id(self, ref: ResourceRef, spec: OdooRestoreSpec) -> str | Refusal | Wait:
        """``spec.backupId``, or the id of the ``OdooBackup`` ``spec.backupRef`` names."""
        if spec.backup_id:
            return spec.backup_id
        if spec.backup_ref is None:
            return Refusal("InvalidSpec", "set spec.backupRef or spec.backupId")
        found = await self.runtime.kube.get_object(ref.namespace, spec.backup_ref.name, plural=BACKUP_PLURAL)
        status = OdooBackupStatus.from_body((found or {}).get("status"))
        phase = (status.phase or restore.PENDING) if found is not None else None
        return restore.backup_from_ref(f"{ref.namespace}/{spec.backup_ref.name}", phase, status.backup_id)

    async def _target(self, namespace: str, spec: OdooRestoreSpec, environment_id: str,
                      env_spec: OdooEnvironmentSpec | None) -> Target:
        """The API client with the environment's credentials (its ``credentialsSecretRef``, else
        the operator's).

        Raises:
            CredentialsError: no usable API key.
        """
        key, _ = await self.runtime.api_key(namespace, env_spec.credentials_secret_ref if env_spec else None)
        return Target(restore.environment_key(namespace, spec.environment_ref.name), environment_id,
                      self.runtime.client(key, Priority.CHANGE))

    # --- the POST and the task ---------------------------------------------------------------

    async def _send(self, obj: RestoreHandle, ref: ResourceRef, current: OdooRestoreStatus,
                    target: Target, not_after: datetime.datetime) -> float | None:
        """``POST /backups/{id}/restore`` under the object's key (a repeat is replayed by the API),
        then ``taskId`` at once. Refused by another task (409) after ``not_after``: never sent again."""
        backup_id = current.backup_id or ""
        try:
            accepted = await target.api.restore_backup(backup_id, idempotency_key=restore.idempotency_key(ref.uid))
        except OecConflictError as exc:
            if exc.code not in BUSY_CODES:
                raise
            if exc.code != "concurrent_action" and _now() > not_after:
                # Another task refused it, so this one never started (an accepted one is replayed
                # as 202): past notAfter it never will (docs/backups.md §3).
                return await self._end(obj, ref, current, restore.REFUSED, "Expired",
                                       f"spec.notAfter {cond.rfc3339(not_after)} passed while OEC.sh kept refusing the "
                                       f"restore ({exc.code}): it never started and will not be; create a new "
                                       "OdooRestore with a later notAfter to restore")
            task = f"task {exc.task_id}" if exc.task_id else "another task"
            message = (f"{task} runs on environment {target.environment_id}; the restore of backup {backup_id} "
                       "is sent once it ended")
            await self._write(ref, current, OdooRestoreStatus(message=message), [
                Condition(cond.READY, "False", "TaskInProgress", message),
                Condition(cond.RECONCILING, "True", "TaskInProgress", message)])
            return self._next_read(current)
        except OecError as exc:
            if not restore.refused_for_good(exc.status, exc.code):
                raise
            return await self._end(obj, ref, current, restore.FAILED, "RestoreRefused",
                                   f"OEC.sh refused the restore: {exc}")
        message = f"task {accepted.task_id} restores backup {backup_id} into environment {target.environment_id}"
        await self._write(ref, current, OdooRestoreStatus(task_id=accepted.task_id, message=message), [
            Condition(cond.READY, "False", "Restoring", message),
            Condition(cond.RECONCILING, "True", "Restoring", message)])
        obj.events(Event("Normal", "RestoreStarted", message))
        return self._next_read(current)

    async def _running(self, obj: RestoreHandle, ref: ResourceRef, spec: OdooRestoreSpec,
                       current: OdooRestoreStatus) -> float | None:
        """Sent (or about to be): send again under the same key while no task is known, else follow it."""
        environment = await self.runtime.kube.get_object(ref.namespace, spec.environment_ref.name)
        env_spec = OdooEnvironmentSpec.from_body(environment["spec"]) if environment else None
        target = await self._target(ref.namespace, spec, current.environment_id or "", env_spec)
        if not current.task_id:
            unconfirmed = restore.unconfirmed(cond.parse_time(current.started_at), _now(), current.backup_id,
                                              f"OdooEnvironment {ref.namespace}/{spec.environment_ref.name}")
            if unconfirmed is not None:
                return await self._end(obj, ref, current, restore.FAILED, unconfirmed.reason, unconfirmed.message)
            return await self._send(obj, ref, current, target, _aware(spec.not_after))
        try:
            task = await target.api.with_priority(Priority.POLL).get_task(current.task_id)
        except OecNotFoundError:
            return await self._end(obj, ref, current, restore.FAILED, "RestoreFailed",
                                   f"OEC.sh no longer knows task {current.task_id}; check the environment")
        phase = restore.task_phase(task)
        if phase is None:
            return self._next_read(current)
        if phase == restore.FAILED:
            return await self._end(obj, ref, current, restore.FAILED, "RestoreFailed",
                                   f"restore task {task.id} ended {task.status}"
                                   + (f": {task.error_message}" if task.error_message else ""))
        safety = await self._safety_backup(target, current, task.id)
        way_back = (f"; the safety backup {safety} holds the data from before (restore it to go back)" if safety
                    else "; no pre_restore safety backup was found")
        return await self._end(obj, ref, current, restore.COMPLETED, "Completed",
                               f"restored backup {current.backup_id} (task {task.id}){way_back}",
                               OdooRestoreStatus(safety_backup_id=safety))

    async def _safety_backup(self, target: Target, current: OdooRestoreStatus, task_id: str) -> str | None:
        """The id of the ``pre_restore`` backup the API took before this restore, if listed among
        the environment's newest backups. Not filtered on the type: the reference API's type enum
        has no ``pre_restore`` and refuses such a filter (``docs/oec-api.md`` §1 row 28); a list
        refused for good leaves the id out rather than keeping a finished restore running.

        Raises:
            OecError: a transient failure (429, 5xx, timeout): the next step asks again.
        """
        since = cond.parse_time(current.started_at)
        if since is None:
            return None
        try:
            page = await target.api.with_priority(Priority.POLL).list_backups(target.environment_id, page_size=20)
        except OecError as exc:
            if exc.status is not None and 400 <= exc.status < 500 and exc.status != 429:
                return None
            raise
        found = restore.safety_backup(page.items, task_id, since)
        return found.id if found is not None else None

    def _next_read(self, current: OdooRestoreStatus) -> float:
        return restore.next_read(cond.parse_time(current.started_at), _now(),
                                 self.config.fast_poll_interval, self.config.poll_interval)

    # --- results -----------------------------------------------------------------------------

    async def _settle(self, obj: RestoreHandle, ref: ResourceRef, current: OdooRestoreStatus,
                      decided: Refusal | Wait) -> float | None:
        if isinstance(decided, Refusal):
            return await self._refuse(obj, ref, current, decided)
        return await self._wait(obj, ref, current, decided)

    async def _refuse(self, obj: RestoreHandle, ref: ResourceRef, current: OdooRestoreStatus,
                      refusal: Refusal) -> float | None:
        """A check failed for good: ``Refused``, nothing sent. Returns ``None``: terminal."""
        message = f"restore refused, nothing was sent: {refusal.message}"
        await self._write(ref, current, OdooRestoreStatus(phase=restore.REFUSED, message=message),
                          cond.stalled(refusal.reason, message), remove=(cond.RECONCILING,))
        obj.events(Event("Warning", refusal.reason, message))
        return None

    async def _wait(self, obj: RestoreHandle, ref: ResourceRef, current: OdooRestoreStatus, wait: Wait) -> float:
        """Not ready yet: ``Pending``, look again after the steady interval."""
        message = f"{wait.message}; waiting (until spec.notAfter at most)"
        await self._write(ref, current, OdooRestoreStatus(phase=restore.PENDING, message=message), [
            Condition(cond.READY, "False", wait.reason, message),
            Condition(cond.RECONCILING, "True", wait.reason, message)], remove=(cond.STALLED,))
        return max(self.config.fast_poll_interval, min(self.config.poll_interval, 30.0))

    async def _end(self, obj: RestoreHandle, ref: ResourceRef, current: OdooRestoreStatus, phase: str, reason: str,
                   message: str, extra: OdooRestoreStatus | None = None) -> float | None:
        """The task ended (or the API refused it for good): ``Completed`` or ``Failed``. Returns
        ``None``: terminal."""
        update = OdooRestoreStatus(phase=phase, completed_at=cond.rfc3339(_now()), message=message)
        if extra is not None:
            update = update.merged(extra)
        if phase == restore.COMPLETED:
            conditions = [Condition(cond.READY, "True", reason, message)]
            remove: tuple[str, ...] = (cond.RECONCILING, cond.STALLED)
        else:
            conditions, remove = cond.stalled(reason, message), (cond.RECONCILING,)
        await self._write(ref, current, update, conditions, remove=remove)
        obj.events(Event("Normal" if phase == restore.COMPLETED else "Warning", reason, message))
        return None

    async def _retry(self, obj: RestoreHandle, ref: ResourceRef, current: OdooRestoreStatus, reason: str,
                     message: str, *, stalled: bool = False, wait: float | None = None) -> float:
        """A failure that may pass (API, credentials, Kubernetes): say it, try again later; the
        phase is kept (a ``Running`` restore is still sent again under its key)."""
        obj.state.failures += 1
        if stalled:
            conditions = cond.stalled(reason, message)
            remove: tuple[str, ...] = (cond.RECONCILING,)
        else:
            conditions, remove = [Condition(cond.RECONCILING, "True", reason, message)], (cond.STALLED,)
        try:
            await self._write(ref, current, OdooRestoreStatus(), conditions, remove=remove)
        except KubeError as exc:
            obj.logger.warning(f"cannot write the status ({exc}); retrying")
        if wait is not None:
            return wait
        return backoff(self.config.fast_poll_interval, obj.state.failures) if not stalled else self.config.poll_interval

    async def _write(self, ref: ResourceRef, current: OdooRestoreStatus, update: OdooRestoreStatus,
                     conditions: list[Condition], remove: tuple[str, ...] = ()) -> OdooRestoreStatus:
        """Write ``update`` with ``conditions`` (and ``observedGeneration``) when it changes anything.

        Returns:
            The status now stored.

        Raises:
            KubeError: the write failed.
        """
        merged = cond.merge_conditions(current.conditions, conditions, generation=ref.generation, remove=remove)
        update = update.merged(OdooRestoreStatus(conditions=tuple(merged), observed_generation=ref.generation))
        if not current.changes(update).model_fields_set:
            return current
        return await self.status.write(ref.namespace, ref.name, ref.uid, update)
