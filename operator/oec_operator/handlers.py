"""kopf registrations for ``OdooEnvironment`` (``oec.sh/v1alpha1``), and nothing else: each one
parses what kopf hands it, calls the controller (:mod:`oec_operator.controller`) and applies the
result (Events, a retry, the released finalizer). See ``docs/architecture.md``.

Run with ``oec-operator`` (:mod:`oec_operator.__main__`) or
``kopf run -m oec_operator.handlers --all-namespaces``; several processes may run at once, kopf's
peering lets one act (``docs/kopf.md`` §6).
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast

import kopf

from oec_operator import logs, metrics
from oec_operator.controller.backup import BackupController, BackupHandle, BackupState
from oec_operator.controller.delete import DeleteController
from oec_operator.controller.push import PushHub
from oec_operator.controller.restore import RestoreController, RestoreHandle, RestoreState
from oec_operator.controller.schedule import SCHEDULE_LABEL, ScheduleController, ScheduleState, owned_of, target_of
from oec_operator.controller.state import EventSink, Handle, ResourceState
from oec_operator.controller.sync import SyncController
from oec_operator.controller.uninstall import orphan_all, release_all
from oec_operator.domain.outcome import Event
from oec_operator.domain.ownership import Claim, claims_of
from oec_operator.domain.restore import environment_key, running_of
from oec_operator.kube import login as kube_login
from oec_operator.kube import peering
from oec_operator.runtime import Runtime
from oec_operator.settings import (
    BACKUP_CRD_NAME,
    BACKUP_RESOURCE,
    COMPONENT,
    CRD_NAME,
    FINALIZER,
    PREFIX,
    RESOURCE,
    RESTORE_CRD_NAME,
    RESTORE_RESOURCE,
    SCHEDULE_CRD_NAME,
    SCHEDULE_RESOURCE,
    HandlerId,
    load_config,
)
from oec_operator.webhooks import receiver as webhook_receiver
from oec_operator.webhooks.registration import Registrar
from oec_operator.webhooks.secretstore import WebhookSecretStore

CONFIG = load_config()


def _state(memo: kopf.Memo) -> ResourceState:
    """The object's memory (kopf gives every object its own copy of the memo)."""
    state = memo.get("resource_state")
    if state is None:
        state = memo["resource_state"] = ResourceState()
    return cast(ResourceState, state)


def _handle(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, kwargs: Mapping[str, Any]) -> Handle:
    """The object as the controllers take it (with kopf's per-object logger and the index)."""
    return Handle(body=body, state=_state(memo), claims=kwargs["claims"], events=_events(body), logger=logger,
                  restores=kwargs.get("restores", {}))


def _events(body: Mapping[str, Any]) -> EventSink:
    def post(event: Event) -> None:
        kopf.event(cast(kopf.Body, body), type=event.type, reason=event.reason, message=event.message)
    return post


#: Seconds kopf lets a daemon return by itself once ``stopped`` is set, before it cancels it
#: (``docs/kopf.md`` §7). Ours return at once (:func:`_until_stopped`); without a backoff kopf
#: cancels at once and logs "Daemon ... is cancelled. Will escalate." at every deletion.
STOP_BACKOFF = 5.0


