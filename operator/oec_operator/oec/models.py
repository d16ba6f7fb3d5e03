"""Pydantic models of the OEC.sh API objects the operator reads (``docs/oec-api.md`` §9).

The API's schema is loose: unknown fields are ignored and every field the operator does not
strictly need is optional, so a new API version cannot break parsing.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator


class _ApiModel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class EnvironmentState(StrEnum):
    """Environment ``status`` values (``docs/oec-api.md`` §10). Unknown values are kept as strings."""

    PENDING = "pending"
    DEPLOYING = "deploying"
    RUNNING = "running"
    STOPPED = "stopped"
    PAUSED = "paused"
    FAILED = "failed"
    ERROR = "error"
    DESTROYING = "destroying"
    DELETED = "deleted"
    CLONING = "cloning"


#: Statuses in which work is still in flight on the OEC side (``docs/oec-api.md`` §10).
TRANSITIONAL_STATES = frozenset({"pending", "deploying", "cloning", "destroying"})
#: Terminal task states (``docs/oec-api.md`` §9.3, decision 23).
TERMINAL_TASK_STATES = frozenset({"completed", "failed", "cancelled"})


class Environment(_ApiModel):
    """An environment (``docs/oec-api.md`` §2, §9.1). Times are ISO 8601 strings as sent.

    ``cpu_cores``/``ram_mb``/``disk_gb`` are what the API shows: the PATCHed sizes at once, or the
    running ones on an API that shows those (``docs/oec-api.md`` §1 row 32). ``custom_domain``
    (``None``: the platform subdomain only) and ``custom_domain_verified`` (``None``: the API did
    not say) come from the vendor client (§9.1, §1 row 35).
    """

    id: str
    name: str
    status: str
    project_id: str | None = None
    url: str | None = None
    odoo_version: str | None = None
    branch: str | None = None
    last_commit: str | None = None
    cpu_cores: float | None = None
    ram_mb: int | None = None
    disk_gb: int | None = None
    server_id: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    custom_domain: str | None = None
    custom_domain_verified: bool | None = None


class LastDeploy(_ApiModel):
    """The ``last_deploy`` object of the status endpoint (``docs/oec-api.md`` §9.2)."""

    id: str
    status: str
    started_at: str | None = None
    completed_at: str | None = None


class EnvironmentHealth(_ApiModel):
    """``GET /environments/{id}/status`` (``docs/oec-api.md`` §9.2)."""

    environment_id: str | None = None
    status: str | None = None
    url: str | None = None
    container_running: bool = False
    db_ready: bool = False
    http_ok: bool = False
    last_deploy: LastDeploy | None = None


class Task(_ApiModel):
    """A deploy/destroy/... task, ``GET /deployments/{task_id}`` (``docs/oec-api.md`` §9.3)."""

    id: str
    status: str
    type: str | None = None
    environment_id: str | None = None
    progress_percent: float | None = None
    current_step: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    error_message: str | None = None

    @property
    def finished(self) -> bool:
        """True when the task reached ``completed``, ``failed`` or ``cancelled``."""
        return self.status in TERMINAL_TASK_STATES


class ActionAccepted(_ApiModel):
    """HTTP 202 answer of an action or of DELETE (``docs/oec-api.md`` §9.4)."""

    task_id: str
    status: str = "queued"
    environment_id: str | None = None
    poll_url: str | None = None


class TaskLog(_ApiModel):
    """``GET /environments/{id}/logs`` (``docs/oec-api.md`` §11.4)."""

    task_id: str | None = None
    log: str = ""
    lines: int = 0
    truncated: bool = False


#: Backup ``retention_type`` values (``docs/oec-api.md`` §11.5); ``permanent`` never expires.
RETENTION_TYPES = ("daily", "weekly", "monthly", "yearly", "permanent")


class Backup(_ApiModel):
    """A backup (``docs/oec-api.md`` §11.5). ``status`` and ``backup_type`` are kept as sent: the API
    has two enum sets (§1 row 28) and may add values. Sizes in bytes; times timezone-aware."""

    id: str
    environment_id: str
    task_id: str | None = None
    status: str
    backup_type: str
    database_size: int | None = None
    filestore_size: int | None = None
    total_size: int | None = None
    compressed_size: int | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    duration_seconds: float | None = None
    retention_type: str | None = None
    expires_at: datetime | None = None
    is_verified: bool = False
    verified_at: datetime | None = None
    error_message: str | None = None
    notes: str | None = None
    created_at: datetime | None = None


class BackupPage(_ApiModel):
    """One page of ``GET /environments/{id}/backups`` (``docs/oec-api.md`` §11.5): the page count is
    ``total_pages`` (reference docs) or ``pages`` (vendor client), computed when neither is sent."""

    items: list[Backup]
    total: int
    page: int = 1
    page_size: int = 20
    total_pages: int = Field(validation_alias=AliasChoices("total_pages", "pages"))

    @model_validator(mode="before")
    @classmethod
    def _page_count(cls, data: Any) -> Any:
        if isinstance(data, dict) and "total_pages" not in data and "pages" not in data:
            size = data.get("page_size") or 20
            total = data.get("total") or 0
            data = {**data, "total_pages": -(-int(total) // int(size)) if size else 0}
        return data


class BackupDownload(_ApiModel):
    """``GET /backups/{id}/download`` (``docs/oec-api.md`` §11.5): presigned links, valid
    ``expires_in`` seconds. The links are bearer credentials (anyone holding one can download the
    whole database), so they are left out of ``repr``; never log them or put them in a status."""

    backup_id: str
    database_url: str = Field(repr=False)
    filestore_url: str | None = Field(None, repr=False)
    manifest_url: str | None = Field(None, repr=False)
    expires_in: int
    expires_at: datetime


class RestoreAccepted(_ApiModel):
    """HTTP 202 answer of ``POST /backups/{id}/restore`` (``docs/oec-api.md`` §11.5); follow
    ``task_id`` with ``GET /deployments/{task_id}``."""

    task_id: str
    status: str = "queued"
    environment_id: str
    backup_id: str


class Webhook(_ApiModel):
    """A webhook (``docs/oec-api.md`` §11.6). ``project_id`` ``None`` = org-wide. ``secret`` is sent
    only by the create answer: it signs the deliveries, so it is left out of ``repr``; never log it
    or put it in a status."""

    id: str
    url: str
    events: list[str] = Field(default_factory=list)
    description: str | None = None
    project_id: str | None = None
    format: str = "raw"
    is_active: bool = True
    last_triggered_at: datetime | None = None
    failure_count: int = 0
    created_at: datetime | None = None
    secret: str | None = Field(None, repr=False)


class WebhookDelivery(_ApiModel):
    """One delivery record of ``GET /webhooks/{id}/deliveries`` (``docs/oec-api.md`` §11.6):
    ``status`` ``success``, ``failed`` or ``pending``; ``duration_ms`` milliseconds."""

    id: str
    event: str
    status: str
    attempt_count: int = 0
    response_status: int | None = None
    duration_ms: int | None = None
    delivered_at: datetime | None = None
    created_at: datetime | None = None
    response_body: str | None = None


class WebhookTest(_ApiModel):
    """Answer of ``POST /webhooks/{id}/test`` (``docs/oec-api.md`` §11.6): the ``ping`` went out now;
    ``status_code`` is the receiver's answer (``None``: none), ``duration_ms`` milliseconds."""

    success: bool
    status_code: int | None = None
    duration_ms: int | None = None
    message: str | None = None
