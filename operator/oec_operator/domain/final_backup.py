"""The final backup taken before an ``OdooEnvironment``'s environment is destroyed
(``docs/backups.md`` §4), one step per call of the deletion.

It goes through the shared safe create of :mod:`oec_operator.domain.backups` (a marker derived
from the object's UID in the notes, the intent in ``status.finalBackup`` before the POST, a
look-up before any retry), so neither a crash nor a lost answer makes two backups. Knows nothing
of Kubernetes: the deletion records the completed backup (Event, ``OdooBackup`` object) and sends
the DELETE only once :func:`advance` says ``completed``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from oec_operator.domain import backups
from oec_operator.domain.backups import BackupBusy, BackupsUnsupported, Phase, phase_of
from oec_operator.models.conditions import rfc3339, seconds_since
from oec_operator.models.requests import FINAL_BACKUP_REQUESTED_AT, SKIP_FINAL_BACKUP
from oec_operator.models.spec import FinalBackup
from oec_operator.models.status import FinalBackupStatus
from oec_operator.oec.client import OecClient
from oec_operator.oec.errors import OecNotFoundError
from oec_operator.oec.models import Backup

#: What the deletion does next: ``running`` (wait), ``completed`` (record it, then DELETE),
#: ``gone`` (the environment no longer exists: nothing to back up), or a stall until the user acts.
State = Literal["running", "completed", "gone", "failed", "timed_out", "unsupported"]

#: ``Stalled`` reasons of the states that wait for the user (``docs/backups.md`` §4).
STALL_REASONS = {"failed": "FinalBackupFailed", "timed_out": "FinalBackupTimedOut",
                 "unsupported": "FinalBackupUnsupported"}

#: Start of ``status.finalBackup.message`` once the API showed it has no backup route.
UNSUPPORTED = "the final backup cannot be taken"

#: Start of ``status.finalBackup.message`` once the backup was seen not completed past the timeout.
TIMED_OUT = "timed out:"

#: The two ways out of a stalled final backup (``docs/backups.md`` §4), named in its message.
WAYS_OUT = (f"set the annotation {FINAL_BACKUP_REQUESTED_AT} to a new value to try again, "
            f'or {SKIP_FINAL_BACKUP}: "true" to delete without it')


@dataclass(frozen=True)
class Progress:
    """One step's result: ``state``, ``status`` (``status.finalBackup`` as it is now; written by
    the caller when it changed), ``message`` (what it waits for or why it stalls) and, once
    ``completed``, the ``backup`` as the API last showed it (``None`` when it was recorded before)."""

    state: State
    status: FinalBackupStatus
    message: str = ""
    backup: Backup | None = None


def final_marker(uid: str, token: str | None = None) -> str:
    """The marker of the final backup of the ``OdooEnvironment`` with ``uid`` (distinct from any
    ``OdooBackup``'s, which carries that object's own UID) taken for the ``token`` of
    ``oec.sh/final-backup-requested-at`` (each retry has its own: the look-up never adopts a
    failed attempt)."""
    return backups.marker(f"{uid}:final" + (f":{token}" if token else ""))


def retry(recorded: FinalBackupStatus | None, token: str | None) -> FinalBackupStatus | None:
    """``status.finalBackup`` to go on from: a fresh attempt for ``token`` when it is new (not the
    recorded attempt's) and the recorded attempt stalled (failed, expired, timed out or could not
    be taken), else ``recorded``. A token set while a backup runs is used once it stalled; one
    set before the first attempt is that attempt's."""
    if recorded is None:
        return FinalBackupStatus(token=token) if token else None
    if not token or token == recorded.token or recorded.phase == Phase.COMPLETED:
        return recorded
    message = recorded.message or ""
    stalled = recorded.phase in (Phase.FAILED, Phase.EXPIRED) or message.startswith((UNSUPPORTED, TIMED_OUT))
    return FinalBackupStatus(token=token) if stalled else recorded


