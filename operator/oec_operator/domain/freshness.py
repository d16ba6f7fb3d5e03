"""Backup freshness of an ``OdooEnvironment``: ``status.backups.latest``, the environment's newest
completed backup whoever made it (OEC's own ``scheduled`` and pre-deploy ones included), read
every few hours rather than at every poll (``docs/backups.md`` §5).

Each object reads at its own offset within the interval (a fixed fraction of it derived from its
UID), so a thousand environments with the default six hours make about three reads a minute
instead of a burst. The read is a detail (:attr:`~oec_operator.oec.ratelimit.Priority.DETAIL`):
when the key's read budget is short it is skipped and tried at the next poll.
"""

from __future__ import annotations

import math
import time

from oec_operator.models.conditions import rfc3339, seconds_since
from oec_operator.models.status import BackupsStatus, LatestBackup
from oec_operator.oec.client import OecClient
from oec_operator.oec.errors import OecError, OecNotFoundError
from oec_operator.oec.ratelimit import Priority


def due(backups: BackupsStatus | None, created_at: str | None, *, interval: float, offset: float,
        now: float | None = None) -> bool:
    """Whether the newest backup is to be read now: the time slot of this object (slots of
    ``interval`` seconds, shifted by ``offset`` seconds) changed since the last read at
    ``backups.checked_at``, or, never read yet, since the environment's ``created_at`` (a new
    environment has no backup to show yet; one of unknown age is read at once). ``interval`` 0
    disables the reads."""
    if interval <= 0:
        return False
    age = seconds_since(backups.checked_at if backups and backups.checked_at else created_at)
    if age is None:
        return True
    now = time.time() if now is None else now
    return math.floor((now - offset) / interval) > math.floor((now - age - offset) / interval)


async def read_latest(api: OecClient, environment_id: str, now: str) -> BackupsStatus | None:
    """``GET /environments/{id}/backups?status=completed&page_size=1`` (newest first, any type,
    ``docs/oec-api.md`` §11.5) as ``status.backups``.

    Returns:
        The freshness checked ``now`` (``latest`` absent when the environment has no completed
        backup, or the API has no backup route: 404), or ``None`` when the read failed or was
        deferred for the budget (tried again at the next poll).
    """
    try:
        page = await api.with_priority(Priority.DETAIL).list_backups(environment_id, page=1, page_size=1,
                                                                     status="completed")
    except OecNotFoundError:
        return BackupsStatus(latest=None, checked_at=now)
    except OecError:
        return None
    if not page.items:
        return BackupsStatus(latest=None, checked_at=now)
    newest = page.items[0]
    return BackupsStatus(latest=LatestBackup(id=newest.id, type=newest.backup_type, status=newest.status,
                                             completed_at=rfc3339(newest.completed_at)), checked_at=now)
