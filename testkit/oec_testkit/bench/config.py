"""The benchmark's fixed settings: the operator's poll intervals, the simulator's projects and key."""

from __future__ import annotations

__all__ = [
    "DESIGNS",
    "FAST_POLL_INTERVAL",
    "KEY",
    "KEY_SECRET_NAME",
    "KEY_SECRET_NAMESPACE",
    "LIFTED",
    "NAMESPACE",
    "POLL_INTERVAL",
    "PROJECTS",
    "SERVICE_ACCOUNT",
    "STRETCH",
]

KEY = "oec_live_rw_bench_simulator_key_00000000000000000"
#: Where the operator's default key lives, as in the shipped Deployment (``OEC_API_KEY_SECRET``).
KEY_SECRET_NAMESPACE, KEY_SECRET_NAME = "oec-system", "oec-api-key"
#: The operator's ServiceAccount of ``deploy/rbac`` (the identity it runs as, with that RBAC).
SERVICE_ACCOUNT = "oec-operator"
PROJECTS = 10
NAMESPACE = "bench"
POLL_INTERVAL = 60.0  # seconds
FAST_POLL_INTERVAL = 5.0  # seconds
LIFTED = 1_000_000  # the simulator's limits a minute when "lifted"
#: The designs a run can compare: the operator's (``batched``), the naive one (``direct``), and
#: the operator with OEC.sh webhooks (``push``: batched + the receiver, ``docs/webhooks.md``).
DESIGNS = ("batched", "direct", "push")
#: The push design's steady-interval factor while push is healthy (``OEC_WEBHOOK_POLL_STRETCH``,
#: its default): its project lists run every ``STRETCH * POLL_INTERVAL`` seconds.
STRETCH = 6.0