async def advance(api: OecClient, environment_id: str, *, uid: str, what: str, spec: FinalBackup,
                  recorded: FinalBackupStatus | None, now: str,
                  persist: Callable[[FinalBackupStatus], Awaitable[object]]) -> Progress:
    """One step of the final backup of ``environment_id``.

    Args:
        api: the client of the deletion (its key, the DELETE's priority).
        uid: the ``OdooEnvironment``'s UID (the marker); ``what``: its ``namespace/name`` (the notes).
        spec: ``spec.finalBackup`` (retention, timeout).
        recorded: ``status.finalBackup`` (``None``: nothing was requested yet).
        now: RFC 3339 time of this step.
        persist: writes ``status.finalBackup`` at once; awaited before the POST (the intent). If
            it raises, nothing is sent.

    Returns:
        The :class:`Progress`. A 409 (a task or another backup runs) is ``running``; a failed
        backup, one not completed within ``spec.timeout_seconds`` of the request, or an API without
        the backup route stall (``docs/backups.md`` §4).

    Raises:
        OecError: any other API failure (transient: the caller retries; the look-up before a
            new POST keeps it to one backup).
    """
    status = recorded or FinalBackupStatus()
    token = status.token
    if status.phase == Phase.COMPLETED:
        return Progress("completed", status)
    if status.phase in (Phase.FAILED, Phase.EXPIRED):
        return Progress("failed", status,
                        f"the final backup {status.backup_id} failed: {status.message or 'no reason given'}")
    if status.message and status.message.startswith(UNSUPPORTED):  # not asked again: each POST spends the budget
        return Progress("unsupported", status, status.message)
    waited = seconds_since(status.requested_at)
    late = waited is not None and waited > spec.timeout_seconds
    timed_out = f"{TIMED_OUT} the final backup {status.backup_id or '(not started)'} did not complete within " \
                f"spec.finalBackup.timeoutSeconds ({spec.timeout_seconds} s)"
    # Past the timeout a recorded backup is read once more (it may have completed since the last
    # look); after that the stall makes no API call until the timeout is raised.
    if late and (status.backup_id is None or (status.message or "").startswith(TIMED_OUT)):
        return Progress("timed_out", status.model_copy(update={"message": timed_out}), timed_out)
    try:
        if status.backup_id is None:
            requested_at = status.requested_at or now
            intent = FinalBackupStatus(phase=Phase.PENDING, requested_at=requested_at, token=token)
            backup = await backups.ensure_backup(
                api, environment_id, mark=final_marker(uid, token), include_filestore=True, retention=spec.retention,
                notes=f"final backup before deleting OdooEnvironment {what}", requested=status.requested_at is not None,
                record_intent=lambda: persist(intent))
            status = FinalBackupStatus(backup_id=backup.id, phase=phase_of(backup.status), requested_at=requested_at,
                                       token=token)
        else:
            backup = await _read(api, environment_id, status.backup_id)
    except BackupBusy as exc:
        return Progress("running", status.model_copy(update={"requested_at": status.requested_at or now}), str(exc))
    except BackupsUnsupported as exc:
        message = f"{UNSUPPORTED}: {exc}"
        return Progress("unsupported", status.model_copy(update={"message": message}), message)
    except OecNotFoundError:
        return Progress("gone", status)  # the environment (or its backup, with it) is gone: nothing to keep
    phase = phase_of(backup.status)
    completed_at = rfc3339(backup.completed_at)
    status = status.model_copy(update={"phase": phase, "backup_id": backup.id,
                                       "completed_at": completed_at if phase == Phase.COMPLETED else None,
                                       "message": backup.error_message if phase in (Phase.FAILED, Phase.EXPIRED)
                                       else None})
    if phase == Phase.COMPLETED:
        return Progress("completed", status, backup=backup)
    if phase in (Phase.FAILED, Phase.EXPIRED):
        return Progress("failed", status,
                        f"the final backup {backup.id} failed: {backup.error_message or backup.status}")
    if late:
        return Progress("timed_out", status.model_copy(update={"message": timed_out}), timed_out)
    return Progress("running", status, f"taking the final backup {backup.id} ({backup.status})")


async def _read(api: OecClient, environment_id: str, backup_id: str) -> Backup:
    """The recorded backup; one the API no longer knows while the environment exists is failed.

    Raises:
        OecNotFoundError: the environment is gone.
    """
    try:
        return await api.get_backup(backup_id)
    except OecNotFoundError:
        if await _exists(api, environment_id):
            return Backup(id=backup_id, environment_id=environment_id, status="failed", backup_type="manual",
                          error_message="OEC.sh no longer knows this backup (GET /backups/{id} answered 404)")
        raise


async def _exists(api: OecClient, environment_id: str) -> bool:
    """Whether the environment exists (after a 404 on the backup create: a missing route or a gone environment)."""
    try:
        await api.get_environment(environment_id)
    except OecNotFoundError:
        return False
    return True
