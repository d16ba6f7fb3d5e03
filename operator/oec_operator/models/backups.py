"""The backup kinds as the operator reads and writes them: ``OdooBackup``, ``OdooBackupSchedule`` and
``OdooRestore`` (``oec.sh/v1alpha1``; the CRDs in ``crds/`` are the schemas, ``docs/backups.md`` the
rules).

Specs are parsed from ``body["spec"]`` (the apiserver validated them already; the models apply
the defaults). Statuses are :class:`~oec_operator.models.status.StatusBase` models: an instance
with some fields set is an update of the status (``patch()``, ``merged()``, ``from_body()`` as for
``OdooEnvironment``), written only by :mod:`oec_operator.kube.status`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from oec_operator.models.spec import Retention, SecretKeyRef
from oec_operator.models.status import StatusBase

#: ``OdooBackup`` phases (``docs/backups.md`` §1): ``Expired`` = the API no longer keeps the data.
BackupPhase = Literal["Pending", "Running", "Completed", "Failed", "Expired"]
#: ``OdooRestore`` phases (``docs/backups.md`` §3): ``Refused`` = a check failed before any request.
RestorePhase = Literal["Pending", "Running", "Completed", "Failed", "Refused"]


class _SpecModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)

    @classmethod
    def from_body(cls, spec: Mapping[str, Any]) -> Self:
        """Parse ``body["spec"]``. Raises ``pydantic.ValidationError`` for a malformed spec."""
        return cls.model_validate(dict(spec))


class LocalObjectRef(_SpecModel):
    """A reference by name to an object in the referring object's own namespace."""

    name: str


class LabelSelectorRequirement(_SpecModel):
    """One ``matchExpressions`` entry of a ``metav1.LabelSelector``."""

    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: tuple[str, ...] = ()


class LabelSelector(_SpecModel):
    """A ``metav1.LabelSelector`` (``matchLabels`` and ``matchExpressions``, all must match; an empty
    selector matches everything)."""

    match_labels: dict[str, str] = Field(default_factory=dict)
    match_expressions: tuple[LabelSelectorRequirement, ...] = ()

    def query(self) -> str:
        """The selector in the ``labelSelector`` query syntax of a Kubernetes list
        (``a=b,c in (d,e),!f``); ``""`` selects everything."""
        parts = [f"{key}={value}" for key, value in sorted(self.match_labels.items())]
        for req in self.match_expressions:
            if req.operator == "Exists":
                parts.append(req.key)
            elif req.operator == "DoesNotExist":
                parts.append(f"!{req.key}")
            else:
                parts.append(f"{req.key} {req.operator.lower()} ({','.join(req.values)})")
        return ",".join(parts)

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        """Whether an object with these ``labels`` is selected (the apiserver's semantics)."""
        have = labels or {}
        if any(have.get(key) != value for key, value in self.match_labels.items()):
            return False
        for req in self.match_expressions:
            present = req.key in have
            ok = {"Exists": present, "DoesNotExist": not present,
                  "In": present and have[req.key] in req.values,
                  "NotIn": not present or have[req.key] not in req.values}[req.operator]
            if not ok:
                return False
        return True


# --- OdooBackup ----------------------------------------------------------------------------------


class OdooBackupSpec(_SpecModel):
    """Desired backup (immutable after create, ``docs/backups.md`` §1).

    Attributes:
        environment_ref: the ``OdooEnvironment`` to back up (same namespace).
        include_filestore: back up the filestore with the database.
        retention: the API's retention class (default ``monthly``, never silently ``permanent``).
        notes: the user's notes (at most 400 characters: the operator appends its marker within
            the API's 500).
        backup_id: observe this existing OEC.sh backup instead of creating one (adoption, the
            final backup's record).
        credentials_secret_ref: the API key's Secret, for when the environment object is gone; ``None`` =
            the referenced ``OdooEnvironment``'s credentials, else the operator's.
    """

    environment_ref: LocalObjectRef
    include_filestore: bool = True
    retention: Retention = "monthly"
    notes: str | None = None
    backup_id: str | None = None
    credentials_secret_ref: SecretKeyRef | None = None


