"""The final backup before a destroy (``docs/backups.md`` §4) and the backup freshness in
``status.backups`` (§5): the real delete and sync controllers, the real client, the simulator over HTTP."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import REGISTRY

from oec_operator import metrics
from oec_operator.settings import BACKUP_PLURAL
from tests.controller.conftest import Harness
from tests.controller.test_backup import Backups
from tests.controller.test_delete import running
from tests.controller.test_sync import environments, status
from tests.simulator.sim_helpers import API

PRODUCTION = {"environmentType": "production", "deletionPolicy": "Delete"}


def completed_total() -> float:
    return REGISTRY.get_sample_value("oec_operator_backups_total", {"result": "completed"}) or 0.0


async def requests(h: Harness, since: int = 0) -> list[dict[str, Any]]:
    """The simulator's request log after sequence number ``since``, oldest first."""
    return list((await h.sim.admin.get("/requests", params={"since": since})).json())


async def last_seq(h: Harness) -> int:
    return max((r["seq"] for r in await requests(h)), default=0)


async def manual_backups(h: Harness, env_id: str) -> list[dict[str, Any]]:
    listing = (await h.sim.admin.get(f"/environments/{env_id}/backups")).json()
    return [b for b in listing["backups"] if b["backup_type"] == "manual"]


def records(h: Harness) -> list[dict[str, Any]]:
    """The OdooBackup objects in the fake apiserver."""
    return list(h.kube.kinds[BACKUP_PLURAL].values())


def condition(h: Harness, type_: str, name: str = "shop") -> tuple[str | None, str | None, str]:
    found = status(h, name).condition(type_) or {}
    return found.get("status"), found.get("reason"), str(found.get("message", ""))


def annotate_skip(body: dict[str, Any]) -> None:
    body["metadata"]["annotations"]["oec.sh/skip-final-backup"] = "true"


async def test_a_production_delete_backs_up_records_then_destroys(harness: Harness) -> None:
    h = harness
    body = await running(h, "shop", **PRODUCTION)
    env_id = str(status(h, "shop").environment_id)
    before, seq = completed_total(), await last_seq(h)
    first = await h.delete_step(body)
    assert not first.done and "taking the final backup" in first.message
    assert condition(h, "Reconciling")[:2] == ("True", "FinalBackup")
    assert [e["name"] for e in await environments(h)] == ["shop"]  # not destroyed while it runs
    h.sim.clock.advance(5)  # the backup task completes
    second = await h.delete_step(body)
    assert not second.done and "destroying" in second.message
    [backup] = await manual_backups(h, env_id)
    assert backup["status"] == "completed"
    # Ordered: the create, then the read that showed it completed, then the DELETE.
    log = [(r["method"], r["path"].removeprefix(API)) for r in await requests(h, seq)
           if "/backups" in r["path"] or r["method"] == "DELETE"]
    assert log[0] == ("POST", f"/environments/{env_id}/backups")
    assert log[-2:] == [("GET", f"/backups/{backup['id']}"), ("DELETE", f"/environments/{env_id}")]
    completed = [e for n, e in h.events if e.reason == "FinalBackupCompleted"]
    assert len(completed) == 1 and backup["id"] in completed[0].message
    assert completed_total() == before + 1
    [record] = records(h)
    assert record["spec"]["backupId"] == backup["id"] and record["spec"]["environmentRef"] == {"name": "shop"}
    assert record["metadata"]["labels"]["oec.sh/final-backup"] == "true"
    assert "ownerReferences" not in record["metadata"]  # it outlives the resource
    final = status(h, "shop").final_backup
    assert final is not None and final.phase == "Completed" and final.backup_id == backup["id"]
    h.sim.clock.advance(10)
    assert (await h.delete_step(body)).done
    assert await environments(h) == []
    assert [b["status"] for b in await manual_backups(h, env_id)] == ["completed"]  # readable once it is gone
    assert len(records(h)) == 1 and completed_total() == before + 1  # recorded once


