"""The user annotations the operator reads (it never writes them), ``docs/reconciliation.md``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

PAUSED = "oec.sh/paused"
RECONCILE_REQUESTED_AT = "oec.sh/reconcile-requested-at"
REDEPLOY_REQUESTED_AT = "oec.sh/redeploy-requested-at"
RECREATE_REQUESTED_AT = "oec.sh/recreate-requested-at"
RESTART_REQUESTED_AT = "oec.sh/restart-requested-at"
POLL_INTERVAL = "oec.sh/poll-interval"
#: ``"true"``: delete without the final backup that ``spec.finalBackup`` asks for (the escape
#: hatch when it cannot be taken, ``docs/backups.md`` §4).
SKIP_FINAL_BACKUP = "oec.sh/skip-final-backup"
#: A token: a new value after the final backup failed, timed out or could not be taken takes a new
#: one (``docs/backups.md`` §4).
FINAL_BACKUP_REQUESTED_AT = "oec.sh/final-backup-requested-at"
#: A token written by the operator's webhook receiver in a replica that does not run the
#: object's loop (a standby, ``docs/webhooks.md`` §2): the active replica reads the environment
#: again now. Never a source of state.
REFRESH_REQUESTED_AT = "oec.sh/refresh-requested-at"
#: Longest steady poll interval the annotation may ask for, seconds (as ``OEC_POLL_INTERVAL``).
MAX_POLL_INTERVAL = 86400.0


@dataclass(frozen=True)
class Requests:
    """What the annotations ask for.

    Attributes:
        paused: ``oec.sh/paused: "true"``.
        skip_final_backup: ``oec.sh/skip-final-backup: "true"``.
        reconcile_token / redeploy_token / recreate_token / restart_token / final_backup_token: the
            tokens, or ``None``.
        refresh_token: ``oec.sh/refresh-requested-at`` (written by a webhook receiver), or ``None``.
        poll_interval: requested steady poll interval in seconds, or ``None`` when absent or
            not a positive number.
    """

    paused: bool = False
    skip_final_backup: bool = False
    reconcile_token: str | None = None
    redeploy_token: str | None = None
    recreate_token: str | None = None
    restart_token: str | None = None
    final_backup_token: str | None = None
    refresh_token: str | None = None
    poll_interval: float | None = None

    @classmethod
    def from_annotations(cls, annotations: Mapping[str, str] | None) -> Requests:
        """Parse ``metadata.annotations`` (missing or malformed values are ignored)."""
        a = annotations or {}
        try:
            interval: float | None = float(a[POLL_INTERVAL]) if POLL_INTERVAL in a else None
        except ValueError:
            interval = None
        return cls(
            paused=a.get(PAUSED, "").strip().lower() == "true",
            skip_final_backup=a.get(SKIP_FINAL_BACKUP, "").strip().lower() == "true",
            reconcile_token=a.get(RECONCILE_REQUESTED_AT) or None,
            redeploy_token=a.get(REDEPLOY_REQUESTED_AT) or None,
            recreate_token=a.get(RECREATE_REQUESTED_AT) or None,
            restart_token=a.get(RESTART_REQUESTED_AT) or None,
            final_backup_token=a.get(FINAL_BACKUP_REQUESTED_AT) or None,
            refresh_token=a.get(REFRESH_REQUESTED_AT) or None,
            poll_interval=min(interval, MAX_POLL_INTERVAL) if interval and interval > 0 else None,
        )

    def steady_interval(self, default: float, floor: float) -> float:
        """The steady poll interval in seconds: the annotation's, not below ``floor``, else ``default``."""
        return max(floor, self.poll_interval) if self.poll_interval is not None else default
