"""One OEC.sh backup per Kubernetes object, although the API's create has no idempotency key
(``docs/oec-api.md`` §11.5), and what an API backup status means (``docs/backups.md`` §1).

The safe create, shared by ``OdooBackup`` and the final backup of an ``OdooEnvironment``:

1. the caller's object carries a marker derived from its UID (:func:`marker`), written into the
   backup's ``notes``;
2. the intent is recorded in the object's status *before* the POST (``record_intent``);
3. when an intent was recorded earlier (a crash, a lost answer, a timeout, a 5xx after the request
   was sent, another replica's attempt), the environment's recent manual backups are searched for
   the marker before any new POST (:func:`find_by_marker`).

A second POST while the first still runs is refused by the API (409, one backup at a time), so a
request that reaches OEC.sh late cannot make a second backup either.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Protocol

from oec_operator.oec.errors import OecBackupsUnsupportedError, OecConflictError
from oec_operator.oec.models import Backup, BackupPage

#: Pages of the newest manual backups searched for a marker (``docs/backups.md`` §1).
LOOKUP_PAGES = 2
#: Backups per page of that search.
LOOKUP_PAGE_SIZE = 20


class Phase(StrEnum):
    """``status.phase`` of an ``OdooBackup`` (``docs/backups.md`` §1)."""

    PENDING = "Pending"
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"
    EXPIRED = "Expired"


#: API backup status -> phase, over both enum sets of ``docs/oec-api.md`` §11.5.
_PHASES = {
    "pending": Phase.PENDING, "queued": Phase.PENDING,
    "running": Phase.RUNNING, "in_progress": Phase.RUNNING, "uploading": Phase.RUNNING,
    "completed": Phase.COMPLETED,
    "failed": Phase.FAILED, "cancelled": Phase.FAILED, "canceled": Phase.FAILED,
    "expired": Phase.EXPIRED,
}
#: Word stems of an unknown status that still reads as an end (checked in this order).
_TERMINAL_STEMS = (("fail", Phase.FAILED), ("error", Phase.FAILED), ("cancel", Phase.FAILED),
                   ("abort", Phase.FAILED), ("expire", Phase.EXPIRED), ("delete", Phase.EXPIRED))


def phase_of(api_status: str) -> Phase:
    """The phase of an API backup ``status`` (either enum set of ``docs/oec-api.md`` §11.5).

    An unknown value never crashes: one that reads as an end (``...failed``, ``error``,
    ``aborted``, ``deleted``...) maps to Failed / Expired, anything else to Running (followed
    until it ends).
    """
    value = api_status.strip().lower()
    known = _PHASES.get(value)
    if known is not None:
        return known
    for stem, phase in _TERMINAL_STEMS:
        if stem in value:
            return phase
    return Phase.RUNNING


def marker(uid: str) -> str:
    """The marker of the object with ``uid`` in its backup's notes: ``k8s:<uid>``."""
    return f"k8s:{uid}"


def notes_with_marker(notes: str | None, mark: str) -> str:
    """The notes sent with the create: the user's notes, then ``[<marker>]``."""
    tag = f"[{mark}]"
    return f"{notes.strip()} {tag}" if notes and notes.strip() else tag


def has_marker(notes: str | None, mark: str) -> bool:
    """Whether a backup's notes carry ``mark`` (as :func:`notes_with_marker` wrote it)."""
    return f"[{mark}]" in (notes or "")


class BackupApi(Protocol):
    """The OEC client calls the safe create needs (:class:`~oec_operator.oec.client.OecClient`)."""

    async def create_backup(self, environment_id: str, *, include_filestore: bool, retention_type: str,
                            notes: str | None) -> Backup: ...

    async def list_backups(self, environment_id: str, *, page: int = 1, page_size: int = 20,
                           status: str | None = None, backup_type: str | None = None) -> BackupPage: ...


class BackupBusy(Exception):
    """The API refused the create with 409: a backup or another task of the environment runs.
    Not a failure: try again later (``docs/backups.md`` §1).

    Attributes:
        reason: ``BackupInProgress`` (a backup runs), ``TaskInProgress`` (another task runs) or
            ``EnvironmentNotReady`` (``invalid_state``: the environment cannot be backed up in its
            current state, e.g. never deployed).
        task_id: the blocking task, when the API named it.
    """

    def __init__(self, exc: OecConflictError) -> None:
        self.task_id = exc.task_id
        if exc.code == "invalid_state":
            self.reason = "EnvironmentNotReady"
            super().__init__(f"OEC.sh cannot back up the environment in its current state: "
                             f"{exc.message.rstrip('. ')}; waiting")
            return
        about_backup = "backup" in f"{exc.code} {exc.message}".lower()
        self.reason = "BackupInProgress" if about_backup else "TaskInProgress"
        what = "another backup" if about_backup else "another task"
        task = f" (task {self.task_id})" if self.task_id else ""
        super().__init__(f"OEC.sh refused the backup while {what} of the environment runs{task}: "
                         f"{exc.message.rstrip('. ')}; waiting")


class BackupsUnsupported(Exception):
    """The API has no backup-create route (404/405 on the create while the environment exists;
    ``docs/oec-api.md`` §1 row 28, older APIs): nothing to retry until the API changes."""


async def find_by_marker(api: BackupApi, environment_id: str, mark: str) -> Backup | None:
    """The environment's newest manual backup whose notes carry ``mark``, searching the first
    :data:`LOOKUP_PAGES` pages (newest first, ``docs/oec-api.md`` §11.5); ``None`` if none.

    Raises:
        OecError: the list failed.
    """
    for page in range(1, LOOKUP_PAGES + 1):
        listing = await api.list_backups(environment_id, page=page, page_size=LOOKUP_PAGE_SIZE,
                                         backup_type="manual")
        for item in listing.items:
            if has_marker(item.notes, mark):
                return item
        if page >= listing.total_pages or not listing.items:
            break
    return None


async def ensure_backup(api: BackupApi, environment_id: str, *, mark: str, include_filestore: bool, retention: str,
                        notes: str | None, requested: bool, record_intent: Callable[[], Awaitable[object]]) -> Backup:
    """The one backup of the object marked ``mark``: found, or created now.

    Args:
        api: the OEC client (through the key's rate limiter).
        environment_id: the OEC.sh environment to back up.
        mark: the object's :func:`marker`.
        include_filestore, retention, notes: the create's body (``retention`` one of
            daily|weekly|monthly|yearly|permanent; ``notes`` the user's, the marker is added).
        requested: an intent was recorded before (``status.createRequestedAt`` or alike): the
            backup may exist, so it is looked up before any POST.
        record_intent: writes the intent to the object's status; awaited before the POST (and
            only when ``requested`` is false). If it raises, nothing is sent.

    Returns:
        The backup as the API returned it (found or created).

    Raises:
        BackupBusy: 409, a backup or another task runs; try again later.
        BackupsUnsupported: the create route is missing.
        OecError: any other API failure (``OecNotFoundError``: the environment is gone); after a failure
            whose answer was lost, call again with ``requested=True``.
    """
    if requested:
        found = await find_by_marker(api, environment_id, mark)
        if found is not None:
            return found
    else:
        await record_intent()
    try:
        return await api.create_backup(environment_id, include_filestore=include_filestore, retention_type=retention,
                                       notes=notes_with_marker(notes, mark))
    except OecConflictError as exc:
        raise BackupBusy(exc) from None
    except OecBackupsUnsupportedError as exc:
        raise BackupsUnsupported(f"the OEC.sh API has no backup route (HTTP {exc.status} on "
                                 "POST /environments/{id}/backups)") from None
