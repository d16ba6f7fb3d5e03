"""Backups of the simulator: the record, its status over time and its JSON views (docs/oec-api.md
§11.5; §1 row 28).

Pure data and rules, no HTTP and no store: the store (``store.py``) creates the records (a manual
backup runs as a ``backup`` task, a restore's safety backup is the first step of the ``restore``
task, OEC's own ``scheduled`` and pre-deploy backups are recorded complete) and this module says
what a record looks like at a given time. Like tasks, a record's status follows from its times:
``pending`` until ``start_at``, running until ``end_at`` (MCP: ``in_progress``, the last quarter
``uploading``; REF: ``running``), then ``completed`` or ``failed``; ``cancelled`` once
``cancelled_at`` has passed; a completed backup past ``expires_at`` is ``expired`` (MCP) or gone
(REF: 404 and not listed; the REF enum has no ``expired``).
"""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass
from typing import Any

from .clock import iso
from .config import SimulatorConfig

#: Status values of the vendor client (MCP, the default) and of the reference docs (REF).
MCP_STATUSES = ("pending", "in_progress", "uploading", "completed", "failed", "cancelled", "expired")
REF_STATUSES = ("pending", "running", "completed", "failed", "cancelled")
#: Backup types of each enum set. The simulator emits ``pre_restore`` for a restore's safety
#: backup in both (REF names no type for it: clients must keep unknown values).
MCP_TYPES = ("manual", "scheduled", "pre_restore", "pre_upgrade", "pre_destroy")
REF_TYPES = ("manual", "scheduled", "pre_deploy")
#: Days a backup is kept per ``retention_type`` (``permanent``: never expires).
RETENTION_DAYS: dict[str, int | None] = {"daily": 1, "weekly": 7, "monthly": 30, "yearly": 365, "permanent": None}
#: Retention of the backups OEC makes by itself (simulator choice).
AUTO_RETENTION = {"scheduled": "daily", "pre_deploy": "weekly", "pre_upgrade": "weekly", "pre_restore": "monthly"}
#: OEC's own ``scheduled`` backup of an environment is taken every day, counted from the end of its
#: first deploy (not at a wall-clock hour: a test shorter than a day never sees one by surprise).
DAY = 86400.0
#: Key that signs the simulated download links (they only need to look presigned).
_SIGNING_KEY = b"oec-simulator-presign"
_STORAGE = "https://storage.oec.sh"


@dataclass
class Backup:
    """A backup record. Times are epoch seconds; ``end_at`` is when it completes (or fails when
    ``failed``); ``task_id`` the task it belongs to (a ``backup`` task, or the ``restore`` task of a
    safety backup; ``None`` for OEC's own backups). Records outlive their environment.
    ``restore_count``: restores started from it (admin view)."""

    id: str
    environment_id: str
    project_id: str
    backup_type: str
    retention_type: str
    include_filestore: bool
    notes: str | None
    created_at: float
    start_at: float
    end_at: float
    seq: int
    task_id: str | None = None
    failed: bool = False
    error_message: str | None = None
    cancelled_at: float | None = None
    restore_count: int = 0

    @property
    def expires_at(self) -> float | None:
        """When the backup expires (``created_at`` + the retention's days), ``None`` if permanent."""
        days = RETENTION_DAYS.get(self.retention_type)
        return None if days is None else self.created_at + days * DAY

    def phase_at(self, now: float) -> str:
        """Simulator phase at ``now``: pending, running, uploading, completed, failed, cancelled, expired."""
        if self.cancelled_at is not None and self.cancelled_at <= now and self.cancelled_at < self.end_at:
            return "cancelled"
        if now < self.start_at:
            return "pending"
        if now < self.end_at:
            uploading_from = self.start_at + 0.75 * (self.end_at - self.start_at)
            return "uploading" if now >= uploading_from else "running"
        if self.failed:
            return "failed"
        expires = self.expires_at
        return "expired" if expires is not None and now >= expires else "completed"

    def sizes(self) -> tuple[int, int]:
        """Deterministic ``(database_size, filestore_size)`` in bytes, from the environment id."""
        digest = hashlib.sha256(self.environment_id.encode()).digest()
        database = 40_000_000 + int.from_bytes(digest[:3], "big") * 8
        filestore = 100_000_000 + int.from_bytes(digest[3:6], "big") * 16 if self.include_filestore else 0
        return database, filestore


