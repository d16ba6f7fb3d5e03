"""Request-body models and JSON parsing for the public API (docs/oec-api.md §2, §11) and the admin API.

:func:`parse_body` turns raw bytes into a validated model: malformed JSON → 400 ``invalid_json``;
schema problems → 422 in the pydantic shape with locations under ``body`` (§5.2 shape 2).
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from .envsettings import DOMAIN_PATTERN
from .errors import ApiError, FieldError, RequestValidationError, from_pydantic

ModelT = TypeVar("ModelT", bound=BaseModel)
Name = Annotated[str, StringConstraints(min_length=1, max_length=255)]
ModuleName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,64}$")]
#: A custom domain (hostname, optional leading ``*.``, ≤ 253 characters) or ``""`` (remove it).
Domain = Annotated[str, StringConstraints(max_length=253, pattern=f"^$|{DOMAIN_PATTERN}")]
CpuCores = Annotated[float, Field(ge=0.25, le=32)]
RamMb = Annotated[int, Field(ge=256, le=131072)]
DiskGb = Annotated[int, Field(ge=1, le=1000)]
#: PATCH fields the older API (SEED: name and branch only) refuses (§1 row 31).
MCP_ONLY_PATCH_FIELDS = ("domain", "cpu_cores", "ram_mb", "disk_gb")


class CreateEnvironmentBody(BaseModel):
    """Body of ``POST /projects/{id}/environments`` (§2; MCP optional fields §11.2). Unknown fields
    are ignored (§1 row 14); ``server_id`` is such an unknown field (use ``vm_id``)."""

    model_config = ConfigDict(extra="ignore")

    name: Name
    branch: Name | None = None
    environment_type: Literal["development", "staging", "production"] = "development"
    vm_id: uuid.UUID | None = None
    domain: Domain | None = None
    cpu_cores: CpuCores | None = None
    ram_mb: RamMb | None = None
    disk_gb: DiskGb | None = None
    postgres_version: Annotated[str, StringConstraints(max_length=10)] | None = None
    enable_pgtune: bool | None = None
    enable_pgbouncer: bool | None = None
    enable_read_replica: bool | None = None
    with_demo_data: bool | None = None


class StrictCreateEnvironmentBody(CreateEnvironmentBody):
    """Create body of the strict variant: unknown fields → 422 ``extra_forbidden`` (§1 row 14)."""

    model_config = ConfigDict(extra="forbid")


class PatchEnvironmentBody(BaseModel):
    """Body of ``PATCH /environments/{id}``: ``name``, ``branch`` (≤ 255 each, §2) and the vendor
    client's ``domain`` (``""`` removes it), ``cpu_cores`` (0.25-32), ``ram_mb`` (256-131072),
    ``disk_gb`` (1-1000) (§11.2); each optional, unknown fields ignored."""

    model_config = ConfigDict(extra="ignore")

    name: Name | None = None
    branch: Name | None = None
    domain: Domain | None = None
    cpu_cores: CpuCores | None = None
    ram_mb: RamMb | None = None
    disk_gb: DiskGb | None = None

    def sizes(self) -> dict[str, float | int | None]:
        """``{cpu_cores, ram_mb, disk_gb}`` as given (``None`` = not given)."""
        return {"cpu_cores": self.cpu_cores, "ram_mb": self.ram_mb, "disk_gb": self.disk_gb}


def refuse_mcp_patch_fields(raw: bytes) -> None:
    """Older API (``patch_fields=seed``, §1 row 31): a PATCH body naming ``domain``, ``cpu_cores``,
    ``ram_mb`` or ``disk_gb`` → 422 ``extra_forbidden`` on each such field."""
    data = load_json(raw)
    if not isinstance(data, dict):
        return
    errors = [
        FieldError(("body", name), "Extra inputs are not permitted", "extra_forbidden")
        for name in MCP_ONLY_PATCH_FIELDS
        if name in data
    ]
    if errors:
        raise RequestValidationError(errors)


class DeployBody(BaseModel):
    """Optional body of ``POST /environments/{id}/deploy``: ``update_modules`` (≤ 50 names or ``["all"]``)."""

    model_config = ConfigDict(extra="ignore")

    update_modules: Annotated[list[ModuleName], Field(max_length=50)] | None = None


class QuickUpdateBody(BaseModel):
    """Body of ``POST /environments/{id}/quick-update``: ``mode`` and, for ``*_specific``, ``modules``."""

    model_config = ConfigDict(extra="ignore")

    mode: Literal["pull_restart", "update_all", "update_specific", "reinitialize_specific"] = "pull_restart"
    modules: Annotated[list[ModuleName], Field(max_length=50)] | None = None

    @model_validator(mode="after")
    def _modules_for_specific(self) -> QuickUpdateBody:
        if self.mode.endswith("_specific") and not self.modules:
            raise ValueError("modules is required for *_specific modes")
        return self


class CreateBackupBody(BaseModel):
    """Body of ``POST /environments/{id}/backups`` (§11.5): only ``manual`` backups can be asked for;
    ``retention_type`` defaults to ``permanent``, ``notes`` ≤ 500 characters."""

    model_config = ConfigDict(extra="ignore")

    backup_type: Literal["manual"] = "manual"
    include_filestore: bool = True
    retention_type: Literal["daily", "weekly", "monthly", "yearly", "permanent"] = "permanent"
    storage_config_id: uuid.UUID | None = None
    notes: Annotated[str, StringConstraints(max_length=500)] | None = None


class RestoreBody(BaseModel):
    """Optional body of ``POST /backups/{id}/restore``: the API takes none; a target naming another
    environment (``environment_id`` or ``target_environment_id``) is refused (§11.5)."""

    model_config = ConfigDict(extra="ignore")

    environment_id: uuid.UUID | None = None
    target_environment_id: uuid.UUID | None = None


class CreateProjectBody(BaseModel):
    """Body of ``POST /projects`` (§11.1)."""

    model_config = ConfigDict(extra="ignore")

    name: Name
    server_id: uuid.UUID
    default_branch: Name = "main"
    odoo_version: Annotated[str, StringConstraints(pattern=r"^\d{1,2}\.\d$")] | None = None


class PatchProjectBody(BaseModel):
    """Body of ``PATCH /projects/{id}`` (§11.1)."""

    model_config = ConfigDict(extra="ignore")

    name: Name | None = None
    default_branch: Name | None = None
    odoo_version: Annotated[str, StringConstraints(pattern=r"^\d{1,2}\.\d$")] | None = None
    git_repo_url: Annotated[str, StringConstraints(max_length=2048)] | None = None
    git_provider: Literal["github", "gitlab", "bitbucket"] | None = None


# ---------------------------------------------------------------------------- admin bodies
AdminStatus = Literal[
    "pending", "deploying", "running", "stopped", "paused", "failed", "error", "destroying", "cloning"
]


class AdminEnvironmentPatch(BaseModel):
    """Body of ``PATCH /_sim/environments/{id}``: direct edits as in the dashboard (``deleted`` is set
    with DELETE; ``domain``/sizes as a PATCH without its shrink and plan checks;
    ``custom_domain_verified``), and the simulator-only ``apply_sizes`` (true: requested sizes run at
    once), ``fail_log`` (lines the next deploy's ``/logs`` show at its failure),
    ``fail_message`` (its task ``error_message``) and ``destroy_seconds`` (this environment's destroy
    duration, s; null = the configured ``destroy_seconds``), ``fail_next_backup`` (the next backup of
    this environment fails) with ``backup_fail_message`` (its ``error_message``; giving it also sets
    ``fail_next_backup``)."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    branch: Name | None = None
    status: AdminStatus | None = None
    domain: Domain | None = None
    cpu_cores: CpuCores | None = None
    ram_mb: RamMb | None = None
    disk_gb: DiskGb | None = None
    apply_sizes: bool | None = None
    custom_domain_verified: bool | None = None
    fail_next_deploy: bool | None = None
    fail_log: list[Annotated[str, StringConstraints(max_length=2000)]] | None = Field(None, max_length=200)
    fail_message: Annotated[str, StringConstraints(min_length=1, max_length=2000)] | None = None
    destroy_seconds: float | None = Field(None, ge=0)
    fail_next_backup: bool | None = None
    backup_fail_message: Annotated[str, StringConstraints(min_length=1, max_length=2000)] | None = None


class AdminBackupFinish(BaseModel):
    """Body of ``POST /_sim/backups/{id}/fail`` (optional): the backup's ``error_message``."""

    model_config = ConfigDict(extra="forbid")

    message: Annotated[str, StringConstraints(min_length=1, max_length=2000)] | None = None


class AdminKeyRevoke(BaseModel):
    """Body of ``POST /_sim/keys/revoke``: the key value to revoke."""

    model_config = ConfigDict(extra="forbid")

    key: str


class AdminClockAdvance(BaseModel):
    """Body of ``POST /_sim/clock``: ``advance_seconds`` (≥ 0) to jump the simulated clock forward."""

    model_config = ConfigDict(extra="forbid")

    advance_seconds: float = Field(ge=0)


def load_json(raw: bytes) -> Any:
    """Parse raw JSON; empty → ``None``; malformed → 400 ``invalid_json``."""
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json", "The request body is not valid JSON.") from exc


def parse_body(raw: bytes, model: type[ModelT], *, required: bool = True) -> ModelT:
    """Validate ``raw`` against ``model``. Empty body: 422 ``missing`` at ``["body"]`` if ``required``,
    else the model's defaults."""
    data = load_json(raw)
    if data is None:
        if required:
            raise RequestValidationError([FieldError(("body",), "Field required", "missing")])
        data = {}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise from_pydantic(exc) from exc
