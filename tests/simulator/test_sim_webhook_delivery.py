"""The simulator's webhook deliveries to a real aiohttp receiver on loopback (docs/oec-api.md §11.6,
§1 row 27): what changes through the API is POSTed, signed with the webhook's current secret by the
configured scheme, retried after a failed attempt with ``attempt_count``, recorded, and counted in
``failure_count`` (auto-deactivation); the ``/test`` ping; the admin switch that stops sending."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from .sim_helpers import PROJECT_A, PROJECT_B, SCOPED_A, Sim, StartSim, auth

#: Real seconds to wait for a delivery at most (deliveries take milliseconds; the scan runs every 0.2 s).
WAIT = 10.0


@dataclass
class Received:
    """One POST the receiver got."""

    headers: dict[str, str]
    raw: bytes

    @property
    def body(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.raw)
        return data


@dataclass
class Receiver:
    """A webhook receiver on loopback: records every POST and answers the next of ``answers``
    (then 202), after ``release`` is set."""

    url: str = ""
    got: list[Received] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.release.set()

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        async with self.arrived:
            self.got.append(Received(dict(request.headers), raw))
            self.arrived.notify_all()
        await self.release.wait()
        status = self.answers.pop(0) if self.answers else 202
        return web.json_response({"result": "ok" if status < 300 else "no"}, status=status)

    async def wait_for(self, count: int) -> list[Received]:
        """The first ``count`` POSTs, waiting for them (at most :data:`WAIT` seconds)."""
        async with self.arrived:
            await asyncio.wait_for(self.arrived.wait_for(lambda: len(self.got) >= count), WAIT)
        return self.got[:count]

    def events(self) -> list[str]:
        return [r.body["event"] for r in self.got]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hook = Receiver()
    app = web.Application()
    app.router.add_post("/hook", hook.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    hook.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    yield hook
    await runner.cleanup()


async def _sim(start_sim: StartSim, clock: Any, **config: Any) -> Sim:
    return await start_sim(clock=clock, webhook_allow_insecure_urls=True, webhook_retry_delays=[0.05, 0.05],
                           **config)


async def _webhook(sim: Sim, receiver: Receiver, events: list[str], key: str | None = None,
                   **body: Any) -> dict[str, Any]:
    response = await sim.api.post("/webhooks", json={"url": receiver.url, "events": events, **body},
                                  headers=auth(key) if key else {})
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


async def _running_env(sim: Sim, project: str = PROJECT_A, name: str = "shop") -> str:
    env = await sim.create_env(project, name=name)
    sim.clock.advance(5)
    assert (await sim.api.get(f"/environments/{env['id']}")).json()["status"] == "running"
    return str(env["id"])


async def _stop(sim: Sim, env_id: str) -> None:
    assert (await sim.api.post(f"/environments/{env_id}/stop")).status_code == 202
    sim.clock.advance(2)  # the stop task ends; the periodic scan announces it


def _hex(secret: str, signed: bytes) -> str:
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


async def test_a_stop_through_the_api_is_delivered_signed(start_sim: StartSim, clock: Any,
                                                          receiver: Receiver) -> None:
    sim = await _sim(start_sim, clock)
    env_id = await _running_env(sim)
    hook = await _webhook(sim, receiver, ["environment.status_changed"])
    await _stop(sim, env_id)
    [got] = await receiver.wait_for(1)
    assert got.headers["X-OEC-Signature"] == _hex(hook["secret"], got.raw)
    assert got.headers["X-OEC-Event"] == "environment.status_changed"
    assert got.headers["User-Agent"] == "OEC.sh-Webhooks/1.0"
    assert got.headers["Content-Type"] == "application/json"
    body = got.body
    assert (body["event"], body["webhook_id"], body["attempt"]) == ("environment.status_changed", hook["id"], 1)
    assert body["data"] == {"environment_id": env_id, "project_id": PROJECT_A, "status": "stopped",
                            "previous_status": "running"}
    assert body["id"] and body["created_at"].endswith("Z")

    [record] = (await sim.api.get(f"/webhooks/{hook['id']}/deliveries")).json()
    assert {k: record[k] for k in ("event", "status", "attempt_count", "response_status")} == {
        "event": "environment.status_changed", "status": "success", "attempt_count": 1, "response_status": 202}
    assert record["id"] == got.headers["X-OEC-Delivery"]
    shown = (await sim.api.get(f"/webhooks/{hook['id']}")).json()
    assert shown["last_triggered_at"] is not None and shown["failure_count"] == 0


async def test_a_failed_attempt_is_retried_with_the_same_delivery_id(start_sim: StartSim, clock: Any,
                                                                     receiver: Receiver) -> None:
    sim = await _sim(start_sim, clock)
    env_id = await _running_env(sim)
    hook = await _webhook(sim, receiver, ["environment.status_changed"])
    receiver.answers = [500]
    await _stop(sim, env_id)
    first, second = await receiver.wait_for(2)
    assert first.headers["X-OEC-Delivery"] == second.headers["X-OEC-Delivery"]
    assert (first.body["attempt"], second.body["attempt"]) == (1, 2)
    assert first.body["id"] == second.body["id"]  # the same event
    assert second.headers["X-OEC-Signature"] == _hex(hook["secret"], second.raw)
    for _ in range(50):  # the record is written right after the receiver answers
        [record] = (await sim.api.get(f"/webhooks/{hook['id']}/deliveries")).json()
        if record["status"] != "pending":
            break
        await asyncio.sleep(0.02)
    assert (record["status"], record["attempt_count"], record["response_status"]) == ("success", 2, 202)
    assert (await sim.api.get(f"/webhooks/{hook['id']}")).json()["failure_count"] == 0


async def test_a_rotated_secret_signs_the_next_delivery(start_sim: StartSim, clock: Any,
                                                        receiver: Receiver) -> None:
    sim = await _sim(start_sim, clock)
    env_id = await _running_env(sim)
    hook = await _webhook(sim, receiver, ["environment.status_changed"])
    new = (await sim.api.post(f"/webhooks/{hook['id']}/rotate-secret")).json()["secret"]
    await _stop(sim, env_id)
    [got] = await receiver.wait_for(1)
    assert got.headers["X-OEC-Signature"] == _hex(new, got.raw)
    assert got.headers["X-OEC-Signature"] != _hex(hook["secret"], got.raw)


async def test_create_and_deploy_events_reach_only_subscribers_in_scope(start_sim: StartSim, clock: Any,
                                                                        receiver: Receiver) -> None:
    sim = await _sim(start_sim, clock)
    await _webhook(sim, receiver, ["environment.created", "deploy.started", "deploy.completed"], SCOPED_A,
                   project_id=PROJECT_A)
    await sim.create_env(PROJECT_B, name="other")  # not in the webhook's project: nothing sent
    env = await sim.create_env(PROJECT_A, name="shop")
    [created] = await receiver.wait_for(1)
    assert (created.body["event"], created.body["data"]["environment_id"]) == ("environment.created", env["id"])
    sim.clock.advance(1)  # the deploy leaves its queue
    [_, started] = await receiver.wait_for(2)
    assert (started.body["event"], started.body["data"]["status"]) == ("deploy.started", "running")
    sim.clock.advance(4)
    [*_, completed] = await receiver.wait_for(3)
    assert completed.body["event"] == "deploy.completed"
    assert completed.body["data"]["deploy_id"] == started.body["data"]["deploy_id"]
    assert {r.body["data"]["project_id"] for r in receiver.got} == {PROJECT_A}


async def test_failed_attempts_deactivate_the_webhook(start_sim: StartSim, clock: Any,
                                                      receiver: Receiver) -> None:
    sim = await _sim(start_sim, clock, webhook_deactivate_after=2)
    env_id = await _running_env(sim)
    hook = await _webhook(sim, receiver, ["environment.status_changed"])
    receiver.answers = [503, 503, 503]
    await _stop(sim, env_id)
    await receiver.wait_for(2)
    for _ in range(50):
        shown = (await sim.api.get(f"/webhooks/{hook['id']}")).json()
        if not shown["is_active"]:
            break
        await asyncio.sleep(0.02)
    assert (shown["is_active"], shown["failure_count"]) == (False, 2)
    [record] = (await sim.api.get(f"/webhooks/{hook['id']}/deliveries")).json()
    assert (record["status"], record["attempt_count"], record["response_status"]) == ("failed", 2, 503)
    assert len(receiver.got) == 2  # no third attempt once inactive


@pytest.mark.parametrize(
    ("scheme", "header"),
    [("hex", "X-OEC-Signature"), ("prefixed", "X-Hub-Signature-256"), ("base64", "X-OEC-Signature"),
     ("timestamp", "X-OEC-Signature")],
)
async def test_the_test_ping_is_signed_by_the_configured_scheme(start_sim: StartSim, clock: Any,
                                                                receiver: Receiver, scheme: str,
                                                                header: str) -> None:
    sim = await _sim(start_sim, clock, webhook_signature=scheme, webhook_signature_header=header)
    hook = await _webhook(sim, receiver, ["deploy.failed"])
    answer = (await sim.api.post(f"/webhooks/{hook['id']}/test")).json()
    assert (answer["success"], answer["status_code"]) == (True, 202)
    [got] = receiver.got
    assert (got.body["event"], got.body["webhook_id"], got.body["data"]) == ("ping", hook["id"], {})
    digest = hmac.new(hook["secret"].encode(), got.raw, hashlib.sha256).digest()
    expected = {"hex": digest.hex(), "prefixed": "sha256=" + digest.hex(),
                "base64": base64.b64encode(digest).decode()}.get(scheme)
    if scheme == "timestamp":
        ts = got.headers["X-OEC-Timestamp"]
        assert int(ts) == int(clock.now())
        expected = _hex(hook["secret"], ts.encode() + b"." + got.raw)
    assert got.headers[header] == expected
    assert (await sim.api.get(f"/webhooks/{hook['id']}/deliveries")).json() == []  # a ping leaves no record


async def test_the_admin_switch_stops_and_resumes_deliveries(start_sim: StartSim, clock: Any,
                                                            receiver: Receiver) -> None:
    sim = await _sim(start_sim, clock)
    first = await _running_env(sim, name="first")
    second = await _running_env(sim, name="second")
    hook = await _webhook(sim, receiver, ["environment.status_changed"])
    assert (await sim.admin.post("/webhooks/deliveries", json={"enabled": False})).json()["deliveries_enabled"] is False
    await _stop(sim, first)
    await sim.api.get(f"/environments/{first}")  # the change is seen (and dropped) before sending resumes
    sim.state.delivery.scan()
    await sim.admin.post("/webhooks/deliveries", json={"enabled": True})
    await _stop(sim, second)
    [got] = await receiver.wait_for(1)
    assert got.body["data"]["environment_id"] == second
    overview = (await sim.admin.get("/webhooks")).json()
    assert overview["dropped"] == 1
    [shown] = overview["webhooks"]
    assert (shown["id"], shown["secret"], shown["deliveries"]["success"]) == (hook["id"], hook["secret"], 1)
    records = (await sim.admin.get(f"/webhooks/{hook['id']}/deliveries")).json()
    assert [r["payload"]["environment_id"] for r in records] == [second]


async def test_closing_the_simulator_ends_a_delivery_waiting_to_retry(start_sim: StartSim, clock: Any,
                                                                      receiver: Receiver) -> None:
    sim = await start_sim(clock=clock, webhook_allow_insecure_urls=True, webhook_retry_delays=[600])
    env_id = await _running_env(sim)
    hook = await _webhook(sim, receiver, ["environment.status_changed"])
    receiver.answers = [500]
    await _stop(sim, env_id)
    await receiver.wait_for(1)
    engine = sim.state.delivery
    assert engine.in_flight() == 1  # waiting 600 s for its retry
    await engine.stop()
    assert engine.in_flight() == 0
    [record] = sim.state.webhooks.hooks[hook["id"]].deliveries
    assert (record.status, record.attempt_count) == ("failed", 1)


async def test_a_receiver_that_hangs_does_not_hold_up_the_api(start_sim: StartSim, clock: Any,
                                                              receiver: Receiver) -> None:
    sim = await _sim(start_sim, clock)
    await _webhook(sim, receiver, ["environment.created"])
    receiver.release.clear()  # the receiver takes the delivery and does not answer
    first = await sim.create_env(PROJECT_A, name="first")
    await receiver.wait_for(1)
    second = await sim.create_env(PROJECT_A, name="second")  # answered while the delivery hangs
    assert (await sim.api.get(f"/environments/{first['id']}")).status_code == 200
    assert second["status"] == "deploying" and sim.state.delivery.in_flight() >= 1
    receiver.release.set()
    await receiver.wait_for(2)


async def test_a_webhook_deleted_while_a_delivery_waits_gets_no_more_attempts(start_sim: StartSim, clock: Any,
                                                                              receiver: Receiver) -> None:
    sim = await start_sim(clock=clock, webhook_allow_insecure_urls=True, webhook_retry_delays=[0.3])
    env_id = await _running_env(sim)
    hook = await _webhook(sim, receiver, ["environment.status_changed"])
    receiver.answers = [500]
    await _stop(sim, env_id)
    await receiver.wait_for(1)
    assert (await sim.api.delete(f"/webhooks/{hook['id']}")).status_code == 204
    engine = sim.state.delivery
    for _ in range(100):  # the delivery ends after its retry delay, without sending
        if engine.in_flight() == 0:
            break
        await asyncio.sleep(0.05)
    assert engine.in_flight() == 0 and len(receiver.got) == 1