async def test_a_lost_answer_to_the_backup_post_makes_one_backup(harness: Harness) -> None:
    h = harness
    body = await running(h, "shop", **PRODUCTION)
    env_id = str(status(h, "shop").environment_id)
    rule = {"kind": "error", "status": 503, "route": "create_backup", "when": "after", "count": 1}
    assert (await h.sim.admin.post("/faults", json=rule)).status_code == 201
    lost = await h.delete_step(body)  # the backup started, the answer was lost
    assert not lost.done
    assert status(h, "shop").final_backup is not None  # the intent was recorded before the POST
    h.sim.clock.advance(1)
    await h.delete_step(body)  # looked up by its marker, not posted again
    h.sim.clock.advance(5)
    assert "destroying" in (await h.delete_step(body)).message
    assert len(await manual_backups(h, env_id)) == 1
    posts = [r for r in await requests(h) if r["method"] == "POST" and r["path"].endswith("/backups")]
    assert len(posts) == 1


async def test_a_failed_backup_stalls_and_keeps_the_environment_until_the_annotation(harness: Harness) -> None:
    h = harness
    body = await running(h, "shop", **PRODUCTION)
    await h.sim.patch_config(fail_next_backups=1, fail_backup_message="storage quota exceeded")
    await h.delete_step(body)
    h.sim.clock.advance(5)
    step = await h.delete_step(body)
    assert not step.done
    stalled, reason, message = condition(h, "Stalled")
    assert (stalled, reason) == ("True", "FinalBackupFailed")
    assert "oec.sh/skip-final-backup" in message and "storage quota exceeded" in message
    assert "Warning" in [e.type for n, e in h.events if e.reason == "FinalBackupFailed"]
    again = await h.delete_step(body)  # stays stalled: no new backup, no DELETE
    assert not again.done and "oec.sh/skip-final-backup" in again.message
    assert [e["name"] for e in await environments(h)] == ["shop"]
    assert not [r for r in await requests(h) if r["method"] == "DELETE"]
    assert records(h) == []
    annotate_skip(body)
    step = await h.delete_step(body)  # at once
    assert "destroying" in step.message
    assert "FinalBackupSkipped" in h.reasons("shop")
    h.sim.clock.advance(10)
    assert (await h.delete_step(body)).done


async def test_a_failed_final_backup_is_logged_once_and_says_both_ways_out(
        harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    h = harness
    body = await running(h, "shop", **PRODUCTION)
    await h.sim.patch_config(fail_next_backups=1, fail_backup_message="simulated failure.")
    await h.delete_step(body)
    h.sim.clock.advance(5)
    with caplog.at_level(logging.INFO, logger="tests.controller"):
        steps = [await h.delete_step(body) for _ in range(3)]
    message = condition(h, "Stalled")[2]
    assert ".;" not in message and "simulated failure" in message
    assert 'oec.sh/final-backup-requested-at to a new value to try again' in message
    assert 'oec.sh/skip-final-backup: "true" to delete without it' in message
    assert all(s.message == message for s in steps)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "FinalBackupFailed" in r.getMessage()]
    assert len(warnings) == 1  # the stall is logged when it began, not at every retry


async def test_a_new_final_backup_token_takes_a_new_backup_after_a_failure(harness: Harness) -> None:
    h = harness
    body = await running(h, "shop", **PRODUCTION)
    env_id = str(status(h, "shop").environment_id)
    await h.sim.patch_config(fail_next_backups=2, fail_backup_message="storage quota exceeded")
    await h.delete_step(body)
    h.sim.clock.advance(5)
    await h.delete_step(body)
    assert condition(h, "Stalled")[1] == "FinalBackupFailed"
    annotations = body["metadata"]["annotations"]
    annotations["oec.sh/final-backup-requested-at"] = "try-1"
    assert "taking the final backup" in (await h.delete_step(body)).message  # a new backup, not the failed one
    h.sim.clock.advance(5)
    await h.delete_step(body)  # the second one failed too: stalled again
    assert condition(h, "Stalled")[1] == "FinalBackupFailed"
    seq = await last_seq(h)
    for _ in range(2):  # the same token again does nothing
        assert not (await h.delete_step(body)).done
    assert not [r for r in await requests(h, seq) if r["method"] in ("POST", "DELETE")]
    annotations["oec.sh/final-backup-requested-at"] = "try-2"
    await h.delete_step(body)
    h.sim.clock.advance(5)
    assert "destroying" in (await h.delete_step(body)).message
    backups = await manual_backups(h, env_id)
    assert [b["status"] for b in backups].count("failed") == 2 and len(backups) == 3
    [completed] = [b for b in backups if b["status"] == "completed"]
    assert status(h, "shop").final_backup.backup_id == completed["id"]  # type: ignore[union-attr]
    assert [r["spec"]["backupId"] for r in records(h)] == [completed["id"]]
    assert [r for r in await requests(h, seq) if r["method"] == "DELETE"]


