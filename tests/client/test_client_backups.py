"""The client's backup calls against the simulator over real HTTP (docs/oec-api.md §11.5; §1 row
28): create, list, get, download, restore; the variants; errors; rate-limit class of each call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from oec_operator.metrics import endpoint_of
from oec_operator.oec.client import OecClient, make_http_client, request_priority
from oec_operator.oec.errors import (
    OecBackupsUnsupportedError,
    OecBadRequestError,
    OecConflictError,
    OecNotFoundError,
)
from oec_operator.oec.ratelimit import Priority, RateLimiter
from tests.client.helpers import requests_sent, running_environment
from tests.simulator.sim_helpers import API, RW, Sim, StartSim


@pytest.fixture
async def quiet(start_sim: StartSim, clock: Any) -> Sim:
    """A simulator without OEC's own backups, so counts are exact."""
    return await start_sim(clock=clock, auto_backups=False)


@pytest.fixture
async def http(quiet: Sim) -> AsyncIterator[httpx.AsyncClient]:
    client = make_http_client(quiet.base_url + API, timeout=5)
    yield client
    await client.aclose()






async def test_create_list_get_download_restore(quiet: Sim, http: httpx.AsyncClient) -> None:
    sim = quiet
    api = OecClient(http, RW)
    env_id = await running_environment(sim, api)
    since = max(int(e["seq"]) for e in await requests_sent(sim))
    backup = await api.create_backup(env_id, retention_type="monthly", notes="nightly [k8s:abc]")
    assert (backup.status, backup.backup_type, backup.environment_id) == ("pending", "manual", env_id)
    [post] = await requests_sent(sim, since)
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
    [restore] = [e for e in await requests_sent(sim) if e["path"].endswith("/restore")]
    assert (restore["idempotency_key"], restore["confirm_restore"]) == ("restore-1", "true")
    sim.clock.advance(4)
    task = await api.get_task(accepted.task_id)
    assert (task.type, task.status) == ("restore", "completed")
    safety = await api.list_backups(env_id, backup_type="pre_restore")
    assert safety.total == 1


async def test_the_reference_variant_parses_with_total_pages_and_unknown_values_kept(
    start_sim: StartSim, clock: Any
) -> None:
    sim = await start_sim(clock=clock, auto_backups=False, backup_enums="ref", backup_page_field="total_pages")
    async with make_http_client(sim.base_url + API, timeout=5) as http:
        api = OecClient(http, RW)
        env_id = await running_environment(sim, api)
        for _ in range(3):
            await api.create_backup(env_id, retention_type="weekly")
            sim.clock.advance(4)
        page = await api.list_backups(env_id, page=2, page_size=2, status="completed")
        assert (page.total, page.page, page.page_size, page.total_pages, len(page.items)) == (3, 2, 2, 2, 1)
        sim.clock.advance(1)
        [backup] = (await api.list_backups(env_id, page_size=1)).items
        accepted = await api.restore_backup(backup.id, idempotency_key="r")
        sim.clock.advance(1)
        [safety] = (await api.list_backups(env_id, page_size=1)).items
        # REF names no type for a restore's safety backup: the value is kept as sent.
        assert (safety.backup_type, safety.task_id) == ("pre_restore", accepted.task_id)
        running = await api.get_backup(backup.id)
        assert running.status == "completed"


async def test_a_missing_create_route_is_told_apart_from_a_gone_environment(start_sim: StartSim, clock: Any) -> None:
    sim = await start_sim(clock=clock, backups_route="missing")
    async with make_http_client(sim.base_url + API, timeout=5) as http:
        api = OecClient(http, RW)
        env_id = await running_environment(sim, api)
        with pytest.raises(OecBackupsUnsupportedError) as missing:
            await api.create_backup(env_id, retention_type="monthly")
        assert (missing.value.status, missing.value.code) == (404, "backups_unsupported")
        await sim.admin.delete(f"/environments/{env_id}")
        with pytest.raises(OecNotFoundError) as gone:
            await api.create_backup(env_id, retention_type="monthly")
        assert not isinstance(gone.value, OecBackupsUnsupportedError) and gone.value.code == "not_found"
        # An API that has the list but not the POST answers 405: unsupported as well.
        await sim.patch_config(backups_route="present")
        other = await running_environment(sim, api, "other")
        await sim.admin.post("/faults", json={"status": 405, "code": "method_not_allowed", "route": "create_backup"})
        with pytest.raises(OecBackupsUnsupportedError):
            await api.create_backup(other, retention_type="monthly")


async def test_backup_create_and_restore_spend_the_write_budget(quiet: Sim, http: httpx.AsyncClient) -> None:
    sim = quiet
    setup = OecClient(http, RW)
    env_id = await running_environment(sim, setup)
    fresh = "oec_live_rw_" + "budget_" * 4  # its own buckets on the API side
    assert (await sim.admin.post("/keys", json={"key": fresh})).status_code == 201
    limiter = RateLimiter()
    api = OecClient(http, fresh, limiter=limiter)

    def used() -> tuple[int, int]:
        return limiter.bucket(True).used(), limiter.bucket(False).used()

    writes, reads = used()
    backup = await api.create_backup(env_id, retention_type="daily")
    assert used() == (writes + 1, reads)
    sim.clock.advance(4)
    await api.list_backups(env_id)
    await api.get_backup(backup.id)
    await api.backup_download(backup.id)
    assert used() == (writes + 1, reads + 3)
    await api.restore_backup(backup.id, idempotency_key="r1")
    assert used() == (writes + 2, reads + 3)
    assert request_priority("POST", f"/backups/{backup.id}/restore", Priority.CHANGE) == Priority.CHANGE


async def test_arguments_out_of_the_api_range_are_refused_before_sending(quiet: Sim, http: httpx.AsyncClient) -> None:
    sim = quiet
    api = OecClient(http, RW)
    env_id = await running_environment(sim, api)
    since = max(int(e["seq"]) for e in await requests_sent(sim))
    with pytest.raises(ValueError, match="retention"):
        await api.create_backup(env_id, retention_type="forever")
    with pytest.raises(ValueError, match="notes"):
        await api.create_backup(env_id, retention_type="daily", notes="x" * 501)
    with pytest.raises(ValueError, match="expires_in"):
        await api.backup_download(env_id, expires_in=60)
    assert await requests_sent(sim, since) == []


def test_metrics_group_backup_paths_without_ids() -> None:
    backup_id = "5d9f0a52-7a1e-4c1b-9d2e-5b8f6a4e2c10"
    assert endpoint_of(f"/backups/{backup_id}/restore") == "/backups/{id}/restore"
    assert endpoint_of(f"/backups/{backup_id}/download") == "/backups/{id}/download"
    assert endpoint_of(f"/environments/{backup_id}/backups") == "/environments/{id}/backups"
