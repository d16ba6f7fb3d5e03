"""Whether one API key's webhooks can be trusted to announce changes (``docs/webhooks.md`` §6).

While they can (mode ``push``), the key's project lists run at the steady interval times
``OEC_WEBHOOK_POLL_STRETCH``; as soon as any sign says they cannot (mode ``poll``), at the normal
interval again: polling is the safety net, webhooks only make the operator faster and cheaper.

Push holds only while all of these hold (each is an input of :class:`PushHealth`):

1. the key's webhook is registered and ``is_active`` (:meth:`PushHealth.webhook_state`), as
   last checked no more than ``state_ttl`` seconds ago;
2. its ``failure_count`` did not rise between the last two checks;
3. a delivery (an event or a ping) has passed verification at least once (:meth:`PushHealth.delivered`):
   the URL is known to reach the receiver;
4. no change that a list saw stayed unannounced (no hint for that environment within ``grace``
   seconds before or after the list, :meth:`PushHealth.poll_saw_change`) during the last
   ``memory`` seconds;
5. no delivery failed verification during the last ``memory`` seconds (:meth:`PushHealth.verification_failed`).

Pure logic on an injectable monotonic clock; it knows nothing of HTTP or Kubernetes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Literal

Mode = Literal["push", "poll"]

#: Seconds a hint may come after the list that saw its change (delivery latency, a sender retry)
#: and still explain it.
ANNOUNCE_GRACE = 10.0

logger = logging.getLogger(__name__)


class PushHealth:
    """The push health of one API key.

    Args:
        key_id: the key's id (``OecClient.key_id``), for the log and the listeners.
        stretch: factor on the steady list interval while in push mode (``OEC_WEBHOOK_POLL_STRETCH``).
        memory: seconds an unannounced change or a failed verification keeps the key in poll mode.
        state_ttl: seconds after which the webhook's last known state is too old to trust.
        grace: seconds a hint may come after the list that saw its change (:data:`ANNOUNCE_GRACE`).
        clock: monotonic clock, seconds.
        on_switch: called with ``(key_id, mode)`` on every switch of :meth:`mode`.
    """

    def __init__(self, key_id: str, *, stretch: float, memory: float, state_ttl: float,
                 grace: float = ANNOUNCE_GRACE, clock: Callable[[], float] = time.monotonic,
                 on_switch: Callable[[str, Mode], None] | None = None) -> None:
        self.key_id = key_id
        self._stretch = stretch
        self._memory = memory
        self._state_ttl = state_ttl
        self._grace = grace
        self._clock = clock
        self._on_switch = on_switch
        self._registered = False
        self._active = False
        self._failure_count: int | None = None
        self._rising = False
        self._failing = False
        self._checked_at: float | None = None
        self._delivered = False
        self._hints: dict[str, float] = {}  # environment id -> last hint time
        self._pending: dict[str, float] = {}  # environment id -> when a list saw it change, no hint yet
        self._unexplained_at: float | None = None
        self._failed_at: float | None = None
        self._mode: Mode = "poll"

    # -- inputs ---------------------------------------------------------------------------
    def delivered(self) -> None:
        """A delivery (event or ping) of this key's webhook passed verification."""
        self._delivered = True
        self.mode()

    def webhook_state(self, registered: bool, is_active: bool, failure_count: int, failing: bool = False) -> None:
        """The webhook as just read from the API (``docs/oec-api.md`` §11.6): is there one, is it
        active, its ``failure_count`` (a rise since the previous check means failed deliveries),
        ``failing``: its newest delivery that was tried failed."""
        self._rising = self._failure_count is not None and failure_count > self._failure_count
        self._failing = failing
        self._registered, self._active, self._failure_count = registered, is_active, failure_count
        self._checked_at = self._clock()
        self.mode()

    def hinted(self, env_id: str) -> None:
        """A verified delivery named ``env_id``: it announces a change of that environment."""
        now = self._clock()
        self._hints[env_id] = now
        self._pending.pop(env_id, None)
        for old in [e for e, at in self._hints.items() if now - at > self._grace]:
            del self._hints[old]

    def poll_saw_change(self, env_ids: list[str]) -> None:
        """A project list saw these environments change status, appear or vanish. Each one with no
        hint within ``grace`` seconds before now, and none within ``grace`` seconds after, is an
        unannounced change: the webhooks missed it."""
        now = self._clock()
        for env_id in env_ids:
            hint = self._hints.get(env_id)
            if hint is None or now - hint > self._grace:
                self._pending.setdefault(env_id, now)
        self.mode()

    def verification_failed(self) -> None:
        """A delivery claiming to be from OEC.sh failed verification (a wrong secret or scheme)."""
        self._failed_at = self._clock()
        self.mode()

    # -- outputs --------------------------------------------------------------------------
    def reasons(self) -> list[str]:
        """Why the key is in poll mode now (empty: push)."""
        now = self._clock()
        for env_id, seen in list(self._pending.items()):
            if now - seen > self._grace:  # the hint never came
                del self._pending[env_id]
                decided = seen + self._grace
                self._unexplained_at = max(self._unexplained_at or decided, decided)
        reasons = []
        if not self._registered:
            reasons.append("no webhook registered")
        elif not self._active:
            reasons.append("the webhook is inactive")
        if self._checked_at is None or now - self._checked_at > self._state_ttl:
            reasons.append("the webhook's state is not known")
        if self._rising:
            reasons.append("the webhook's failure_count rose")
        if self._failing:
            reasons.append("the webhook's newest delivery failed")
        if not self._delivered:
            reasons.append("no delivery received yet")
        if self._unexplained_at is not None and now - self._unexplained_at <= self._memory:
            reasons.append("a list saw a change no delivery announced")
        if self._failed_at is not None and now - self._failed_at <= self._memory:
            reasons.append("a delivery failed verification")
        return reasons

    def mode(self) -> Mode:
        """``push`` or ``poll`` now; a switch is logged (INFO) and told to ``on_switch``."""
        reasons = self.reasons()
        mode: Mode = "poll" if reasons else "push"
        if mode != self._mode:
            self._mode = mode
            why = "; ".join(reasons) or "the webhooks are healthy"
            logger.info(f"key {self.key_id}: {mode} mode ({why})")
            if self._on_switch is not None:
                self._on_switch(self.key_id, mode)
        return mode

    def stretch(self) -> float:
        """The factor on the steady list interval now: the configured stretch in push mode, else 1.0."""
        return self._stretch if self.mode() == "push" else 1.0

    def state_expires_in(self) -> float | None:
        """Seconds until the webhook's last known state is too old to trust (then: poll), ``None``
        when it was never checked: when to look at :meth:`mode` again if no check comes."""
        if self._checked_at is None:
            return None
        return max(0.0, self._checked_at + self._state_ttl - self._clock()) + 1e-3

    def pending(self) -> float | None:
        """Seconds until a change a list saw, still unannounced, counts as unannounced (``None``:
        none waits): when to look at :meth:`mode` again."""
        if not self._pending:
            return None
        return max(0.0, min(self._pending.values()) + self._grace - self._clock()) + 1e-3
