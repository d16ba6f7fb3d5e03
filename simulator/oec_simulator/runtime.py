"""The simulator's runtime container: config, clock and every stateful component, shared by the public
API (``api.py``), the admin API (``admin.py``) and the middleware (``app.py``)."""

from __future__ import annotations

from .auth import BruteForceGuard, KeyRing
from .clock import Clock
from .config import SimulatorConfig
from .delivery import DeliveryEngine
from .faults import FaultInjector
from .idempotency import IdempotencyCache
from .ratelimit import RateLimiter
from .requestlog import RequestLog
from .stats import RequestStats
from .store import Store
from .webhooks import WebhookRegistry


class Simulator:
    """All simulator state. ``config`` is the live (mutable) configuration; ``clock`` defaults to the
    wall clock. Components: ``store`` (projects/environments/tasks), ``keys``, ``guard`` (brute force),
    ``limiter``, ``idempotency``, ``requests`` (request log), ``faults``, ``stats`` (counters),
    ``webhooks`` (webhooks and their delivery records, §11.6), ``delivery`` (the engine sending them)."""

    def __init__(self, config: SimulatorConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or Clock()
        self.store = Store(config, self.clock)
        self.keys = KeyRing(self.clock, config.keys)
        self.guard = BruteForceGuard(self.clock)
        self.limiter = RateLimiter(self.clock)
        self.idempotency = IdempotencyCache(self.clock)
        self.requests = RequestLog(self.clock, lambda: self.config.request_log_limit)
        self.faults = FaultInjector(config.fault_seed)
        for rule in config.faults:
            self.faults.add(rule, self.clock.now())
        if config.outage is not None:
            self.faults.start_outage(config.outage, self.clock.now())
        self.stats = RequestStats()
        self.webhooks = WebhookRegistry(self.clock)
        self.delivery = DeliveryEngine(lambda: self.config, self.clock, self.store, self.webhooks)

    def reset(self) -> None:
        """Empty environments, tasks, request log, rate-limit counters, idempotency cache, IP blocks,
        fault rules, the outage and the webhooks; keep projects, keys, config and the stats counters
        (``POST /_sim/reset``)."""
        self.store.reset()
        self.requests.clear()
        self.limiter.reset()
        self.idempotency.reset()
        self.guard.reset()
        self.faults.reset()
        self.webhooks.reset()
        self.delivery.reset()
