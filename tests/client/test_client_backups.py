"""The client's backup calls against the simulator over real HTTP (docs/oec-api.md §11.5; §1 row
28): create, list, get, download, restore; the variants; errors; rate-limit class of each call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from oec_operator.oec.client import OecClient, make_http_client
from oec_operator.oec.errors import OecBadRequestError, OecConflictError
from tests.simulator.sim_helpers import API, PROJECT_A, RW, Sim, StartSim


@pytest.fixture
async def quiet(start_sim: StartSim, clock: Any) -> Sim:
    """A simulator without OEC's own backups, so counts are exact."""
    return await start_sim(clock=clock, auto_backups=False)


@pytest.fixture
async def http(quiet: Sim) -> AsyncIterator[httpx.AsyncClient]:
    client = make_http_client(quiet.base_url + API, timeout=5)
    yield client
    await client.aclose()


async def _running(sim: Sim, api: OecClient, name: str = "shop") -> str:
    env = await api.create_environment(PROJECT_A, name=name, environment_type="development", idempotency_key=name)
    sim.clock.advance(5)
    return env.id


async def _sent(sim: Sim, since: int = 0) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = (await sim.admin.get("/requests", params={"since": since})).json()
    return entries


async def test_create_list_get_download_restore(quiet: Sim, http: httpx.AsyncClient) -> None:
    sim = quiet
    api = OecClient(http, RW)
    env_id = await _running(sim, api)
    since = max(int(e["seq"]) for e in await _sent(sim))
    backup = await api.create_backup(env_id, retention_type="monthly", notes="nightly [k8s:abc]")
    assert (backup.status, backup.backup_type, backup.environment_id) == ("pending", "manual", env_id)
    [post] = await _sent(sim, since)
    assert post["body"] == {"backup_type": "manual", "include_filestore": True, "retention_type": "monthly",
                            "notes": "nightly [k8s:abc]"}
    assert post["idempotency_key"] is None and post["x_idempotency_key"] is None  # the API has none here
    with pytest.raises(OecConflictError) as busy:
        await api.create_backup(env_id, retention_type="daily")
    assert busy.value.code == "backup_in_progress" and busy.value.task_id == backup.task_id
    with pytest.raises(OecBadRequestError, match="not in COMPLETED status"):
        await api.backup_download(backup.id)
    sim.clock.advance(4)
    done = await api.get_backup(backup.id)
    assert done.status == "completed" and done.total_size and done.expires_at is not None
    page = await api.list_backups(env_id)
    assert ([b.id for b in page.items], page.total, page.total_pages) == ([backup.id], 1, 1)
    links = await api.backup_download(backup.id, expires_in=900)
    assert links.expires_in == 900 and "X-Amz-Signature=" in links.database_url
    assert "X-Amz-Signature" not in repr(links)  # the links are bearer credentials
    accepted = await api.restore_backup(backup.id, idempotency_key="restore-1")
    assert (accepted.environment_id, accepted.backup_id) == (env_id, backup.id)
    [restore] = [e for e in await _sent(sim) if e["path"].endswith("/restore")]
    assert (restore["idempotency_key"], restore["confirm_restore"]) == ("restore-1", "true")
    sim.clock.advance(4)
    task = await api.get_task(accepted.task_id)
    assert (task.type, task.status) == ("restore", "completed")
    safety = await api.list_backups(env_id, backup_type="pre_restore")
    assert safety.total == 1
