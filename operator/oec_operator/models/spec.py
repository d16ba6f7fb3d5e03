"""The ``OdooEnvironment`` spec as the operator reads it (the CRD in ``crds/`` is the schema).

The apiserver already validated the manifest (``crds/odooenvironments.oec.sh.yaml``); this model
parses it into typed fields and applies the defaults that the schema cannot express
(``name`` defaults to ``metadata.name``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _SpecModel(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)


class SecretKeyRef(_SpecModel):
    """``spec.credentialsSecretRef``: a Secret in the resource's own namespace."""

    name: str
    key: str = "apiKey"


#: Modes of ``spec.deploy.request.mode``: a full deploy, or a quick update's mode
#: (``POST /environments/{id}/quick-update``, ``docs/oec-api.md`` §11.3).
DEPLOY_MODES = {"Deploy": "deploy", "PullRestart": "pull_restart", "UpdateAll": "update_all",
                "UpdateSpecific": "update_specific", "ReinitializeSpecific": "reinitialize_specific"}


class DeployRequest(_SpecModel):
    """``spec.deploy.request``: a one-shot deploy or quick update, one task per new ``id``.

    Attributes:
        id: any token (a commit SHA, a CI run id); a new value asks for one more task.
        mode: ``Deploy`` (full deploy) or a quick-update mode (``PullRestart``, ``UpdateAll``,
            ``UpdateSpecific``, ``ReinitializeSpecific``).
        update_modules: for ``Deploy``, the modules to update with this deploy (instead of
            ``spec.deploy.updateModules``); for the ``*Specific`` modes, the modules (required).
        confirm: ``ReinitializeSpecific`` only: the environment's name, typed out, because
            reinitializing modules (``odoo -i``) can reset their data.
    """

    id: str
    mode: Literal["Deploy", "PullRestart", "UpdateAll", "UpdateSpecific", "ReinitializeSpecific"] = "Deploy"
    update_modules: tuple[str, ...] | None = Field(default=None, alias="updateModules")
    confirm: str | None = None

    @property
    def api_mode(self) -> str:
        """The API's name of the mode: ``deploy`` or the quick-update ``mode`` value."""
        return DEPLOY_MODES[self.mode]


class DeploySpec(_SpecModel):
    """``spec.deploy``: modules updated with every deploy the operator starts, and a deploy request."""

    update_modules: tuple[str, ...] | None = Field(default=None, alias="updateModules")
    request: DeployRequest | None = None


class Resources(_SpecModel):
    """``spec.resources``: the size to run with, in the API's units (each optional: unset = not managed).

    Attributes:
        cpu_cores: CPU cores (0.25-32); ram_mb: RAM in MB (256-131072); disk_gb: disk in GB
            (1-1000, never shrinks), ``docs/oec-api.md`` §11.2.
    """

    cpu_cores: float | None = Field(default=None, alias="cpuCores")
    ram_mb: int | None = Field(default=None, alias="ramMb")
    disk_gb: int | None = Field(default=None, alias="diskGb")

    def api_fields(self) -> dict[str, float | int]:
        """The fields set, as the API names them: ``{"cpu_cores": ..., "ram_mb": ..., "disk_gb": ...}``."""
        values = {"cpu_cores": self.cpu_cores, "ram_mb": self.ram_mb, "disk_gb": self.disk_gb}
        return {k: v for k, v in values.items() if v is not None}


#: Retention classes of an OEC.sh backup (``docs/oec-api.md`` §11.5): how long the API keeps it.
Retention = Literal["daily", "weekly", "monthly", "yearly", "permanent"]


class FinalBackup(_SpecModel):
    """``spec.finalBackup``: a backup taken before the environment is destroyed (``docs/backups.md`` §4).

    Attributes:
        enabled: take it; ``None`` (absent) = the default of the environment type (on for
            ``production``, see :attr:`OdooEnvironmentSpec.final_backup_enabled`).
        retention: the backup's retention class (default ``monthly``, never silently ``permanent``).
        timeout_seconds: how long the deletion waits for the backup to complete, seconds.
    """

    enabled: bool | None = None
    retention: Retention = "monthly"
    timeout_seconds: int = Field(default=3600, alias="timeoutSeconds")


class OdooEnvironmentSpec(_SpecModel):
    """Desired state of one OEC.sh environment.

    Attributes:
        project_id: OEC.sh project UUID (``spec.projectId``).
        name: display name (``spec.name``), ``None`` = use ``metadata.name``.
        branch: git branch (``spec.branch``), ``None`` = project default, not enforced.
        environment_type: ``development`` | ``staging`` | ``production``.
        credentials_secret_ref: per-resource credentials, ``None`` = operator default.
        environment_id: existing environment to adopt (``spec.environmentId``).
        management_policy: ``Manage`` (default) or ``Observe`` (status only).
        deletion_policy: ``Delete`` or ``Orphan``; ``None`` (absent) means ``Delete``.
        deploy_policy: ``OnChange`` (deploy after a branch PATCH, default) or ``Manual``.
        power_state: ``Running`` (default) or ``Stopped``: started / stopped until the environment
            matches.
        deploy: modules to update with every deploy, and a one-shot deploy request.
        resources: the size to run with; resize_policy: ``Restart`` (restart after a resize,
            default) or ``NextDeploy`` (the size applies at the next deploy).
        domain: custom hostname, ``""`` = the platform subdomain, ``None`` (absent) = not managed.
        final_backup: the backup taken before a destroy (``docs/backups.md`` §4).
    """

    project_id: str = Field(alias="projectId")
    name: str | None = None
    branch: str | None = None
    environment_type: Literal["development", "staging", "production"] = Field(
        default="development", alias="environmentType"
    )
    credentials_secret_ref: SecretKeyRef | None = Field(default=None, alias="credentialsSecretRef")
    environment_id: str | None = Field(default=None, alias="environmentId")
    management_policy: Literal["Manage", "Observe"] = Field(default="Manage", alias="managementPolicy")
    deletion_policy: Literal["Delete", "Orphan"] | None = Field(default=None, alias="deletionPolicy")
    deploy_policy: Literal["OnChange", "Manual"] = Field(default="OnChange", alias="deployPolicy")
    power_state: Literal["Running", "Stopped"] = Field(default="Running", alias="powerState")
    deploy: DeploySpec = Field(default_factory=DeploySpec)
    resources: Resources = Field(default_factory=Resources)
    resize_policy: Literal["Restart", "NextDeploy"] = Field(default="Restart", alias="resizePolicy")
    domain: str | None = None
    final_backup: FinalBackup = Field(default_factory=FinalBackup, alias="finalBackup")

    @property
    def final_backup_enabled(self) -> bool:
        """Whether a destroy is preceded by a final backup: ``spec.finalBackup.enabled``, or when
        absent, true for ``production`` environments only (``docs/backups.md`` §4)."""
        if self.final_backup.enabled is not None:
            return self.final_backup.enabled
        return self.environment_type == "production"

    @property
    def observe_only(self) -> bool:
        """``managementPolicy: Observe``: never create, change or delete."""
        return self.management_policy == "Observe"

    @classmethod
    def from_body(cls, spec: Mapping[str, Any]) -> OdooEnvironmentSpec:
        """Parse ``body["spec"]``. Raises ``pydantic.ValidationError`` for a malformed spec."""
        return cls.model_validate(dict(spec))

    def display_name(self, metadata_name: str) -> str:
        """The environment name to send to the API: ``spec.name`` or ``metadata.name``."""
        return self.name or metadata_name
