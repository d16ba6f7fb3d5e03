"""Process-wide gate on API keys the OEC.sh API refused, so that refused keys never get the
operator's IP address blocked.

The API blocks a client address for 15 minutes after 10 refused keys (HTTP 401) with less than a
minute between refusals, and the block stops every request of every key (``docs/oec-api.md`` §4).
Every caller of a refused key (project list, reconcile, deletion, status read) retries on its own
schedule, so a few revoked keys in one cluster are enough to reach that count. The gate keeps a
copy of the API's count of this address's refusals and decides before each request of a key that
has not been proven good:

* a key with a 2xx answer (*proven*) is never held;
* a key the API refused is sent again only once the refusal chain has lapsed (no refusal and no
  request of an unproven key in flight for :data:`REFUSAL_WINDOW` + :data:`REFUSAL_MARGIN`
  seconds): one refused key a minute, whatever the number of refused keys; meanwhile its callers
  get the same :class:`~oec_operator.oec.errors.OecAuthError` again, without a request;
* a key never seen before (a rotated Secret) is sent at once, unless it could be the refusal that
  reaches the threshold: then it waits for the chain to lapse (:class:`OecRefusalDeferred`).

So the refusals of this process never reach :data:`REFUSAL_THRESHOLD` within the API's window.
``missing_auth`` 401s (no key header) do not count (§4); the client always sends a key.
Pure logic, no I/O: :class:`~oec_operator.oec.client.OecClient` asks and reports.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from oec_operator.oec.errors import OecAuthError, OecRateLimitError

#: Refused keys after which the API blocks the address (``docs/oec-api.md`` §4).
REFUSAL_THRESHOLD = 10
#: Seconds between refusals below which the API counts them together (§4).
REFUSAL_WINDOW = 60.0
#: Seconds added to the window for network delay and clock differences.
REFUSAL_MARGIN = 5.0


class OecRefusalDeferred(OecRateLimitError):
    """A request with a never-seen key was not sent: one more refusal could get the address blocked
    (``docs/oec-api.md`` §4). Nothing reached the API; ``retry_after`` says when it may go (seconds)."""


@dataclass
class KeyGate:
    """Which keys may be sent now, by key digest (see the module docstring).

    Args:
        clock: monotonic clock in seconds (tests pass a fake one).
    """

    clock: Callable[[], float] = time.monotonic
    _proven: set[str] = field(default_factory=set)
    _refused: dict[str, OecAuthError] = field(default_factory=dict)
    _count: int = 0  # refusals in the current chain (as the API counts them)
    _last: float = float("-inf")  # clock time of the chain's last refusal
    _inflight: int = 0  # requests of unproven keys sent and not answered yet

    def _chain(self, now: float) -> int:
        if now - self._last >= REFUSAL_WINDOW + REFUSAL_MARGIN:
            self._count = 0
        return self._count

    def admit(self, digest: str) -> bool:
        """May a request with the key ``digest`` be sent now? Returns whether its answer must be
        reported with :meth:`answered` (``False``: a proven key, nothing to report).

        Raises:
            OecAuthError: the key was refused and the refusal chain has not lapsed (the API's own
                refusal again, same message).
            OecRefusalDeferred: a never-seen key, while one more refusal could reach the threshold.
        """
        if digest in self._proven:
            return False
        now = self.clock()
        pending = self._chain(now) + self._inflight
        refused = self._refused.get(digest)
        if refused is not None and pending:
            raise OecAuthError(refused.message, status=refused.status, code=refused.code, extras=refused.extras)
        if refused is None and pending + 1 >= REFUSAL_THRESHOLD:
            wait = max(1.0, self._last + REFUSAL_WINDOW + REFUSAL_MARGIN - now)
            raise OecRefusalDeferred(
                f"request not sent: {pending} API keys refused in the last minute, the API blocks this address "
                f"after {REFUSAL_THRESHOLD}", retry_after=wait, code="refusals_deferred")
        self._inflight += 1
        return True

    def answered(self, digest: str, *, tracked: bool, status: int | None, error: Exception | None = None) -> None:
        """A request with the key ``digest`` got HTTP ``status`` (``None``: no answer) and ``error``
        (the typed error of a non-2xx answer); ``tracked``: what :meth:`admit` returned for it."""
        if tracked:
            self._inflight = max(0, self._inflight - 1)
        if status is not None and 200 <= status < 300:
            self._proven.add(digest)
            self._refused.pop(digest, None)
        elif isinstance(error, OecAuthError) and error.code != "missing_auth":
            self.refused(digest, error)

    def refused(self, digest: str, error: OecAuthError) -> None:
        """Count a refusal (401) of the key ``digest``: it joins the API's chain (§4)."""
        now = self.clock()
        self._count = self._chain(now) + 1
        self._last = now
        self._proven.discard(digest)
        self._refused[digest] = error
