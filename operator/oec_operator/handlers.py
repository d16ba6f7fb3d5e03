"""kopf registrations for ``OdooEnvironment`` (``oec.sh/v1alpha1``). Kept thin: parse the object,
call :mod:`oec_operator.reconcile`, write the status patch and Events.

- create / update (``spec`` changed): reconcile at once;
- timer (every ``OEC_FAST_POLL_INTERVAL`` seconds): reconcile when the object's next poll is due
  (fast while work is in flight, ``OEC_POLL_INTERVAL`` when steady, backoff after errors);
- delete: DELETE the environment and hold the finalizer ``oec.sh/finalizer`` until it is gone.

Run with ``oec-operator`` (see :mod:`oec_operator.__main__`) or
``kopf run -m oec_operator.handlers --standalone --all-namespaces``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from oec_operator import conditions as cond
from oec_operator.conditions import Condition
from oec_operator.config import load_config
from oec_operator.credentials import CredentialsError
from oec_operator.oec.errors import OecError
from oec_operator.reconcile import (
    Outcome,
    ResourceRef,
    error_outcome,
    finalize,
    merge_status,
    reconcile,
    retry_delay,
    stalled_outcome,
)
from oec_operator.runtime import ResourceState, Runtime
from oec_operator.spec import OdooEnvironmentSpec

RESOURCE = ("oec.sh", "v1alpha1", "odooenvironments")
PREFIX = "oec.sh"
FINALIZER = "oec.sh/finalizer"
CONFIG = load_config()


class _QuietPolls(logging.Filter):
    """Drops kopf's "Timer 'poll' succeeded." line, logged at every tick even when nothing was due."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().endswith("Timer 'poll' succeeded.")


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
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 310
    logging.getLogger("kopf.objects").addFilter(_QuietPolls())
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is too much at INFO
    memo.runtime = Runtime.create(CONFIG)


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    """Close the HTTP and Kubernetes clients."""
    runtime: Runtime | None = memo.get("runtime")
    if runtime is not None:
        await runtime.aclose()


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In-cluster service account first, then the kubeconfig."""
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


async def _sync(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, *, force: bool) -> None:
    """Reconcile one object and write its status; ``force`` ignores the poll schedule."""
    runtime: Runtime = memo.runtime
    state = _state(memo)
    loop = asyncio.get_running_loop()
    async with state.lock:
        if body.metadata.get("deletionTimestamp") or (not force and loop.time() < state.next_poll_at):
            return
        ref = _ref(body)
        previous = dict(body.get("status") or {})
        now = cond.now_rfc3339()
        config = runtime.config
        hint = "the credentials"
        try:
            spec = OdooEnvironmentSpec.from_body(body.spec)
            api, hint = await runtime.api_for(ref.namespace, spec.credentials_secret_ref)
            outcome = await reconcile(
                api,
                spec,
                ref,
                environment_id=previous.get("environmentId") or state.environment_id,
                previous_phase=previous.get("phase"),
                fast_poll=config.fast_poll_interval,
                slow_poll=config.poll_interval,
                now=now,
            )
        except CredentialsError as exc:
            outcome = stalled_outcome("CredentialsNotFound", str(exc), next_poll=config.poll_interval)
        except OecError as exc:
            outcome = error_outcome(
                exc,
                had_ready=cond.find(previous.get("conditions"), cond.READY) is not None,
                credentials_hint=hint,
                failures=state.failures + 1,
                fast_poll=config.fast_poll_interval,
                slow_poll=config.poll_interval,
            )
        state.failures = state.failures + 1 if outcome.transient else 0
        state.environment_id = outcome.status.get("environmentId") or state.environment_id
        state.next_poll_at = loop.time() + outcome.next_poll
        patch.status.update(merge_status(previous, outcome, ref.generation, now))
        _post_events(body, outcome, previous)


@kopf.on.create(*RESOURCE, id="create")
@kopf.on.update(*RESOURCE, id="update", field="spec")
async def on_change(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    """A new object or a changed spec: reconcile now."""
    await _sync(body, patch, memo, force=True)


@kopf.timer(*RESOURCE, id="poll", interval=CONFIG.fast_poll_interval)
async def poll(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    """Keep status true: reconcile whenever the object's next poll is due."""
    await _sync(body, patch, memo, force=False)


@kopf.on.delete(*RESOURCE, id="delete")
async def on_delete(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    """Destroy the environment; the finalizer stays until the API answers 404 for it.

    Raises:
        kopf.TemporaryError: the destroy is still running or the API failed; kopf retries.
    """
    runtime: Runtime = memo.runtime
    state = _state(memo)
    async with state.lock:
        ref = _ref(body)
        previous = dict(body.get("status") or {})
        environment_id = previous.get("environmentId") or state.environment_id
        if not environment_id:
            return  # nothing was ever created for this resource
        config = runtime.config
        now = cond.now_rfc3339()
        spec = OdooEnvironmentSpec.from_body(body.spec)
        try:
            api, _source = await runtime.api_for(ref.namespace, spec.credentials_secret_ref)
            gone = await finalize(api, environment_id)
        except CredentialsError as exc:
            _delete_status(patch, previous, ref, now, "CredentialsNotFound", str(exc))
            raise kopf.TemporaryError(str(exc), delay=config.poll_interval) from None
        except OecError as exc:
            state.failures += 1
            _delete_status(patch, previous, ref, now, "ApiError", f"deleting: {exc}")
            raise kopf.TemporaryError(
                f"deleting environment {environment_id}: {exc}",
                delay=retry_delay(exc, state.failures, config.fast_poll_interval),
            ) from None
        if not gone:
            state.failures = 0
            _delete_status(
                patch, previous, ref, now, "Deleting", f"OEC.sh is destroying environment {environment_id}"
            )
            raise kopf.TemporaryError(
                f"waiting for OEC.sh to destroy environment {environment_id}", delay=config.fast_poll_interval
            )
        kopf.info(body, reason="Deleted", message=f"OEC.sh environment {environment_id} is deleted")


def _delete_status(
    patch: kopf.Patch, previous: dict[str, Any], ref: ResourceRef, now: str, reason: str, message: str
) -> None:
    outcome = Outcome(
        conditions=[
            Condition(cond.READY, "False", reason, message),
            Condition(cond.RECONCILING, "True", "Progressing", message),
        ],
        remove=(cond.STALLED,),
    )
    patch.status.update(merge_status(previous, outcome, ref.generation, now))
