"""What this process remembers of one ``OdooEnvironment`` between reconciles (kopf's per-object
memo): the schedule, the failure count, the last key that worked. The status itself is not here:
:class:`~oec_operator.kube.status.StatusWriter` keeps the last written one."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from oec_operator.oec.models import Environment


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
    """

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    environment_id: str | None = None
    next_poll_at: float = 0.0
    failures: int = 0
    last_good_key: str | None = field(default=None, repr=False)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    changed: bool = False
    detailed: Environment | None = None

    def mark_changed(self) -> None:
        """The environment changed in OEC.sh: reconcile now (the project watch's callback)."""
        self.changed = True
        self.wake.set()
