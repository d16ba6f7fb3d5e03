"""The uninstall guard: when one of the operator's CRDs is being deleted, release the operator's
finalizer from every object of that kind: the ``OdooEnvironment`` CRD orphans every environment;
the backup kinds' CRDs (``OdooBackup``, ``OdooBackupSchedule``, ``OdooRestore``) only let their
objects go (their finalizer guards kopf's daemons, no data: ``docs/backups.md`` §1).

kopf stops serving a resource whose CRD terminates, so the deletion never runs for its objects;
the guard releases their finalizers itself, without touching OEC.sh (like Config Connector's
deletion defender).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from oec_operator.controller.state import EventSink
from oec_operator.domain.outcome import Event
from oec_operator.kube.client import KubeClient, KubeError
from oec_operator.models.status import Status
from oec_operator.settings import FINALIZER, PLURAL

logger = logging.getLogger(__name__)

#: Passes over the objects (one second apart) before the guard gives up.
GUARD_PASSES = 30

#: ``events_for(body)`` -> an Event sink for that object.
EventsFor = Callable[[Mapping[str, Any]], EventSink]


async def release_finalizers(kube: KubeClient, plural: str = PLURAL) -> tuple[list[dict[str, Any]], int]:
    """Remove :data:`FINALIZER` from every object of the kind ``plural`` (``OdooEnvironment`` by
    default) in the cluster, without any call to OEC.sh. One pass: the apiserver marks every
    object for deletion at the same moment, so a patch can lose the race (409) on a stale
    ``resourceVersion``; callers repeat while objects remain.

    Returns:
        ``(released bodies, number of objects still carrying the finalizer)``.

    Raises:
        KubeError: listing failed.
    """
    pending = [o for o in await kube.list_objects(None, plural=plural)
               if FINALIZER in (o["metadata"].get("finalizers") or [])]
    released: list[dict[str, Any]] = []
    for obj in pending:
        meta = obj["metadata"]
        # A merge patch replaces the whole list; the resourceVersion makes it conditional, so
        # another controller's finalizer added meanwhile is never dropped.
        try:
            await kube.patch_metadata(meta["namespace"], meta["name"], {
                "resourceVersion": meta["resourceVersion"],
                "finalizers": [f for f in meta["finalizers"] if f != FINALIZER]}, plural=plural)
        except KubeError:
            continue  # a conflict, or not permitted in this namespace: the next pass re-reads it
        released.append(obj)
    return released, len(pending) - len(released)


async def orphan_all(kube: KubeClient, events_for: EventsFor) -> None:
    """Release every ``OdooEnvironment``'s finalizer (:func:`release_all`); posts an ``Orphaned``
    Event on each released object that had an OEC.sh environment.

    Raises:
        KubeError: listing failed (other than the CRD being gone already).
    """
    def orphaned(obj: dict[str, Any]) -> None:
        environment_id = Status.from_body(obj.get("status")).environment_id
        message = f"the CRD is being deleted: OEC.sh environment {environment_id} is kept (orphaned)"
        logger.info(f"{obj['metadata']['namespace']}/{obj['metadata']['name']}: {message}")
        if environment_id:
            sink: EventSink = events_for(obj)
            sink(Event("Normal", "Orphaned", message))

    await release_all(kube, PLURAL, orphaned)


async def release_all(kube: KubeClient, plural: str,
                      released: Callable[[dict[str, Any]], None] | None = None) -> None:
    """Release :data:`FINALIZER` from every object of the kind ``plural``, repeating passes until
    none is left or :data:`GUARD_PASSES` passes are done; ``released`` is called with each
    released object.

    Raises:
        KubeError: listing failed (other than the CRD being gone already).
    """
    for _pass in range(GUARD_PASSES):
        try:
            done, remaining = await release_finalizers(kube, plural)
        except KubeError as exc:
            if exc.status == 404:
                return  # the CRD is already gone: nothing left to release
            raise
        for obj in done:
            if released is not None:
                released(obj)
            else:
                logger.info(f"{plural} {obj['metadata']['namespace']}/{obj['metadata']['name']}: "
                            "the CRD is being deleted: finalizer released")
        if not remaining:
            return
        await asyncio.sleep(1.0)
    logger.warning(f"the CRD is being deleted but some {plural} keep the finalizer (not permitted here?)")
