"""Configuration of the OEC.sh API simulator (docs/oec-api.md §1 "What the simulator must decide").

Every switch of the §1 table that the simulator implements is a field of :class:`SimulatorConfig`.
Defaults are the simulator defaults of that table; the other values are the documented or
older-API variants. Durations and delays are in seconds.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from .faultrules import FaultRule, OutageSpec

#: Key format accepted by the API (docs/oec-api.md §1 row 26, §4).
KEY_PATTERN = re.compile(r"^oec_live_(ro|rw)_[A-Za-z0-9_-]{20,200}$")

#: Demo project seeded by the CLI when no project is configured.
DEMO_PROJECT_ID = uuid.UUID("3f0c9a52-7a1e-4c1b-9d2e-5b8f6a4e2c10")
#: Demo keys accepted by the CLI when no key is configured (full access and read-only).
DEMO_RW_KEY = "oec_live_rw_demo_simulator_key_0000000000000000"
DEMO_RO_KEY = "oec_live_ro_demo_simulator_key_0000000000000000"

_SERVER_NAMESPACE = uuid.UUID("6f1d3c4e-0b7a-4f55-9a51-2d8e0c1b7a90")


def server_id_for(project_id: uuid.UUID) -> uuid.UUID:
    """Deterministic server UUID for a project configured without an explicit ``server_id``."""
    return uuid.uuid5(_SERVER_NAMESPACE, str(project_id))


class ProjectConfig(BaseModel):
    """A project known to the simulator (Project object, docs/oec-api.md §9.5).

    ``server_id`` omitted → a deterministic server id is generated; ``server_id: null`` → the project
    has no server, so environments created in it stay ``pending`` with ``last_deploy: null``
    (§1 row 12 variant).
    """

    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    name: str = Field(min_length=1, max_length=255)
    default_branch: str | None = Field("main", max_length=255)
    odoo_version: str | None = Field("17.0", pattern=r"^\d{1,2}\.\d$")
    server_id: uuid.UUID | None = None
    git_repo_url: str | None = Field(None, max_length=2048)
    git_provider: Literal["github", "gitlab", "bitbucket"] | None = None

    def resolved_server_id(self) -> uuid.UUID | None:
        """The project's server: explicit value, ``None`` if explicitly null, else a generated id."""
        if "server_id" in self.model_fields_set:
            return self.server_id
        return server_id_for(self.id)


class KeyConfig(BaseModel):
    """An API key accepted by the simulator (docs/oec-api.md §4).

    ``key`` must match :data:`KEY_PATTERN`; its ``ro``/``rw`` infix gives the tier. ``scope`` is
    ``org`` (all projects) or ``project`` (only ``project_id``). ``expires_at`` (optional, aware or
    UTC) makes the key answer 401 ``key_expired`` afterwards. The key value is a ``SecretStr`` so it
    never shows up in reprs, dumps or validation errors.
    """

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    key: SecretStr
    scope: Literal["org", "project"] = "org"
    project_id: uuid.UUID | None = None
    expires_at: datetime | None = None

    @field_validator("key")
    @classmethod
    def _check_format(cls, value: SecretStr) -> SecretStr:
        if not KEY_PATTERN.match(value.get_secret_value()):
            raise ValueError("API key does not match ^oec_live_(ro|rw)_[A-Za-z0-9_-]{20,200}$")
        return value

    @model_validator(mode="after")
    def _check_scope(self) -> KeyConfig:
        if self.scope == "project" and self.project_id is None:
            raise ValueError("a project-scoped key needs project_id")
        if self.scope == "org" and self.project_id is not None:
            raise ValueError("an org-scoped key takes no project_id")
        return self


