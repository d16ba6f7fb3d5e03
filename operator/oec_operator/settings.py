"""The operator's settings: the Kubernetes names it owns (one home for group, version, plural,
finalizer, annotation prefix and handler ids) and :class:`OperatorConfig`, read from ``OEC_*``
environment variables (pydantic-settings). The variables are listed in the README
(Configuration).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from oec_operator.oec.client import DEFAULT_BASE_URL, validate_api_key

#: API group, version and plural of ``OdooEnvironment``.
GROUP, VERSION, PLURAL = "oec.sh", "v1alpha1", "odooenvironments"
#: kopf's resource selector for ``OdooEnvironment``.
RESOURCE = (GROUP, VERSION, PLURAL)
#: Name of the ``OdooEnvironment`` CRD.
CRD_NAME = f"{PLURAL}.{GROUP}"
#: Plural, kopf resource selector and CRD name of ``OdooBackup`` (one backup on OEC.sh,
#: ``docs/backups.md`` §1).
BACKUP_PLURAL = "odoobackups"
BACKUP_RESOURCE = (GROUP, VERSION, BACKUP_PLURAL)
BACKUP_CRD_NAME = f"{BACKUP_PLURAL}.{GROUP}"
#: The same for ``OdooBackupSchedule`` (backups on a cron schedule, ``docs/backups.md`` §2).
SCHEDULE_PLURAL = "odoobackupschedules"
SCHEDULE_RESOURCE = (GROUP, VERSION, SCHEDULE_PLURAL)
SCHEDULE_CRD_NAME = f"{SCHEDULE_PLURAL}.{GROUP}"
#: The same for ``OdooRestore`` (one restore of a backup into an environment, ``docs/backups.md`` §3).
RESTORE_PLURAL = "odoorestores"
RESTORE_RESOURCE = (GROUP, VERSION, RESTORE_PLURAL)
RESTORE_CRD_NAME = f"{RESTORE_PLURAL}.{GROUP}"
#: The finalizer that holds a resource until its environment is destroyed or orphaned.
FINALIZER = "oec.sh/finalizer"
#: Prefix of kopf's own annotations. Not ``oec.sh``: kopf ignores every annotation under its
#: prefix when it detects changes, and the user annotations ``oec.sh/...`` must trigger handlers
#: (``docs/kopf.md`` §1).
PREFIX = "operator.oec.sh"
#: Name the operator posts Events and field-manages as.
COMPONENT = "oec-operator"


#: The webhook events the operator subscribes to by default (``docs/oec-api.md`` §11.6): the
#: environment and deploy events of the API reference (the vendor client's ``environment.ready``
#: is not in it).
WEBHOOK_EVENTS = (
    "deploy.started", "deploy.completed", "deploy.failed", "deploy.cancelled",
    "environment.created", "environment.deleted", "environment.status_changed",
)
#: The receiver's path (``OEC_WEBHOOK_URL`` must route to it).
WEBHOOK_PATH = "/oec/webhook"


class HandlerId:
    """The ids of the kopf registrations (kopf keeps progress under ``PREFIX/<id>``)."""

    CLAIMS = "claims"
    CREATE = "create"
    UPDATE = "update"
    POLL = "poll"
    DELETE = "delete"
    UNINSTALL_GUARD = "uninstall-guard"
    #: ``OdooBackup``: create/update, the poll until the backup is terminal, deletion.
    BACKUP_CHANGE = "backup-change"
    BACKUP_POLL = "backup-poll"
    BACKUP_DELETE = "backup-delete"
    #: ``OdooBackupSchedule``: create/update and the clock that fires the runs.
    SCHEDULE_CHANGE = "schedule-change"
    SCHEDULE_CLOCK = "schedule-clock"
    #: ``OdooBackupSchedule``'s indexes (environments by namespace, its backups by schedule) and
    #: the event handler that wakes a schedule when one of its backups changes.
    SCHEDULE_TARGETS = "schedule-targets"
    SCHEDULE_BACKUPS = "schedule-backups"
    SCHEDULE_BACKUP_EVENT = "schedule-backup-event"
    #: ``OdooRestore``: create, and the poll until the restore is terminal.
    RESTORE_CHANGE = "restore-change"
    RESTORE_POLL = "restore-poll"
    #: ``OdooRestore``: the index of running restores by environment, and the watch of phase changes.
    RESTORES = "restores"
    RESTORE_EVENTS = "restore-events"


class OperatorConfig(BaseSettings):
    """Operator settings. Raises ``pydantic.ValidationError`` on invalid values (never echoing
    the API key)."""

    model_config = SettingsConfigDict(env_prefix="OEC_", extra="ignore")

    api_url: str = DEFAULT_BASE_URL
    api_key: SecretStr | None = None
    api_key_secret: str | None = Field(default=None, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[^/]+$")
    api_key_secret_key: str = "apiKey"  # noqa: S105 - the name of a Secret data key, not a secret
    poll_interval: float = Field(default=60.0, ge=1.0, le=86400.0)
    fast_poll_interval: float = Field(default=5.0, ge=0.5, le=3600.0)
    min_poll_interval: float = Field(default=10.0, ge=0.5, le=86400.0)
    request_timeout: float = Field(default=30.0, gt=0, le=300.0)
    credentials_grace_period: float = Field(default=600.0, ge=0, le=7 * 86400.0)
    external_delete_grace_period: float = Field(default=30.0, ge=0, le=86400.0)
    # docs/backups.md §5: seconds between two reads of an environment's newest backup (0: never).
    backup_check_interval: float = Field(default=6 * 3600.0, ge=0, le=7 * 86400.0)
    metrics_port: int = Field(default=8081, ge=0, le=65535)
    metrics_address: str = "0.0.0.0"  # noqa: S104 - inside a pod; set 127.0.0.1 on a workstation
    rate_limit_reads: int = Field(default=120, ge=1, le=1_000_000)
    rate_limit_writes: int = Field(default=20, ge=1, le=1_000_000)
    rate_limit_mode: Literal["split", "single"] = "split"
    polling: Literal["batched", "direct"] = "batched"
    secret_cache_ttl: float = Field(default=10.0, ge=0, le=3600.0)
    # kopf peering (docs/kopf.md §6): the ClusterKopfPeering shared by the replicas, an explicit
    # priority (default: from the start time, so the oldest replica is the active one) and how long
    # a replica that stopped sending keep-alives still counts as alive (seconds).
    peering_name: str = Field(default="oec-operator", pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
    peering_priority: int | None = Field(default=None, ge=-(2**62), le=2**62)
    peering_lifetime: int = Field(default=15, ge=5, le=600)
    # Webhooks (docs/webhooks.md): the public https URL OEC.sh posts to (an Ingress routing to the
    # receiver); unset = no webhooks, polling alone (nothing else changes).
    webhook_url: str | None = Field(default=None, max_length=2048)
    # The receiver (in every replica): port (0 = off) and address; it serves POST WEBHOOK_PATH.
    webhook_port: int = Field(default=8082, ge=0, le=65535)
    webhook_address: str = "0.0.0.0"  # noqa: S104 - inside a pod
    # The Kubernetes Secret (namespace/name) holding each key's webhook id, secret and pinned
    # signature scheme; written by the operator.
    webhook_secret: str = Field(default="oec-system/oec-operator-webhooks",
                                pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[^/]+$")
    # Events subscribed (at most 10 per webhook, docs/oec-api.md §11.6).
    webhook_events: list[str] = Field(default_factory=lambda: list(WEBHOOK_EVENTS), min_length=1, max_length=10)
    # The signature scheme tried before calibration pins one (docs/webhooks.md §3).
    webhook_signature_header: str = "X-OEC-Signature"
    webhook_signature_encoding: Literal["hex", "base64"] = "hex"
    webhook_signature_prefix: str = ""
    webhook_signed_content: Literal["body", "timestamp.body"] = "body"
    webhook_timestamp_header: str = "X-OEC-Timestamp"
    webhook_timestamp_tolerance: float = Field(default=300.0, ge=1.0, le=86400.0)
    # Seconds within which an identical delivery is answered as a duplicate (no second read).
    webhook_dedup_window: float = Field(default=600.0, ge=0, le=86400.0)
    # An environment is read at most once per this many seconds for webhooks (the first at once).
    webhook_debounce: float = Field(default=2.0, ge=0, le=300.0)
    # The answer to a verified delivery naming an environment no object of this cluster manages
    # (docs/webhooks.md §4): 202 by default, since a sender that counts non-2xx answers as failures
    # would deactivate an org-wide webhook after a few events of environments managed elsewhere;
    # 404 for a sender that does not.
    webhook_unknown_environment_status: int = 202
    # Deliveries being handled at once beyond which the receiver answers 429.
    webhook_max_inflight: int = Field(default=256, ge=1, le=100_000)
    # While push is healthy, the steady project-list interval is multiplied by this factor.
    webhook_poll_stretch: float = Field(default=6.0, ge=1.0, le=100.0)
    # Seconds between two reads of the webhook's own state (is_active, failure_count).
    webhook_check_interval: float = Field(default=300.0, ge=10.0, le=86400.0)
    # Days after which the webhook secret is rotated (0 = never).
    webhook_rotate_after_days: float = Field(default=90.0, ge=0, le=3650.0)

    @field_validator("api_key")
    @classmethod
    def _check_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value().strip():
            validate_api_key(value.get_secret_value())
            return SecretStr(value.get_secret_value().strip())
        return None

    @field_validator("webhook_unknown_environment_status")
    @classmethod
    def _check_unknown_status(cls, value: int) -> int:
        if value not in (202, 404):
            raise ValueError("must be 202 or 404")
        return value

    @model_validator(mode="after")
    def _fast_not_slower(self) -> OperatorConfig:
        if self.fast_poll_interval > self.poll_interval:
            self.fast_poll_interval = self.poll_interval
        return self


class ConfigError(Exception):
    """The operator configuration is invalid; the message names the variables, never values."""


def load_config() -> OperatorConfig:
    """Read :class:`OperatorConfig` from the environment.

    Raises:
        ConfigError: a variable is invalid. Unlike ``pydantic.ValidationError`` the message holds
            no input values, so a malformed API key is never printed.
    """
    try:
        return OperatorConfig()
    except ValidationError as exc:
        problems = "; ".join(
            f"OEC_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid operator configuration: {problems}") from None
