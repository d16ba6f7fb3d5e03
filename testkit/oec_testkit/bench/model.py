"""What one benchmark run measured: :class:`Run`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Run"]


@dataclass
class Run:
    """What one run measured (times in seconds, API rates a minute, memory in MB).

    ``apiserver``: phase (``create``, ``settle``, ``steady``) → the operator's kube-apiserver
    requests over it (``seconds``, ``requests_per_second``, ``secret_gets_per_second``).

    ``quiet_reads_per_minute``: API reads a minute in a window with no change (batched, push).
    Push design only: ``webhook_after_settle`` the simulator's view of the webhook once settled
    (active, ``failure_count``, delivery records by outcome); ``push_wait_seconds`` after settling
    until the key's ``oec_operator_push_mode`` read 1 with the webhook active
    (``push_mode_steady``: what it read then, before the steady window); ``deliveries`` the
    simulator sent during the steady window;
    ``push_mode_quiet`` the key's ``oec_operator_push_mode`` at the start and end of the quiet
    window; ``stopped_*`` the staleness of changes made after the simulator stopped delivering
    (``stopped_after_switch_p99``: of those made after the key fell back to poll);
    ``poll_mode_after`` seconds from the stop (``poll_mode_after_change``: from the first change
    after it) until the key's push mode read 0.
    """

    design: str
    n: int
    limits: str
    apply_seconds: float = 0.0
    ready_seconds: float | None = None  # after the create returned; None: not all within the timeout
    ready_count: int = 0
    settle_seconds: float | None = None  # after Ready, until every health read was made
    reads_per_minute: float = 0.0
    writes_per_minute: float = 0.0
    rate_limited: int = 0
    rate_limited_total: int = 0
    creates_per_minute: float | None = None
    staleness: list[float] = field(default_factory=list)
    staleness_missed: int = 0
    staleness_p50: float | None = None
    staleness_p99: float | None = None
    peak_rss_mb: float = 0.0
    rss_mb: float = 0.0  # at the end of the run
    cpu_seconds: float = 0.0
    apiserver: dict[str, dict[str, float]] = field(default_factory=dict)
    quiet_reads_per_minute: float | None = None
    webhook_after_settle: dict[str, Any] = field(default_factory=dict)
    push_wait_seconds: float | None = None
    push_mode_steady: float | None = None
    deliveries: int | None = None
    push_mode_quiet: list[float | None] = field(default_factory=list)
    stopped_staleness: list[float] = field(default_factory=list)
    stopped_missed: int = 0
    stopped_p50: float | None = None
    stopped_p99: float | None = None
    stopped_after_switch_p99: float | None = None
    poll_mode_after: float | None = None
    poll_mode_after_change: float | None = None