class SimulatorConfig(BaseModel):
    """Runtime configuration of the simulator (docs/oec-api.md §1; rate limits §6; idempotency §7).

    Mutable at runtime through ``PATCH /_sim/config`` (assignment is validated). Fields:

    * ``projects`` / ``keys`` — seed data (see :class:`ProjectConfig`, :class:`KeyConfig`).
    * ``deploy_seconds`` (5.0), ``destroy_seconds`` (3.0), ``action_seconds`` (2.0, start/stop/
      restart/quick-update): task durations, seconds.
    * ``read_limit`` (120), ``write_limit`` (20): requests per window per key (§6).
    * ``idempotency_ttl_seconds`` (86400): how long a 2xx answer is replayed (§7).
    * ``latency``: route name → seconds slept before handling (``"*"`` = every API route). Route
      names: ``list_projects``, ``create_project``, ``get_project``, ``patch_project``,
      ``delete_project``, ``list_environments``, ``create_environment``, ``get_environment``,
      ``patch_environment``, ``delete_environment``, ``environment_status``, ``environment_logs``,
      ``deploy``, ``restart``, ``start``, ``stop``, ``quick_update``, ``get_deployment``,
      ``list_deployments``, ``list_backups``, ``create_backup``, ``get_backup``,
      ``backup_download``, ``restore_backup``, ``list_webhooks``, ``create_webhook``, ``get_webhook``,
      ``update_webhook``, ``delete_webhook``, ``test_webhook``, ``rotate_webhook_secret``,
      ``list_webhook_deliveries``.
    * ``max_environments`` (None = unlimited): organisation quota (§1 row 16).
    * ``max_cpu_cores``, ``max_ram_mb``, ``max_disk_gb`` (None = unlimited): the plan's largest size
      of one environment; above → 422 ``quota_exceeded`` (§1 row 34).
    * ``domain_verify_seconds`` (5.0; None = never by itself): a new custom domain becomes
      ``custom_domain_verified`` this long after it was set (§1 row 35).
    * ``fail_next_deploys`` (0): the next N deploy tasks fail (decremented as they are queued);
      ``fail_deploy_step`` (``build``) is the step they fail at, ``fail_deploy_log`` the lines their
      ``/logs`` show at the failure (default: two pip ``ERROR`` lines), ``fail_deploy_message`` the
      task's ``error_message``. Per environment: ``PATCH /_sim/environments/{id}``.
    * ``brute_force_threshold`` (10), ``brute_force_window_seconds`` (60),
      ``brute_force_block_seconds`` (900): IP block after refused keys (§4).
    * ``request_log_limit`` (100000): newest finished entries kept by ``GET /_sim/requests``.
    * Start-up only (not in ``GET /_sim/config``, not patchable; use ``/_sim/faults`` and
      ``/_sim/outage`` at run time): ``faults`` (fault rules installed at start, ``faultrules.py``),
      ``fault_seed`` (seed of the share draws; None = random, shown by ``GET /_sim/faults/seed``),
      ``outage`` (an outage window relative to the start).
    * Variant switches (§1): ``error_envelope``, ``delete_status``, ``idempotency_mode``,
      ``idempotency_inflight``, ``idempotency_headers``, ``rate_limit_mode``, ``rate_limit_headers``,
      ``not_visible_status``, ``failed_deploy_status``, ``name_uniqueness``, ``list_hides_inactive``,
      ``status_filter``, ``unknown_fields``, ``quota_status``, ``logs_max_lines``,
      ``confirm_status``, ``action_aliases``, ``deployments_list``, ``detail_lag_seconds``,
      ``patch_fields``, ``size_view``, ``disk_shrink``.
    * Backups (§11.5, §1 row 28): ``backup_seconds`` (3.0) and ``restore_seconds`` (4.0) task
      durations; ``auto_backups`` (True): OEC's own ``scheduled`` (every 24 h after the first deploy) and pre-deploy
      backups appear by themselves; ``fail_next_backups`` (0): the next N backup tasks fail, with
      ``fail_backup_message`` as ``error_message``; ``fail_next_restores`` (0): the next N restore
      tasks fail at their database step, with ``fail_restore_message``; variants ``backup_enums`` (``mcp``/``ref``),
      ``backup_page_field`` (``pages``/``total_pages``), ``backups_route`` (``present``/``missing``).
    * Webhooks (§11.6, §1 row 27): ``webhook_allow_insecure_urls`` (False; CLI
      ``--allow-insecure-webhook-urls``), ``webhook_mutation_limit`` (10 per minute),
      ``webhook_signature`` (``hex``/``prefixed``/``base64``/``timestamp``),
      ``webhook_signature_header`` (``X-OEC-Signature``), ``webhook_retry_delays`` ([1, 5, 30] s),
      ``webhook_deactivate_after`` (10 failed attempts; 0 = never), ``webhook_timeout_seconds`` (10).
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, hide_input_in_errors=True)

    projects: list[ProjectConfig] = Field(default_factory=list)
    keys: list[KeyConfig] = Field(default_factory=list)

    deploy_seconds: float = Field(5.0, ge=0)
    destroy_seconds: float = Field(3.0, ge=0)
    action_seconds: float = Field(2.0, ge=0)
    read_limit: int = Field(120, ge=1)
    write_limit: int = Field(20, ge=1)
    idempotency_ttl_seconds: float = Field(86400.0, gt=0)
    latency: dict[str, float] = Field(default_factory=dict)
    max_environments: int | None = Field(None, ge=0)
    max_cpu_cores: float | None = Field(None, gt=0)
    max_ram_mb: int | None = Field(None, gt=0)
    max_disk_gb: int | None = Field(None, gt=0)
    domain_verify_seconds: float | None = Field(5.0, ge=0)
    fail_next_deploys: int = Field(0, ge=0)
    fail_deploy_step: Literal["prepare", "pull", "build", "migrate", "start", "healthcheck"] = "build"
    fail_deploy_log: list[str] | None = None
    fail_deploy_message: str | None = Field(None, min_length=1, max_length=2000)
    brute_force_threshold: int = Field(10, ge=1)
    brute_force_window_seconds: float = Field(60.0, gt=0)
    brute_force_block_seconds: float = Field(900.0, ge=0)
    request_log_limit: int = Field(100_000, ge=1)
    faults: list[FaultRule] = Field(default_factory=list)
    fault_seed: int | None = None
    outage: OutageSpec | None = None
    backup_seconds: float = Field(3.0, ge=0)
    restore_seconds: float = Field(4.0, ge=0)
    auto_backups: bool = True
    fail_next_backups: int = Field(0, ge=0)
    fail_backup_message: str | None = Field(None, min_length=1, max_length=2000)
    fail_next_restores: int = Field(0, ge=0)
    fail_restore_message: str | None = Field(None, min_length=1, max_length=2000)

    # §1 row 2: error envelope.
    error_envelope: Literal["detail", "toplevel"] = "detail"
    # §1 row 3: DELETE environment answer.
    delete_status: Literal[202, 204] = 202
    # §1 row 5: replay (default) or strict (different body → 422 idempotency_key_mismatch).
    idempotency_mode: Literal["replay", "strict"] = "replay"
    # §1 row 5 older API: duplicate while the first is running → 409 concurrent_action.
    idempotency_inflight: Literal["wait", "conflict"] = "wait"
    # §1 row 4: only the route's header name (default) or either name on every route.
    idempotency_headers: Literal["route", "either"] = "route"
    # §1 row 7: split read/write calendar-minute buckets, or one rolling 60 s bucket per key.
    rate_limit_mode: Literal["split", "single"] = "split"
    # §1 row 8: full headers; body_only = header-less 429 with detail.retry_after; none = no hint.
    rate_limit_headers: Literal["full", "body_only", "none"] = "full"
    # §1 row 9: project key on another project's resource.
    not_visible_status: Literal[404, 403] = 404
    # §1 row 10: status a failed deploy leaves behind.
    failed_deploy_status: Literal["failed", "error"] = "failed"
    # §1 row 15: 409 name_conflict on duplicate names in a project.
    name_uniqueness: bool = False
    # §1 row 13 older API: stopped/paused/error/failed environments missing from the list.
    list_hides_inactive: bool = False
    # §1 row 11: accepted ?status= values (SEED set + cloning, or MCP's narrower enum).
    status_filter: Literal["seed", "mcp"] = "seed"
    # §1 row 14: unknown create-body fields ignored or rejected (422 extra_forbidden).
    unknown_fields: Literal["ignore", "reject"] = "ignore"
    # §1 row 16: status code of quota_exceeded.
    quota_status: Literal[422, 403, 409] = 422
    # §1 row 17: upper bound of ?lines= on /logs (SEED 5000, MCP 1000).
    logs_max_lines: Literal[5000, 1000] = 5000
    # §1 row 18: missing/wrong X-Confirm-Delete → 400 confirmation_required or 422 pydantic shape.
    confirm_status: Literal[400, 422] = 400
    # §1 row 6 variant: /environments/{id}/actions/{deploy,redeploy,restart,start,stop} aliases.
    action_aliases: bool = False
    # §1 row 22: deployments list shows every task type, or deploy tasks only.
    deployments_list: Literal["all", "deploy_only"] = "all"
    # §1 row 30: eventual consistency; for N s after a create the environment's GET detail routes
    # answer 404 while the project's list already shows it (0 = consistent at once).
    detail_lag_seconds: float = Field(0.0, ge=0)
    # §1 row 31: PATCH /environments/{id} takes the vendor client's six fields, or (older API, SEED)
    # only name and branch: domain/cpu_cores/ram_mb/disk_gb → 422 extra_forbidden naming the field.
    patch_fields: Literal["mcp", "seed"] = "mcp"
    # §1 row 32: the environment object shows the PATCHed (requested) sizes at once, or the applied
    # (running) ones until a deploy, start, restart or quick-update completes.
    size_view: Literal["requested", "applied"] = "requested"
    # §1 row 33: a smaller disk_gb → 422 validation error on disk_gb, or accepted.
    disk_shrink: Literal["refuse", "allow"] = "refuse"
    # §1 row 28: backup status/type enums of the vendor client (MCP) or of the reference docs (REF).
    backup_enums: Literal["mcp", "ref"] = "mcp"
    # §1 row 28: name of the page-count field of the backup list.
    backup_page_field: Literal["pages", "total_pages"] = "pages"
    # §1 row 28: the backup-create route exists, or is absent (POST answers 404, as an older API).
    backups_route: Literal["present", "missing"] = "present"
    # §1 row 27: webhook target URLs: https to a public host only, or (test flag) also http and
    # loopback/private addresses.
    webhook_allow_insecure_urls: bool = False
    # §1 row 27: webhook create/update/delete per key per rolling minute (§11.6: 10).
    webhook_mutation_limit: int = Field(10, ge=1)
    # §1 row 27: how a delivery is signed (HMAC-SHA256 with the webhook's secret): ``hex`` of the raw
    # body, ``prefixed`` (``sha256=<hex>``), ``base64``, or ``timestamp`` (hex over
    # ``"{ts}.{body}"``, the unix seconds also in ``X-OEC-Timestamp``); in header
    # ``webhook_signature_header``.
    webhook_signature: Literal["hex", "prefixed", "base64", "timestamp"] = "hex"
    webhook_signature_header: str = Field("X-OEC-Signature", pattern=r"^[A-Za-z0-9-]{1,64}$")
    # §1 row 27: seconds before each retry of a failed delivery attempt (non-2xx or no answer).
    webhook_retry_delays: list[float] = Field(default_factory=lambda: [1.0, 5.0, 30.0], max_length=20)
    # §1 row 27: consecutive failed attempts that deactivate a webhook (``is_active: false``); 0 = never.
    webhook_deactivate_after: int = Field(10, ge=0)
    # Seconds a delivery attempt (and the /test ping) waits for the receiver's answer.
    webhook_timeout_seconds: float = Field(10.0, gt=0)

    @field_validator("rate_limit_headers", mode="before")
    @classmethod
    def _bool_headers(cls, value: Any) -> Any:
        if value is True:
            return "full"
        if value is False:
            return "body_only"
        return value

    @field_validator("webhook_retry_delays")
    @classmethod
    def _non_negative_delays(cls, value: list[float]) -> list[float]:
        if any(delay < 0 for delay in value):
            raise ValueError("webhook retry delays must be >= 0 seconds")
        return value

    @field_validator("latency")
    @classmethod
    def _non_negative_latency(cls, value: dict[str, float]) -> dict[str, float]:
        for name, seconds in value.items():
            if seconds < 0:
                raise ValueError(f"latency for {name!r} must be >= 0 seconds")
        return value

    def runtime_view(self) -> dict[str, Any]:
        """JSON-able dump of every field except the start-up ones (never shows key values)."""
        return self.model_dump(mode="json", exclude=set(STARTUP_FIELDS))

    def apply_patch(self, patch: dict[str, Any]) -> None:
        """Validate ``patch`` (field → value, not a start-up field) as a whole, then assign it.

        Raises ``pydantic.ValidationError`` (nothing assigned) or ``ValueError`` for forbidden fields.
        """
        forbidden = STARTUP_FIELDS & set(patch)
        if forbidden:
            raise ValueError(
                f"use the /_sim/projects, /_sim/keys, /_sim/faults and /_sim/outage endpoints, not {sorted(forbidden)}"
            )
        merged = {**self.model_dump(exclude=set(STARTUP_FIELDS)), **patch}
        candidate = SimulatorConfig.model_validate(merged)
        for name in patch:
            setattr(self, name, getattr(candidate, name))


#: Fields used only when the simulator starts (seed data and start-up faults).
STARTUP_FIELDS = frozenset({"projects", "keys", "faults", "fault_seed", "outage"})


def demo_project() -> ProjectConfig:
    """The demo project the CLI seeds when none is configured (name ``demo``, branch ``main``, 17.0)."""
    return ProjectConfig(id=DEMO_PROJECT_ID, name="demo", default_branch="main", odoo_version="17.0")


def demo_keys() -> list[KeyConfig]:
    """The two org-scoped demo keys the CLI accepts when none is configured (rw and ro)."""
    return [KeyConfig(key=SecretStr(DEMO_RW_KEY)), KeyConfig(key=SecretStr(DEMO_RO_KEY))]