class OdooBackupStatus(StatusBase):
    """``OdooBackup`` status, or an update of it (``docs/backups.md`` §1, ``docs/status-contract.md``).

    Attributes:
        phase: :data:`BackupPhase`.
        backup_id, task_id, environment_id: the API's ids.
        oec_status: the API's backup status as sent (``docs/oec-api.md`` §11.5).
        backup_type: the API's ``backup_type`` (``manual``, ``scheduled``, ...).
        database_size, filestore_size, total_size, compressed_size: bytes.
        started_at, completed_at, expires_at: RFC 3339.
        verified: the API verified the backup.
        create_requested_at: RFC 3339, recorded BEFORE the create is sent (the intent: after a
            lost answer or a crash the backup is looked up, not created again).
        message: a human summary (never a download URL).
    """

    phase: BackupPhase | None = None
    backup_id: str | None = None
    task_id: str | None = None
    environment_id: str | None = None
    oec_status: str | None = None
    backup_type: str | None = None
    database_size: int | None = None
    filestore_size: int | None = None
    total_size: int | None = None
    compressed_size: int | None = None
    started_at: str | None = None
    completed_at: str | None = None
    expires_at: str | None = None
    verified: bool | None = None
    create_requested_at: str | None = None
    message: str | None = None


# --- OdooBackupSchedule --------------------------------------------------------------------------


class BackupTemplate(_SpecModel):
    """``spec.template`` of a schedule: the ``OdooBackup`` spec of each run (default retention ``weekly``)."""

    include_filestore: bool = True
    retention: Retention = "weekly"
    notes: str | None = None


class OdooBackupScheduleSpec(_SpecModel):
    """Backups on a cron schedule (``docs/backups.md`` §2).

    Attributes:
        schedule: 5-field cron expression, evaluated in ``time_zone`` (IANA name, default ``UTC``).
        environment_ref / selector: exactly one: one environment, or the ``OdooEnvironment`` objects
            of the namespace whose labels match.
        suspend: no new runs while true.
        concurrency_policy: ``Forbid`` only (the API refuses a second backup while one runs).
        starting_deadline_seconds: a run later than this after its time is skipped, seconds.
        successful_history_limit / failed_history_limit: ``OdooBackup`` objects kept per outcome.
        spread_seconds: runs are spread over this many seconds after the scheduled time
            (deterministically per environment); ``None`` = the default (``docs/backups.md`` §2).
        template: the spec of each run's backup.
    """

    schedule: str
    time_zone: str = "UTC"
    environment_ref: LocalObjectRef | None = None
    selector: LabelSelector | None = None
    suspend: bool = False
    concurrency_policy: Literal["Forbid"] = "Forbid"
    starting_deadline_seconds: int = 3600
    successful_history_limit: int = 7
    failed_history_limit: int = 3
    spread_seconds: int | None = None
    template: BackupTemplate = Field(default_factory=BackupTemplate)


class OdooBackupScheduleStatus(StatusBase):
    """``OdooBackupSchedule`` status, or an update of it (times RFC 3339).

    Attributes:
        last_schedule_time / next_schedule_time / last_successful_time: the last run's time, the
            next one's, the latest completion among the schedule's Completed backups.
        active: names of the ``OdooBackup`` objects of runs not finished yet.
        environments: the environments the schedule matched at its last evaluation.
        skipped: runs skipped (``Forbid``, missed deadline), cumulative.
    """

    last_schedule_time: str | None = None
    next_schedule_time: str | None = None
    last_successful_time: str | None = None
    active: tuple[str, ...] | None = None
    environments: int | None = None
    skipped: int | None = None
    message: str | None = None


# --- OdooRestore ---------------------------------------------------------------------------------


class OdooRestoreSpec(_SpecModel):
    """One restore of a backup into an environment (immutable after create, ``docs/backups.md`` §3).

    Attributes:
        environment_ref: the ``OdooEnvironment`` restored into.
        backup_ref / backup_id: exactly one: an ``OdooBackup`` of the namespace, or an OEC.sh backup id.
        confirm_environment_name: must equal the environment's OEC.sh name (its display name).
        not_after: the restore is refused once this time has passed (a stale manifest re-applied
            later never overwrites newer data).
    """

    environment_ref: LocalObjectRef
    backup_ref: LocalObjectRef | None = None
    backup_id: str | None = None
    confirm_environment_name: str
    not_after: datetime


class OdooRestoreStatus(StatusBase):
    """``OdooRestore`` status, or an update of it (times RFC 3339).

    Attributes:
        phase: :data:`RestorePhase`; ``Completed``, ``Failed`` and ``Refused`` are terminal.
        backup_id, environment_id, task_id: the API's ids; safety_backup_id: the ``pre_restore``
            backup the API took first.
        requested_at: recorded BEFORE the restore is sent (the intent: sent once, with one
            idempotency key).
    """

    phase: RestorePhase | None = None
    backup_id: str | None = None
    environment_id: str | None = None
    task_id: str | None = None
    safety_backup_id: str | None = None
    requested_at: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    message: str | None = None
