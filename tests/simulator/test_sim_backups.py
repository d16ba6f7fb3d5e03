"""Backups in the simulator over real HTTP (docs/oec-api.md §11.5; §1 row 28): a manual backup runs
as a task, list/get/download/restore, the variants, OEC's own backups, failures and the admin API."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from .sim_helpers import PROJECT_A, Sim, StartSim


async def _running_env(sim: Sim, name: str = "shop", project: str = PROJECT_A) -> str:
    env = await sim.create_env(project, name=name)
    sim.clock.advance(5)
    return str(env["id"])


async def _backup(sim: Sim, env_id: str, **body: Any) -> dict[str, Any]:
    response = await sim.api.post(f"/environments/{env_id}/backups", json={"backup_type": "manual", **body})
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


@pytest.fixture
async def quiet(start_sim: StartSim, clock: Any) -> Sim:
    """A simulator without OEC's own backups, so counts are exact."""
    return await start_sim(clock=clock, auto_backups=False)


async def test_manual_backup_runs_as_a_task_then_completes_with_sizes(quiet: Sim) -> None:
    sim = quiet
    env_id = await _running_env(sim)
    backup = await _backup(sim, env_id, retention_type="weekly", notes="before upgrade")
    assert (backup["status"], backup["backup_type"], backup["environment_id"]) == ("pending", "manual", env_id)
    assert backup["total_size"] is None and backup["task_id"]
    sim.clock.advance(1)
    running = (await sim.api.get(f"/backups/{backup['id']}")).json()
    assert running["status"] == "in_progress"
    task = (await sim.api.get(f"/deployments/{backup['task_id']}")).json()
    assert (task["type"], task["status"]) == ("backup", "running")
    # One task per environment: a deploy and a second backup are refused while it runs.
    deploy = await sim.api.post(f"/environments/{env_id}/deploy", headers={"Idempotency-Key": "d1"})
    assert deploy.status_code == 409 and deploy.json()["detail"]["error"] == "task_in_progress"
    second = await sim.api.post(f"/environments/{env_id}/backups", json={})
    assert second.status_code == 409
    assert second.json()["detail"]["error"] == "backup_in_progress"
    assert second.json()["detail"]["backup_id"] == backup["id"]
    sim.clock.advance(3)
    done = (await sim.api.get(f"/backups/{backup['id']}")).json()
    assert done["status"] == "completed"
    assert done["total_size"] == done["database_size"] + done["filestore_size"] > 0
    assert done["notes"] == "before upgrade" and done["retention_type"] == "weekly"
    assert done["expires_at"] is not None and done["completed_at"] is not None
    env = (await sim.api.get(f"/environments/{env_id}")).json()
    assert env["status"] == "running"


async def test_list_is_newest_first_paged_and_filtered(quiet: Sim) -> None:
    sim = quiet
    env_id = await _running_env(sim)
    ids = []
    for _ in range(3):
        ids.append((await _backup(sim, env_id))["id"])
        sim.clock.advance(4)
    page = (await sim.api.get(f"/environments/{env_id}/backups", params={"page_size": 2})).json()
    assert [b["id"] for b in page["items"]] == ids[::-1][:2]
    assert (page["total"], page["page"], page["page_size"], page["pages"]) == (3, 1, 2, 2)
    last = (await sim.api.get(f"/environments/{env_id}/backups", params={"page_size": 2, "page": 2})).json()
    assert [b["id"] for b in last["items"]] == [ids[0]]
    done = (await sim.api.get(f"/environments/{env_id}/backups", params={"status": "completed"})).json()
    assert done["total"] == 3
    none = (await sim.api.get(f"/environments/{env_id}/backups", params={"backup_type": "scheduled"})).json()
    assert none["total"] == 0 and none["items"] == []
    bad = await sim.api.get(f"/environments/{env_id}/backups", params={"status": "running"})
    assert bad.status_code == 422  # a REF status on the MCP default


async def test_download_gives_presigned_links_only_for_completed_backups(quiet: Sim) -> None:
    sim = quiet
    env_id = await _running_env(sim)
    backup = await _backup(sim, env_id, include_filestore=False)
    early = await sim.api.get(f"/backups/{backup['id']}/download")
    assert early.status_code == 400 and early.json() == {"detail": "Backup is not in COMPLETED status"}
    sim.clock.advance(4)
    answer = await sim.api.get(f"/backups/{backup['id']}/download", params={"expires_in": 600})
    assert answer.status_code == 200, answer.text
    links = answer.json()
    assert links["expires_in"] == 600 and links["filestore_url"] is None
    query = parse_qs(urlparse(links["database_url"]).query)
    assert query["X-Amz-Expires"] == ["600"] and len(query["X-Amz-Signature"][0]) == 64
    for value in (100, 4000):
        refused = await sim.api.get(f"/backups/{backup['id']}/download", params={"expires_in": value})
        assert refused.status_code == 422
    # The links never reach the request log (it records requests, not answers).
    log = (await sim.admin.get("/requests")).json()
    assert links["database_url"] not in str(log) and query["X-Amz-Signature"][0] not in str(log)


async def test_restore_takes_a_safety_backup_then_runs_a_restore_task(quiet: Sim) -> None:
    sim = quiet
    env_id = await _running_env(sim)
    backup = await _backup(sim, env_id)
    sim.clock.advance(4)
    url = f"/backups/{backup['id']}/restore"
    unconfirmed = await sim.api.post(url, headers={"Idempotency-Key": "r1"})
    assert unconfirmed.status_code == 400 and unconfirmed.json()["detail"]["error"] == "confirmation_required"
    headers = {"Idempotency-Key": "r1", "X-Confirm-Restore": "true"}
    accepted = await sim.api.post(url, headers=headers)
    assert accepted.status_code == 202, accepted.text
    body = accepted.json()
    assert (body["environment_id"], body["backup_id"], body["status"]) == (env_id, backup["id"], "queued")
    replay = await sim.api.post(url, headers=headers)
    assert replay.json()["task_id"] == body["task_id"]  # the idempotency key replays, no second restore
    busy = await sim.api.post(f"/environments/{env_id}/restart", headers={"Idempotency-Key": "x"})
    assert busy.status_code == 409 and busy.json()["detail"]["task_id"] == body["task_id"]
    sim.clock.advance(4)
    task = (await sim.api.get(f"/deployments/{body['task_id']}")).json()
    assert (task["type"], task["status"]) == ("restore", "completed")
    safety = (await sim.api.get(f"/environments/{env_id}/backups", params={"backup_type": "pre_restore"})).json()
    assert safety["total"] == 1 and safety["items"][0]["status"] == "completed"
    admin = (await sim.admin.get(f"/environments/{env_id}/backups")).json()
    assert admin["counts"]["creates"] == 1 and admin["counts"]["restores"] == 1
