"""Backups in the simulator over real HTTP (docs/oec-api.md §11.5; §1 row 28): a manual backup runs
as a task, list/get/download/restore, the variants, OEC's own backups, failures and the admin API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from oec_simulator.__main__ import build_config, build_parser

from .sim_helpers import PROJECT_A, PROJECT_B, PROJECT_NOSERVER, RO, SCOPED_A, Sim, StartSim, auth


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


async def test_ref_variant_uses_the_reference_enums_and_total_pages(start_sim: StartSim, clock: Any) -> None:
    sim = await start_sim(clock=clock, auto_backups=False, backup_enums="ref", backup_page_field="total_pages")
    env_id = await _running_env(sim)
    backup = await _backup(sim, env_id, retention_type="daily")
    sim.clock.advance(1)
    page = (await sim.api.get(f"/environments/{env_id}/backups", params={"status": "running"})).json()
    assert [b["status"] for b in page["items"]] == ["running"]
    assert page["total_pages"] == 1 and "pages" not in page
    refused = await sim.api.get(f"/environments/{env_id}/backups", params={"status": "in_progress"})
    assert refused.status_code == 422
    refused = await sim.api.get(f"/environments/{env_id}/backups", params={"backup_type": "pre_upgrade"})
    assert refused.status_code == 422
    # REF has no "expired": a backup past its retention is gone from the list and answers 404.
    sim.clock.advance(86400 + 10)
    assert (await sim.api.get(f"/backups/{backup['id']}")).status_code == 404
    assert (await sim.api.get(f"/environments/{env_id}/backups")).json()["total"] == 0


async def test_without_the_create_route_the_post_answers_404(start_sim: StartSim, clock: Any) -> None:
    sim = await start_sim(clock=clock, backups_route="missing")
    env_id = await _running_env(sim)
    response = await sim.api.post(f"/environments/{env_id}/backups", json={})
    assert response.status_code == 404 and response.json()["detail"]["error"] == "not_found"
    assert (await sim.api.get(f"/environments/{env_id}/backups")).status_code == 200  # the list stays


async def test_retention_sets_expires_at_and_an_expired_backup_cannot_be_downloaded(quiet: Sim) -> None:
    sim = quiet
    env_id = await _running_env(sim)
    created = {}
    for retention in ("daily", "weekly", "monthly", "yearly", "permanent"):
        backup = await _backup(sim, env_id, retention_type=retention)
        created[retention] = backup
        sim.clock.advance(4)
    days: dict[str, int | None] = {}
    for retention, backup in created.items():
        view = (await sim.api.get(f"/backups/{backup['id']}")).json()
        if view["expires_at"] is None:
            days[retention] = None
            continue
        expires = datetime.fromisoformat(view["expires_at"])
        days[retention] = round((expires - datetime.fromisoformat(view["created_at"])).total_seconds() / 86400)
    assert days == {"daily": 1, "weekly": 7, "monthly": 30, "yearly": 365, "permanent": None}
    default = await _backup(sim, env_id)  # no retention_type: the API keeps it for good
    assert default["retention_type"] == "permanent" and default["expires_at"] is None
    sim.clock.advance(86400 + 60)
    daily = (await sim.api.get(f"/backups/{created['daily']['id']}")).json()
    assert daily["status"] == "expired"
    assert (await sim.api.get(f"/backups/{created['daily']['id']}/download")).status_code == 400
    restore = await sim.api.post(f"/backups/{created['daily']['id']}/restore",
                                 headers={"X-Confirm-Restore": "true", "Idempotency-Key": "k"})
    assert restore.status_code == 400
    expired = (await sim.api.get(f"/environments/{env_id}/backups", params={"status": "expired"})).json()
    assert [b["id"] for b in expired["items"]] == [created["daily"]["id"]]


async def test_backups_and_their_tasks_stay_readable_after_the_environment_is_deleted(quiet: Sim) -> None:
    sim = quiet
    env_id = await _running_env(sim)
    backup = await _backup(sim, env_id)
    sim.clock.advance(4)
    deleted = await sim.api.delete(f"/environments/{env_id}", headers={"X-Confirm-Delete": "true"})
    assert deleted.status_code == 202
    sim.clock.advance(5)
    assert (await sim.api.get(f"/environments/{env_id}")).status_code == 404
    listed = (await sim.api.get(f"/environments/{env_id}/backups")).json()
    assert [b["id"] for b in listed["items"]] == [backup["id"]]
    assert (await sim.api.get(f"/backups/{backup['id']}")).json()["status"] == "completed"
    assert (await sim.api.get(f"/backups/{backup['id']}/download")).status_code == 200
    assert (await sim.api.get(f"/deployments/{backup['task_id']}")).json()["status"] == "completed"
    # No new backup and no restore into a gone environment.
    assert (await sim.api.post(f"/environments/{env_id}/backups", json={})).status_code == 404
    restore = await sim.api.post(f"/backups/{backup['id']}/restore",
                                 headers={"X-Confirm-Restore": "true", "Idempotency-Key": "k"})
    assert restore.status_code == 409 and restore.json()["detail"]["error"] == "invalid_state"
    assert (await sim.api.get(f"/environments/{uuid.uuid4()}/backups")).status_code == 404


async def test_oec_makes_its_own_scheduled_and_pre_deploy_backups_unless_switched_off(sim: Sim) -> None:
    # Default on: a "scheduled" backup every 24 h after the first deploy, one before each redeploy.
    env_id = await _running_env(sim)
    deployed = (await sim.api.get(f"/environments/{env_id}/status")).json()["last_deploy"]["completed_at"]
    sim.clock.advance(86400 - 10)
    assert (await sim.api.get(f"/environments/{env_id}/backups")).json()["total"] == 0
    sim.clock.advance(10)
    [scheduled] = (await sim.api.get(f"/environments/{env_id}/backups")).json()["items"]
    assert (scheduled["backup_type"], scheduled["retention_type"]) == ("scheduled", "daily")
    taken = datetime.fromisoformat(scheduled["created_at"]) - datetime.fromisoformat(deployed)
    assert taken.total_seconds() == 86400
    deploy = await sim.api.post(f"/environments/{env_id}/deploy", headers={"Idempotency-Key": "d2"})
    assert deploy.status_code == 202
    types = [b["backup_type"] for b in (await sim.api.get(f"/environments/{env_id}/backups")).json()["items"]]
    assert types == ["pre_upgrade", "scheduled"]
    admin = (await sim.admin.get(f"/environments/{env_id}/backups")).json()
    assert admin["counts"]["creates"] == 0  # none of them was asked for
    # Switched off: nothing appears by itself, neither daily nor before a deploy.
    await sim.patch_config(auto_backups=False)
    sim.clock.advance(3 * 86400)
    await sim.api.post(f"/environments/{env_id}/deploy", headers={"Idempotency-Key": "d3"})
    assert (await sim.api.get(f"/environments/{env_id}/backups")).json()["total"] == 2


async def test_a_long_clock_jump_records_at_most_a_week_of_scheduled_backups(sim: Sim) -> None:
    env_id = await _running_env(sim)
    sim.clock.advance(60 * 86400 + 10)
    listed = (await sim.api.get(f"/environments/{env_id}/backups", params={"backup_type": "scheduled"})).json()
    assert listed["total"] == 7
    assert {b["status"] for b in listed["items"]} == {"completed", "expired"}


async def test_a_backup_planned_to_fail_fails_with_its_message(quiet: Sim) -> None:
    sim = quiet
    env_id = await _running_env(sim)
    patched = await sim.admin.patch(f"/environments/{env_id}", json={"backup_fail_message": "disk full"})
    assert patched.json()["fail_next_backup"] is True
    backup = await _backup(sim, env_id)
    sim.clock.advance(4)
    failed = (await sim.api.get(f"/backups/{backup['id']}")).json()
    assert (failed["status"], failed["error_message"], failed["total_size"]) == ("failed", "disk full", None)
    task = (await sim.api.get(f"/deployments/{backup['task_id']}")).json()
    assert (task["status"], task["error_message"]) == ("failed", "disk full")
    logs = (await sim.api.get(f"/environments/{env_id}/logs", params={"task_id": backup["task_id"]})).json()
    assert "pg_dump" in logs["log"]
    assert (await sim.api.get(f"/backups/{backup['id']}/download")).status_code == 400
    # Only the next one: the one after completes; fail_next_backups counts down.
    again = await _backup(sim, env_id)
    sim.clock.advance(4)
    assert (await sim.api.get(f"/backups/{again['id']}")).json()["status"] == "completed"
    await sim.patch_config(fail_next_backups=1)
    third = await _backup(sim, env_id)
    sim.clock.advance(4)
    assert (await sim.api.get(f"/backups/{third['id']}")).json()["status"] == "failed"
    assert (await sim.admin.get("/config")).json()["fail_next_backups"] == 0


async def test_admin_completes_or_fails_a_running_backup_now(start_sim: StartSim, clock: Any) -> None:
    sim = await start_sim(clock=clock, auto_backups=False, backup_seconds=3600)
    env_id = await _running_env(sim)
    first = await _backup(sim, env_id)
    sim.clock.advance(10)
    done = await sim.admin.post(f"/backups/{first['id']}/complete")
    assert done.status_code == 200 and done.json()["status"] == "completed"
    assert (await sim.api.get(f"/deployments/{first['task_id']}")).json()["status"] == "completed"
    second = await _backup(sim, env_id)  # the environment is free again
    failed = await sim.admin.post(f"/backups/{second['id']}/fail", json={"message": "storage unreachable"})
    assert (failed.json()["status"], failed.json()["error_message"]) == ("failed", "storage unreachable")
    assert (await sim.admin.post(f"/backups/{second['id']}/complete")).status_code == 409
    assert (await sim.admin.post(f"/backups/{uuid.uuid4()}/fail")).status_code == 404
    admin = (await sim.admin.get(f"/environments/{env_id}/backups")).json()
    assert admin["counts"]["creates"] == 2
    assert admin["counts"]["by_status"] == {"completed": 1, "failed": 1}


async def test_a_running_task_or_an_undeployed_environment_refuses_a_backup(quiet: Sim) -> None:
    sim = quiet
    env = await sim.create_env(PROJECT_A, name="fresh")
    never = await sim.api.post(f"/environments/{env['id']}/backups", json={})
    assert never.status_code == 409 and never.json()["detail"]["error"] == "task_in_progress"  # first deploy
    sim.clock.advance(5)
    await sim.api.post(f"/environments/{env['id']}/restart", headers={"Idempotency-Key": "r"})
    busy = await sim.api.post(f"/environments/{env['id']}/backups", json={})
    assert busy.status_code == 409 and busy.json()["detail"]["error"] == "task_in_progress"
    serverless = await sim.create_env(PROJECT_NOSERVER, name="nowhere")
    pending = await sim.api.post(f"/environments/{serverless['id']}/backups", json={})
    assert pending.status_code == 409 and pending.json()["detail"]["error"] == "invalid_state"
    bad = await sim.api.post(f"/environments/{env['id']}/backups", json={"backup_type": "scheduled"})
    assert bad.status_code == 422
    long_notes = await sim.api.post(f"/environments/{env['id']}/backups", json={"notes": "x" * 501})
    assert long_notes.status_code == 422


async def test_restore_only_into_its_own_environment_of_a_completed_backup(quiet: Sim) -> None:
    sim = quiet
    env_id = await _running_env(sim)
    other_id = await _running_env(sim, "other")
    backup = await _backup(sim, env_id)
    url = f"/backups/{backup['id']}/restore"
    headers = {"X-Confirm-Restore": "true", "Idempotency-Key": "k1"}
    early = await sim.api.post(url, headers=headers)
    assert early.status_code == 400 and early.json() == {"detail": "Backup is not in COMPLETED status"}
    sim.clock.advance(4)
    foreign = await sim.api.post(url, headers={**headers, "Idempotency-Key": "k2"},
                                 json={"target_environment_id": other_id})
    assert foreign.status_code == 422 and foreign.json()["detail"]["error"] == "cross_environment_restore"
    admin = (await sim.admin.get(f"/environments/{env_id}/backups")).json()
    assert admin["counts"]["restores"] == 0 and (await sim.admin.get(f"/environments/{other_id}/tasks")).json()[0][
        "type"] == "deploy"
    wrong = await sim.api.post(url, headers={"X-Confirm-Restore": "yes", "Idempotency-Key": "k3"})
    assert wrong.status_code == 400 and wrong.json()["detail"]["error"] == "confirmation_required"
    await sim.patch_config(confirm_status=422)
    missing = await sim.api.post(url, headers={"Idempotency-Key": "k4"})
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["header", "x-confirm-restore"]
    own = await sim.api.post(url, headers={**headers, "Idempotency-Key": "k5"}, json={"environment_id": env_id})
    assert own.status_code == 202
    sim.clock.advance(2)
    [safety] = (await sim.api.get(f"/environments/{env_id}/backups", params={"backup_type": "pre_restore"})).json()[
        "items"]
    assert safety["task_id"] == own.json()["task_id"] and safety["status"] == "completed"
    second = await sim.api.post(url, headers={**headers, "Idempotency-Key": "k6"})
    assert second.status_code == 409 and second.json()["detail"]["error"] == "task_in_progress"


async def test_keys_see_only_their_projects_backups_and_read_only_keys_cannot_write(quiet: Sim) -> None:
    sim = quiet
    env_id = await _running_env(sim, project=PROJECT_B)
    backup = await _backup(sim, env_id)
    scoped = auth(SCOPED_A)
    assert (await sim.api.get(f"/backups/{backup['id']}", headers=scoped)).status_code == 404
    assert (await sim.api.get(f"/environments/{env_id}/backups", headers=scoped)).status_code == 404
    ro = auth(RO)
    assert (await sim.api.get(f"/environments/{env_id}/backups", headers=ro)).status_code == 200
    refused = await sim.api.post(f"/environments/{env_id}/backups", json={}, headers=ro)
    assert refused.status_code == 403 and refused.json()["detail"]["error"] == "read_only_key"
    sim.clock.advance(4)
    refused = await sim.api.post(f"/backups/{backup['id']}/restore", headers={**ro, "X-Confirm-Restore": "true"})
    assert refused.status_code == 403
    stats = (await sim.admin.get("/stats")).json()
    assert stats["by_route"]["create_backup"] == {"201": 1, "403": 1}


async def test_deleting_an_environment_outside_the_api_cancels_its_running_backup(quiet: Sim) -> None:
    sim = quiet
    env_id = await _running_env(sim)
    backup = await _backup(sim, env_id)
    sim.clock.advance(1)
    assert (await sim.admin.delete(f"/environments/{env_id}")).status_code == 200
    assert (await sim.api.get(f"/backups/{backup['id']}")).json()["status"] == "cancelled"


async def test_a_lost_create_answer_still_created_the_backup(quiet: Sim) -> None:
    """A fault after the handler (``when: after``): the client sees a 502, the backup exists —
    the API has no idempotency key for this POST, so a blind retry would make a second one."""
    sim = quiet
    env_id = await _running_env(sim)
    await sim.admin.post("/faults", json={"kind": "error", "status": 502, "when": "after", "route": "create_backup"})
    lost = await sim.api.post(f"/environments/{env_id}/backups", json={"notes": "[k8s:uid-1]"})
    assert lost.status_code == 502
    listed = (await sim.api.get(f"/environments/{env_id}/backups")).json()
    assert [b["notes"] for b in listed["items"]] == ["[k8s:uid-1]"]


def test_cli_flags_set_the_backup_switches() -> None:
    args = build_parser().parse_args(
        ["--backup-seconds", "7", "--restore-seconds", "9", "--no-auto-backups", "--fail-next-backups", "2",
         "--fail-next-restores", "1",
         "--variant", "backup_enums=ref", "--variant", "backups_route=missing"]
    )
    config = build_config(args)
    assert (config.backup_seconds, config.restore_seconds, config.auto_backups, config.fail_next_backups,
            config.fail_next_restores) == (7.0, 9.0, False, 2, 1)
    assert (config.backup_enums, config.backups_route) == ("ref", "missing")
    assert build_config(build_parser().parse_args([])).auto_backups is True


async def test_a_running_backup_holds_off_a_delete_and_the_ref_variant_names_pre_deploy(
    start_sim: StartSim, clock: Any
) -> None:
    sim = await start_sim(clock=clock, backup_enums="ref")
    env_id = await _running_env(sim)
    backup = await _backup(sim, env_id)
    refused = await sim.api.delete(f"/environments/{env_id}", headers={"X-Confirm-Delete": "true"})
    assert refused.status_code == 409 and refused.json()["detail"]["task_id"] == backup["task_id"]
    sim.clock.advance(4)
    deploy = await sim.api.post(f"/environments/{env_id}/deploy", headers={"Idempotency-Key": "d"})
    assert deploy.status_code == 202
    types = [b["backup_type"] for b in (await sim.api.get(f"/environments/{env_id}/backups")).json()["items"]]
    assert types == ["pre_deploy", "manual"]


async def test_a_restore_planned_to_fail_fails_at_its_database_step_once(quiet: Sim) -> None:
    sim = quiet
    env_id = await _running_env(sim)
    backup = await _backup(sim, env_id)
    sim.clock.advance(4)
    await sim.patch_config(fail_next_restores=1, fail_restore_message="pg_restore: disk full")
    url = f"/backups/{backup['id']}/restore"
    first = (await sim.api.post(url, headers={"Idempotency-Key": "f1", "X-Confirm-Restore": "true"})).json()
    sim.clock.advance(5)
    task = (await sim.api.get(f"/deployments/{first['task_id']}")).json()
    assert (task["type"], task["status"], task["error_message"]) == ("restore", "failed", "pg_restore: disk full")
    logs = (await sim.api.get(f"/environments/{env_id}/logs", params={"task_id": first["task_id"]})).json()
    assert "pg_restore" in logs["log"]
    # Only the next one: the restore after it completes.
    second = (await sim.api.post(url, headers={"Idempotency-Key": "f2", "X-Confirm-Restore": "true"})).json()
    sim.clock.advance(5)
    assert (await sim.api.get(f"/deployments/{second['task_id']}")).json()["status"] == "completed"
    assert (await sim.admin.get("/config")).json()["fail_next_restores"] == 0
