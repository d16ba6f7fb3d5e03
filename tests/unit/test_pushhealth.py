"""PushHealth: when a key's webhooks are trusted (push: polling stretched) and every way back to
poll (docs/webhooks.md §6)."""

from __future__ import annotations

import logging

import pytest

from oec_operator.domain.pushhealth import PushHealth


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def healthy(clock: Clock, switches: list[str] | None = None) -> PushHealth:
    """A key whose webhook is registered, active, not failing, and has delivered once."""
    health = PushHealth("k1", stretch=6.0, memory=180.0, state_ttl=600.0, grace=10.0, clock=clock,
                        on_switch=lambda key, mode: (switches if switches is not None else []).append(mode))
    health.webhook_state(registered=True, is_active=True, failure_count=0)
    health.delivered()
    return health


def test_push_only_once_registered_active_and_delivered() -> None:
    clock = Clock()
    health = PushHealth("k1", stretch=6.0, memory=180.0, state_ttl=600.0, clock=clock)
    assert (health.mode(), health.stretch()) == ("poll", 1.0)  # nothing known: poll
    health.webhook_state(registered=True, is_active=True, failure_count=0)
    assert health.mode() == "poll"  # not proven to reach us yet
    health.delivered()
    assert (health.mode(), health.stretch()) == ("push", 6.0)


@pytest.mark.parametrize("state", [dict(registered=False, is_active=False, failure_count=0),
                                   dict(registered=True, is_active=False, failure_count=0),
                                   dict(registered=True, is_active=True, failure_count=3)])
def test_unregistered_inactive_or_rising_failures_mean_poll(state: dict[str, object]) -> None:
    clock = Clock()
    health = healthy(clock)
    health.webhook_state(**state)  # type: ignore[arg-type]
    assert (health.mode(), health.stretch()) == ("poll", 1.0)


def test_failure_count_that_stops_rising_allows_push_again() -> None:
    clock = Clock()
    health = healthy(clock)
    health.webhook_state(registered=True, is_active=True, failure_count=2)
    assert health.mode() == "poll"
    health.webhook_state(registered=True, is_active=True, failure_count=2)  # not rising since the last check
    assert health.mode() == "push"


def test_a_stale_webhook_state_means_poll() -> None:
    clock = Clock()
    health = healthy(clock)
    clock.now += 601  # the registrar stopped checking
    assert health.mode() == "poll"


def test_an_unannounced_change_means_poll_for_the_memory() -> None:
    clock = Clock()
    switches: list[str] = []
    health = healthy(clock, switches)
    health.poll_saw_change(["env-1"])
    assert health.mode() == "push"  # a late delivery may still explain it
    assert health.pending() == pytest.approx(10.0, abs=0.01)
    clock.now += 10.5
    assert (health.mode(), health.stretch()) == ("poll", 1.0)
    clock.now += 170  # within the memory (from the end of the grace)
    assert health.mode() == "poll"
    clock.now += 11
    assert health.mode() == "push"
    assert switches == ["push", "poll", "push"]


def test_a_hint_before_or_shortly_after_the_list_explains_the_change() -> None:
    clock = Clock()
    health = healthy(clock)
    health.hinted("env-1")
    clock.now += 3
    health.poll_saw_change(["env-1"])  # hinted 3 s before the list
    health.poll_saw_change(["env-2"])
    clock.now += 4
    health.hinted("env-2")  # 4 s after the list: a slow delivery
    clock.now += 30
    assert health.mode() == "push"
    assert health.pending() is None


def test_an_old_hint_does_not_explain_a_new_change() -> None:
    clock = Clock()
    health = healthy(clock)
    health.hinted("env-1")
    clock.now += 60
    health.poll_saw_change(["env-1"])
    clock.now += 11
    assert health.mode() == "poll"


def test_a_failed_verification_means_poll_for_the_memory() -> None:
    clock = Clock()
    health = healthy(clock)
    health.verification_failed()
    assert health.mode() == "poll"
    clock.now += 181
    assert health.mode() == "push"


def test_each_switch_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    with caplog.at_level(logging.INFO, logger="oec_operator.domain.pushhealth"):
        health = healthy(clock)
        health.mode()
        health.verification_failed()
        health.mode()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert "push mode" in messages[0] and "poll mode (a delivery failed verification)" in messages[1]