def status_name(phase: str, enums: str) -> str:
    """The API's ``status`` for a phase in the ``mcp`` or ``ref`` enum set."""
    if enums == "ref":
        return "running" if phase in ("running", "uploading") else phase
    return "in_progress" if phase == "running" else phase


def visible(backup: Backup, now: float, config: SimulatorConfig) -> bool:
    """Whether the API shows the record: an expired backup is gone in the REF variant."""
    return not (config.backup_enums == "ref" and backup.phase_at(now) == "expired")


def backup_view(backup: Backup, now: float, config: SimulatorConfig) -> dict[str, Any]:
    """The Backup object (§11.5) at ``now``; sizes and ``completed_at`` once finished."""
    phase = backup.phase_at(now)
    started = backup.start_at if phase != "pending" else None
    if phase == "cancelled":
        started = backup.start_at if backup.start_at <= (backup.cancelled_at or 0) else None
    finished = phase in ("completed", "failed", "expired")
    completed_at = backup.end_at if finished else (backup.cancelled_at if phase == "cancelled" else None)
    database = filestore = None
    if phase in ("completed", "expired"):
        database, filestore = backup.sizes()
    total = database + filestore if database is not None and filestore is not None else None
    duration = round(completed_at - started, 3) if completed_at is not None and started is not None else None
    return {
        "id": backup.id,
        "environment_id": backup.environment_id,
        "task_id": backup.task_id,
        "status": status_name(phase, config.backup_enums),
        "backup_type": backup.backup_type,
        "database_size": database,
        "filestore_size": filestore,
        "total_size": total,
        "compressed_size": int(total * 0.3) if total is not None else None,
        "started_at": iso(started),
        "completed_at": iso(completed_at),
        "duration_seconds": duration,
        "retention_type": backup.retention_type,
        "expires_at": iso(backup.expires_at),
        "is_verified": phase in ("completed", "expired"),
        "verified_at": iso(backup.end_at) if phase in ("completed", "expired") else None,
        "error_message": backup.error_message if phase == "failed" else None,
        "notes": backup.notes,
        "created_at": iso(backup.created_at),
    }


def page_view(items: list[dict[str, Any]], total: int, page: int, page_size: int,
              config: SimulatorConfig) -> dict[str, Any]:
    """The list answer: ``{items, total, page, page_size, pages}`` (MCP) or ``total_pages`` (REF)."""
    pages = math.ceil(total / page_size) if total else 0
    return {"items": items, "total": total, "page": page, "page_size": page_size, config.backup_page_field: pages}


def _presign(path: str, now: float, expires_in: int) -> str:
    """A URL that looks presigned (S3 style): algorithm, date, expiry and an HMAC signature."""
    date = iso(now) or ""
    stamp = date[:19].replace("-", "").replace(":", "") + "Z"
    canonical = f"{path}\n{stamp}\n{expires_in}".encode()
    signature = hmac.new(_SIGNING_KEY, canonical, hashlib.sha256).hexdigest()
    return (
        f"{_STORAGE}{path}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date={stamp}"
        f"&X-Amz-Expires={expires_in}&X-Amz-SignedHeaders=host&X-Amz-Signature={signature}"
    )


def download_view(backup: Backup, now: float, expires_in: int) -> dict[str, Any]:
    """``GET /backups/{id}/download`` answer: presigned-looking links valid ``expires_in`` seconds
    (``filestore_url`` null for a backup without filestore)."""
    base = f"/backups/{backup.environment_id}/{backup.id}"
    return {
        "backup_id": backup.id,
        "database_url": _presign(f"{base}/database.sql.gz", now, expires_in),
        "filestore_url": _presign(f"{base}/filestore.tar.gz", now, expires_in) if backup.include_filestore else None,
        "manifest_url": _presign(f"{base}/manifest.json", now, expires_in),
        "expires_in": expires_in,
        "expires_at": iso(now + expires_in),
    }

