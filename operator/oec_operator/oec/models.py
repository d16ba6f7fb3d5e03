"""Pydantic models of the OEC.sh API objects the operator reads (``docs/oec-api.md`` §9).

The API's schema is loose: unknown fields are ignored and every field the operator does not
strictly need is optional, so a new API version cannot break parsing.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict


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
