"""The OEC.sh client against the simulator over real HTTP: every typed error, idempotent replay,
rate-limit answers in each documented form, and no API key in any exception text."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from oec_operator.oec.client import OecClient, make_http_client
from oec_operator.oec.errors import (
    OecAuthError,
    OecConflictError,
    OecError,
    OecNotFoundError,
    OecPaymentRequiredError,
    OecPermissionError,
    OecRateLimitError,
    OecServerError,
    OecTransportError,
    OecValidationError,
)
from tests.simulator.sim_helpers import API, PROJECT_A, RO, RW, Sim, StartSim

UNKNOWN_KEY = "oec_live_rw_" + "Z" * 43
MISSING = "99999999-9999-4999-8999-999999999999"


@pytest.fixture
async def http(sim: Sim) -> AsyncIterator[httpx.AsyncClient]:
    client = make_http_client(sim.base_url + API, timeout=5)
    yield client
    await client.aclose()


async def create(api: OecClient, key: str = "k1", name: str = "shop") -> str:
    env = await api.create_environment(PROJECT_A, name=name, environment_type="development", idempotency_key=key)
    return env.id


async def test_lifecycle_calls_and_shapes(sim: Sim, http: httpx.AsyncClient) -> None:
    api = OecClient(http, RW)
    env = await api.create_environment(PROJECT_A, name="shop", environment_type="staging",
                                       idempotency_key="k1", branch="feature")
    assert (env.status, env.branch, env.project_id) == ("deploying", "feature", PROJECT_A)
    health = await api.get_environment_status(env.id)
    assert health.last_deploy is not None and health.last_deploy.status in ("queued", "running")
    sim.clock.advance(10)
    health = await api.get_environment_status(env.id)
    assert health.container_running and health.db_ready and health.http_ok
    assert health.last_deploy is not None and health.last_deploy.status == "completed"
    task = await api.get_task(health.last_deploy.id)
    assert task.finished and task.type == "deploy"
    logs = await api.get_logs(env.id, task_id=task.id, lines=5000)
    assert logs.task_id == task.id and logs.log
    assert [e.id for e in await api.list_environments(PROJECT_A)] == [env.id]
    assert await api.list_environments(PROJECT_A, status="stopped") == []
    patched = await api.update_environment(env.id, branch="release")
    assert patched.branch == "release" and (await api.get_environment(env.id)).branch == "release"
    accepted = await api.delete_environment(env.id)
    assert accepted is not None and accepted.status == "queued"
    sim.clock.advance(10)
    with pytest.raises(OecNotFoundError):
        await api.get_environment(env.id)
    assert (await api.get_task(accepted.task_id)).status == "completed"


async def test_logs_never_ask_for_more_than_1000_lines(sim: Sim, http: httpx.AsyncClient) -> None:
    api = OecClient(http, RW)
    env_id = await create(api)
    await api.get_logs(env_id, lines=5000)
    log = (await sim.admin.get("/requests")).json()
    assert log[-1]["query"].get("lines") in ("1000", 1000, ["1000"])


async def test_idempotent_create_is_replayed(sim: Sim, http: httpx.AsyncClient) -> None:
    api = OecClient(http, RW)
    first = await create(api, key="same")
    again = await create(api, key="same", name="renamed")  # the replay ignores the new body
    other = await create(api, key="different")
    assert first == again != other
    assert len(await api.list_environments(PROJECT_A)) == 2


async def test_401_invalid_key(http: httpx.AsyncClient) -> None:
    with pytest.raises(OecAuthError) as caught:
        await OecClient(http, UNKNOWN_KEY).get_environment(MISSING)
    assert caught.value.status == 401 and caught.value.code == "invalid_key"
    assert UNKNOWN_KEY not in str(caught.value) and UNKNOWN_KEY not in repr(caught.value)


async def test_403_read_only_key_cannot_write(http: httpx.AsyncClient) -> None:
    with pytest.raises(OecPermissionError) as caught:
        await create(OecClient(http, RO))
    assert caught.value.code == "read_only_key"
    assert RO not in str(caught.value)


async def test_404_unknown_environment(http: httpx.AsyncClient) -> None:
    with pytest.raises(OecNotFoundError) as caught:
        await OecClient(http, RW).get_environment(MISSING)
    assert caught.value.code == "not_found"


async def test_409_second_delete_names_the_running_task(http: httpx.AsyncClient) -> None:
    api = OecClient(http, RW)
    env_id = await create(api)
    with pytest.raises(OecConflictError) as caught:  # the first deploy is still running
        await api.delete_environment(env_id)
    assert caught.value.code == "task_in_progress" and caught.value.task_id


async def test_422_names_the_field(http: httpx.AsyncClient) -> None:
    with pytest.raises(OecValidationError) as caught:
        await create(OecClient(http, RW), name="x" * 256)
    assert caught.value.status == 422 and caught.value.field == "name"


async def test_422_in_the_top_level_envelope(start_sim: StartSim, clock: object) -> None:
    sim = await start_sim(clock=clock, error_envelope="toplevel")
    async with make_http_client(sim.base_url + API) as http:
        with pytest.raises(OecValidationError) as caught:
            await create(OecClient(http, RW), name="x" * 256)
    assert caught.value.field == "name"


async def test_429_waits_for_retry_after(start_sim: StartSim, clock: object) -> None:
    sim = await start_sim(clock=clock, write_limit=2)
    async with make_http_client(sim.base_url + API) as http:
        api = OecClient(http, RW)
        await create(api, key="a")
        await create(api, key="b")
        with pytest.raises(OecRateLimitError) as caught:
            await create(api, key="c")
        # The manual clock stands 10 s into a minute: the window resets in 50 s.
        assert caught.value.retry_after == 50
        assert len(await api.list_environments(PROJECT_A)) == 2  # reads have their own budget


async def test_429_with_only_the_body_field(start_sim: StartSim, clock: object) -> None:
    sim = await start_sim(clock=clock, write_limit=1, rate_limit_headers="body_only")
    async with make_http_client(sim.base_url + API) as http:
        api = OecClient(http, RW)
        await create(api, key="a")
        with pytest.raises(OecRateLimitError) as caught:
            await create(api, key="b")
    assert caught.value.retry_after == 50


async def test_429_without_any_hint_waits_past_the_next_minute(start_sim: StartSim, clock: object) -> None:
    sim = await start_sim(clock=clock, write_limit=1, rate_limit_headers="none")
    async with make_http_client(sim.base_url + API) as http:
        api = OecClient(http, RW)
        await create(api, key="a")
        with pytest.raises(OecRateLimitError) as caught:
            await create(api, key="b")
    assert 1 <= caught.value.retry_after <= 61


@pytest.mark.parametrize(("status", "cls"), [(503, OecServerError), (502, OecServerError), (500, OecServerError),
                                              (402, OecPaymentRequiredError)])
async def test_injected_server_failures(sim: Sim, http: httpx.AsyncClient, status: int, cls: type[OecError]) -> None:
    response = await sim.admin.post("/faults", json={"status": status, "count": 1})
    assert response.status_code == 201
    with pytest.raises(cls) as caught:
        await OecClient(http, RW).list_environments(PROJECT_A)
    assert caught.value.status == status


async def test_delete_answered_with_204(start_sim: StartSim, clock: object) -> None:
    sim = await start_sim(clock=clock, delete_status=204)
    async with make_http_client(sim.base_url + API) as http:
        api = OecClient(http, RW)
        env_id = await create(api)
        sim.clock.advance(10)
        assert await api.delete_environment(env_id) is None


async def test_connection_refused_is_a_transport_error() -> None:
    async with make_http_client("http://127.0.0.1:9/api/public/v1", timeout=2) as http:
        with pytest.raises(OecTransportError) as caught:
            await OecClient(http, RW).get_environment(MISSING)
    assert RW not in str(caught.value) and caught.value.status is None


async def test_timeout_is_a_transport_error(start_sim: StartSim, clock: object) -> None:
    sim = await start_sim(clock=clock, latency={"get_environment": 2.0})
    async with make_http_client(sim.base_url + API, timeout=0.3) as http:
        with pytest.raises(OecTransportError):
            await OecClient(http, RW).get_environment(MISSING)

