"""The webhook receiver over real HTTP (``oec_operator.webhooks.receiver``, ``docs/webhooks.md`` §4):
verification, the answers, the caps and de-duplication. The receiver serves on a real port on
127.0.0.1; the sink (the push hub, tested elsewhere) is a small recording fake."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from prometheus_client import REGISTRY

from oec_operator.settings import WEBHOOK_PATH, OperatorConfig
from oec_operator.webhooks.book import SecretBook
from oec_operator.webhooks.calibrate import Calibrator
from oec_operator.webhooks.receiver import MAX_BODY, Receiver
from oec_operator.webhooks.scheme import SignatureScheme
from oec_testkit.ports import free_ports

SECRET = "whsec_receiver_test"
KEY = "0123456789abcdef"
WEBHOOK = "6f1c8e9a-0000-4000-8000-000000000001"
ENV = "4b0e6a1c-1111-4111-8111-000000000001"


@dataclass
class FakeSink:
    """Records hints; knows the environments in ``known``; ``gate`` (when set) holds each hint."""

    known: set[str] = field(default_factory=lambda: {ENV})
    hints: list[tuple[str, str, str]] = field(default_factory=list)
    credits: list[str] = field(default_factory=list)
    gate: asyncio.Event | None = None
    entered: int = 0
    holding: int = 0
    all_held: asyncio.Event = field(default_factory=asyncio.Event)

    async def hint(self, key_id: str, env_id: str, event: str) -> bool:
        self.entered += 1
        if self.gate is not None:
            if self.entered >= self.holding:
                self.all_held.set()
            await self.gate.wait()
        self.hints.append((key_id, env_id, event))
        return env_id in self.known

    def delivered(self, key_id: str) -> None:
        self.credits.append(key_id)


@dataclass
class Rig:
    receiver: Receiver
    sink: FakeSink
    http: httpx.AsyncClient
    clock: list[float]

    async def post(self, body: bytes, secret: str = SECRET, **headers: str) -> httpx.Response:
        signed = {"X-OEC-Signature": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}
        return await self.http.post(WEBHOOK_PATH, content=body, headers={
            "Content-Type": "application/json", "User-Agent": "OEC.sh-Webhooks/1.0", **signed, **headers})


def delivery(env_id: str = ENV, event: str = "environment.status_changed", event_id: str | None = None,
             attempt: int = 1) -> bytes:
    """A delivery body as the simulator sends it (``docs/webhooks.md`` §4)."""
    return json.dumps({"id": event_id or str(uuid.uuid4()), "event": event, "created_at": "2026-12-05T01:00:00Z",
                       "webhook_id": WEBHOOK, "attempt": attempt,
                       "data": {"environment_id": env_id, "project_id": "p-1", "status": "stopped",
                                "previous_status": "running"}}).encode()


def count(result: str) -> float:
    return REGISTRY.get_sample_value("oec_operator_webhook_events_total", {"result": result}) or 0.0


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    port = free_ports(1)[0]
    config = OperatorConfig(webhook_address="127.0.0.1", webhook_port=port, webhook_max_inflight=4)
    book = SecretBook(SignatureScheme.from_config(config))
    clock = [1_790_000_000.0]
    book.set(KEY, WEBHOOK, SECRET, clock[0])
    sink = FakeSink()
    receiver = Receiver(config, book, Calibrator(wall=lambda: clock[0]), sink, wall=lambda: clock[0])
    await receiver.start()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        yield Rig(receiver, sink, http, clock)
    await receiver.stop()


async def test_a_verified_delivery_hints_exactly_its_environment(rig: Rig) -> None:
    before = count("accepted")
    answer = await rig.post(delivery())
    assert (answer.status_code, answer.json()) == (202, {"result": "accepted"})
    assert rig.sink.hints == [(KEY, ENV, "environment.status_changed")]
    assert rig.sink.credits == [KEY]
    assert count("accepted") == before + 1
    assert (await rig.http.get("/healthz")).status_code == 200


async def test_a_forged_signature_is_refused_counted_and_never_reaches_the_sink(rig: Rig) -> None:
    before = count("unverified")
    body = delivery()
    for answer in (await rig.post(body, secret="guessed"), await rig.post(body, **{"X-OEC-Signature": "00" * 32}),
                   await rig.http.post(WEBHOOK_PATH, content=body)):
        assert (answer.status_code, answer.json()) == (401, {"result": "unverified"})
    assert rig.sink.hints == [] and rig.sink.credits == []
    assert count("unverified") == before + 3


async def test_an_unverified_delivery_naming_a_known_webhook_is_reported_for_its_key(rig: Rig) -> None:
    reported: list[str] = []
    rig.receiver.on_unverified = reported.append
    assert (await rig.post(delivery(), secret="old-secret")).status_code == 401
    assert reported == [KEY]


async def test_a_delivery_of_a_webhook_registered_after_the_book_was_read_verifies_after_one_reload(
        rig: Rig) -> None:
    """A standby read the webhook Secret before the active replica registered the webhook: the
    first delivery naming it makes the receiver read the Secret again, and verifies then."""
    rig.receiver.book = SecretBook(SignatureScheme.from_config(rig.receiver.config))  # read before the registration
    reloads: list[str] = []

    async def reload() -> bool:
        reloads.append("Secret read")
        rig.receiver.book.set(KEY, WEBHOOK, SECRET, rig.clock[0])  # what the active replica wrote
        return True

    rig.receiver.reload = reload
    answer = await rig.post(delivery())
    assert (answer.status_code, answer.json()) == (202, {"result": "accepted"})
    assert (await rig.post(delivery(), secret="forged")).status_code == 401  # known webhook: no reload
    assert reloads == ["Secret read"]


async def test_a_replayed_delivery_is_a_duplicate_and_hints_once(rig: Rig) -> None:
    event_id = str(uuid.uuid4())
    first = await rig.post(delivery(event_id=event_id))
    replay = await rig.post(delivery(event_id=event_id))
    retry = await rig.post(delivery(event_id=event_id, attempt=2))  # a retry: other bytes, same event
    assert first.json() == {"result": "accepted"}
    assert [(r.status_code, r.json()) for r in (replay, retry)] == [(202, {"result": "duplicate"})] * 2
    assert len(rig.sink.hints) == 1


async def test_a_delivery_refused_as_unknown_is_not_remembered_as_a_duplicate(rig: Rig) -> None:
    body = delivery(env_id="4b0e6a1c-2222-4222-8222-000000000002")
    assert (await rig.post(body)).json() == {"result": "unknown_environment"}
    rig.sink.known.add("4b0e6a1c-2222-4222-8222-000000000002")  # the object appeared meanwhile
    assert (await rig.post(body)).json() == {"result": "accepted"}


async def test_unknown_environment_is_a_counted_success_by_default_so_the_sender_keeps_the_webhook(rig: Rig) -> None:
    """A verified delivery about an environment no object manages (one managed by hand, in an
    org-wide webhook) is genuine: a non-2xx answer would count toward deactivating the webhook."""
    before = count("unknown_environment")
    answer = await rig.post(delivery(env_id="9b0e6a1c-9999-4999-8999-000000000009"))
    assert (answer.status_code, answer.json()) == (202, {"result": "unknown_environment"})
    assert count("unknown_environment") == before + 1
    assert [h[:2] for h in rig.sink.hints] == [(KEY, "9b0e6a1c-9999-4999-8999-000000000009")]


async def test_unknown_environment_answers_404_when_configured(rig: Rig) -> None:
    rig.receiver.config = rig.receiver.config.model_copy(update={"webhook_unknown_environment_status": 404})
    answer = await rig.post(delivery(env_id="9b0e6a1c-9999-4999-8999-000000000009"))
    assert (answer.status_code, answer.json()) == (404, {"result": "unknown_environment"})


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b"\xff\xfe",
                                  json.dumps({"event": "x", "data": {"environment_id": "../../etc"}}).encode()])
async def test_a_malformed_verified_body_answers_400_and_reaches_no_sink(rig: Rig, body: bytes) -> None:
    answer = await rig.post(body)
    assert (answer.status_code, answer.json()) == (400, {"result": "malformed"})
    assert rig.sink.hints == []


async def test_a_delivery_naming_no_environment_is_accepted_as_ignored(rig: Rig) -> None:
    body = json.dumps({"id": "e-9", "event": "automation_rule.triggered", "data": {"rule_id": "r"}}).encode()
    assert (await rig.post(body)).json() == {"result": "ignored"}
    assert rig.sink.hints == []


def _padded(size: int) -> bytes:
    head = delivery()[:-1] + b', "pad": "'
    return head + b"x" * (size - len(head) - 2) + b'"}'


async def test_a_body_of_64_kib_is_taken_and_one_byte_more_is_413(rig: Rig) -> None:
    before = count("too_large")
    assert (await rig.post(_padded(MAX_BODY))).status_code == 202
    answer = await rig.post(_padded(MAX_BODY + 1))
    assert (answer.status_code, answer.json()) == (413, {"result": "too_large"})
    assert count("too_large") == before + 1


async def test_a_chunked_body_without_content_length_is_cut_at_64_kib(rig: Rig) -> None:
    body = _padded(MAX_BODY + 1)
    signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 8192):
            yield body[start:start + 8192]

    answer = await rig.http.post(WEBHOOK_PATH, content=chunks(), headers={"X-OEC-Signature": signature})
    assert answer.request.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in answer.request.headers
    assert (answer.status_code, answer.json()) == (413, {"result": "too_large"})
    assert rig.sink.hints == []


async def test_a_flood_beyond_the_in_flight_cap_answers_429_with_retry_after(rig: Rig) -> None:
    rig.sink.gate, rig.sink.holding = asyncio.Event(), 4
    held = [asyncio.create_task(rig.post(delivery())) for _ in range(4)]  # webhook_max_inflight=4
    await asyncio.wait_for(rig.sink.all_held.wait(), 10)
    before = count("flooded")
    try:
        answer = await asyncio.wait_for(rig.post(delivery()), 5)
    finally:
        rig.sink.gate.set()
    assert (answer.status_code, answer.json()) == (429, {"result": "flooded"})
    assert int(answer.headers["Retry-After"]) > 0
    assert count("flooded") == before + 1
    assert [r.status_code for r in await asyncio.gather(*held)] == [202] * 4
    assert (await rig.post(delivery())).status_code == 202  # room again


async def test_a_timestamp_scheme_delivery_outside_the_tolerance_is_401(rig: Rig) -> None:
    scheme = SignatureScheme(signed="timestamp.body", tolerance=300)
    rig.receiver.book.pin(KEY, scheme)
    body = delivery()
    late = scheme.sign(SECRET, body, rig.clock[0] - 301)
    assert (await rig.http.post(WEBHOOK_PATH, content=body, headers=late)).status_code == 401
    fresh = scheme.sign(SECRET, body, rig.clock[0] - 299)
    assert (await rig.http.post(WEBHOOK_PATH, content=body, headers=fresh)).status_code == 202


async def test_the_previous_secret_is_accepted_within_its_grace_only(rig: Rig) -> None:
    rig.receiver.book.set(KEY, WEBHOOK, "rotated", rig.clock[0])  # grace: 300 s
    assert (await rig.post(delivery())).status_code == 202
    assert (await rig.post(delivery(), secret="rotated")).status_code == 202
    rig.clock[0] += 301
    assert (await rig.post(delivery())).status_code == 401
    assert (await rig.post(delivery(), secret="rotated")).status_code == 202


async def test_a_ping_is_accepted_and_calibrates_even_when_the_default_scheme_does_not_verify_it(rig: Rig) -> None:
    body = json.dumps({"id": "p-1", "event": "ping", "created_at": "2026-12-05T01:00:00Z", "webhook_id": WEBHOOK,
                       "data": {}}).encode()
    assert (await rig.post(body)).json() == {"result": "ping"}
    assert rig.sink.hints == []
    mark = rig.receiver.calibrator.cursor()
    base64_scheme = SignatureScheme(encoding="base64")
    answer = await rig.http.post(WEBHOOK_PATH, content=body, headers=base64_scheme.sign(SECRET, body, rig.clock[0]))
    assert answer.status_code == 401  # not yet calibrated: the default scheme is hex
    found = await rig.receiver.calibrator.calibrate(WEBHOOK, SECRET, 1.0, since=mark)
    assert found is not None
    rig.receiver.book.pin(KEY, found)
    later = delivery()
    assert (await rig.http.post(WEBHOOK_PATH, content=later,
                                headers=base64_scheme.sign(SECRET, later, rig.clock[0]))).status_code == 202


async def test_the_receiver_answers_503_until_it_has_a_sink(rig: Rig) -> None:
    rig.receiver.sink = None
    answer = await rig.post(delivery())
    assert (answer.status_code, answer.json()) == (503, {"result": "unavailable"})
    assert "Retry-After" in answer.headers


def test_no_receiver_when_the_port_is_0_or_no_public_url_is_set() -> None:
    from oec_operator.webhooks.receiver import serve

    book, url = SecretBook(SignatureScheme()), "https://hooks.example.com/oec/webhook"
    assert asyncio.run(serve(OperatorConfig(webhook_port=0, webhook_url=url), book, Calibrator())) is None
    # A cluster without inbound internet sets no URL: no port is opened (nothing else changes).
    (port,) = free_ports(1)
    no_url = OperatorConfig(webhook_port=port, webhook_address="127.0.0.1")
    assert asyncio.run(serve(no_url, book, Calibrator())) is None


@pytest.fixture(autouse=True)
def _no_secret_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level("DEBUG", logger="oec_operator.webhooks")
    yield
    assert SECRET not in caplog.text and "rotated" not in caplog.text
