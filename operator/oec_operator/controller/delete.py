"""Deleting an ``OdooEnvironment``: destroy its OEC.sh environment or orphan it
(``docs/reconciliation.md``, Decisions: Delete), one step per call until the finalizer may go.

A step reads the environment before any DELETE (:func:`oec_operator.domain.reconcile.finalize`),
finds an environment whose create may have happened without its id being recorded, and keeps
the status saying what the deletion waits for. Credentials: the resource's, else the last key
that worked for it, else the operator's default; with none, it waits
``OEC_CREDENTIALS_GRACE_PERIOD`` seconds from the deletion's start, then orphans the environment.
Knows nothing of kopf: the caller turns a :class:`DeletionStep` into "release the finalizer" or
"retry after N seconds".
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from oec_operator import metrics
from oec_operator.controller import final_backup
from oec_operator.controller.state import Handle
from oec_operator.controller.sync import owner_of, resource_ref
from oec_operator.domain import refusals
from oec_operator.domain.assess import merge_status
from oec_operator.domain.failures import classify, retry_delay
from oec_operator.domain.outcome import Event, Outcome, ResourceRef
from oec_operator.domain.reconcile import created_environment, deletion_action, finalize
from oec_operator.kube.client import KubeError
from oec_operator.kube.credentials import CredentialsError
from oec_operator.models import conditions as cond
from oec_operator.models.conditions import Condition
from oec_operator.models.requests import Requests
from oec_operator.models.spec import OdooEnvironmentSpec
from oec_operator.models.status import RefusedWrite, Status
from oec_operator.oec.client import OecClient
from oec_operator.oec.errors import OecError
from oec_operator.oec.ratelimit import Priority
from oec_operator.runtime import Runtime
from oec_operator.settings import CRD_NAME

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeletionStep:
    """The result of one deletion step: ``retry_after`` seconds (with ``message`` saying what it
    waits for), or ``None`` when the finalizer may be released."""

    retry_after: float | None = None
    message: str = ""

    @property
    def done(self) -> bool:
        """True when the finalizer may be released."""
        return self.retry_after is None


DONE = DeletionStep()


class DeleteController:
    """Deletes ``OdooEnvironment`` objects (one instance per process).

    Args:
        runtime: the process's shared clients, writer and watches.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.config = runtime.config

    async def step(self, obj: Handle) -> DeletionStep:
        """One step of deleting the object."""
        async with obj.state.lock:
            step = await self._step(obj)
        if step.done:
            ref = resource_ref(obj.body)
            self.runtime.phases.forget(ref.uid)
            self.runtime.status.forget(ref.uid)
            metrics.LATEST_BACKUPS.forget(ref.namespace, ref.name)
        return step

    async def _step(self, obj: Handle) -> DeletionStep:
        body, state, events = obj.body, obj.state, obj.events
        ref = resource_ref(body)
        previous = self.runtime.status.view(ref.uid, body.get("status"))
        spec = OdooEnvironmentSpec.from_body(body["spec"])
        environment_id = previous.environment_id or state.environment_id
        early = await self._without_destroy(obj, previous, spec, environment_id)
        if early is not None:
            return early
        api = await self._client(obj, spec, ref)
        if isinstance(api, DeletionStep):
            return api
        recorded = environment_id is not None  # else an unrecorded create, found below: nothing in it to back up
        try:
            if not environment_id:
                assert previous.create_request is not None  # one of the two, see _without_destroy
                environment_id = await created_environment(api, spec.project_id, previous.create_request)
                if environment_id is None:
                    return DONE
                state.environment_id = environment_id
            if recorded and spec.final_backup_enabled:  # docs/backups.md §4: backed up and recorded before the DELETE
                hold = await final_backup.before_delete(self.runtime, obj, ref, previous, spec, api, environment_id)
                if hold is not None:
                    return DeletionStep(*hold)
            send_delete = self._guarded_delete(obj, ref, previous, api, environment_id)
            def blocked(task_id: str) -> None:
                state.blocked_task = task_id

            progress = await finalize(api, environment_id, send_delete, on_blocked=blocked,
                                      running_task=state.blocked_task or (previous.task.id if previous.task else None))
        except OecError as exc:
            if refusals.for_good(exc):  # sent again only once the key, the spec or a token changed
                _, reason, message = classify(exc, "the credentials")
                message = f"deleting environment {environment_id}: {message}"
                await self._report(obj, ref, previous, reason, message)
                return DeletionStep(self.config.poll_interval, message)
            state.failures += 1
            await self._report(obj, ref, previous, "ApiError", f"deleting: {exc}")
            return DeletionStep(retry_delay(exc, state.failures, self.config.fast_poll_interval),
                                f"deleting environment {environment_id}: {exc}")
        if progress != "gone":
            state.failures = 0
            message = (f"OEC.sh is destroying environment {environment_id}" if progress == "destroying" else
                       f"waiting for the running task of environment {environment_id} to finish before destroying it")
            await self._report(obj, ref, previous, "Deleting", message)
            return DeletionStep(self.config.fast_poll_interval, message)
        events(Event("Normal", "Deleted", f"OEC.sh environment {environment_id} is deleted"))
        if recorded and spec.final_backup_enabled:
            await final_backup.after_delete(self.runtime, obj, ref, spec, api, environment_id)
        return DONE

    def _guarded_delete(self, obj: Handle, ref: ResourceRef, previous: Status, api: OecClient,
                        environment_id: str) -> Callable[[], Awaitable[object]]:
        """The DELETE of ``environment_id``, held back while the API refused it for good and nothing
        changed since (``docs/reconciliation.md``, Refused writes); a new refusal is recorded in
        ``status.refusedWrite`` (best effort: if that write fails, the DELETE is refused once more)."""
        request = f"DELETE /environments/{environment_id}"
        requests = Requests.from_annotations(obj.body["metadata"].get("annotations"))
        print_ = refusals.prints(request, {}, api.key_id, ref.generation, requests)

        async def record(refused: RefusedWrite) -> None:
            try:
                await self.runtime.status.write(ref.namespace, ref.name, ref.uid, Status(refused_write=refused))
            except KubeError as exc:
                obj.logger.info(f"cannot record the refused DELETE ({exc})")

        return lambda: refusals.send_unless_refused(previous.refused_write, print_, request, cond.now_rfc3339(),
                                                    lambda: api.delete_environment(environment_id), record)

    async def _without_destroy(self, obj: Handle, previous: Status, spec: OdooEnvironmentSpec,
                               environment_id: str | None) -> DeletionStep | None:
        """The outcomes that send nothing to OEC.sh: nothing was created, another resource owns
        the environment, the policy or the CRD's deletion orphans it, or paused (wait); ``None``
        when the environment is to be destroyed."""
        body, events = obj.body, obj.events
        if not environment_id and not previous.create_request:
            if spec.environment_id:  # it pointed at an environment it never managed (e.g. a Conflict)
                events(Event("Normal", "Orphaned", f"OEC.sh environment {spec.environment_id} was not managed by "
                             "this resource; left untouched"))
            return DONE  # nothing was ever created for this resource
        owner = owner_of(obj.claims, body)
        if owner is not None:  # another resource manages it (a Conflict loser): never destroy it
            events(Event("Normal", "Orphaned",
                         f"OEC.sh environment {environment_id} is managed by OdooEnvironment {owner}; left untouched"))
            return DONE
        try:
            crd = await self.runtime.kube.read_crd(CRD_NAME)
        except KubeError as exc:
            return DeletionStep(self.config.fast_poll_interval * 4, f"cannot read the CRD ({exc})")
        crd_deleting = bool((crd.get("metadata") or {}).get("deletionTimestamp"))
        requests = Requests.from_annotations(body["metadata"].get("annotations"))
        action = deletion_action(spec, requests, crd_deleting=crd_deleting)
        if action == "wait":
            message = "deletion waits until the annotation oec.sh/paused is removed"
            await self._report(obj, resource_ref(body), previous, "Paused", message)
            return DeletionStep(self.config.min_poll_interval, "paused: deletion waits")
        if action == "orphan":
            if environment_id:
                events(Event("Normal", "Orphaned", f"OEC.sh environment {environment_id} is kept (orphaned)"))
            return DONE
        return None

    async def _client(self, obj: Handle, spec: OdooEnvironmentSpec, ref: ResourceRef) -> OecClient | DeletionStep:
        """A client with the credentials for deleting, a wait for them, or :data:`DONE` when the
        grace period is over (the environment is orphaned)."""
        runtime, body, state = self.runtime, obj.body, obj.state
        try:
            key, _source = await runtime.api_key(ref.namespace, spec.credentials_secret_ref)
            return runtime.client(key, Priority.DELETE)
        except CredentialsError as exc:
            fallback = state.last_good_key or await runtime.default_api_key()
            if fallback:
                return runtime.client(fallback, Priority.DELETE)
            waited = cond.seconds_since(str(body["metadata"]["deletionTimestamp"])) or 0.0
            grace = self.config.credentials_grace_period
            if waited < grace:
                return DeletionStep(min(self.config.poll_interval, grace - waited + 1),
                                    f"{exc}; deletion waits for credentials")
            environment_id = self.runtime.status.view(ref.uid, body.get("status")).environment_id
            obj.events(Event("Warning", "Orphaned", f"no credentials to delete OEC.sh environment {environment_id} "
                             f"after {grace:.0f} seconds ({exc}); it is left in OEC.sh"))
            return DONE

    async def _report(self, obj: Handle, ref: ResourceRef, previous: Status, reason: str, message: str) -> None:
        """Say in the status what the deletion waits for (best effort: the deletion goes on)."""
        outcome = Outcome(
            conditions=[Condition(cond.READY, "False", reason, message),
                        Condition(cond.RECONCILING, "True", "Progressing", message)],
            remove=(cond.STALLED,),
        )
        update = merge_status(previous, outcome, ref.generation, cond.now_rfc3339())
        if not previous.changes(update).model_fields_set:
            return  # already says so
        try:
            await self.runtime.status.write(ref.namespace, ref.name, ref.uid, update)
        except KubeError as exc:
            obj.logger.info(f"cannot write the deletion's status ({exc})")
