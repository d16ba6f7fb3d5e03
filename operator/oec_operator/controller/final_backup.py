"""The final backup in the deletion of an ``OdooEnvironment`` (``docs/backups.md`` §4): taken,
waited for and recorded before the DELETE is sent.

:func:`before_delete` is called by :class:`~oec_operator.controller.delete.DeleteController` once it
knows the environment is to be destroyed. It drives :func:`oec_operator.domain.final_backup.advance`,
says in the status what the deletion waits for (``Reconciling``) or why it cannot go on
(``Stalled`` with the escape hatch annotation), and once the backup completed records it: an
``OdooBackup`` object that survives the resource (no ownerReference), an Event
``FinalBackupCompleted`` and ``oec_operator_backups_total{result="completed"}``.
"""

from __future__ import annotations

import hashlib

from oec_operator import metrics
from oec_operator.controller.state import Handle
from oec_operator.domain import final_backup
from oec_operator.domain.assess import merge_status
from oec_operator.domain.backups import Phase
from oec_operator.domain.final_backup import STALL_REASONS, WAYS_OUT, Progress
from oec_operator.domain.outcome import Event, Outcome, ResourceRef
from oec_operator.kube.client import KubeError
from oec_operator.models import conditions as cond
from oec_operator.models.conditions import Condition
from oec_operator.models.requests import SKIP_FINAL_BACKUP, Requests
from oec_operator.models.spec import OdooEnvironmentSpec
from oec_operator.models.status import FinalBackupStatus, Status
from oec_operator.oec.client import OecClient
from oec_operator.oec.errors import OecError
from oec_operator.oec.ratelimit import Priority
from oec_operator.runtime import Runtime
from oec_operator.settings import BACKUP_PLURAL, GROUP, VERSION

#: Label of the ``OdooBackup`` object that records a final backup.
FINAL_BACKUP_LABEL = "oec.sh/final-backup"
#: ``status.finalBackup.message`` once the annotation skipped the backup (its Event is posted once).
SKIPPED = f"skipped: the annotation {SKIP_FINAL_BACKUP} is set"

#: In the message of a stalled final backup, before the ways out (:mod:`oec_operator.logs` logs
#: the deletion's retries with it quietly: the stall was logged once at WARNING).
KEPT = "the environment is kept:"

#: ``(seconds until the next step, what the deletion waits for)``, or ``None``: send the DELETE.
Hold = tuple[float, str] | None


def record_name(environment: str, uid: str, kind: str = "final") -> str:
    """Name of the ``OdooBackup`` recording the final backup of the ``OdooEnvironment``
    ``environment`` with ``uid``: ``<environment>-<kind>-<8 hex of the uid>`` (at most 63
    characters; a same-named resource created later gets its own record)."""
    suffix = f"-{kind}-{hashlib.sha256(uid.encode()).hexdigest()[:8]}"
    return environment[:63 - len(suffix)].rstrip("-.") + suffix


def record_body(body_name: str, spec: OdooEnvironmentSpec, backup_id: str, ref: ResourceRef) -> dict[str, object]:
    """The ``OdooBackup`` that records the final backup: it observes ``backup_id`` (``spec.backupId``)
    with the environment's credentials, and has no ownerReference, so it outlives the resource."""
    credentials = spec.credentials_secret_ref
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "OdooBackup",
        "metadata": {"name": body_name,
                     "labels": {FINAL_BACKUP_LABEL: "true", "oec.sh/environment": ref.name[:63]},
                     "annotations": {"argocd.argoproj.io/compare-options": "IgnoreExtraneous"}},
        "spec": {"environmentRef": {"name": ref.name}, "backupId": backup_id,
                 "retention": spec.final_backup.retention,
                 **({"credentialsSecretRef": credentials.model_dump(by_alias=True)} if credentials else {})},
    }


async def before_delete(runtime: Runtime, obj: Handle, ref: ResourceRef, previous: Status,
                        spec: OdooEnvironmentSpec, api: OecClient, environment_id: str) -> Hold:
    """The final backup's step, when ``spec.finalBackup`` asks for one (``docs/backups.md`` §4).

    Returns:
        ``None`` when the DELETE may be sent (the backup completed and is recorded, the annotation
        skips it, or the environment is gone), else ``(retry after seconds, message)``.

    Raises:
        OecError: an API failure (the caller reports it and retries).
    """
    recorded = previous.final_backup
    requests = Requests.from_annotations(obj.body["metadata"].get("annotations"))
    if requests.skip_final_backup:
        if recorded is None or (recorded.phase != Phase.COMPLETED and recorded.message != SKIPPED):
            obj.events(Event("Warning", "FinalBackupSkipped", f"deleting OEC.sh environment {environment_id} "
                             f"without a final backup: the annotation {SKIP_FINAL_BACKUP} is set"))
            await _write(runtime, obj, ref, Status(final_backup=(recorded or FinalBackupStatus()).model_copy(
                update={"message": SKIPPED})))
        return None
    config = runtime.config

    async def persist(update: FinalBackupStatus) -> None:
        await runtime.status.write(ref.namespace, ref.name, ref.uid, Status(final_backup=update))

    recorded = final_backup.retry(recorded, requests.final_backup_token)  # a new token: a new attempt
    try:
        progress = await final_backup.advance(api, environment_id, uid=ref.uid, what=f"{ref.namespace}/{ref.name}",
                                              spec=spec.final_backup, recorded=recorded, now=cond.now_rfc3339(),
                                              persist=persist)
    except KubeError as exc:  # the intent could not be written: nothing was sent
        return config.fast_poll_interval * 4, f"cannot record the final backup's request in the status ({exc})"
    if progress.state == "gone":
        return None
    if progress.state == "completed":
        return await _record(runtime, obj, ref, previous, spec, progress, environment_id)
    if progress.state == "running":
        waited = cond.seconds_since(progress.status.requested_at) or 0.0
        retry = max(config.fast_poll_interval, min(config.poll_interval, waited))  # a handful of reads, not every 5 s
        message = f"{progress.message}; the environment is destroyed once it completed"
        await _report(runtime, obj, ref, previous, [Condition(cond.READY, "False", "FinalBackup", message),
                                                    Condition(cond.RECONCILING, "True", "FinalBackup", message)],
                      (cond.STALLED,), progress.status)
        return retry, message
    reason = STALL_REASONS[progress.state]
    message = f"{progress.message.rstrip('.')}; {KEPT} {WAYS_OUT}"
    if progress.state == "failed" and (recorded is None or recorded.phase not in (Phase.FAILED, Phase.EXPIRED)):
        metrics.backup_finished("failed")
    if not _shows(previous, reason, message):  # said once (the retries of the step are logged quietly)
        obj.logger.warning(f"{reason}: {message}")
        obj.events(Event("Warning", reason, message))
    await _report(runtime, obj, ref, previous, cond.stalled(reason, message), (cond.RECONCILING,), progress.status)
    # Looked at again soon: the annotation lets the deletion go on at once (no API call meanwhile).
    return config.min_poll_interval, message


