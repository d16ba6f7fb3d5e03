"""The result of one reconcile, shared by the domain modules and the controller."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from oec_operator.models.conditions import Condition
from oec_operator.models.status import Status
from oec_operator.oec.models import Environment


@dataclass(frozen=True)
class ResourceRef:
    """Identity of the ``OdooEnvironment`` being reconciled."""

    namespace: str
    name: str
    uid: str
    generation: int


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post: ``type`` Normal/Warning, CamelCase ``reason``, human message."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass
class Outcome:
    """What one reconcile found and decided.

    Attributes:
        status: the status update (the fields set in it are written; ``None`` removes one).
        conditions: conditions to set; ``remove``: condition types to delete.
        observed: True when this generation reached Ready=True or Stalled=True, so
            ``status.observedGeneration`` may be set (``docs/status-contract.md`` §1 rule 4).
        events: Events to post.
        next_poll: seconds until the next reconcile is wanted.
        failed: True when an error (transient or permanent) ended the reconcile.
        transient: True when that error is worth retrying without a user change.
        detailed: the environment as it was when its ``/status`` was last read (``None``: never).
    """

    status: Status = field(default_factory=Status)
    conditions: list[Condition] = field(default_factory=list)
    remove: tuple[str, ...] = ()
    observed: bool = False
    events: list[Event] = field(default_factory=list)
    next_poll: float = 60.0
    failed: bool = False
    transient: bool = False
    detailed: Environment | None = None