async def test_a_backup_over_its_timeout_stalls(harness: Harness) -> None:
    h = harness
    body = await running(h, "shop", **PRODUCTION, finalBackup={"timeoutSeconds": 600})
    await h.sim.patch_config(backup_seconds=7200)
    await h.delete_step(body)
    final = body["status"]["finalBackup"]
    assert final["phase"] in ("Pending", "Running")
    final["requestedAt"] = "2026-01-01T00:00:00Z"  # requested long ago
    h.runtime.status.forget(body["metadata"]["uid"])  # the body is the truth
    step = await h.delete_step(body)
    assert not step.done
    stalled, reason, message = condition(h, "Stalled")
    assert (stalled, reason) == ("True", "FinalBackupTimedOut")
    assert "600" in message and "oec.sh/skip-final-backup" in message
    assert [e["name"] for e in await environments(h)] == ["shop"]
    seq = await last_seq(h)
    assert not (await h.delete_step(body)).done
    assert await requests(h, seq) == []  # the stall looks again without an API call
    assert len([e for n, e in h.events if e.reason == "FinalBackupTimedOut"]) == 1


async def test_the_backup_route_missing_stalls_rather_than_deleting_without_it(harness: Harness) -> None:
    h = harness
    body = await running(h, "shop", **PRODUCTION)
    await h.sim.patch_config(backups_route="missing")
    step = await h.delete_step(body)
    assert not step.done
    stalled, reason, message = condition(h, "Stalled")
    assert (stalled, reason) == ("True", "FinalBackupUnsupported") and "oec.sh/skip-final-backup" in message
    for _ in range(3):
        assert not (await h.delete_step(body)).done
    assert [e["name"] for e in await environments(h)] == ["shop"]
    posts = [r for r in await requests(h) if r["method"] == "POST" and r["path"].endswith("/backups")]
    assert len(posts) == 1  # not sent again at every step: each would spend the write budget


async def test_a_running_task_makes_the_backup_wait(harness: Harness) -> None:
    h = harness
    body = await running(h, "shop", **PRODUCTION)
    env_id = str(status(h, "shop").environment_id)
    await h.sim.api.post(f"/environments/{env_id}/restart", headers={"Idempotency-Key": "busy"})
    step = await h.delete_step(body)  # 409: waits, no failure
    assert not step.done and condition(h, "Stalled")[0] is None
    assert await manual_backups(h, env_id) == []
    h.sim.clock.advance(5)
    await h.delete_step(body)
    h.sim.clock.advance(5)
    assert "destroying" in (await h.delete_step(body)).message
    assert len(await manual_backups(h, env_id)) == 1


async def test_orphan_and_the_crd_uninstall_take_no_backup_and_send_no_delete(
        make_harness: Callable[..., Harness]) -> None:
    for crd_deleting, spec in ((False, {"environmentType": "production", "deletionPolicy": "Orphan"}),
                               (True, PRODUCTION)):
        h = make_harness()
        h.kube.crd_deleting = crd_deleting
        body = await running(h, f"shop-{int(crd_deleting)}", **spec)
        env_id, seq = str(status(h, body["metadata"]["name"]).environment_id), await last_seq(h)
        assert (await h.delete_step(body)).done
        assert await manual_backups(h, env_id) == []
        assert not [r for r in await requests(h, seq) if r["method"] == "DELETE" or r["path"].endswith("/backups")]
        assert records(h) == []


