"""What this process remembers of one ``OdooEnvironment`` between reconciles (kopf's per-object
memo): the schedule, the failure count, the last key that worked; and :class:`Handle`, what the
controllers get from their caller about one object. The status itself is not here:
:class:`~oec_operator.kube.status.StatusWriter` keeps the last written one."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from oec_operator.domain.outcome import Event
from oec_operator.domain.ownership import Claim
from oec_operator.oec.models import Environment

#: The ownership index: environment id -> the claims on it (kopf's index ``claims``).
Claims = Mapping[str, Iterable[Claim]]
#: The running restores: ``namespace/name`` of an ``OdooEnvironment`` -> what restores it (kopf's
#: index ``restores``, :func:`oec_operator.domain.restore.running_of`).
Restores = Mapping[str, Iterable[str]]
#: Posts one Event about the object.
EventSink = Callable[[Event], None]
#: A logger; kopf's per-object logger adapter puts the object into every record (JSON logs).
Logger = logging.Logger | logging.LoggerAdapter[Any]


@dataclass
class ResourceState:
    """In-memory state of one ``OdooEnvironment`` in this process (kopf's per-object memo).

    Attributes:
        lock: serializes reconciles of the object (change handlers and the timer run
            concurrently in kopf).
        environment_id: the OEC id, known even when the status write that records it failed.
        next_poll_at: event-loop time (seconds) before which the timer skips the object.
        failures: consecutive transient API failures (for backoff).
        last_good_key: the last API key that worked for this resource (used to delete the
            environment when its Secret is already gone, e.g. during namespace deletion).
        wake: set to make the resource's poll daemon look at its schedule again; with
            ``changed`` (see :meth:`mark_changed`) it reconciles at once.
        changed: the environment's entry in the project's list changed.
        detailed: the environment as it was when its ``/status`` was last read.
        blocked_task: the task a 409 ``task_in_progress`` named when the deletion's DELETE was
            refused: read until it ended before the next DELETE.
        refresh_token: the last ``oec.sh/refresh-requested-at`` reconciled in this process (a new
            one reads the environment afresh, ``docs/webhooks.md`` §2).
    """

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    environment_id: str | None = None
    next_poll_at: float = 0.0
    failures: int = 0
    last_good_key: str | None = field(default=None, repr=False)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    changed: bool = False
    detailed: Environment | None = None
    blocked_task: str | None = None
    refresh_token: str | None = None

    def mark_changed(self) -> None:
        """The environment changed in OEC.sh: reconcile now (the project watch's callback)."""
        self.changed = True
        self.wake.set()


@dataclass(frozen=True)
class Handle:
    """One object as the controllers get it from the registrations.

    Attributes:
        body: the object (a mapping kopf keeps current for daemons).
        state: its memory in this process.
        claims: the ownership index.
        events: where its Events go.
        logger: its logger.
        restores: the index of running restores (``docs/backups.md`` §3).
    """

    body: Mapping[str, Any]
    state: ResourceState
    claims: Claims
    events: EventSink
    logger: Logger
    restores: Restores = field(default_factory=dict)
