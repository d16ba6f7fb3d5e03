"""The decisions of one ``OdooRestore`` (``docs/backups.md`` §3): the checks before the restore is
sent, its idempotency key, and what the API's answers mean. Pure functions; the controller
(:mod:`oec_operator.controller.restore`) reads, writes and calls the API.

A restore replaces the environment's database and filestore, so nothing is sent unless every
check passes: the request has not expired (``spec.notAfter``; a manifest re-applied later, e.g.
to a rebuilt cluster, does nothing), the typed confirmation names the environment, and the backup
belongs to that environment and is ``completed`` (``docs/oec-api.md`` §11.5). A check that fails
for good refuses the restore (phase ``Refused``, terminal); one that may still pass (the
environment or the backup not ready yet) makes it wait. The ``Idempotency-Key`` comes from the
object's UID: a lost answer is asked again under the same key and the API replays it, so one
object starts at most one restore; a terminal phase never sends again.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from oec_operator.domain.backups import Phase, phase_of
from oec_operator.models.conditions import parse_time, rfc3339
from oec_operator.oec.models import Backup, Task

PENDING, RUNNING, COMPLETED, FAILED, REFUSED = "Pending", "Running", "Completed", "Failed", "Refused"
#: Phases after which the object never sends anything again.
TERMINAL_PHASES = frozenset({COMPLETED, FAILED, REFUSED})
#: ``backup_type`` of the safety backup the API takes before it restores (``docs/oec-api.md`` §11.5).
SAFETY_BACKUP_TYPE = "pre_restore"
#: Seconds after the first POST within which it may be sent again under the same key: the API
#: replays a repeated key for 24 h (``docs/oec-api.md`` §1 row 5), less an hour for clock skew.
REPLAY_WINDOW = 23 * 3600.0
#: ``status.phase`` values of an ``OdooBackup`` that will never complete.
BACKUP_ENDED = frozenset({"Failed", "Expired"})


@dataclass(frozen=True)
class Refusal:
    """A check failed for good: the restore is refused (phase ``Refused``) and nothing is sent.

    Attributes:
        reason: the ``Stalled`` condition's reason, naming the check.
        message: what failed and what to do.
    """

    reason: str
    message: str


@dataclass(frozen=True)
class Wait:
    """A check that may still pass (something is not ready yet): look again later."""

    reason: str
    message: str


def environment_key(namespace: str, name: str) -> str:
    """The key of an ``OdooEnvironment`` in the index of running restores."""
    return f"{namespace}/{name}"


def running_of(body: Mapping[str, Any]) -> dict[str, str]:
    """The index entry of one ``OdooRestore`` body: ``{environment key: description}`` while it
    runs (phase ``Running``: sent, or about to be), ``{}`` otherwise. The ``OdooEnvironment``
    reconcile reads it: while a restore runs, it shows ``Reconciling`` reason ``Restoring`` and
    starts no task of its own (``docs/backups.md`` §3)."""
    meta, spec, status = body.get("metadata") or {}, body.get("spec") or {}, body.get("status") or {}
    target = (spec.get("environmentRef") or {}).get("name")
    if status.get("phase") != RUNNING or not target:
        return {}
    task = status.get("taskId")
    what = f"OdooRestore {meta.get('name')}" + (f" (task {task})" if task else "")
    return {environment_key(str(meta.get("namespace")), str(target)): what}


def idempotency_key(uid: str) -> str:
    """``Idempotency-Key`` of the restore asked by the object with this UID: the same for every
    attempt of this object, another one for a re-created object."""
    return "oec-operator-restore-" + hashlib.sha256(f"restore:{uid}".encode()).hexdigest()[:32]




def check_not_after(not_after: datetime.datetime, now: datetime.datetime) -> Refusal | None:
    """``spec.notAfter`` passed: the request expired (checked before the first POST only)."""
    if now <= not_after:
        return None
    return Refusal("Expired", f"spec.notAfter {rfc3339(not_after)} has passed: the restore was not started and will "
                              "not be; create a new OdooRestore with a later notAfter to restore")


def check_confirmation(confirm: str, names: Sequence[str], environment: str) -> Refusal | None:
    """``spec.confirmEnvironmentName`` must equal a name of the environment exactly: its name in
    OEC.sh, or the name the operator gives a managed one (``spec.name``, else ``metadata.name``);
    ``names`` lists those known, ``environment`` is the ``OdooEnvironment`` (for the message)."""
    if confirm in names:
        return None
    shown = " or ".join(repr(n) for n in dict.fromkeys(names)) or "unknown"
    return Refusal("ConfirmationMismatch",
                   f"spec.confirmEnvironmentName {confirm!r} is not the name of OdooEnvironment {environment}'s "
                   f"environment ({shown}); a restore replaces its database and files, so it must be named "
                   "exactly; create a new OdooRestore with the right name")


def backup_from_ref(name: str, phase: str | None, backup_id: str | None) -> str | Refusal | Wait:
    """The OEC backup id of ``spec.backupRef`` (an ``OdooBackup`` named ``name`` with this
    ``status.phase`` and ``status.backupId``; ``phase`` ``None``: no such object yet).

    Returns:
        The id of a ``Completed`` backup; a :class:`Refusal` for a backup that failed or
        expired; a :class:`Wait` while it is missing or not completed yet.
    """
    if phase in BACKUP_ENDED:
        return Refusal("BackupNotCompleted", f"OdooBackup {name} is {phase}: there is nothing to restore from it")
    if phase == COMPLETED and backup_id:
        return backup_id
    if phase is None:
        return Wait("WaitingForBackup", f"OdooBackup {name} does not exist (yet)")
    return Wait("WaitingForBackup", f"OdooBackup {name} is {phase}, not Completed yet")


def check_backup(backup: Backup, environment_id: str) -> Refusal | Wait | None:
    """The backup must belong to the environment (``environment_id``) and be ``completed``
    (``GET /backups/{id}``, ``docs/oec-api.md`` §11.5); one still being made is waited for."""
    if backup.environment_id != environment_id:
        return Refusal("ForeignBackup",
                       f"backup {backup.id} belongs to environment {backup.environment_id}, not to {environment_id}; "
                       "OEC.sh restores a backup only into its own environment")
    phase = phase_of(backup.status)
    if phase is Phase.COMPLETED:
        return None
    if phase in (Phase.PENDING, Phase.RUNNING):
        return Wait("WaitingForBackup", f"backup {backup.id} is {backup.status}, not completed yet")
    return Refusal("BackupNotCompleted",
                   f"backup {backup.id} is {backup.status}, not completed: there is nothing to restore from it")


def refused_for_good(status: int | None, code: str) -> bool:
    """Whether the API's answer to the restore POST says it will never start: a 4xx other than 409
    (another task runs: wait), 429 (rate limit) and 401/403 (credentials: fixable)
    (``docs/oec-api.md`` §5)."""
    return status is not None and 400 <= status < 500 and status not in (401, 403, 409, 429) \
        and code != "idempotency_key_mismatch"


def unconfirmed(started_at: datetime.datetime | None, now: datetime.datetime, backup_id: str | None,
                environment: str) -> Refusal | None:
    """A restore sent (or about to be) at ``started_at`` with no task known yet, past the API's
    replay window: sending it again would not be replayed but run as a new restore, so it is not
    sent again (the first may have run; a second would overwrite the data again)."""
    if started_at is None or (now - started_at).total_seconds() <= REPLAY_WINDOW:
        return None
    return Refusal("RestoreUnconfirmed",
                   f"the restore of backup {backup_id} was first sent at {rfc3339(started_at)} and no task of it is "
                   f"known; the API replays a repeated request for 24 h only, so sending it again could restore a "
                   f"second time. A {SAFETY_BACKUP_TYPE} backup of {environment} created after that time "
                   f"(kubectl oec backups) means it ran; create a new OdooRestore to restore again")


def task_phase(task: Task) -> str | None:
    """The phase a finished restore task leads to (``Completed`` or ``Failed``), ``None`` while it runs."""
    if not task.finished:
        return None
    return COMPLETED if task.status == "completed" else FAILED


def safety_backup(backups: Iterable[Backup], task_id: str | None, since: datetime.datetime) -> Backup | None:
    """The safety backup of a restore: the ``pre_restore`` backup the API took before restoring
    (``docs/oec-api.md`` §11.5). The one whose ``task_id`` is the restore's task when the API says
    so; else the newest created at or after ``since`` (the restore's ``status.startedAt``, the
    operator's clock rounded down to the second; the API's clock is taken to be on NTP too)."""
    safety = [b for b in backups if b.backup_type == SAFETY_BACKUP_TYPE]
    linked = [b for b in safety if task_id and b.task_id == task_id]
    if linked:
        return linked[0]
    found = [b for b in safety if (parse_time(b.created_at) or since) >= since and b.created_at is not None]
    return max(found, key=lambda b: parse_time(b.created_at) or since, default=None)


def next_read(started_at: datetime.datetime | None, now: datetime.datetime, fast: float, slow: float) -> float:
    """Seconds until the running restore task is read again: its age, between the fast and the
    steady interval (a restore of an hour is read a handful of times, not every few seconds)."""
    age = (now - started_at).total_seconds() if started_at is not None else 0.0
    return max(fast, min(slow, age))