async def test_a_development_environment_takes_a_final_backup_only_when_enabled(harness: Harness) -> None:
    h = harness
    plain = await running(h, "dev")
    enabled = await running(h, "dev2", finalBackup={"enabled": True})
    assert "destroying" in (await h.delete_step(plain)).message
    assert "taking the final backup" in (await h.delete_step(enabled)).message
    [record_env] = [str(status(h, n).environment_id) for n in ("dev2",)]
    assert len(await manual_backups(h, record_env)) == 1
    assert await manual_backups(h, str(status(h, "dev").environment_id)) == []


async def test_an_environment_never_created_needs_no_backup(harness: Harness) -> None:
    body = harness.add("shop", **PRODUCTION)
    assert (await harness.delete_step(body)).done
    assert not [r for r in await requests(harness) if r["path"].endswith("/backups")]


# ------------------------------------------------------------------------------------- freshness

async def test_status_backups_shows_oecs_own_scheduled_backup_and_is_not_read_every_poll(
        make_harness: Callable[..., Harness]) -> None:
    h = make_harness()
    body = await running(h, "shop")
    env_id = str(status(h, "shop").environment_id)
    h.sim.clock.advance(2 * 86400)  # OEC's own daily backups were taken meanwhile
    await h.list_project()
    body["status"]["backups"] = {"checkedAt": "2026-01-01T00:00:00Z"}  # last read long ago
    h.runtime.status.forget(body["metadata"]["uid"])  # the body is the truth
    seq = await last_seq(h)
    for _ in range(5):
        await h.poll(body)
        h.sim.clock.advance(60)
    latest = status(h, "shop").backups
    assert latest is not None and latest.latest is not None and latest.checked_at
    assert latest.latest.type == "scheduled" and latest.latest.status == "completed"
    listed = (await h.sim.admin.get(f"/environments/{env_id}/backups")).json()["backups"]
    assert latest.latest.id == next(b["id"] for b in listed if b["status"] == "completed")
    reads = [r for r in await requests(h, seq) if r["method"] == "GET"
             and r["path"].endswith(f"{env_id}/backups")]
    assert len(reads) == 1  # read once in six hours, not at each of the polls


async def test_a_pre_destroy_backup_oec_took_itself_is_recorded_after_the_delete(harness: Harness) -> None:
    """Whether OEC.sh takes a ``pre_destroy`` backup by itself is unknown (``docs/backups.md`` §4):
    when one shows up, it is recorded too, after the DELETE (never asked for before it)."""
    h = harness
    body = await running(h, "shop", **PRODUCTION)
    env_id = str(status(h, "shop").environment_id)
    await h.delete_step(body)
    h.sim.clock.advance(5)
    assert "destroying" in (await h.delete_step(body)).message
    store = h.sim.state.store
    store._record_backup(store.environments[env_id], "pre_destroy", h.sim.clock.now())  # as OEC.sh would
    h.sim.clock.advance(10)
    assert (await h.delete_step(body)).done
    names = sorted(r["metadata"]["name"] for r in records(h))
    assert len(names) == 2 and "-final-" in names[0] and "-pre-destroy-" in names[1]
    assert "PreDestroyBackup" in h.reasons("shop")


async def test_no_backup_is_posted_while_its_intent_cannot_be_recorded(harness: Harness) -> None:
    h = harness
    body = await running(h, "shop", **PRODUCTION)
    env_id = str(status(h, "shop").environment_id)
    h.kube.fail_status_writes = 503
    step = await h.delete_step(body)
    assert not step.done and "cannot record" in step.message
    assert await manual_backups(h, env_id) == []
    h.kube.fail_status_writes = None
    assert "taking the final backup" in (await h.delete_step(body)).message
    assert len(await manual_backups(h, env_id)) == 1


