"""kopf registrations for ``OdooEnvironment`` (``oec.sh/v1alpha1``). Kept thin: parse the object,
call :mod:`oec_operator.reconcile`, write the status patch and Events.

- create / update (spec or annotations changed): reconcile at once;
- daemon ``poll`` (one per object): reconcile when the project's batched list saw the environment
  change (:mod:`oec_operator.polling`) or when the object's next poll is due (fast while work is
  in flight, the steady interval otherwise, backoff after errors); it writes the status only when
  something changed;
- delete: by ``deletionPolicy`` destroy the environment (finalizer ``oec.sh/finalizer`` held until
  the API answers 404) or orphan it;
- index ``claims``: which resources point at which environment (one owner per environment).

Run with ``oec-operator`` (see :mod:`oec_operator.__main__`) or
``kopf run -m oec_operator.handlers --standalone --all-namespaces``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import logging
import random
from typing import Any, cast

import aiohttp
import kopf
from kubernetes.client.exceptions import ApiException

from oec_operator import conditions as cond
from oec_operator import kubelogin, metrics, redact
from oec_operator.annotations import Requests
from oec_operator.conditions import Condition
from oec_operator.config import load_config
from oec_operator.credentials import CredentialsError
from oec_operator.failures import backoff, error_outcome, retry_delay, stalled_outcome
from oec_operator.oec.client import OecClient
from oec_operator.oec.errors import OecAuthError, OecError
from oec_operator.oec.ratelimit import Priority
from oec_operator.outcome import Outcome, ResourceRef
from oec_operator.ownership import Claim, claimed_by, claims_of
from oec_operator.polling import Interest, WatchedSource, busy
from oec_operator.reconcile import Context, created_environment, deletion_action, finalize, reconcile
from oec_operator.runtime import CRD_NAME, ResourceState, Runtime
from oec_operator.spec import OdooEnvironmentSpec
from oec_operator.status import merge_status

RESOURCE = ("oec.sh", "v1alpha1", "odooenvironments")
#: Prefix of kopf's own annotations. Not ``oec.sh``: kopf ignores every annotation under its
#: prefix when it detects changes, and the user annotations ``oec.sh/...`` must trigger handlers.
PREFIX = "operator.oec.sh"
FINALIZER = "oec.sh/finalizer"
CONFIG = load_config()
#: Passes of the uninstall guard over the objects (one second apart) before it gives up.
GUARD_PASSES = 30
#: Connections kopf may hold open to the apiserver at once (watch streams included).
KUBE_CONNECTIONS = 200
#: Seconds between login attempts while a kubeconfig user's exec credential plugin fails (e.g.
#: until ``aws sso login`` is done).
EXEC_RETRY_DELAY = 15.0


#: A status that changed in nothing but ``lastSyncTime`` is written again only after this many
#: steady poll intervals, plus up to as many again spread by object (so thousands of steady
#: resources do not rewrite their status every poll, nor all in the same second).
SYNC_TIME_REFRESH_INTERVALS = 5


class _QuietRoutine(logging.Filter):
    """Logs the expected waits of a deletion at INFO instead of ERROR."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "failed temporarily" in message and any(w in message for w in _ROUTINE_WAITS):
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


_ROUTINE_WAITS = ("is destroying environment", "to finish before destroying", "deletion waits")


def _state(memo: kopf.Memo) -> ResourceState:
    state = memo.get("resource_state")
    if state is None:
        state = memo["resource_state"] = ResourceState()
    return state


def _ref(body: kopf.Body) -> ResourceRef:
    meta = body.metadata
    return ResourceRef(
        namespace=str(meta.namespace), name=str(meta.name), uid=str(meta.uid), generation=int(meta["generation"])
    )