async def _record(runtime: Runtime, obj: Handle, ref: ResourceRef, previous: Status, spec: OdooEnvironmentSpec,
                  progress: Progress, environment_id: str) -> Hold:
    """The backup completed: record it (once) as an ``OdooBackup``, in the status, an Event and
    the metrics; a failure to record is retried before any DELETE."""
    recorded = previous.final_backup
    if recorded is not None and recorded.phase == Phase.COMPLETED:
        return None  # recorded by an earlier step
    backup_id = str(progress.status.backup_id)
    name = record_name(ref.name, ref.uid)
    try:
        await runtime.kube.create_object(ref.namespace, record_body(name, spec, backup_id, ref), plural=BACKUP_PLURAL)
    except KubeError as exc:
        if exc.status != 409:  # 409: recorded by an earlier attempt
            message = f"cannot record the final backup {backup_id} as OdooBackup {name} ({exc}); retrying"
            obj.logger.warning(message)
            return runtime.config.fast_poll_interval * 4, message
    try:
        await runtime.status.write(ref.namespace, ref.name, ref.uid, Status(final_backup=progress.status))
    except KubeError as exc:
        return runtime.config.fast_poll_interval, f"cannot record the final backup {backup_id} in the status ({exc})"
    metrics.backup_finished("completed")
    metrics.backup_completed(ref.namespace, ref.name, progress.backup.completed_at if progress.backup else None)
    obj.events(Event("Normal", "FinalBackupCompleted", f"final backup {backup_id} of OEC.sh environment "
                     f"{environment_id} completed (recorded in OdooBackup {name}); destroying the environment"))
    return None


async def after_delete(runtime: Runtime, obj: Handle, ref: ResourceRef, spec: OdooEnvironmentSpec, api: OecClient,
                       environment_id: str) -> None:
    """The environment is gone: a ``pre_destroy`` backup OEC.sh may have taken by itself (the API
    has the type; whether it takes one is an open question, ``docs/backups.md`` §4) is recorded
    like the final backup (an ``OdooBackup`` and an Event ``PreDestroyBackup``). Best effort, one
    read: the finalizer is released whatever happens."""
    try:
        page = await api.with_priority(Priority.DETAIL).list_backups(environment_id, page=1, page_size=1,
                                                                     status="completed", backup_type="pre_destroy")
    except OecError:
        return  # an API without the type refuses the filter: nothing to record
    if not page.items:
        return
    backup_id = page.items[0].id
    name = record_name(ref.name, ref.uid, "pre-destroy")
    try:
        await runtime.kube.create_object(ref.namespace, record_body(name, spec, backup_id, ref), plural=BACKUP_PLURAL)
    except KubeError as exc:
        if exc.status != 409:
            obj.logger.warning(f"cannot record OEC.sh's pre_destroy backup {backup_id} ({exc})")
            return
    obj.events(Event("Normal", "PreDestroyBackup", f"OEC.sh took backup {backup_id} (pre_destroy) of environment "
                     f"{environment_id} when destroying it; recorded in OdooBackup {name}"))


def _shows(previous: Status, reason: str, message: str) -> bool:
    stalled = previous.condition(cond.STALLED) or {}
    return (stalled.get("reason"), stalled.get("message")) == (reason, message)


async def _report(runtime: Runtime, obj: Handle, ref: ResourceRef, previous: Status, conditions: list[Condition],
                  remove: tuple[str, ...], final: FinalBackupStatus) -> None:
    """Write the conditions and ``status.finalBackup`` when they changed (best effort: a failed
    write is retried by the next step, the intent was written before the POST)."""
    outcome = Outcome(status=Status(final_backup=final), conditions=conditions, remove=remove)
    update = merge_status(previous, outcome, ref.generation, cond.now_rfc3339())
    if previous.changes(update).model_fields_set:
        await _write(runtime, obj, ref, update)


async def _write(runtime: Runtime, obj: Handle, ref: ResourceRef, update: Status) -> None:
    try:
        await runtime.status.write(ref.namespace, ref.name, ref.uid, update)
    except KubeError as exc:
        obj.logger.info(f"cannot write the deletion's status ({exc})")
