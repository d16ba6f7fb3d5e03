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
