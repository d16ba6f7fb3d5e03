"""Webhook signature schemes, their calibration from a ping, the secret book and the calibrator
(``oec_operator.webhooks``, ``docs/webhooks.md`` §3). The deliveries are signed here the way the
simulator signs them (``docs/oec-api.md`` §11.6: HMAC-SHA256 of the webhook secret)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oec_operator.settings import OperatorConfig
from oec_operator.webhooks.book import SecretBook
from oec_operator.webhooks.calibrate import Calibrator
from oec_operator.webhooks.scheme import SignatureScheme, calibrate, candidates, lower

SECRET = "whsec_0123456789abcdef"
NOW = 1_790_000_000.0
BODY = json.dumps({"id": "e1", "event": "ping", "created_at": "2026-12-05T01:00:00Z", "webhook_id": "wh-1",
                   "data": {}}).encode()


def _hmac(message: bytes, secret: str = SECRET) -> bytes:
    return hmac.new(secret.encode(), message, hashlib.sha256).digest()


#: The four ways the simulator can sign (its ``webhook_signature`` setting), written out by hand.
SIMULATOR_SCHEMES = {
    "hex": lambda body, ts: {"X-OEC-Signature": _hmac(body).hex()},
    "prefixed": lambda body, ts: {"X-OEC-Signature": "sha256=" + _hmac(body).hex()},
    "base64": lambda body, ts: {"X-OEC-Signature": base64.b64encode(_hmac(body)).decode()},
    "timestamp": lambda body, ts: {"X-OEC-Signature": _hmac(f"{ts}.".encode() + body).hex(),
                                   "X-OEC-Timestamp": str(ts)},
}
DELIVERY_HEADERS = {"Content-Type": "application/json", "User-Agent": "OEC.sh-Webhooks/1.0",
                    "X-OEC-Event": "ping", "X-OEC-Delivery": "0b4c1f7e-1d2a-4c55-9f3a-2f1f0c9d8e7a",
                    "Content-Length": str(len(BODY))}


def _signed(kind: str, body: bytes = BODY, ts: int = int(NOW)) -> dict[str, str]:
    return lower({**DELIVERY_HEADERS, **SIMULATOR_SCHEMES[kind](body, ts)})


def test_the_operators_default_configuration_verifies_the_simulators_default_signature() -> None:
    default = SignatureScheme.from_config(OperatorConfig())
    assert default.verify(SECRET, _signed("hex"), BODY, NOW)
    assert not default.verify("another-secret", _signed("hex"), BODY, NOW)
    assert not default.verify(SECRET, _signed("hex"), BODY + b" ", NOW)


@pytest.mark.parametrize("kind", sorted(SIMULATOR_SCHEMES))
def test_calibration_finds_each_scheme_the_simulator_can_send(kind: str) -> None:
    headers = _signed(kind)
    scheme = calibrate(SECRET, headers, BODY, NOW, default=SignatureScheme())
    assert scheme is not None
    # The found scheme verifies the next delivery signed the same way, and only with the secret.
    later = BODY.replace(b"ping", b"environment.status_changed")
    assert scheme.verify(SECRET, _signed(kind, later, int(NOW) + 60), later, NOW + 61)
    assert not scheme.verify("wrong", _signed(kind, later, int(NOW) + 60), later, NOW + 61)
    assert SignatureScheme.from_json(scheme.to_json()) == scheme
    if kind != "hex":  # the default does not verify these: calibration is what makes them work
        assert not SignatureScheme().verify(SECRET, headers, BODY, NOW)


def test_calibration_finds_nothing_for_a_ping_signed_with_another_secret() -> None:
    assert calibrate("not-the-secret", _signed("hex"), BODY, NOW) is None
    assert calibrate(SECRET, lower(DELIVERY_HEADERS), BODY, NOW) is None  # unsigned


@pytest.mark.parametrize("skew", [-301, 301, 10_000])
def test_a_timestamp_outside_the_tolerance_is_refused(skew: int) -> None:
    scheme = SignatureScheme(signed="timestamp.body", tolerance=300)
    headers = _signed("timestamp", ts=int(NOW) + skew)
    assert not scheme.verify(SECRET, headers, BODY, NOW)
    assert scheme.verify(SECRET, headers, BODY, NOW + skew)  # the same delivery, on time


def test_a_replayed_timestamp_delivery_with_a_new_timestamp_but_the_old_signature_is_refused() -> None:
    scheme = SignatureScheme(signed="timestamp.body")
    headers = _signed("timestamp", ts=int(NOW) - 1000)
    headers["x-oec-timestamp"] = str(int(NOW))
    assert not scheme.verify(SECRET, headers, BODY, NOW)


@given(st.text(max_size=100), st.binary(max_size=200))
def test_garbage_signatures_never_verify_and_never_raise(value: str, body: bytes) -> None:
    headers = {"x-oec-signature": value, "x-oec-timestamp": value}
    for scheme in (SignatureScheme(), SignatureScheme(encoding="base64", prefix="sha256="),
                   SignatureScheme(signed="timestamp.body"), *candidates(headers)):
        assert not scheme.verify(SECRET, headers, body, NOW)


@given(st.binary(max_size=300), st.sampled_from(sorted(SIMULATOR_SCHEMES)))
def test_any_body_signed_by_a_scheme_verifies_with_that_scheme_calibrated(body: bytes, kind: str) -> None:
    headers = _signed(kind, body)
    scheme = calibrate(SECRET, headers, body, NOW)
    assert scheme is not None and scheme.verify(SECRET, headers, body, NOW)


def test_a_scheme_from_invalid_json_is_refused() -> None:
    with pytest.raises(ValueError, match="not a webhook signature scheme"):
        SignatureScheme.from_json('{"encoding": "rot13"}')


# --- SecretBook ---------------------------------------------------------------------------------


def test_the_book_finds_the_key_whose_secret_signed_and_no_other() -> None:
    book = SecretBook(SignatureScheme())
    book.set("key-a", "wh-a", "secret-a", NOW)
    book.set("key-b", "wh-b", SECRET, NOW)
    assert book.match(_signed("hex"), BODY, NOW) == "key-b"
    book.drop("key-b")
    assert book.match(_signed("hex"), BODY, NOW) is None


def test_the_previous_secret_is_accepted_only_within_its_grace_after_a_rotation() -> None:
    book = SecretBook(SignatureScheme(), grace=300)
    book.set("key", "wh", SECRET, NOW)
    book.set("key", "wh", "rotated-secret", NOW)  # rotation
    assert book.match(_signed("hex"), BODY, NOW + 299) == "key"
    assert book.match(_signed("hex"), BODY, NOW + 301) is None
    # The new secret works at once, and setting it again does not extend the old one's grace.
    new = lower({"X-OEC-Signature": _hmac(BODY, "rotated-secret").hex()})
    assert book.match(new, BODY, NOW + 301) == "key"
    book.set("key", "wh", "rotated-secret", NOW + 200)
    assert book.match(_signed("hex"), BODY, NOW + 301) is None


def test_a_recreated_webhook_does_not_keep_the_old_webhooks_secret() -> None:
    book = SecretBook(SignatureScheme())
    book.set("key", "wh-old", SECRET, NOW)
    book.set("key", "wh-new", "new-secret", NOW)
    assert book.match(_signed("hex"), BODY, NOW) is None


def test_a_pinned_scheme_replaces_the_default_for_that_key_and_survives_a_rotation() -> None:
    book = SecretBook(SignatureScheme())
    book.set("key", "wh", SECRET, NOW)
    assert book.match(_signed("base64"), BODY, NOW) is None
    book.pin("key", SignatureScheme(encoding="base64"))
    assert book.match(_signed("base64"), BODY, NOW) == "key"
    book.set("key", "wh", "rotated", NOW)
    assert book.get("key") is not None and book.get("key").scheme == SignatureScheme(encoding="base64")  # type: ignore[union-attr]


def test_the_book_never_shows_a_secret_in_its_repr() -> None:
    book = SecretBook(SignatureScheme())
    book.set("key", "wh", SECRET, NOW)
    book.set("key", "wh", "second-secret", NOW)
    assert SECRET not in repr(book.get("key")) and "second-secret" not in repr(book.get("key"))


# --- Calibrator ---------------------------------------------------------------------------------


async def test_the_calibrator_finds_the_scheme_of_a_ping_that_arrived_before_or_after_the_wait() -> None:
    calibrator = Calibrator(wall=lambda: NOW)
    mark = calibrator.cursor()
    calibrator.observe(_signed("prefixed"), BODY)  # the test call answered after the ping came
    assert await calibrator.calibrate("wh-1", SECRET, 1.0, since=mark) == SignatureScheme(
        header="x-oec-signature", prefix="sha256=")

    mark = calibrator.cursor()
    waiting = asyncio.create_task(calibrator.calibrate("wh-1", SECRET, 5.0, since=mark))
    await asyncio.sleep(0)
    calibrator.observe(_signed("hex", BODY.replace(b"ping", b"pong")), BODY)  # not a ping: ignored
    forged = {**_signed("base64"), "x-oec-signature": base64.b64encode(b"x" * 32).decode()}
    calibrator.observe(forged, BODY)  # a forged ping first: not signed by the secret, skipped
    calibrator.observe(_signed("base64"), BODY)
    assert await waiting == SignatureScheme(header="x-oec-signature", encoding="base64")


async def test_the_calibrator_gives_up_after_its_wait_without_a_ping() -> None:
    calibrator = Calibrator(wall=lambda: NOW)
    calibrator.observe(_signed("hex"), BODY)
    mark = calibrator.cursor()  # that ping came before the mark
    assert await calibrator.calibrate("wh-1", SECRET, 0.05, since=mark) is None
    assert await calibrator.wait_ping("wh-other", 0.05) is None
    assert await calibrator.wait_ping("wh-1", 0.05) == (_signed("hex"), BODY)
