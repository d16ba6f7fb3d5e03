"""The client's day-2 calls against the simulator over real HTTP: PATCH of domain and sizes, create
with them, deploy with module updates, start / stop / restart / quick-update, and the errors an API
sends when it refuses one of them (docs/oec-api.md §11.2, §11.3; §1 rows 19, 31-35)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from oec_operator.oec.client import OecClient, make_http_client
from oec_operator.oec.errors import OecConflictError, OecValidationError
from tests.client.helpers import requests_sent, running_environment
from tests.simulator.sim_helpers import API, PROJECT_A, RW, Sim, StartSim


@pytest.fixture
async def http(sim: Sim) -> AsyncIterator[httpx.AsyncClient]:
    client = make_http_client(sim.base_url + API, timeout=5)
    yield client
    await client.aclose()






async def _last_seq(sim: Sim) -> int:
    return max((int(e["seq"]) for e in await requests_sent(sim)), default=0)


async def _admin_tasks(sim: Sim, env_id: str) -> list[dict[str, Any]]:
    tasks: list[dict[str, Any]] = (await sim.admin.get(f"/environments/{env_id}/tasks")).json()
    return tasks


async def test_patch_sends_only_the_given_fields_and_reads_the_domain(sim: Sim, http: httpx.AsyncClient) -> None:
    api = OecClient(http, RW)
    env_id = await running_environment(sim, api)
    since = await _last_seq(sim)
    env = await api.update_environment(env_id, domain="erp.example.com", ram_mb=4096)
    assert (env.custom_domain, env.custom_domain_verified, env.ram_mb) == ("erp.example.com", False, 4096)
    [patch] = await requests_sent(sim, since)
    assert (patch["method"], patch["body"]) == ("PATCH", {"domain": "erp.example.com", "ram_mb": 4096})
    sim.clock.advance(5)
    assert (await api.get_environment(env_id)).custom_domain_verified is True
    env = await api.update_environment(env_id, domain="")  # "" is sent: it removes the domain
    assert (env.custom_domain, env.custom_domain_verified) == (None, False)
    env = await api.update_environment(env_id, cpu_cores=2.5, disk_gb=20)
    assert (env.cpu_cores, env.disk_gb) == (2.5, 20)
    with pytest.raises(ValueError, match="at least one field"):
        await api.update_environment(env_id)
    with pytest.raises(ValueError, match="not a PATCH field: size"):
        await api.update_environment(env_id, size="big")


async def test_create_sends_domain_and_sizes(sim: Sim, http: httpx.AsyncClient) -> None:
    env = await OecClient(http, RW).create_environment(
        PROJECT_A, name="sized", environment_type="production", idempotency_key="c1",
        domain="shop.example.com", cpu_cores=8, ram_mb=16384, disk_gb=100,
    )
    assert (env.cpu_cores, env.ram_mb, env.disk_gb, env.custom_domain) == (8.0, 16384, 100, "shop.example.com")


async def test_deploy_sends_update_modules_only_when_given(sim: Sim, http: httpx.AsyncClient) -> None:
    api = OecClient(http, RW)
    env_id = await running_environment(sim, api)
    since = await _last_seq(sim)
    accepted = await api.deploy(env_id, idempotency_key="d1", update_modules=["sale_custom", "stock"])
    sim.clock.advance(5)
    await api.deploy(env_id, idempotency_key="d2")
    first, second = await requests_sent(sim, since)
    assert (first["body"], first["idempotency_key"]) == ({"update_modules": ["sale_custom", "stock"]}, "d1")
    assert (second["body"], second["idempotency_key"]) == (None, "d2")
    tasks = await _admin_tasks(sim, env_id)
    assert [t["update_modules"] for t in tasks] == [None, ["sale_custom", "stock"], None]
    assert tasks[1]["id"] == accepted.task_id


async def test_stop_start_restart_quick_update(sim: Sim, http: httpx.AsyncClient) -> None:
    api = OecClient(http, RW)
    env_id = await running_environment(sim, api)
    stop = await api.stop(env_id, idempotency_key="s1")
    assert stop.status == "queued" and stop.environment_id == env_id
    assert (await api.stop(env_id, idempotency_key="s1")).task_id == stop.task_id  # a retry is replayed
    sim.clock.advance(2)
    assert (await api.get_environment(env_id)).status == "stopped"
    with pytest.raises(OecConflictError) as caught:
        await api.restart(env_id, idempotency_key="r0")
    assert caught.value.code == "invalid_state"
    await api.start(env_id, idempotency_key="st1")
    with pytest.raises(OecConflictError) as caught:
        await api.stop(env_id, idempotency_key="s2")
    assert caught.value.code == "task_in_progress" and caught.value.task_id
    sim.clock.advance(2)
    await api.restart(env_id, idempotency_key="r1")
    sim.clock.advance(2)
    await api.quick_update(env_id, mode="update_specific", modules=["sale_custom"], idempotency_key="q1")
    sim.clock.advance(2)
    await api.quick_update(env_id, mode="pull_restart", idempotency_key="q2")
    sim.clock.advance(2)
    tasks = await _admin_tasks(sim, env_id)
    assert [(t["type"], t["status"], t["mode"], t["modules"]) for t in tasks[:5]] == [
        ("quick_update", "completed", "pull_restart", None),
        ("quick_update", "completed", "update_specific", ["sale_custom"]),
        ("restart", "completed", None, None),
        ("start", "completed", None, None),
        ("stop", "completed", None, None),
    ]
    sent = [(e["path"].rsplit("/", 1)[-1], e["body"], e["idempotency_key"]) for e in await requests_sent(sim)]
    assert ("start", None, "st1") in sent and ("restart", None, "r1") in sent
    assert ("quick-update", {"mode": "update_specific", "modules": ["sale_custom"]}, "q1") in sent


async def test_quick_update_checks_mode_and_modules_before_sending(sim: Sim, http: httpx.AsyncClient) -> None:
    api = OecClient(http, RW)
    since = await _last_seq(sim)
    for mode, modules in (("update_specific", None), ("update_all", ["sale"]), ("everything", None)):
        with pytest.raises(ValueError):
            await api.quick_update("any", mode=mode, modules=modules, idempotency_key="q")
    assert await requests_sent(sim, since) == []


async def test_older_api_refuses_a_size_field_by_name(start_sim: StartSim, clock: object) -> None:
    sim = await start_sim(clock=clock, patch_fields="seed")
    async with make_http_client(sim.base_url + API) as http:
        api = OecClient(http, RW)
        env_id = await running_environment(sim, api)
        with pytest.raises(OecValidationError) as caught:
            await api.update_environment(env_id, cpu_cores=2)
        assert caught.value.field == "cpu_cores"
        assert (await api.update_environment(env_id, name="renamed")).name == "renamed"


async def test_shrink_plan_limit_and_taken_domain_are_typed_errors(start_sim: StartSim, clock: object) -> None:
    sim = await start_sim(clock=clock, max_cpu_cores=4)
    async with make_http_client(sim.base_url + API) as http:
        api = OecClient(http, RW)
        first, second = await running_environment(sim, api, "one"), await running_environment(sim, api, "two")
        with pytest.raises(OecValidationError) as shrink:
            await api.update_environment(first, disk_gb=5)
        assert shrink.value.field == "disk_gb" and "cannot shrink" in shrink.value.message
        with pytest.raises(OecValidationError) as plan:
            await api.update_environment(first, cpu_cores=8)
        assert plan.value.code == "quota_exceeded" and "max_cpu_cores" in plan.value.message
        await api.update_environment(first, domain="erp.example.com")
        with pytest.raises(OecConflictError) as taken:
            await api.update_environment(second, domain="erp.example.com")
        assert taken.value.code == "domain_in_use"