async def test_the_final_backup_record_does_not_bring_back_the_age_of_a_deleted_environment(harness: Harness) -> None:
    """``oec_operator_latest_backup_age_seconds`` drops a deleted environment's series; its final
    backup's OdooBackup record (observed after the environment is gone) must not add it again, or
    a backup-age alert fires for an environment that no longer exists, its age growing forever."""
    h = harness
    body = await running(h, "shop", **PRODUCTION)
    await h.delete_step(body)
    h.sim.clock.advance(5)
    await h.delete_step(body)
    h.sim.clock.advance(10)
    assert (await h.delete_step(body)).done
    del h.kube.objects[("team", "shop")]  # the finalizer is gone: the apiserver removes the object
    series = [s for s in next(iter(metrics.LATEST_BACKUPS.collect())).samples if s.labels["environment"] == "shop"]
    assert series == []
    [record] = records(h)
    backups = Backups(h)
    await backups.step(record)
    assert record["status"]["phase"] == "Completed"
    series = [s for s in next(iter(metrics.LATEST_BACKUPS.collect())).samples
              if (s.labels["namespace"], s.labels["environment"]) == ("team", "shop")]
    assert series == []


async def test_a_final_backup_that_completed_before_its_timeout_is_not_reported_timed_out(harness: Harness) -> None:
    """The backup completed within ``timeoutSeconds``, but the deletion's next look came after the
    timeout (looks are up to a poll interval apart): it must be read and recorded, not declared
    timed out (that stalled the deletion, and the escape hatch then destroyed the environment
    without recording the completed backup)."""
    h = harness
    body = await running(h, "shop", **PRODUCTION, finalBackup={"timeoutSeconds": 60})
    env_id = str(status(h, "shop").environment_id)
    await h.delete_step(body)  # the POST
    h.sim.clock.advance(5)  # the backup completes, 5 s after it was asked for
    # The next look comes 61 s after the request (the operator's clock).
    long_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=61)
    body["status"]["finalBackup"]["requestedAt"] = long_ago.strftime("%Y-%m-%dT%H:%M:%SZ")
    h.runtime.status.forget(body["metadata"]["uid"])  # the body is the truth
    step = await h.delete_step(body)
    assert "destroying" in step.message, step.message
    assert condition(h, "Stalled")[0] != "True"
    [backup] = await manual_backups(h, env_id)
    [record] = records(h)
    assert record["spec"]["backupId"] == backup["id"]


async def test_a_final_backup_is_counted_once_also_when_its_record_is_observed(harness: Harness) -> None:
    """``oec_operator_backups_total{result="completed"}`` counts each backup once: the deletion
    counts the final backup; the OdooBackup recording it, observed Completed at its first read,
    must not count it a second time."""
    h = harness
    body = await running(h, "shop", **PRODUCTION)
    before = completed_total()
    await h.delete_step(body)
    h.sim.clock.advance(5)
    await h.delete_step(body)
    assert completed_total() == before + 1
    [record] = records(h)
    await Backups(h).step(record)
    assert record["status"]["phase"] == "Completed"
    assert completed_total() == before + 1


async def test_an_odoo_backup_that_completes_shows_in_the_environments_status_at_its_next_reconcile(
        harness: Harness) -> None:
    h = harness
    body = await running(h, "shop")
    env_id = str(status(h, "shop").environment_id)
    state = h.state(body)
    h.runtime.wakers["team/shop"] = state.mark_changed  # its poll loop runs (SyncController.run)
    await h.poll(body)
    b = Backups(h)
    obk = b.add("before-upgrade")
    await b.step(obk)
    h.sim.clock.advance(5)
    seq = await last_seq(h)
    await b.step(obk)  # seen completing
    assert obk["status"]["phase"] == "Completed"
    assert state.changed  # the environment was woken
    for _ in range(3):
        await h.poll(body)
        h.sim.clock.advance(60)
    backups = status(h, "shop").backups
    assert backups is not None and backups.latest is not None
    assert backups.latest.id == obk["status"]["backupId"] and backups.latest.status == "completed"
    reads = [r for r in await requests(h, seq) if r["method"] == "GET" and r["path"].endswith(f"{env_id}/backups")]
    assert len(reads) == 1  # one read for the completion, not one at every poll
