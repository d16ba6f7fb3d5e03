"""kopf peering for several operator processes (``docs/kopf.md`` §6): at most one acts.

Every replica takes part in kopf's peering through one ``ClusterKopfPeering`` object (also when it
watches only some namespaces): kopf pauses a replica (no watch streams, no handlers, daemons
stopped) while a live peer with a higher priority exists. :func:`configure` sets kopf's peering
settings; :func:`announce` makes sure the peering object exists and holds this replica's entry
before kopf acts, so that two replicas starting together see each other at once.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import time
from typing import TYPE_CHECKING, Any

from oec_operator.kube.client import KubeClient, KubeError
from oec_operator.settings import OperatorConfig

if TYPE_CHECKING:
    import kopf

logger = logging.getLogger(__name__)

#: Seconds between attempts to create the peering object while it cannot be created.
RETRY_INTERVAL = 10.0


def start_priority(now_ns: int | None = None) -> int:
    """A priority from the process's start time in microseconds, negated: an older replica
    outranks a newer one (the active replica stays active when another starts), and two replicas
    get the same priority only if they start in the same microsecond."""
    return -((time.time_ns() if now_ns is None else now_ns) // 1000)


def configure(settings: kopf.OperatorSettings, config: OperatorConfig) -> None:
    """Set kopf's peering settings: mandatory, cluster-wide, the name (``-P/--peering`` on the
    command line, else ``OEC_PEERING_NAME``), a short lifetime, quiet keep-alives, and the priority
    (``OEC_PEERING_PRIORITY``, else ``--priority``/``--dev`` on the command line, else
    :func:`start_priority`). ``--standalone`` on the command line keeps kopf's standalone mode (no
    peering: never run two processes then)."""
    peering = settings.peering
    if peering.standalone:
        logger.warning("peering is off (--standalone): a second operator process would act too")
        return
    peering.mandatory = True
    peering.clusterwide = True
    if peering.name == "default":  # kopf's default: no -P/--peering given
        peering.name = config.peering_name
    peering.lifetime = config.peering_lifetime
    peering.stealth = True
    if config.peering_priority is not None:
        peering.priority = config.peering_priority
    elif peering.priority == 0:
        peering.priority = start_priority()
    logger.info("peering: ClusterKopfPeering %r, priority %d, lifetime %d s; this process acts only while "
                "no live peer has a higher priority", peering.name, peering.priority, peering.lifetime)


def entry(priority: int, lifetime: int, now: datetime.datetime | None = None) -> dict[str, Any]:
    """One peer's keep-alive record, as kopf writes it in the peering object's ``status``."""
    lastseen = now or datetime.datetime.now(datetime.UTC)
    return {"priority": priority, "lifetime": lifetime, "lastseen": lastseen.isoformat()}


def outranking(entries: dict[str, Any], identity: str | None, priority: int,
               now: datetime.datetime | None = None) -> list[str]:
    """The identities among ``entries`` (a peering object's ``status``) that are alive and have a
    higher priority than ``priority``: while there is one, kopf keeps this process paused."""
    moment = now or datetime.datetime.now(datetime.UTC)
    found = []
    for peer, info in entries.items():
        try:
            alive = datetime.datetime.fromisoformat(info["lastseen"]) + datetime.timedelta(
                seconds=int(info.get("lifetime", 60))) > moment
            higher = int(info.get("priority", 0)) > priority
        except (TypeError, KeyError, ValueError):
            continue
        if peer != identity and alive and higher:
            found.append(peer)
    return found


async def announce(kube: KubeClient, settings: kopf.OperatorSettings) -> None:
    """Create the peering object with this process's entry, or add the entry if it exists.

    kopf itself only patches the object (it never creates it) and, with mandatory peering, stays
    paused until it has seen it; kopf's first keep-alive may also come seconds after the object
    appears. Writing the entry here, before any watch starts, lets a second replica starting at the
    same time see this one from its first look. Retries every :data:`RETRY_INTERVAL` s until it
    succeeds (e.g. the peering CRD not installed yet); runs until done or cancelled.
    """
    peering = settings.peering
    if peering.standalone:
        return
    identity = os.environ.get("POD_ID")  # kopf's identity of this process (see oec_operator.__main__)
    status = {identity: entry(peering.priority, peering.lifetime)} if identity else {}
    reported: str | None = None
    while True:
        try:
            if not await kube.create_cluster_peering(peering.name, status) and status:
                active = outranking(await kube.patch_cluster_peering(peering.name, status), identity, peering.priority)
                if active:
                    logger.info("standby: %s with a higher priority is active; this process waits and takes over "
                                "at most %d s after it stops", ", ".join(active), peering.lifetime)
            return
        except KubeError as exc:
            problem = str(exc)
            if problem != reported:
                hint = " (is crds/kopfpeerings.kopf.dev.yaml applied?)" if exc.status == 404 else ""
                logger.error("cannot create the peering object %r: %s%s; the operator stays paused until it "
                             "exists", peering.name, problem, hint)
                reported = problem
        await asyncio.sleep(RETRY_INTERVAL)