def _post_events(body: kopf.Body, outcome: Outcome, previous: dict[str, Any]) -> None:
    ready = cond.find(previous.get("conditions"), cond.READY) or {}
    for event in outcome.events:
        if event.type == "Warning" and (ready.get("reason"), ready.get("message")) == (event.reason, event.message):
            continue  # already reported; do not repeat on every poll
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Own finalizer and annotation prefix (``kopf-notes.md`` §2), and the shared runtime."""
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX, v1=False)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=PREFIX, v1=False)
    settings.posting.reporting_component = "oec-operator"
    # Under load (thousands of objects) the watch stream can lag more than kopf's default 5 s
    # behind kopf's own patches; kopf would then see a body without its diff base and run the
    # create handler a second time (harmless, but it spends API reads).
    settings.persistence.consistency_timeout = 30.0
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 310
    logging.getLogger("kopf.objects").addFilter(_QuietRoutine())
    redact.install()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is too much at INFO
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # liveness probes every few seconds
    memo.runtime = Runtime.create(CONFIG)
    metrics.serve(CONFIG.metrics_port, CONFIG.metrics_address)


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    """Close the HTTP and Kubernetes clients."""
    runtime: Runtime | None = memo.get("runtime")
    if runtime is not None:
        await runtime.aclose()


@kopf.on.login()
async def login(**kwargs: Any) -> kopf.AiohttpSession | None:
    """In-cluster service account first, then the kubeconfig; through an HTTP session that opens
    at most :data:`KUBE_CONNECTIONS` connections to the apiserver (kopf's own session has no
    limit: thousands of objects created at once would open thousands of TLS connections, about
    a third of a megabyte each, ``kopf-notes.md`` §5; kopf's documented custom-session login).

    A kubeconfig user with an ``exec`` credential plugin (EKS, GKE, AKS) gets the plugin's token
    or client certificate (:mod:`oec_operator.kubelogin`); the session's ``expiration`` is the
    credential's ``expirationTimestamp``, after which kopf calls this handler again (it does so
    on an HTTP 401 too). Returns None when neither a service account nor a kubeconfig exists.

    Raises:
        kopf.TemporaryError: the exec plugin failed (the message names the kubeconfig user and
            the command, with the plugin's stderr); kopf logs it and retries after
            :data:`EXEC_RETRY_DELAY` seconds, while API calls wait for credentials.
    """
    info = kopf.login_with_service_account(**kwargs)
    if info is None:
        info = kopf.login_with_kubeconfig(**kwargs)
        if info is None:
            return None
        try:
            info = await kubelogin.with_exec_credential(info)
        except kubelogin.ExecPluginError as exc:
            raise kopf.TemporaryError(str(exc), delay=EXEC_RETRY_DELAY) from None
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=KUBE_CONNECTIONS, ssl=info.as_ssl_context()),
        headers=info.as_http_headers(), proxy=info.proxy_url, trust_env=info.trust_env,
    )
    return kopf.AiohttpSession(aiohttp_session=session, server=info.server, priority=info.priority,
                               default_namespace=info.default_namespace, expiration=info.expiration)


@kopf.index(*RESOURCE, id="claims")
def claims(body: kopf.Body, **_: Any) -> dict[str, Claim]:
    """Index: environment id -> the resources that manage or want to adopt it."""
    return claims_of(body)


def _claimed_by(index: kopf.Index[str, Claim], body: kopf.Body) -> str | None:
    mine = claims_of(body)
    if not mine:
        return None
    target, claim = next(iter(mine.items()))
    return claimed_by(index.get(target, []), claim)


async def _sync(body: kopf.Body, memo: kopf.Memo, index: kopf.Index[str, Claim], logger: kopf.Logger,
                *, force: bool) -> dict[str, Any] | None:
    """Reconcile one object; ``force`` (a user's change) ignores the poll schedule and reads the
    environment afresh. Call with ``_state(memo).lock`` held.

    Returns:
        The status patch to write, or ``None`` when there is nothing new to write.
    """
    runtime: Runtime = memo.runtime
    state = _state(memo)
    loop = asyncio.get_running_loop()
    if not force and loop.time() < state.next_poll_at:
        return None
    # This process's last written status is newer than a body snapshot taken before the lock.
    previous = dict(state.status if state.status is not None else body.get("status") or {})
    if body.metadata.get("deletionTimestamp") or (not force and not previous):
        # Being deleted (the delete handler acts), or new (its create handler reconciles it).
        state.next_poll_at = loop.time() + runtime.config.fast_poll_interval
        return None
    ref = _ref(body)
    requests = Requests.from_annotations(body.metadata.annotations)
    config = runtime.config
    slow = requests.steady_interval(config.poll_interval, config.min_poll_interval)
    now = cond.now_rfc3339()
    hint = "the credentials"
    source = None

    async def persist(fields: dict[str, Any]) -> None:
        await runtime.patch_status(ref.namespace, ref.name, fields)
        previous.update(fields)
        state.status = dict(previous)

    try:
        spec = OdooEnvironmentSpec.from_body(body.spec)
        key, hint = await runtime.api_key(ref.namespace, spec.credentials_secret_ref)
        api = runtime.client(key, Priority.CHANGE if force else Priority.POLL)
        source = runtime.source(key, spec.project_id, api)
        outcome = await reconcile(Context(
            api=api, spec=spec, ref=ref, requests=requests, status=previous,
            known_environment_id=state.environment_id, claimed_by=_claimed_by(index, body),
            fast_poll=config.fast_poll_interval, slow_poll=slow, now=now,
            persist=persist, source=source, fresh=force, detailed=state.detailed,
        ))
        state.last_good_key = key
    except CredentialsError as exc:
        outcome = stalled_outcome("CredentialsNotFound", str(exc), next_poll=slow)
    except OecError as exc:
        if isinstance(exc, OecAuthError):
            state.last_good_key = None
        outcome = error_outcome(
            exc, had_ready=cond.find(previous.get("conditions"), cond.READY) is not None,
            credentials_hint=hint, failures=state.failures + 1, fast_poll=config.fast_poll_interval,
            slow_poll=slow,
        )
    except ApiException as exc:
        outcome = _retry_outcome(f"cannot write the status before acting (HTTP {exc.status})", state, config)
    except Exception as exc:  # a bug must not turn into a hot loop or a frozen status
        logger.exception("reconcile failed unexpectedly")
        outcome = _retry_outcome(f"unexpected {type(exc).__name__}; see the operator log", state, config)
    if outcome.failed and outcome.conditions:
        logger.warning(f"{outcome.conditions[0].reason}: {outcome.conditions[0].message}")
    metrics.RECONCILES.labels(_result(outcome, requests.paused)).inc()
    state.failures = state.failures + 1 if outcome.transient else 0
    state.environment_id = outcome.status.get("environmentId") or state.environment_id
    state.detailed = outcome.detailed
    state.next_poll_at = loop.time() + outcome.next_poll
    status_patch = merge_status(previous, outcome, ref.generation, now, paused=requests.paused)
    news = _news(previous, status_patch, slow * SYNC_TIME_REFRESH_INTERVALS * (1 + _spread(ref.uid)))
    # Nothing to write: the status stays as last written (its lastSyncTime included).
    state.status = {k: v for k, v in {**previous, **status_patch}.items() if v is not None} if news else previous
    runtime.phases.set(ref.uid, state.status.get("phase"))
    _post_events(body, outcome, previous)
    environment_id = state.status.get("environmentId")
    if requests.paused:
        runtime.fleet.forget(ref.uid)  # no API calls at all on its behalf, not even in a shared list
    elif isinstance(source, WatchedSource) and environment_id:
        runtime.fleet.subscribe(source.watch, str(environment_id), ref.uid,
                                Interest(wake=state.mark_changed, steady=slow, busy=busy(state.status)))
    return status_patch if news else None


def _spread(uid: str) -> float:
    """A fraction in [0, 1) fixed per object: resources that became Ready together refresh their
    ``lastSyncTime`` over five more intervals, not all at once (3000 refreshes in one burst kept
    the operator busy for minutes in ``make bench``)."""
    return int(hashlib.sha256(uid.encode()).hexdigest()[:8], 16) / 2**32


def _news(previous: dict[str, Any], patch: dict[str, Any], refresh_after: float) -> bool:
    """Whether ``patch`` changes ``previous`` in more than ``lastSyncTime``, or the recorded
    ``lastSyncTime`` is older than ``refresh_after`` seconds (or absent)."""
    if any(previous.get(k) != v for k, v in patch.items() if k != "lastSyncTime"):
        return True
    synced = previous.get("lastSyncTime")
    if "lastSyncTime" not in patch:
        return False
    if not synced:
        return True
    age = datetime.datetime.now(datetime.UTC) - datetime.datetime.fromisoformat(str(synced).replace("Z", "+00:00"))
    return age.total_seconds() >= refresh_after


def _result(outcome: Outcome, paused: bool) -> str:
    """The ``result`` label of ``oec_operator_reconciles_total``."""
    if paused:
        return "paused"
    if outcome.failed:
        return "retry" if outcome.transient else "stalled"
    return "success"


def _retry_outcome(message: str, state: ResourceState, config: Any) -> Outcome:
    """A transient failure outside the API (status write, a bug): retry with backoff."""
    delay = backoff(config.fast_poll_interval, state.failures + 1)
    return Outcome(failed=True, transient=True, next_poll=delay, conditions=[
        Condition(cond.RECONCILING, "True", "ProgressingWithRetry", f"{message}; retrying")])


@kopf.on.create(*RESOURCE, id="create")
@kopf.on.update(*RESOURCE, id="update")
async def on_change(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, logger: kopf.Logger, **kwargs: Any) -> None:
    """A new object, a changed spec or changed annotations: reconcile now."""
    state = _state(memo)
    async with state.lock:
        status_patch = await _sync(body, memo, kwargs["claims"], logger, force=True)
    state.wake.set()  # the poll daemon picks up the new schedule (e.g. a retry after a failure)
    if status_patch:
        patch.status.update(status_patch)


@kopf.daemon(*RESOURCE, id="poll", cancellation_timeout=10.0,
             initial_delay=lambda **_: random.uniform(0, CONFIG.fast_poll_interval))  # noqa: S311 - spread restarts
async def poll(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **kwargs: Any) -> None:
    """Keep status true: reconcile whenever the project's list saw the environment change or the
    object's next poll is due, and write the status when it changed. Runs until kopf cancels it
    (deletion, shutdown)."""
    runtime: Runtime = memo.runtime
    state = _state(memo)
    loop = asyncio.get_running_loop()
    try:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.wake.wait(), timeout=max(0.0, state.next_poll_at - loop.time()))
            state.wake.clear()
            if state.changed:
                state.changed = False
                state.next_poll_at = 0.0  # the environment changed: not bound by the schedule
            elif loop.time() < state.next_poll_at:
                continue  # rescheduled by a change handler: wait for the new time
            async with state.lock:
                status_patch = await _sync(body, memo, kwargs["claims"], logger, force=False)
                if status_patch:
                    await _write_status(runtime, state, body, status_patch, logger)
    finally:
        runtime.fleet.forget(str(body.metadata.uid))


async def _write_status(runtime: Runtime, state: ResourceState, body: kopf.Body, status_patch: dict[str, Any],
                        logger: kopf.Logger) -> None:
    """Write a status patch from the daemon; on failure forget the cached status and retry soon."""
    try:
        await runtime.patch_status(str(body.metadata.namespace), str(body.metadata.name), status_patch)
    except ApiException as exc:
        if exc.status != 404:  # 404: the object is gone; the daemon is about to be stopped
            logger.warning(f"cannot write the status (HTTP {exc.status}); retrying")
        state.status = None  # the body's status is the truth again
        state.next_poll_at = min(state.next_poll_at, asyncio.get_running_loop().time()
                                 + runtime.config.fast_poll_interval)


@kopf.on.delete(*RESOURCE, id="delete")
async def on_delete(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **kwargs: Any) -> None:
    """Destroy or orphan the environment (``docs/reconciliation.md``, Decisions: Delete).

    Raises:
        kopf.TemporaryError: the destroy is still running, deletion waits (paused, credentials)
            or the API failed; kopf retries after the given delay.
    """
    runtime: Runtime = memo.runtime
    state = _state(memo)
    config = runtime.config
    async with state.lock:
        ref = _ref(body)
        previous = dict(body.get("status") or {})
        spec = OdooEnvironmentSpec.from_body(body.spec)
        requests = Requests.from_annotations(body.metadata.annotations)
        environment_id = previous.get("environmentId") or state.environment_id
        create_request = previous.get("createRequest")
        if not environment_id and not create_request:
            if spec.environment_id:  # it pointed at an environment it never managed (e.g. a Conflict)
                kopf.info(body, reason="Orphaned",
                          message=f"OEC.sh environment {spec.environment_id} was not managed by this resource; "
                          "left untouched")
            return  # nothing was ever created for this resource
        owner = _claimed_by(kwargs["claims"], body)
        if owner is not None:  # another resource manages it (a Conflict loser): never destroy it
            kopf.info(body, reason="Orphaned", message=(
                f"OEC.sh environment {environment_id} is managed by OdooEnvironment {owner}; left untouched"))
            return
        now = cond.now_rfc3339()
        try:
            action = deletion_action(spec, requests, crd_deleting=await runtime.crd_deleting())
        except ApiException as exc:
            raise kopf.TemporaryError(
                f"cannot read the CRD (HTTP {exc.status})", delay=config.fast_poll_interval * 4
            ) from None
        if action == "wait":
            message = "deletion waits until the annotation oec.sh/paused is removed"
            _deleting(patch, previous, ref, now, "Paused", message)
            raise kopf.TemporaryError("paused: deletion waits", delay=config.min_poll_interval)
        if action == "orphan":
            if environment_id:
                kopf.info(body, reason="Orphaned", message=f"OEC.sh environment {environment_id} is kept (orphaned)")
            return
        api = await _delete_client(body, runtime, state, spec, ref)
        if api is None:
            return
        try:
            if not environment_id and create_request:
                environment_id = await created_environment(api, spec.project_id, create_request)
                if environment_id is None:
                    return
                state.environment_id = environment_id
            step = await finalize(api, str(environment_id))
        except OecError as exc:
            state.failures += 1
            _deleting(patch, previous, ref, now, "ApiError", f"deleting: {exc}")
            raise kopf.TemporaryError(
                f"deleting environment {environment_id}: {exc}",
                delay=retry_delay(exc, state.failures, config.fast_poll_interval),
            ) from None
        if step != "gone":
            state.failures = 0
            message = (f"OEC.sh is destroying environment {environment_id}" if step == "destroying" else
                       f"waiting for the running task of environment {environment_id} to finish before destroying it")
            _deleting(patch, previous, ref, now, "Deleting", message)
            raise kopf.TemporaryError(message, delay=config.fast_poll_interval)
        kopf.info(body, reason="Deleted", message=f"OEC.sh environment {environment_id} is deleted")
        runtime.phases.forget(ref.uid)


@kopf.on.event("apiextensions.k8s.io", "v1", "customresourcedefinitions", id="uninstall-guard",
               when=lambda name, **_: name == CRD_NAME)
async def uninstall_guard(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    """The CRD is being deleted (operator uninstall): orphan every environment.

    kopf stops serving a resource whose CRD terminates, so the delete handler never runs; this
    guard releases the finalizers itself, without touching OEC.sh (like Config Connector's
    deletion defender).
    """
    if not body.metadata.get("deletionTimestamp"):
        return
    runtime: Runtime = memo.runtime
    for _pass in range(GUARD_PASSES):
        try:
            released, remaining = await runtime.release_finalizers(FINALIZER)
        except ApiException as exc:
            if exc.status == 404:
                return  # the CRD is already gone: nothing left to release
            raise
        for obj in released:
            environment_id = (obj.get("status") or {}).get("environmentId")
            message = f"the CRD is being deleted: OEC.sh environment {environment_id} is kept (orphaned)"
            logger.info(f"{obj['metadata']['namespace']}/{obj['metadata']['name']}: {message}")
            if environment_id:
                kopf.info(cast(kopf.Body, obj), reason="Orphaned", message=message)
        if not remaining:
            return
        await asyncio.sleep(1.0)
    logger.warning("the CRD is being deleted but some OdooEnvironments keep the finalizer (not permitted here?)")


async def _delete_client(body: kopf.Body, runtime: Runtime, state: ResourceState, spec: OdooEnvironmentSpec,
                         ref: ResourceRef) -> OecClient | None:
    """Credentials for deleting: the resource's, else the last key that worked, else the operator's
    default; with none, wait ``OEC_CREDENTIALS_GRACE_PERIOD`` seconds (10 minutes) after the
    deletion started, then orphan (``None``)."""
    try:
        key, _source = await runtime.api_key(ref.namespace, spec.credentials_secret_ref)
        return runtime.client(key, Priority.DELETE)
    except CredentialsError as exc:
        fallback = state.last_good_key or await runtime.default_api_key()
        if fallback:
            return runtime.client(fallback, Priority.DELETE)
        started = datetime.datetime.fromisoformat(str(body.metadata["deletionTimestamp"]).replace("Z", "+00:00"))
        waited = (datetime.datetime.now(datetime.UTC) - started).total_seconds()
        grace = runtime.config.credentials_grace_period
        if waited < grace:
            raise kopf.TemporaryError(
                f"{exc}; deletion waits for credentials", delay=min(runtime.config.poll_interval, grace - waited + 1)
            ) from None
        kopf.warn(body, reason="Orphaned", message=(
            f"no credentials to delete OEC.sh environment {body.get('status', {}).get('environmentId')} after "
            f"{grace:.0f} seconds ({exc}); it is left in OEC.sh"))
        return None


def _deleting(patch: kopf.Patch, previous: dict[str, Any], ref: ResourceRef, now: str, reason: str,
              message: str) -> None:
    outcome = Outcome(
        conditions=[
            Condition(cond.READY, "False", reason, message),
            Condition(cond.RECONCILING, "True", "Progressing", message),
        ],
        remove=(cond.STALLED,),
    )
    patch.status.update(merge_status(previous, outcome, ref.generation, now))
