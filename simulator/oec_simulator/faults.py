"""Fault injection state: the installed :class:`~.faultrules.FaultRule` list, the seeded draws of their
``share`` and the outage window (rule shapes and semantics in ``faultrules.py``; docs/oec-api.md §1 row 29).

:meth:`FaultInjector.take` is called once per authenticated public-API request; it returns the first
rule that fires for the request (its ``count`` and ``fired`` updated) or ``None``. Rules whose count
is used up or whose window has ended are dropped. Each rule draws its share from its own
``random.Random`` seeded with ``"<seed>/<rule id>"``, so a run with the same seed and the same
requests fires on the same requests, whatever other rules exist.
"""

from __future__ import annotations

import math
import random
import secrets
import uuid

from .errors import ApiError
from .faultrules import DEFAULT_CODES, FaultRule, OutageSpec

#: Code of the 503 answered during an outage *(sim)*.
OUTAGE_CODE = "service_unavailable"


class FaultInjector:
    """Installed fault rules (first match first), the fault seed and the outage window."""

    def __init__(self, seed: int | None = None) -> None:
        self.pending: list[FaultRule] = []
        self.outage: OutageSpec | None = None
        self._next_id = 1
        self._rngs: dict[int, random.Random] = {}
        self.seed = seed if seed is not None else secrets.randbelow(2**31)

    def reseed(self, seed: int) -> None:
        """Use ``seed`` for the share draws of every rule from now on (draws restart)."""
        self.seed = seed
        self._rngs.clear()

    def add(self, rule: FaultRule, now: float) -> FaultRule:
        """Install a copy of ``rule`` (window resolved against ``now``, epoch s) and return it."""
        installed = rule.model_copy(deep=True)
        installed.resolve(now)
        installed.id = self._next_id
        installed.fired = 0
        self._next_id += 1
        self.pending.append(installed)
        return installed

    def remove(self, rule_id: int) -> bool:
        """Delete the rule with ``rule_id``; whether it existed."""
        before = len(self.pending)
        self.pending = [r for r in self.pending if r.id != rule_id]
        self._rngs.pop(rule_id, None)
        return len(self.pending) != before

    def clear(self) -> int:
        """Drop every rule (not the outage); returns the number of rules dropped."""
        count = len(self.pending)
        self.pending.clear()
        self._rngs.clear()
        return count

    def reset(self) -> None:
        """Drop every rule and the outage (``POST /_sim/reset``); the seed stays."""
        self.clear()
        self.outage = None

    def rules(self, now: float) -> list[FaultRule]:
        """The rules still able to fire at ``now`` (expired ones are dropped)."""
        self.pending = [r for r in self.pending if r.until is None or now < r.until]
        return list(self.pending)

    def _draw(self, rule: FaultRule) -> bool:
        if rule.share is None or rule.share >= 1:
            return True
        assert rule.id is not None
        rng = self._rngs.get(rule.id)
        if rng is None:
            rng = self._rngs[rule.id] = random.Random(f"{self.seed}/{rule.id}")  # noqa: S311 (not crypto)
        return rng.random() < rule.share

    def take(self, route: str | None, method: str, now: float) -> FaultRule | None:
        """The first rule firing for a request of ``route``/``method`` at ``now``, or ``None``.

        A firing rule is counted (``fired`` + 1, ``count`` - 1; dropped at 0); the returned object is
        the live rule, so read what you need before the next call."""
        for rule in self.rules(now):
            if not rule.matches(route, method) or not rule.in_window(now) or not self._draw(rule):
                continue
            rule.fired += 1
            if rule.count is not None:
                rule.count -= 1
                if rule.count <= 0:
                    self.pending.remove(rule)
            return rule
        return None

    # ---------------------------------------------------------------- outage
    def start_outage(self, spec: OutageSpec, now: float) -> OutageSpec:
        """Install ``spec`` as the outage (replacing any), resolved against ``now`` (epoch s)."""
        outage = spec.model_copy(deep=True)
        outage.resolve(now)
        self.outage = outage
        return outage

    def end_outage(self) -> bool:
        """End the outage now; whether one was set."""
        had = self.outage is not None
        self.outage = None
        return had

    def outage_at(self, now: float) -> OutageSpec | None:
        """The outage if ``now`` is inside its window (a past outage is forgotten)."""
        outage = self.outage
        if outage is None:
            return None
        if outage.until is not None and now >= outage.until:
            self.outage = None
            return None
        return outage if outage.in_window(now) else None


def error_for(rule: FaultRule) -> ApiError:
    """The answer of a ``kind=error`` rule: its status, code (default per status), message and
    ``retry_after`` (``Retry-After`` header + body field)."""
    assert rule.status is not None
    code = rule.code or DEFAULT_CODES.get(rule.status, "injected_error")
    extras: dict[str, object] = {}
    headers: dict[str, str] = {}
    if rule.retry_after is not None:
        extras["retry_after"] = rule.retry_after
        headers["Retry-After"] = str(rule.retry_after)
    return ApiError(rule.status, code, rule.message or "Injected failure.", extras=extras, headers=headers)


def rate_limit_for(rule: FaultRule, now: float, limit: int, window_headers: dict[str, str]) -> ApiError:
    """The injected 429 ``rate_limit_exceeded`` in the rule's ``hint`` form (§6, §1 row 8).

    ``limit`` is the key's limit for the request's bucket; ``window_headers`` the key's
    ``X-RateLimit-*`` headers (only ``full`` sends them, with ``Remaining: 0``)."""
    hint = rule.hint or "full"
    if rule.retry_after is not None:
        wait = rule.retry_after
    elif rule.until is not None:
        wait = max(1, math.ceil(rule.until - now))
    else:
        wait = 1
    message = rule.message or f"Rate limit exceeded. You have made too many requests (limit {limit})."
    extras: dict[str, object] = {}
    headers: dict[str, str] = {}
    if hint != "none":
        message += f" Retry in {wait} seconds."
        extras["retry_after"] = wait
    if hint == "full":
        headers = {"Retry-After": str(wait), **window_headers, "X-RateLimit-Remaining": "0"}
    return ApiError(429, "rate_limit_exceeded", message, extras=extras, headers=headers)


def conflict_for(rule: FaultRule, active_task_id: str | None) -> ApiError:
    """The injected 409: ``task_in_progress`` with ``task_id`` (rule's, else ``active_task_id``, else a
    made-up UUID) or ``concurrent_action`` (§5.4, §1 rows 5 and 19)."""
    if rule.code == "concurrent_action":
        return ApiError(
            409,
            "concurrent_action",
            rule.message or "Another action is being queued right now; retry in about 5 seconds.",
        )
    task_id = str(rule.task_id) if rule.task_id is not None else active_task_id or str(uuid.uuid4())
    return ApiError(
        409,
        "task_in_progress",
        rule.message or "Another task is already queued or running for this environment.",
        extras={"task_id": task_id},
    )


def outage_error(outage: OutageSpec) -> ApiError:
    """503 ``service_unavailable`` *(sim)* of an outage, with ``Retry-After`` if configured."""
    headers = {"Retry-After": str(outage.retry_after)} if outage.retry_after is not None else {}
    extras: dict[str, object] = {"retry_after": outage.retry_after} if outage.retry_after is not None else {}
    return ApiError(
        503, OUTAGE_CODE, "The API is temporarily unavailable (simulated outage).", extras=extras, headers=headers
    )
