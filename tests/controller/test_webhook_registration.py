"""Declarative webhook registration (``docs/webhooks.md`` §5): the real :class:`Registrar`, OEC
client and webhook Secret store against the in-process simulator over HTTP (which delivers the
``/test`` pings to a real receiver on loopback) and the in-memory apiserver."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from oec_operator.controller.push import PushHub
from oec_operator.oec.ratelimit import Priority
from oec_operator.settings import WEBHOOK_PATH
from oec_operator.webhooks import registration
from oec_operator.webhooks.book import SecretBook
from oec_operator.webhooks.calibrate import Calibrator
from oec_operator.webhooks.receiver import Receiver
from oec_operator.webhooks.registration import Registrar, WebhookState, install_id
from oec_operator.webhooks.scheme import SignatureScheme
from oec_operator.webhooks.secretstore import ROTATE_ANNOTATION, WebhookSecretStore
from tests.controller.conftest import Harness, operator_config
from tests.simulator.sim_helpers import API, PROJECT_A, RW, SCOPED_A, Sim, StartSim

pytestmark = pytest.mark.usefixtures("receiver")

SECRET_AT = ("oec-system", "oec-operator-webhooks")
MUTATIONS = {"POST /webhooks", "PATCH /webhooks/{id}", "DELETE /webhooks/{id}"}


@dataclass
class Served:
    """The operator's receiver on loopback (one per test; each operator start hands it its own
    book and calibrator, as a new process would have)."""

    url: str
    receiver: Receiver


@pytest.fixture
async def receiver(sim: Sim) -> AsyncIterator[Served]:
    config = operator_config(sim, webhook_port=0, webhook_address="127.0.0.1")
    served = Receiver(config, SecretBook(SignatureScheme.from_config(config)), Calibrator())
    await served.start()
    assert served._runner is not None
    port = served._runner.addresses[0][1]
    yield Served(f"http://127.0.0.1:{port}{WEBHOOK_PATH}", served)
    await served.stop()


@dataclass
class Setup:
    """One operator start: its registrar, book and the webhook states it reported."""

    h: Harness
    registrar: Registrar
    book: SecretBook
    states: list[WebhookState]
    calibrator: Calibrator


@pytest.fixture
def start(make_harness: Callable[..., Harness], receiver: Served) -> Callable[..., Awaitable[Setup]]:
    """``await start(**config)``: a new operator process (fresh runtime and book) on the same fake
    apiserver (``kube=``) or a new one, its registrar loaded from the webhook Secret and the
    default key tracked."""

    async def _start(kube: Any = None, api: Sim | None = None, track: bool = True, **overrides: Any) -> Setup:
        if api is not None:
            overrides["api_url"] = api.base_url + API
        overrides.setdefault("webhook_url", receiver.url)
        h = make_harness(webhook_secret="/".join(SECRET_AT), **overrides)
        if api is not None:
            h.sim = api
        if kube is not None:
            h.kube = kube
            h.runtime.kube = kube
        book = SecretBook(SignatureScheme.from_config(h.runtime.config))
        calibrator = Calibrator()
        receiver.receiver.book, receiver.receiver.calibrator = book, calibrator
        states: list[WebhookState] = []

        async def sleep(seconds: float) -> None:  # the simulator's time passes, not ours
            await h.sim.admin.post("/clock", json={"advance_seconds": seconds})

        registrar = Registrar(h.runtime.config, WebhookSecretStore(h.kube, "/".join(SECRET_AT)), book,
                              calibrator, on_state=states.append, sleep=sleep)
        await registrar.load()
        if track:
            registrar.track(h.runtime.client(RW, Priority.CHANGE))
        return Setup(h, registrar, book, states, calibrator)

    return _start


async def webhooks(sim: Sim, key: str = RW) -> list[dict[str, Any]]:
    response = await sim.api.get("/webhooks", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    body = response.json()
    return list(body["items"] if isinstance(body, dict) else body)


async def calls(sim: Sim, since: int = 0) -> list[str]:
    """``METHOD /path`` of the webhook requests the simulator got after ``since``."""
    entries = (await sim.admin.get("/requests", params={"since": since})).json()
    out = []
    for e in entries:
        if e["path"].split("/api/public/v1")[-1].startswith("/webhooks"):
            parts = e["path"].split("/api/public/v1")[-1].strip("/").split("/")
            out.append(f"{e['method']} /" + "/".join(["webhooks", *(["{id}"] if len(parts) > 1 else []), *parts[2:]]))
    return out


async def last_seq(sim: Sim) -> int:
    return max((e["seq"] for e in (await sim.admin.get("/requests")).json()), default=0)


def config_key_id() -> str:
    return hashlib.sha256(RW.encode()).hexdigest()[:16]


def stored(s: Setup) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in s.h.kube.secrets[SECRET_AT].items()}


async def verifies(sim: Sim) -> bool:
    """The receiver verifies a fresh delivery (the ``/test`` ping) of the key's webhook: it answers
    202, not 401 (``docs/webhooks.md`` §3)."""
    hook = (await webhooks(sim))[0]
    response = await sim.api.post(f"/webhooks/{hook['id']}/test")
    assert response.status_code == 200, response.text
    return bool(response.json()["status_code"] == 202)


@pytest.fixture
async def sim(start_sim: StartSim, clock: Any) -> Sim:
    """The simulator with loopback webhook URLs allowed (its documented test flag)."""
    return await start_sim(clock=clock, webhook_allow_insecure_urls=True)


async def test_first_start_registers_one_calibrated_webhook(
        start: Callable[..., Awaitable[Setup]], sim: Sim, receiver: Served) -> None:
    s = await start()
    assert await s.registrar.check_all()
    hooks = await webhooks(sim)
    assert len(hooks) == 1
    assert hooks[0]["url"] == receiver.url and hooks[0]["project_id"] is None
    assert sorted(hooks[0]["events"]) == sorted(s.h.runtime.config.webhook_events)
    data = stored(s)
    key_id = s.h.runtime.client(RW).key_id
    assert data[f"{key_id}.id"] == hooks[0]["id"]
    assert SignatureScheme.from_json(data[f"{key_id}.scheme"]).header.lower() == "x-oec-signature"
    assert s.states[-1].usable and s.states[-1].is_active
    assert await verifies(sim)


async def test_second_start_with_the_secret_makes_no_mutation(
        start: Callable[..., Awaitable[Setup]], sim: Sim, receiver: Served) -> None:
    first = await start()
    assert await first.registrar.check_all()
    since = await last_seq(sim)
    again = await start(kube=first.h.kube)
    # The book is filled from the Secret before any API call: deliveries verify at once.
    assert await verifies(sim)
    since = await last_seq(sim)
    assert await again.registrar.check_all()
    assert await calls(sim, since) == ["GET /webhooks"]
    assert len(await webhooks(sim)) == 1


async def test_lost_secret_is_rotated_not_registered_twice(
        start: Callable[..., Awaitable[Setup]], sim: Sim, receiver: Served) -> None:
    first = await start()
    assert await first.registrar.check_all()
    old = stored(first)
    del first.h.kube.secrets[SECRET_AT]
    since = await last_seq(sim)
    again = await start(kube=first.h.kube)
    assert await again.registrar.check_all()
    assert "POST /webhooks" not in await calls(sim, since)
    assert "POST /webhooks/{id}/rotate-secret" in await calls(sim, since)
    assert len(await webhooks(sim)) == 1
    key_id = again.h.runtime.client(RW).key_id
    assert stored(again)[f"{key_id}.secret"] != old[f"{key_id}.secret"]
    assert await verifies(sim)


async def test_lost_create_answer_still_gives_one_webhook(
        start: Callable[..., Awaitable[Setup]], sim: Sim) -> None:
    response = await sim.admin.post("/faults", json={"kind": "reset", "when": "after", "route": "create_webhook",
                                                     "count": 1})
    assert response.status_code == 201, response.text
    s = await start()
    assert await s.registrar.check_all()
    assert len(await webhooks(sim)) == 1


async def test_stray_webhooks_of_ours_are_reduced_to_one(
        start: Callable[..., Awaitable[Setup]], sim: Sim, receiver: Served) -> None:
    s = await start()
    assert await s.registrar.check_all()
    ours = (await webhooks(sim))[0]
    for n in range(2):  # e.g. a second replica's create whose answer was lost
        response = await sim.api.post("/webhooks", json={"url": receiver.url, "events": ["deploy.started"],
                                                         "description": ours["description"]},
                                      headers={"X-Idempotency-Key": f"stray-{n}"})
        assert response.status_code == 201, response.text
    foreign = await sim.api.post("/webhooks", json={"url": receiver.url, "events": ["deploy.started"],
                                                    "description": "someone else's"})
    assert foreign.status_code == 201, foreign.text
    assert await s.registrar.check_all()
    left = await webhooks(sim)
    assert sorted(h["id"] for h in left) == sorted([ours["id"], foreign.json()["id"]])


async def test_changed_events_are_patched_once(
        start: Callable[..., Awaitable[Setup]], sim: Sim) -> None:
    first = await start()
    assert await first.registrar.check_all()
    events = ["deploy.completed", "environment.status_changed"]
    again = await start(kube=first.h.kube, webhook_events=events)
    since = await last_seq(sim)
    assert await again.registrar.check_all()
    assert await again.registrar.check_all()
    assert [c for c in await calls(sim, since) if c in MUTATIONS] == ["PATCH /webhooks/{id}"]
    assert sorted((await webhooks(sim))[0]["events"]) == events


@pytest.mark.parametrize("signature", ["hex", "prefixed", "base64", "timestamp"])
async def test_every_signature_scheme_of_the_simulator_calibrates(
        start_sim: StartSim, start: Callable[..., Awaitable[Setup]], signature: str) -> None:
    # On the real clock: a time-stamped signature is checked against the receiver's wall clock.
    sim = await start_sim(webhook_allow_insecure_urls=True, webhook_signature=signature)
    s = await start(api=sim)
    assert await s.registrar.check_all()
    assert s.states[-1].usable
    key_id = s.h.runtime.client(RW).key_id
    scheme = SignatureScheme.from_json(stored(s)[f"{key_id}.scheme"])
    assert (scheme.signed == "timestamp.body") == (signature == "timestamp")
    assert await verifies(sim)


async def test_an_inactive_webhook_is_reactivated_at_most_once_per_interval(
        start: Callable[..., Awaitable[Setup]], sim: Sim) -> None:
    s = await start()
    assert await s.registrar.check_all()
    hook = (await webhooks(sim))[0]
    for _ in range(2):  # deactivated (e.g. by repeated failures) twice within one check interval
        response = await sim.api.patch(f"/webhooks/{hook['id']}", json={"is_active": False})
        assert response.status_code == 200, response.text
        since = await last_seq(sim)
        assert await s.registrar.check_all()
        assert s.states[-1].is_active is False  # push health hears of it
        patches = [c for c in await calls(sim, since) if c in MUTATIONS]
        assert patches == (["PATCH /webhooks/{id}"] if _ == 0 else [])
    assert (await webhooks(sim))[0]["is_active"] is False  # the second time waits for the next interval


async def test_the_mutation_limit_is_waited_out(
        start_sim: StartSim, clock: Any, start: Callable[..., Awaitable[Setup]], receiver: Served) -> None:
    sim = await start_sim(clock=clock, webhook_allow_insecure_urls=True, webhook_mutation_limit=2)
    config = operator_config(sim, webhook_url=receiver.url, webhook_secret="/".join(SECRET_AT))
    marker = f"oec-operator:{install_id(config)} key {config_key_id()}"
    for n in range(4):  # four webhooks of ours: three deletions, more than the limit allows a minute
        if n % 2 == 0:
            await sim.admin.post("/clock", json={"advance_seconds": 61})
        response = await sim.api.post("/webhooks", json={"url": receiver.url, "events": ["deploy.started"],
                                                         "description": f"Managed by {marker}"},
                                      headers={"X-Idempotency-Key": f"s{n}"})
        assert response.status_code == 201, response.text
    await sim.admin.post("/clock", json={"advance_seconds": 61})
    # Without a client-side limiter (the direct design), so the API's 429 is what paces the deletions.
    s = await start(api=sim, polling="direct")
    assert await s.registrar.check_all()
    assert len(await webhooks(sim)) == 1
    entries = (await sim.admin.get("/requests")).json()
    assert any(e["status"] == 429 for e in entries)  # it was refused once, and waited it out


async def test_a_refused_url_is_one_clear_error(
        start_sim: StartSim, clock: Any, start: Callable[..., Awaitable[Setup]],
        caplog: pytest.LogCaptureFixture) -> None:
    sim = await start_sim(clock=clock)  # loopback URLs refused, as by the real API
    s = await start(api=sim)
    with caplog.at_level(logging.ERROR):
        await s.registrar.check_all()
        await s.registrar.check_all()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "OEC_WEBHOOK_URL" in errors[0].getMessage()
    assert await webhooks(sim) == []
    assert s.states[-1].usable is False


async def test_a_rotation_asked_on_the_secret_happens_once(
        start: Callable[..., Awaitable[Setup]], sim: Sim, receiver: Served) -> None:
    s = await start()
    assert await s.registrar.check_all()
    key_id = s.h.runtime.client(RW).key_id
    old = stored(s)[f"{key_id}.secret"]
    s.h.kube.secret_meta[SECRET_AT]["annotations"][ROTATE_ANNOTATION] = "2026-12-05T02:00:00Z"
    since = await last_seq(sim)
    assert await s.registrar.check_all()
    assert await s.registrar.check_all()
    assert (await calls(sim, since)).count("POST /webhooks/{id}/rotate-secret") == 1
    assert stored(s)[f"{key_id}.secret"] != old
    assert await verifies(sim)


async def test_twelve_keys_of_one_organization_get_one_webhook_each_without_a_429(
        start: Callable[..., Awaitable[Setup]], sim: Sim) -> None:
    keys = [RW] + [f"oec_live_rw_{n:02d}" + "K" * 41 for n in range(11)]
    for key in keys[1:]:
        response = await sim.admin.post("/keys", json={"key": key, "scope": "org"})
        assert response.status_code == 201, response.text
    s = await start()
    for key in keys[1:]:
        s.registrar.track(s.h.runtime.client(key, Priority.CHANGE))
    since = await last_seq(sim)
    assert await s.registrar.check_all()  # all twelve within the same simulated minute
    entries = (await sim.admin.get("/requests", params={"since": since})).json()
    assert all(e["status"] != 429 for e in entries)
    hooks = await webhooks(sim)
    assert len(hooks) == 12
    assert len({st.key_id for st in s.states}) == 12 and all(st.usable for st in s.states)
    # Every key's secret verifies its own webhook's deliveries (no key rotated another's).
    for hook in hooks:
        response = await sim.api.post(f"/webhooks/{hook['id']}/test")
        assert response.json()["status_code"] == 202, hook["description"]


async def test_a_project_scoped_key_gets_one_webhook_per_watched_project(
        start: Callable[..., Awaitable[Setup]], sim: Sim) -> None:
    s = await start()
    scoped = s.h.runtime.client(SCOPED_A, Priority.CHANGE)
    s.registrar.track(scoped, PROJECT_A)
    assert await s.registrar.check_all()
    hooks = await webhooks(sim, SCOPED_A)
    assert [h["project_id"] for h in hooks] == [PROJECT_A]
    assert stored(s)[f"{scoped.key_id}.{PROJECT_A}.id"] == hooks[0]["id"]
    since = await last_seq(sim)
    assert await s.registrar.check_all()
    assert [c for c in await calls(sim, since) if c in MUTATIONS] == []
    response = await sim.api.post(f"/webhooks/{hooks[0]['id']}/test", headers={"Authorization": f"Bearer {SCOPED_A}"})
    assert response.json()["status_code"] == 202


async def test_the_key_a_reconcile_uses_is_registered(start: Callable[..., Awaitable[Setup]], sim: Sim) -> None:
    s = await start(track=False)
    s.h.runtime.registrar = s.registrar
    assert await s.registrar.check_all()
    assert await webhooks(sim) == []  # no resource, no key in use: nothing registered
    await s.h.change(s.h.add("web"))
    assert await s.registrar.check_all()
    assert len(await webhooks(sim)) == 1


async def test_a_changed_url_moves_the_webhook_the_secret_names(
        start: Callable[..., Awaitable[Setup]], sim: Sim, receiver: Served) -> None:
    first = await start()
    assert await first.registrar.check_all()
    (before,) = await webhooks(sim)
    moved = receiver.url.replace("127.0.0.1", "localhost")  # the same receiver, under another name
    again = await start(kube=first.h.kube, webhook_url=moved)
    since = await last_seq(sim)
    assert await again.registrar.check_all()
    assert [c for c in await calls(sim, since) if c in MUTATIONS] == ["PATCH /webhooks/{id}"]
    (after,) = await webhooks(sim)
    assert (after["id"], after["url"]) == (before["id"], moved)
    assert await verifies(sim)


async def test_deliveries_of_a_project_scoped_webhook_credit_the_keys_push_health(
        start: Callable[..., Awaitable[Setup]], sim: Sim, receiver: Served) -> None:
    s = await start(track=False)
    receiver.receiver.sink = s.h.runtime.push = PushHub(s.h.runtime)
    scoped = s.h.runtime.client(SCOPED_A, Priority.CHANGE)
    s.registrar.track(scoped, PROJECT_A)
    assert await s.registrar.check_all()
    (hook,) = await webhooks(sim, SCOPED_A)
    response = await sim.api.post(f"/webhooks/{hook['id']}/test", headers={"Authorization": f"Bearer {SCOPED_A}"})
    assert response.json()["status_code"] == 202
    assert set(s.h.runtime.push_health) == {scoped.key_id}  # the key's own health, not one per webhook
    assert "no delivery received yet" not in s.h.runtime.health(scoped.key_id).reasons()


async def test_a_standby_replica_does_not_swallow_a_rotation_request(
        start: Callable[..., Awaitable[Setup]], sim: Sim, receiver: Served) -> None:
    active = await start()
    assert await active.registrar.check_all()
    standby = await start(kube=active.h.kube, track=False)  # reconciles nothing: tracks no key
    active.h.kube.secret_meta[SECRET_AT]["annotations"][ROTATE_ANNOTATION] = "2026-12-05T02:00:00Z"
    assert await standby.registrar.check_all()
    # The active replica's own receiver gets its calibration ping (one receiver serves both here).
    receiver.receiver.book, receiver.receiver.calibrator = active.book, active.calibrator
    since = await last_seq(sim)
    assert await active.registrar.check_all()
    assert "POST /webhooks/{id}/rotate-secret" in await calls(sim, since)
    assert active.states[-1].usable and await verifies(sim)


async def test_a_replica_whose_secret_went_stale_reads_it_again_on_the_first_refused_delivery(
        start: Callable[..., Awaitable[Setup]], sim: Sim, receiver: Served) -> None:
    active = await start()
    assert await active.registrar.check_all()
    standby = await start(kube=active.h.kube, track=False)  # its receiver serves from here on
    receiver.receiver.on_unverified = lambda key_id: standby.registrar.stale()
    active.h.kube.secret_meta[SECRET_AT]["annotations"][ROTATE_ANNOTATION] = "2026-12-05T02:10:00Z"
    receiver.receiver.book, receiver.receiver.calibrator = active.book, active.calibrator
    assert await active.registrar.check_all()  # rotated by the active replica
    receiver.receiver.book, receiver.receiver.calibrator = standby.book, standby.calibrator
    assert not await verifies(sim)  # the standby still has the old secret: 401 ...
    for _ in range(50):  # ... and reads the Secret again at once (no API call)
        if await verifies(sim):
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the standby never verified the rotated secret")


async def test_a_calibration_ping_that_reaches_the_standby_replica_still_calibrates(
        start: Callable[..., Awaitable[Setup]], sim: Sim, receiver: Served) -> None:
    """Behind one Service (``replicas: 2``) the ``/test`` ping may reach the standby rather than the
    replica that asked. The standby verifies it (it reads the Secret the active replica has just
    written) and answers 202; the active replica takes that answer as its configured scheme
    verified, so its key can reach push mode at once instead of after the next check (300 s)."""
    standby = await start(track=False)  # started first, read the still empty Secret
    active = await start(kube=standby.h.kube)
    receiver.receiver.book, receiver.receiver.calibrator = standby.book, standby.calibrator  # the ping's way
    receiver.receiver.reload = standby.registrar.reload_now
    started = asyncio.get_running_loop().time()
    assert await active.registrar.check_all()
    assert active.states[-1].usable
    assert asyncio.get_running_loop().time() - started < registration.PING_TIMEOUT  # no wait for a ping here
    assert SignatureScheme.from_json(stored(active)[f"{config_key_id()}.scheme"]) == \
        SignatureScheme.from_config(active.h.runtime.config)


async def test_a_secret_rotated_by_someone_else_is_healed_at_the_next_check(
        start: Callable[..., Awaitable[Setup]], sim: Sim, receiver: Served) -> None:
    s = await start()
    assert await s.registrar.check_all()
    receiver.receiver.on_unverified = s.registrar.stale
    hook = (await webhooks(sim))[0]
    # Someone with the API key rotates the secret through the API: OEC.sh now signs with a secret
    # nobody told the operator (the Secret still holds the old one).
    response = await sim.api.post(f"/webhooks/{hook['id']}/rotate-secret",
                                  headers={"Authorization": f"Bearer {RW}"})
    assert response.status_code == 200, response.text
    assert not await verifies(sim)  # 401: every delivery counts toward deactivating the webhook
    since = await last_seq(sim)
    assert await s.registrar.check_all()
    assert await calls(sim, since) == ["GET /webhooks", "POST /webhooks/{id}/test",
                                       "POST /webhooks/{id}/rotate-secret", "POST /webhooks/{id}/test"]
    assert await verifies(sim)
    assert s.states[-1].usable
    since = await last_seq(sim)
    assert await s.registrar.check_all()  # healed: the next check is quiet again
    assert await calls(sim, since) == ["GET /webhooks"]


async def test_a_forged_delivery_naming_our_webhook_costs_one_test_ping_and_no_rotation(
        start: Callable[..., Awaitable[Setup]], sim: Sim, receiver: Served) -> None:
    s = await start()
    assert await s.registrar.check_all()
    receiver.receiver.on_unverified = s.registrar.stale
    hook = (await webhooks(sim))[0]
    body = json.dumps({"id": "e1", "event": "environment.status_changed", "webhook_id": hook["id"], "data": {}})
    async with httpx.AsyncClient() as http:
        for _ in range(20):
            answer = await http.post(receiver.url, content=body, headers={"X-OEC-Signature": "0" * 64})
            assert answer.status_code == 401
    since = await last_seq(sim)
    assert await s.registrar.check_all()
    assert await calls(sim, since) == ["GET /webhooks", "POST /webhooks/{id}/test"]
    assert await verifies(sim)
    since = await last_seq(sim)
    assert await s.registrar.check_all()
    assert await calls(sim, since) == ["GET /webhooks"]


class TwoReplicas:
    """The Service in front of two replicas' receivers: the first ping goes to the other replica
    (its own calibrator), the next ones to this one."""

    def __init__(self, here: Calibrator) -> None:
        self.here, self.other, self.pings = here, Calibrator(), 0

    def observe(self, headers: Any, body: bytes) -> bool:
        self.pings += 1
        return (self.other if self.pings == 1 else self.here).observe(headers, body)


async def test_a_calibration_ping_answered_by_the_other_replica_is_sent_again(
        start: Callable[..., Awaitable[Setup]], sim: Sim, receiver: Served) -> None:
    s = await start()
    receiver.receiver.calibrator = TwoReplicas(s.calibrator)  # type: ignore[assignment]
    loop = asyncio.get_running_loop()
    began = loop.time()
    assert await s.registrar.check_all()
    assert s.states[-1].usable  # calibrated in this check, not one check interval (or more) later
    assert loop.time() - began < 5.0  # no 10 s wait for a ping that went elsewhere
    assert SignatureScheme.from_json(stored(s)[f"{config_key_id()}.scheme"])


async def test_a_webhook_whose_newest_delivery_failed_keeps_the_key_in_poll_mode(
        start: Callable[..., Awaitable[Setup]], sim: Sim, receiver: Served) -> None:
    """The receiver stops answering (here: 503 to every event, no sink); one change is not
    delivered. A check that sees ``failure_count`` unchanged since the previous one must not
    bring push mode back while the newest delivery still failed: the next change would be missed."""
    await sim.patch_config(webhook_retry_delays=[])
    s = await start()
    assert await s.registrar.check_all()
    runtime, key_id = s.h.runtime, config_key_id()
    runtime.webhook_state(s.states[-1])
    runtime.health(key_id).delivered()  # the calibration ping reached us
    assert runtime.health(key_id).mode() == "push"
    await sim.create_env(name="missed")
    for _ in range(100):
        if (await webhooks(sim))[0]["failure_count"] >= 1:
            break
        await asyncio.sleep(0.02)
    for _ in range(2):  # the failure is seen rising, then steady
        assert await s.registrar.check_all()
        runtime.webhook_state(s.states[-1])
        assert runtime.health(key_id).mode() == "poll"


async def test_events_of_environments_managed_elsewhere_never_deactivate_the_webhook(
        start: Callable[..., Awaitable[Setup]], sim: Sim, receiver: Served) -> None:
    """An org-wide webhook also carries the events of environments no object of this cluster
    manages (made in the dashboard, or by another tool). The simulator counts every non-2xx answer
    as a failure and deactivates after 10 in a row (``docs/oec-api.md`` §11.6): answered 404 they
    switched the key's push mode off for good; answered 202 (``unknown_environment``) they cost nothing."""
    await sim.patch_config(webhook_retry_delays=[])
    s = await start()
    receiver.receiver.sink = s.h.runtime.push = PushHub(s.h.runtime)
    assert await s.registrar.check_all()
    for n in range(12):
        await sim.create_env(name=f"by-hand-{n}")
    (hook,) = await webhooks(sim)
    for _ in range(200):  # the simulator's admin view: no read budget spent
        shown = (await sim.admin.get("/webhooks")).json()["webhooks"][0]
        deliveries = (await sim.admin.get(f"/webhooks/{hook['id']}/deliveries")).json()
        deliveries = deliveries.get("deliveries", deliveries) if isinstance(deliveries, dict) else deliveries
        done = len(deliveries) >= 12 and all(d["status"] != "pending" for d in deliveries)
        if done or not shown["is_active"]:
            break
        await asyncio.sleep(0.05)
    (hook,) = await webhooks(sim)
    assert {d["response_status"] for d in deliveries} == {202}
    assert hook["is_active"] and hook["failure_count"] == 0
