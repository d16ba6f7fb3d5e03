"""The process-wide gate on refused API keys (``docs/oec-api.md`` §4 brute-force block)."""

from __future__ import annotations

import pytest

from oec_operator.oec.errors import OecAuthError, OecServerError
from oec_operator.oec.keygate import REFUSAL_MARGIN, REFUSAL_THRESHOLD, REFUSAL_WINDOW, KeyGate, OecRefusalDeferred

LAPSE = REFUSAL_WINDOW + REFUSAL_MARGIN


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def refusal() -> OecAuthError:
    return OecAuthError("The API key is invalid or has been revoked.", status=401, code="invalid_key")


def refuse(gate: KeyGate, key: str) -> None:
    tracked = gate.admit(key)
    gate.answered(key, tracked=tracked, status=401, error=refusal())


def test_a_refused_key_gets_the_same_error_without_a_request_until_the_chain_lapses() -> None:
    clock = Clock()
    gate = KeyGate(clock=clock)
    refuse(gate, "bad")
    clock.now += LAPSE - 1
    with pytest.raises(OecAuthError) as held:
        gate.admit("bad")
    assert str(held.value) == str(refusal())  # same message: same condition, no new Event
    clock.now += 1
    assert gate.admit("bad")  # sent again once a refusal can no longer join the chain


def test_refused_keys_take_turns_one_per_lapse() -> None:
    clock = Clock()
    gate = KeyGate(clock=clock)
    for key in ("a", "b"):
        refuse(gate, key)
    clock.now += LAPSE
    refuse(gate, "a")
    with pytest.raises(OecAuthError):
        gate.admit("b")  # a's refusal restarted the chain
    clock.now += LAPSE
    assert gate.admit("b")


def test_a_retry_in_flight_holds_the_other_refused_keys() -> None:
    clock = Clock()
    gate = KeyGate(clock=clock)
    refuse(gate, "a")
    refuse(gate, "b")
    clock.now += LAPSE
    tracked = gate.admit("a")
    with pytest.raises(OecAuthError):
        gate.admit("b")  # a's answer is not known yet: it may be a refusal
    gate.answered("a", tracked=tracked, status=None, error=OecServerError("x", code="transport"))
    assert gate.admit("b")


def test_a_proven_key_is_never_held_and_a_new_key_is_tried_at_once() -> None:
    clock = Clock()
    gate = KeyGate(clock=clock)
    tracked = gate.admit("good")
    gate.answered("good", tracked=tracked, status=200)
    refuse(gate, "bad")
    assert gate.admit("good") is False  # proven: nothing to track, never delayed
    assert gate.admit("rotated")  # a never-seen key (a rotated Secret) goes out at the next poll


def test_new_keys_stop_one_short_of_the_threshold() -> None:
    clock = Clock()
    gate = KeyGate(clock=clock)
    for i in range(REFUSAL_THRESHOLD - 1):
        refuse(gate, f"k{i}")
        clock.now += REFUSAL_WINDOW - 1
    with pytest.raises(OecRefusalDeferred) as deferred:
        gate.admit("one-more")
    assert deferred.value.retry_after == pytest.approx(REFUSAL_MARGIN + 1)
    clock.now += deferred.value.retry_after
    assert gate.admit("one-more")


def test_a_proven_key_that_is_revoked_joins_the_refused() -> None:
    clock = Clock()
    gate = KeyGate(clock=clock)
    gate.answered("k", tracked=gate.admit("k"), status=200)
    tracked = gate.admit("k")
    gate.answered("k", tracked=tracked, status=401, error=refusal())
    with pytest.raises(OecAuthError):
        gate.admit("k")


def test_missing_auth_does_not_count() -> None:
    gate = KeyGate(clock=Clock())
    error = OecAuthError("Authentication required", status=401, code="missing_auth")
    gate.answered("none", tracked=gate.admit("none"), status=401, error=error)
    assert gate.admit("none")
