"""The sync controller (create, poll, write suppression, failures, credentials) with the real
OEC.sh client against the in-process simulator and an in-memory apiserver."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from oec_operator.controller.sync import SYNC_TIME_REFRESH_INTERVALS
from oec_operator.models.status import Status
from tests.controller.conftest import Harness
from tests.simulator.sim_helpers import RW

OTHER_KEY = "oec_live_rw_" + "C" * 43


def status(h: Harness, name: str, namespace: str = "team") -> Status:
    return Status.from_body(h.kube.objects[(namespace, name)].get("status"))


async def environments(h: Harness) -> list[dict[str, object]]:
    """The environments that exist in the simulator (its admin view, whatever key is valid)."""
    response = await h.sim.admin.get("/environments")
    assert response.status_code == 200
    return [e for e in response.json() if not e.get("deleted")]


async def test_create_records_the_request_before_the_post(harness: Harness) -> None:
    body = harness.add("shop", branch="main")
    await harness.change(body)
    first, last = harness.kube.status_patches[0], harness.kube.status_patches[-1]
    assert first["createRequest"]["name"] == "shop" and first["createRequest"]["branch"] == "main"
    assert first["createRequest"]["key"].startswith("oec-operator-create-")
    assert "environmentId" not in first or first["environmentId"] is None
    assert last["createRequest"] is None and last["environmentId"]
    stored = status(harness, "shop")
    assert stored.create_request is None and stored.environment_id == last["environmentId"]
    assert stored.condition("Ready") is not None
    assert [e["name"] for e in await environments(harness)] == ["shop"]
    assert harness.reasons("shop") == ["Created"]


async def test_no_create_when_its_request_cannot_be_recorded(harness: Harness) -> None:
    body = harness.add("shop")
    harness.kube.fail_status_writes = 500
    await harness.change(body)
    assert await environments(harness) == []  # intent first: nothing sent without it
    loop_now = asyncio.get_running_loop().time()
    assert harness.state(body).next_poll_at <= loop_now + harness.runtime.config.fast_poll_interval + 0.5
    harness.kube.fail_status_writes = None
    await harness.change(body)
    assert [e["name"] for e in await environments(harness)] == ["shop"]


async def test_a_steady_poll_writes_nothing(harness: Harness) -> None:
    body = harness.add("shop")
    await harness.change(body)
    harness.sim.clock.advance(60)  # the first deploy is done
    await harness.list_project()
    assert harness.state(body).changed  # the list woke the resource
    await harness.poll(body)
    assert status(harness, "shop").phase == "running"
    assert (status(harness, "shop").condition("Ready") or {}).get("status") == "True"
    writes = harness.kube.calls["patch_status"]
    for _ in range(3):
        await harness.list_project()
        await harness.poll(body)
    assert harness.kube.calls["patch_status"] == writes
    assert harness.reasons("shop") == ["Created", "Deployed"]


async def test_last_sync_time_is_refreshed_after_some_steady_intervals(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(poll_interval=1.0, fast_poll_interval=1.0)
    body = h.add("shop")
    await h.change(body)
    h.sim.clock.advance(60)
    await h.list_project()
    await h.poll(body)
    writes = h.kube.calls["patch_status"]
    await asyncio.sleep(SYNC_TIME_REFRESH_INTERVALS * 2 + 0.5)  # the longest refresh spread at 1 s
    await h.poll(body)
    assert h.kube.calls["patch_status"] == writes + 1
    assert status(h, "shop").last_sync_time == h.kube.status_patches[-1]["lastSyncTime"]


async def test_many_resources_read_the_default_secret_once(harness: Harness) -> None:
    bodies = [harness.add(f"shop-{i}") for i in range(20)]
    await asyncio.gather(*(harness.change(b) for b in bodies))
    assert len(await environments(harness)) == 20
    assert harness.kube.calls["read_secret"] == 1


async def test_a_refused_key_is_read_again_and_the_rotated_one_used(harness: Harness) -> None:
    body = harness.add("shop")
    await harness.change(body)
    add = await harness.sim.admin.post("/keys", json={"key": OTHER_KEY, "scope": "org"})
    assert add.status_code == 201, add.text
    revoke = await harness.sim.admin.post("/keys/revoke", json={"key": RW})
    assert revoke.json() == {"revoked": True}
    harness.kube.set_key(OTHER_KEY)  # rotated in the Secret, still cached with the old key
    body["spec"]["name"] = "Shop"  # a user's change: the operator calls the API
    body["metadata"]["generation"] = 2
    await harness.change(body)
    ready = status(harness, "shop").condition("Ready")
    assert ready is not None and ready["reason"] == "AuthFailed"
    await harness.change(body)
    ready = status(harness, "shop").condition("Ready")
    assert ready is not None and ready["reason"] != "AuthFailed"
    assert harness.kube.calls["read_secret"] == 2
    assert [e["name"] for e in await environments(harness)] == ["Shop"]


async def test_a_missing_secret_stalls_with_a_clear_reason(harness: Harness) -> None:
    harness.kube.secrets.clear()
    body = harness.add("shop")
    await harness.change(body)
    stalled = status(harness, "shop").condition("Stalled")
    assert stalled is not None and stalled["reason"] == "CredentialsNotFound"
    assert "oec-system/oec-api-key" in stalled["message"]
    assert "CredentialsNotFound" in harness.reasons("shop")


async def test_transient_failures_back_off(harness: Harness) -> None:
    body = harness.add("shop")
    await harness.change(body)
    outage = await harness.sim.admin.post("/outage", json={"seconds": 3600, "mode": "503"})
    assert outage.status_code == 201, outage.text
    state = harness.state(body)
    delays = []
    for n in range(4):
        body["metadata"]["annotations"]["oec.sh/reconcile-requested-at"] = f"t{n}"  # kubectl oec reconcile
        await harness.change(body)
        delays.append(state.next_poll_at - asyncio.get_running_loop().time())
    assert state.failures == 4
    fast = harness.runtime.config.fast_poll_interval
    for n, delay in enumerate(delays):  # doubled per failure, +-20 % jitter
        assert 0.75 * fast * 2**n <= delay <= 1.25 * fast * 2**n, delays
    reconciling = status(harness, "shop").condition("Reconciling")
    assert reconciling is not None and reconciling["reason"] == "ProgressingWithRetry"


async def test_paused_makes_no_api_call(harness: Harness) -> None:
    body = harness.add("shop")
    body["metadata"]["annotations"]["oec.sh/paused"] = "true"
    await harness.change(body)
    stats = (await harness.sim.admin.get("/stats")).json()
    assert stats["reads"] == 0 and stats["writes"] == 0
    paused = status(harness, "shop").condition("Paused")
    assert paused is not None and paused["status"] == "True"
    assert await environments(harness) == []


async def test_the_project_watches_stop_at_once_with_a_deploy_in_flight(harness: Harness) -> None:
    h = harness
    body = h.add("shop", branch="main")
    await h.change(body)
    h.sim.clock.advance(60)
    await h.list_project()
    await h.poll(body)
    body["spec"]["branch"] = "feature"
    body["metadata"]["generation"] = 2
    await h.change(body)  # a deploy runs; the project's watch polls fast
    loop = asyncio.get_running_loop()
    started = loop.time()
    await h.runtime.fleet.aclose()  # what a shutdown (or the operator's cleanup) does
    assert loop.time() - started < 5.0  # it hung until cancelled from outside before
    assert not any(w.running for w in h.runtime.fleet._watches.values())
