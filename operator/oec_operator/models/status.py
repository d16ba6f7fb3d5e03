"""The ``OdooEnvironment`` status as the operator stores it: one typed model of what lives in
``status`` (the CRD's ``status`` schema in ``crds/``), including the intents the operator records
before it acts (``createRequest``, ``pendingDeploy``, ``docs/reconciliation.md``).

A :class:`Status` is also how a change to the status is described: a :class:`Status` built with
only some fields (``Status(environment_id=..., create_request=None)``) is an update; the fields
set in it (:attr:`pydantic.BaseModel.model_fields_set`) are the ones it writes, and a field set to
``None`` is removed. :meth:`Status.merged` applies an update, :meth:`Status.patch` renders it as
the JSON merge patch of the status subresource. Only :mod:`oec_operator.kube.status` writes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from oec_operator.models import conditions as cond
from oec_operator.oec.models import TRANSITIONAL_STATES, EnvironmentState


class _StatusModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)


class StatusBase(_StatusModel):
    """The whole ``status`` of one kind (every field optional), or an update of it: the shared
    part of :class:`Status` and the backup kinds' statuses (:mod:`oec_operator.models.backups`).

    An update is an instance with some fields set (:attr:`pydantic.BaseModel.model_fields_set`):
    those are the ones it writes, and a field set to ``None`` is removed.

    Attributes:
        observed_generation: ``metadata.generation`` the status was computed for.
        conditions: ``metav1.Condition`` objects as JSON (kept by
            :func:`oec_operator.models.conditions.merge_conditions`).
    """

    observed_generation: int | None = None
    conditions: tuple[dict[str, Any], ...] = ()

    @classmethod
    def from_body(cls, status: Mapping[str, Any] | None) -> Self:
        """Parse ``body["status"]`` (``None`` or ``{}``: an empty status). Fields the operator does
        not know are ignored; a malformed value raises ``pydantic.ValidationError``."""
        return cls.model_validate(dict(status or {}))

    @property
    def empty(self) -> bool:
        """True for a status the operator never wrote (a new object)."""
        return not self.model_dump(exclude_defaults=True)

    def condition(self, type_: str) -> Mapping[str, Any] | None:
        """The condition of the given type, or ``None``."""
        return cond.find(self.conditions, type_)

    def merged(self, update: Self) -> Self:
        """This status with the fields set in ``update`` applied (``None`` removes a field)."""
        return self.model_copy(update={name: getattr(update, name) for name in update.model_fields_set})

    def patch(self) -> dict[str, Any]:
        """This update as a JSON merge patch of ``status``: camelCase keys, ``None`` deletes."""
        return self.model_dump(mode="json", by_alias=True, include=set(self.model_fields_set))

    def changes(self, update: Self) -> Self:
        """The part of ``update`` that differs from this status (an update, maybe empty)."""
        return type(self).model_validate(
            {name: getattr(update, name) for name in update.model_fields_set
             if getattr(update, name) != getattr(self, name)})


class CreateRequest(_StatusModel):
    """``status.createRequest``: the create about to be sent, recorded before the POST and
    replayed unchanged after a crash (same idempotency key, same body)."""

    key: str
    name: str
    environment_type: str
    branch: str | None = None
    requested_at: str | None = None
    #: ``spec.resources`` at the create (sent with it, so the first deploy has the size).
    cpu_cores: float | None = None
    ram_mb: int | None = None
    disk_gb: int | None = None


class PendingDeploy(_StatusModel):
    """``status.pendingDeploy``: a deploy the operator owes (a branch change or a redeploy
    request), recorded before it is sent; ``key`` is its idempotency key."""

    key: str
    reason: str
    requested_at: str | None = None
    #: The task the API named when it refused the deploy (409 ``task_in_progress``): the deploy
    #: is sent again only once that task ended (``docs/reconciliation.md``, Waiting for a task).
    blocked_by: str | None = None
    #: ``update_modules`` sent with the deploy, or the quick update's ``modules``.
    update_modules: tuple[str, ...] | None = None
    #: ``deploy`` or a quick-update mode (``pull_restart``, ``update_all``, ``update_specific``,
    #: ``reinitialize_specific``); ``None`` = ``deploy``.
    mode: str | None = None
    #: The ``spec.deploy.request.id`` this task answers (``status.lastHandledDeployRequest`` once sent).
    request_id: str | None = None


class RefusedWrite(_StatusModel):
    """``status.refusedWrite``: a write the API refused for good (401, 402, 403, 400, 422), kept so
    that it is not sent again until something changes (``docs/reconciliation.md``, Refused writes).

    ``request`` names the write (method and path); ``fingerprint`` is a digest of the write and of
    what could make it succeed (the API key's digest, the generation, the request annotations),
    never the key itself; ``status``, ``code``, ``message`` and ``field`` are the API's answer,
    from which the same condition is reported while the write is held back.
    """

    request: str
    fingerprint: str
    status: int
    code: str
    message: str = ""
    field: str | None = None
    refused_at: str | None = None


class TaskRef(_StatusModel):
    """``status.task``: a task the operator started that leaves the environment's phase alone
    (``restart``, ``start``, ``stop``, ``quick_update``): read (``GET /deployments/{id}``) until it
    ended, so that it is neither sent again nor taken as done too early."""

    id: str
    action: str
    reason: str = ""
    requested_at: str | None = None


class PendingResources(_StatusModel):
    """``status.pendingResources``: a size sent with ``PATCH /environments/{id}`` that the environment
    does not run with yet; it applies when a deploy, restart or start completes after it was sent
    (``docs/oec-api.md`` §11.2). ``applies_on``: ``Restart`` or ``NextDeploy`` (``spec.resizePolicy``);
    ``since``: when it was sent (the operator's clock); ``after_deploy``: the id of the last deploy
    known then (a deploy with another id that completed is a later one: no clock comparison
    across machines)."""

    cpu_cores: float | None = None
    ram_mb: int | None = None
    disk_gb: int | None = None
    applies_on: str = "Restart"
    since: str | None = None
    after_deploy: str | None = None
    #: Recorded before the PATCHes and not all answered yet (a lost answer or a failure before the
    #: API): the fields are compared with the environment again, and sent again where it differs.
    unconfirmed: bool | None = None


class Health(_StatusModel):
    """``status.health``: ``GET /environments/{id}/status`` as last read; ``phase`` is the
    environment's status when it was read."""

    container_running: bool | None = None
    db_ready: bool | None = None
    http_ok: bool | None = None
    phase: str | None = None


class LastDeploy(_StatusModel):
    """``status.lastDeploy``: the environment's last deploy task."""

    id: str | None = None
    status: str | None = None
    started_at: str | None = None
    completed_at: str | None = None


class FinalBackupStatus(_StatusModel):
    """``status.finalBackup``: the backup taken before the environment is destroyed
    (``spec.finalBackup``, ``docs/backups.md`` §4). ``phase``: the ``OdooBackup`` phases
    (``Pending``, ``Running``, ``Completed``, ``Failed``, ``Expired``); times RFC 3339; ``token``:
    the ``oec.sh/final-backup-requested-at`` value this attempt was taken for (part of its marker)."""

    backup_id: str | None = None
    phase: str | None = None
    requested_at: str | None = None
    completed_at: str | None = None
    message: str | None = None
    token: str | None = None


class LatestBackup(_StatusModel):
    """``status.backups.latest``: the environment's newest backup on OEC.sh, whoever made it.
    ``type``: the API's ``backup_type`` (``manual``, ``scheduled``, ``pre_deploy``, ...); ``status``:
    the API's status; ``completed_at`` RFC 3339 (``docs/backups.md`` §5)."""

    id: str | None = None
    type: str | None = None
    status: str | None = None
    completed_at: str | None = None


class BackupsStatus(_StatusModel):
    """``status.backups``: backup freshness, read from the API at ``checked_at`` (RFC 3339)."""

    latest: LatestBackup | None = None
    checked_at: str | None = None


class Status(StatusBase):
    """The whole ``status`` of an ``OdooEnvironment`` (every field optional), or an update of it.

    Attributes:
        phase: the OEC.sh environment status (:class:`EnvironmentState`; an unknown value is
            kept as the string the API sent).
        last_sync_time: RFC 3339 time the environment was last read.
        final_backup: the backup taken before a destroy (``docs/backups.md`` §4).
        backups: backup freshness (``docs/backups.md`` §5).
        Other fields mirror the environment (``docs/oec-api.md`` §9.1, §9.2) or record intents
        and handled tokens (``docs/reconciliation.md``).
    """

    environment_id: str | None = None
    phase: Annotated[EnvironmentState | str | None, Field(union_mode="left_to_right")] = None
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
    health: Health | None = None
    last_deploy: LastDeploy | None = None
    create_request: CreateRequest | None = None
    pending_deploy: PendingDeploy | None = None
    refused_write: RefusedWrite | None = None
    #: Day-2 writes (size, domain, power, deploy requests) refused for good, one per write: each
    #: stalls only its own field (``docs/reconciliation.md``, Refused writes).
    refused_fields: tuple[RefusedWrite, ...] | None = None
    power_state: str | None = None
    task: TaskRef | None = None
    #: ``Idempotency-Key`` of the last task the operator started: never sent again (the API would
    #: only replay it), the sign that a listed environment predates that task's end.
    last_task_key: str | None = None
    pending_resources: PendingResources | None = None
    custom_domain: str | None = None
    custom_domain_verified: bool | None = None
    last_handled_deploy_request: str | None = None
    last_handled_restart_at: str | None = None
    last_handled_reconcile_at: str | None = None
    last_handled_redeploy_at: str | None = None
    last_handled_recreate_at: str | None = None
    last_sync_time: str | None = None
    final_backup: FinalBackupStatus | None = None
    backups: BackupsStatus | None = None

    @property
    def busy(self) -> bool:
        """Work in flight (a transitional phase, a deploy owed, a task of the operator's running or a
        size waiting for a restart of the running environment; a stopped one applies it at its
        next start, and a stalled one waits for a change): the project is polled fast."""
        stalled = (self.condition(cond.STALLED) or {}).get("status") == "True"
        resizing = (self.pending_resources is not None and self.pending_resources.applies_on == "Restart"
                    and self.phase == "running" and not stalled)
        return (self.phase in TRANSITIONAL_STATES or self.pending_deploy is not None or self.task is not None
                or resizing)