async def _until_stopped(work: Awaitable[None], stopped: kopf.DaemonStopped,
                         forget: Callable[[], None]) -> None:
    """Run a daemon's loop until it ends by itself or kopf sets ``stopped`` (deletion, shutdown, a
    pause by a peer); then stop the loop and return normally, as kopf expects of a daemon.

    ``forget`` runs when a peer with a higher priority paused this process (``docs/kopf.md`` §6):
    another process may act on the object meanwhile, so what this one remembers of it (its last
    status write, its schedule) is not to be trusted when it resumes; the next body is.

    Raises:
        Exception: whatever the loop raised (kopf retries the daemon).
    """
    async def stop() -> None:
        await stopped.wait()

    loop, waiter = asyncio.ensure_future(work), asyncio.ensure_future(stop())
    try:
        await asyncio.wait((loop, waiter), return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        if not loop.done():
            loop.cancel()
            await asyncio.wait((loop,))
        if stopped.reason is not None and kopf.DaemonStoppingReason.OPERATOR_PAUSING in stopped.reason:
            forget()
    if not loop.cancelled():
        loop.result()  # its own exception, if it raised one


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Own finalizer and annotation prefix (``docs/kopf.md`` §1), peering (§6), logging, the shared runtime."""
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX, v1=False)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=PREFIX, v1=False)
    settings.posting.reporting_component = COMPONENT
    # Under load the watch stream can lag more than kopf's default 5 s behind kopf's own patches;
    # kopf would then run the create handler a second time (harmless, but it spends API reads).
    settings.persistence.consistency_timeout = 30.0
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 310
    logs.configure()
    peering.configure(settings, CONFIG)
    memo.runtime = Runtime.create(CONFIG, settings)
    # A task: the Kubernetes client has credentials only once the start-up handlers are done.
    memo.announce = asyncio.create_task(peering.announce(memo.runtime.kube, settings), name="peering announce")
    memo.sync = SyncController(memo.runtime)
    memo.deletion = DeleteController(memo.runtime)
    memo.backups = BackupController(memo.runtime)
    memo.restore = RestoreController(memo.runtime)
    memo.schedules = ScheduleController(memo.runtime)
    memo.runtime.push = PushHub(memo.runtime)  # where webhook hints go (docs/webhooks.md §2)
    if CONFIG.webhook_url:  # one webhook per API key in use (docs/webhooks.md §5); a task, as above
        memo.runtime.registrar = Registrar(
            CONFIG, WebhookSecretStore(memo.runtime.kube, CONFIG.webhook_secret), memo.runtime.webhooks,
            memo.runtime.calibrator, on_state=memo.runtime.webhook_state)
        memo.registration = asyncio.create_task(memo.runtime.registrar.run(), name="webhook registration")
    metrics.serve(CONFIG.metrics_port, CONFIG.metrics_address)
    # Every replica answers deliveries (docs/webhooks.md §4); the sink is the push hub.
    memo.receiver = await webhook_receiver.serve(CONFIG, memo.runtime.webhooks, memo.runtime.calibrator,
                                                 memo.runtime.push)
    if memo.receiver is not None:
        memo.receiver.on_unverified = lambda key_id: _unverified(memo.runtime, key_id)
        if memo.runtime.registrar is not None:  # a standby's book may predate the first registration
            memo.receiver.reload = memo.runtime.registrar.reload_now


def _unverified(runtime: Runtime, key_id: str) -> None:
    """A delivery named our webhook but failed verification: the key's push health drops to poll,
    and the webhook Secret is read again (another replica may have rotated the secret,
    ``docs/webhooks.md`` §5-§6)."""
    runtime.health(key_id).verification_failed()
    if runtime.registrar is not None:
        runtime.registrar.stale(key_id)


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    """Close the HTTP clients and stop the project watches."""
    registration: asyncio.Task[None] | None = memo.get("registration")
    if registration is not None:
        registration.cancel()
        await asyncio.wait((registration,))
    announce: asyncio.Task[None] | None = memo.get("announce")
    if announce is not None:
        announce.cancel()
    receiver: webhook_receiver.Receiver | None = memo.get("receiver")
    if receiver is not None:
        await receiver.stop()
    runtime: Runtime | None = memo.get("runtime")
    if runtime is not None:
        await runtime.aclose()


@kopf.on.login()
async def login(**kwargs: Any) -> kopf.AiohttpSession | None:
    """Log in (:func:`oec_operator.kube.login.login`)."""
    return await kube_login.login(**kwargs)


@kopf.index(*RESOURCE, id=HandlerId.CLAIMS)
def claims(body: kopf.Body, **_: Any) -> dict[str, Claim]:
    """Index: environment id -> the resources that manage or want to adopt it."""
    return claims_of(body)


@kopf.on.create(*RESOURCE, id=HandlerId.CREATE)
@kopf.on.update(*RESOURCE, id=HandlerId.UPDATE)
async def on_change(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **kwargs: Any) -> None:
    """A new object, a changed spec or changed annotations: reconcile now."""
    await memo.sync.reconcile_now(_handle(body, memo, logger, kwargs))


@kopf.daemon(*RESOURCE, id=HandlerId.POLL, cancellation_backoff=STOP_BACKOFF, cancellation_timeout=10.0,
             initial_delay=lambda **_: random.uniform(0, CONFIG.fast_poll_interval))  # noqa: S311 - spread restarts
async def poll(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, stopped: kopf.DaemonStopped,
               **kwargs: Any) -> None:
    """Keep the status true until kopf stops the daemon (deletion, shutdown, a pause by a peer)."""
    await _until_stopped(memo.sync.run(_handle(body, memo, logger, kwargs)), stopped, lambda: _forget(memo, body))


def _forget(memo: kopf.Memo, body: kopf.Body) -> None:
    """Forget what this process remembers of an ``OdooEnvironment`` (its last status write, the
    schedule, the environment as last read) after a pause by a peer (:func:`_until_stopped`)."""
    memo.runtime.status.forget(str(body["metadata"]["uid"]))
    state, fresh = _state(memo), ResourceState()
    for item in dataclasses.fields(ResourceState):
        if item.name not in ("lock", "wake"):  # kept: a handler still running may hold them
            setattr(state, item.name, getattr(fresh, item.name))


@kopf.on.delete(*RESOURCE, id=HandlerId.DELETE)
async def on_delete(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **kwargs: Any) -> None:
    """Destroy or orphan the environment (``docs/reconciliation.md``, Decisions: Delete).

    Raises:
        kopf.TemporaryError: the deletion waits (destroy running, paused, credentials, API
            failure); kopf calls again after the given delay.
    """
    step = await memo.deletion.step(_handle(body, memo, logger, kwargs))
    if step.retry_after is not None:
        raise kopf.TemporaryError(step.message, delay=step.retry_after)


#: The backup kinds' CRDs: their objects only lose the finalizer when the CRD goes.
BACKUP_CRDS = (BACKUP_CRD_NAME, SCHEDULE_CRD_NAME, RESTORE_CRD_NAME)


@kopf.on.event("apiextensions.k8s.io", "v1", "customresourcedefinitions", id=HandlerId.UNINSTALL_GUARD,
               when=lambda name, **_: name in (CRD_NAME, *BACKUP_CRDS))
async def uninstall_guard(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """One of the operator's CRDs is being deleted (operator uninstall): orphan every environment,
    or release every object of a backup kind (:mod:`oec_operator.controller.uninstall`)."""
    if not body.metadata.get("deletionTimestamp"):
        return
    if body.metadata.name == CRD_NAME:
        await orphan_all(memo.runtime.kube, _events)
    else:
        await release_all(memo.runtime.kube, str(body.spec["names"]["plural"]))


# --- OdooBackup ------------------------------------------------------------------------------


def _backup_handle(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger) -> BackupHandle:
    state = memo.get("backup_state")
    if state is None:
        state = memo["backup_state"] = BackupState()
    return BackupHandle(body=body, state=cast(BackupState, state), events=_events(body), logger=logger)


@kopf.daemon(*BACKUP_RESOURCE, id=HandlerId.BACKUP_POLL, cancellation_backoff=STOP_BACKOFF,
             cancellation_timeout=10.0)
async def backup_poll(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, stopped: kopf.DaemonStopped,
                      **_: Any) -> None:
    """Create the backup once, follow it, then watch its expiry (``docs/backups.md`` §1); ends
    when the backup is Failed or Expired."""
    await _until_stopped(memo.backups.run(_backup_handle(body, memo, logger)), stopped,
                         lambda: memo.runtime.backup_status.forget(str(body["metadata"]["uid"])))


@kopf.on.delete(*BACKUP_RESOURCE, id=HandlerId.BACKUP_DELETE, optional=True)
async def backup_deleted(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    """Say that the backup's data stays in OEC.sh (the API has no delete route)."""
    event = BackupController.deleted(body)
    _events(body)(event)
    logger.info(event.message)
    memo.runtime.backup_status.forget(str(body["metadata"]["uid"]))


# --- OdooBackupSchedule ----------------------------------------------------------------------
# (docs/backups.md §2) One daemon per schedule sleeps until its next slot; it reads environments
# and its own backups from two kopf indexes, kept in memory from the watch streams, so a turn
# sends no list request (200 environments x a turn each in the spread window would otherwise
# list the namespace 200 times).


def _schedule_state(memo: kopf.Memo) -> ScheduleState:
    """The schedule's memory (kopf gives every object its own copy of the memo)."""
    state = memo.get("schedule_state")
    if state is None:
        state = memo["schedule_state"] = ScheduleState()
    return cast(ScheduleState, state)


@kopf.index(*RESOURCE, id=HandlerId.SCHEDULE_TARGETS)
def schedule_targets(body: kopf.Body, namespace: str | None, **_: Any) -> dict[str, Any]:
    """Index: namespace -> its ``OdooEnvironment`` objects (name, UID, labels)."""
    return {str(namespace): target_of(body)}


@kopf.index(*BACKUP_RESOURCE, id=HandlerId.SCHEDULE_BACKUPS, labels={SCHEDULE_LABEL: kopf.PRESENT})
def schedule_backups(body: kopf.Body, namespace: str | None, labels: kopf.Labels,
                     **_: Any) -> dict[tuple[str, str], Any]:
    """Index: (namespace, schedule label) -> the ``OdooBackup`` objects the schedule made."""
    owned = owned_of(body)
    return {} if owned is None else {(str(namespace), labels[SCHEDULE_LABEL]): owned}


@kopf.on.event(*BACKUP_RESOURCE, id=HandlerId.SCHEDULE_BACKUP_EVENT, labels={SCHEDULE_LABEL: kopf.PRESENT})
def schedule_backup_event(namespace: str | None, labels: kopf.Labels, memo: kopf.Memo, **_: Any) -> None:
    """A schedule's backup changed (its phase, a deletion): the schedule updates its status and history."""
    memo.schedules.poke(str(namespace), labels[SCHEDULE_LABEL])


@kopf.on.update(*SCHEDULE_RESOURCE, id=HandlerId.SCHEDULE_CHANGE)
def schedule_changed(memo: kopf.Memo, **_: Any) -> None:
    """The schedule's spec (or metadata) changed: its daemon looks again now."""
    _schedule_state(memo).wake.set()


@kopf.daemon(*SCHEDULE_RESOURCE, id=HandlerId.SCHEDULE_CLOCK, cancellation_backoff=STOP_BACKOFF,
             cancellation_timeout=10.0)
async def schedule_clock(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, stopped: kopf.DaemonStopped,
                         **kwargs: Any) -> None:
    """Run the schedule (:meth:`oec_operator.controller.schedule.ScheduleController.run`) until
    kopf stops the daemon (deletion, shutdown, a pause by a peer)."""
    state = _schedule_state(memo)
    state.events = _events(body)
    def forget() -> None:
        memo.runtime.schedule_status.forget(str(body["metadata"]["uid"]))
        state.handled.clear()

    await _until_stopped(memo.schedules.run(body, state, kwargs[HandlerId.SCHEDULE_TARGETS],
                                            kwargs[HandlerId.SCHEDULE_BACKUPS], logger), stopped, forget)

# --- OdooRestore -----------------------------------------------------------------------------


@kopf.index(*RESTORE_RESOURCE, id=HandlerId.RESTORES)
def restores(body: kopf.Body, **_: Any) -> dict[str, str]:
    """Index: ``namespace/name`` of an ``OdooEnvironment`` -> the restore running into it (read by
    its reconcile: ``Reconciling`` reason ``Restoring``, no task of its own meanwhile)."""
    return running_of(body)


@kopf.daemon(*RESTORE_RESOURCE, id=HandlerId.RESTORE_POLL, cancellation_backoff=STOP_BACKOFF,
             cancellation_timeout=10.0)
async def restore_poll(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, stopped: kopf.DaemonStopped,
                       **_: Any) -> None:
    """Carry the restore out (:mod:`oec_operator.controller.restore`) until it is terminal; a
    terminal one returns at once (it never sends again)."""
    state = memo.get("restore_state")
    if state is None:
        state = memo["restore_state"] = RestoreState()
    obj = RestoreHandle(body=body, events=_events(body), logger=logger, state=state)

    async def steps() -> None:
        while not stopped and (delay := await memo.restore.step(obj)) is not None:
            await stopped.wait(delay)

    await _until_stopped(steps(), stopped, lambda: memo.runtime.restore_status.forget(str(body["metadata"]["uid"])))


@kopf.on.event(*RESTORE_RESOURCE, id=HandlerId.RESTORE_EVENTS)
async def restore_event(body: kopf.Body, memo: kopf.Memo, type: str | None, **_: Any) -> None:
    """A restore's phase changed or a running one was deleted (the index already shows it): its
    ``OdooEnvironment`` reconciles now, to show ``Restoring`` at once and to go on at once after it."""
    phase = (body.get("status") or {}).get("phase")
    seen, memo["restore_phase"] = memo.get("restore_phase", phase), phase
    target = (body.get("spec") or {}).get("environmentRef", {}).get("name")
    if target and (phase != seen or (type == "DELETED" and phase == "Running")):
        memo.runtime.wake(environment_key(body["metadata"]["namespace"], target))
