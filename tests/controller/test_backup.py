"""``OdooBackup`` (``docs/backups.md`` §1): one backup per object although the API's create has no
idempotency key, waits that are not failures, the terminal phases; the real controller and OEC
client against the in-process simulator over HTTP, the apiserver an in-memory fake."""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Mapping
from typing import Any

import pytest
from prometheus_client import REGISTRY

from oec_operator import metrics
from oec_operator.controller.backup import BackupController, BackupHandle, BackupState
from oec_operator.controller.sync import spread
from oec_operator.domain.outcome import Event
from oec_operator.kube.client import KubeError
from oec_operator.models.backups import OdooBackupStatus
from oec_operator.runtime import Runtime
from oec_operator.settings import BACKUP_PLURAL
from oec_simulator.clock import ManualClock
from tests.controller.conftest import FakeKube, Harness, operator_config

#: The simulator's backup takes 3 s (``backup_seconds``); environments deploy in 5 s.
DONE = 10.0


@pytest.fixture
def clock() -> ManualClock:
    """The simulator's clock at the wall clock's time (the operator's ``now`` and the API's times agree)."""
    return ManualClock(start=time.time())


class Backups:
    """The ``OdooBackup`` controller over the harness's fake apiserver; ``events`` per object."""

    def __init__(self, h: Harness, runtime: Runtime | None = None) -> None:
        self.h = h
        self.controller = BackupController(runtime or h.runtime)
        self.events: list[tuple[str, Event]] = []
        self.states: dict[str, BackupState] = {}

    def add(self, name: str, env: str = "shop", **spec: Any) -> dict[str, Any]:
        body = {"apiVersion": "oec.sh/v1alpha1", "kind": "OdooBackup",
                "metadata": {"name": name, "namespace": "team"},
                "spec": {"environmentRef": {"name": env}, **spec}}
        return self.h.kube.kinds[BACKUP_PLURAL].get(("team", name)) or _create_now(self.h.kube, body)

    async def step(self, body: Mapping[str, Any]) -> float | None:
        uid = body["metadata"]["uid"]
        state = self.states.setdefault(uid, BackupState())
        name = body["metadata"]["name"]
        handle = BackupHandle(body=body, state=state, events=lambda e: self.events.append((name, e)),
                              logger=logging.getLogger("tests.backup"))
        return await self.controller.step(handle)

    def reasons(self, name: str) -> list[str]:
        return [e.reason for n, e in self.events if n == name]


def _create_now(kube: FakeKube, body: dict[str, Any]) -> dict[str, Any]:
    uid = f"0000000b-0000-4000-8000-{len(kube.kinds[BACKUP_PLURAL]) + 1:012d}"
    body["metadata"].update(uid=uid, generation=1, creationTimestamp="2026-12-01T00:00:00Z")
    body["status"] = {}
    kube.kinds[BACKUP_PLURAL][("team", body["metadata"]["name"])] = body
    return body


def status(body: Mapping[str, Any]) -> OdooBackupStatus:
    return OdooBackupStatus.from_body(body.get("status"))


def condition(body: Mapping[str, Any], type_: str) -> tuple[str | None, str | None, str]:
    c = status(body).condition(type_) or {}
    return c.get("status"), c.get("reason"), str(c.get("message", ""))


async def running_env(h: Harness, name: str = "shop") -> str:
    """An OdooEnvironment whose environment runs (created and deployed); its OEC id."""
    body = h.add(name)
    await h.change(body)
    h.sim.clock.advance(DONE)
    await h.list_project()
    await h.poll(body)
    environment_id = body["status"]["environmentId"]
    assert isinstance(environment_id, str)
    return environment_id


async def sim_backups(h: Harness, environment_id: str) -> dict[str, Any]:
    response = await h.sim.admin.get(f"/environments/{environment_id}/backups")
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def posts(h: Harness) -> list[dict[str, Any]]:
    entries = (await h.sim.admin.get("/requests")).json()
    return [e for e in entries if e["method"] == "POST" and e["path"].endswith("/backups")]


async def fault(h: Harness, **rule: Any) -> None:
    response = await h.sim.admin.post("/faults", json={"route": "create_backup", **rule})
    assert response.status_code == 201, response.text


def counted(result: str) -> float:
    return REGISTRY.get_sample_value("oec_operator_backups_total", {"result": result}) or 0.0


@pytest.mark.parametrize("variant", [{}, {"backup_enums": "ref", "backup_page_field": "total_pages"}],
                         ids=["client-enums", "reference-enums"])
async def test_a_lost_answer_to_the_create_makes_exactly_one_backup(harness: Harness, variant: dict[str, str]) -> None:
    h = harness
    environment_id = await running_env(h)
    if variant:
        await h.sim.patch_config(**variant)
    b = Backups(h)
    obk = b.add("before-migration", notes="before the migration")
    await fault(h, kind="error", status=502, when="after")  # the backup is made, the answer lost
    await b.step(obk)
    assert status(obk).create_requested_at is not None and status(obk).backup_id is None
    assert condition(obk, "Reconciling")[:2] == ("True", "ProgressingWithRetry")
    await b.step(obk)  # looks the backup up by its marker instead of sending again
    h.sim.clock.advance(DONE)
    await b.step(obk)
    sim = await sim_backups(h, environment_id)
    assert sim["counts"]["creates"] == 1 and len(await posts(h)) == 1
    [made] = [x for x in sim["backups"] if x["backup_type"] == "manual"]
    assert status(obk).backup_id == made["id"] and status(obk).phase == "Completed"
    assert made["notes"] == f"before the migration [k8s:{obk['metadata']['uid']}]"
    assert condition(obk, "Ready")[:2] == ("True", "Completed")
    assert status(obk).total_size and status(obk).completed_at and status(obk).observed_generation == 1


async def test_a_crash_after_the_post_before_the_status_write_makes_one_backup(
        harness: Harness, make_harness: Any) -> None:
    h = harness
    environment_id = await running_env(h)
    b = Backups(h)
    obk = b.add("nightly")
    real = h.kube.patch_status

    async def crash_after_post(namespace: str, name: str, patch: Mapping[str, Any], *, plural: str = "x") -> Any:
        if "backupId" in patch:  # the process dies between the API's answer and the status write
            raise KubeError("PATCH status: connection lost", None)
        return await real(namespace, name, patch, plural=plural)

    h.kube.patch_status = crash_after_post  # type: ignore[method-assign]
    await b.step(obk)
    assert len(await posts(h)) == 1 and status(obk).backup_id is None
    h.kube.patch_status = real  # type: ignore[method-assign]
    # A new process (another replica after a takeover): no memory, only the object.
    config = operator_config(h.sim)
    other = Backups(h, Runtime(config=config, http=h.runtime.http, kube=h.kube))
    h.sim.clock.advance(DONE)
    await other.step(obk)
    assert status(obk).phase == "Completed"
    sim = await sim_backups(h, environment_id)
    assert sim["counts"]["creates"] == 1 and len(await posts(h)) == 1
    assert status(obk).backup_id == sim["backups"][0]["id"]


async def env_with_a_backup_running(h: Harness) -> str:
    """A running environment with a 60 s backup made outside the operator running on it."""
    environment_id = await running_env(h)
    await h.sim.patch_config(backup_seconds=60.0)
    other = await h.sim.api.post(f"/environments/{environment_id}/backups",
                                 json={"backup_type": "manual", "retention_type": "daily"})
    assert other.status_code == 201, other.text
    return environment_id


async def test_a_409_while_another_backup_runs_waits_then_succeeds(harness: Harness) -> None:
    h = harness
    environment_id = await env_with_a_backup_running(h)
    b = Backups(h)
    obk = b.add("adhoc")
    delay = await b.step(obk)
    assert condition(obk, "Reconciling")[:2] == ("True", "BackupInProgress")
    assert condition(obk, "Stalled")[0] is None and status(obk).phase == "Pending"
    assert delay is not None and delay > 0
    h.sim.clock.advance(61)  # the other backup ends
    await b.step(obk)
    h.sim.clock.advance(61)
    await b.step(obk)
    assert status(obk).phase == "Completed" and condition(obk, "Ready")[:2] == ("True", "Completed")
    assert (await sim_backups(h, environment_id))["counts"]["creates"] == 2  # the other one and ours


async def test_a_missing_backup_route_stalls_with_backups_unsupported(harness: Harness) -> None:
    h = harness
    await running_env(h)
    await h.sim.patch_config(backups_route="missing")
    b = Backups(h)
    obk = b.add("adhoc")
    await b.step(obk)
    assert condition(obk, "Stalled")[:2] == ("True", "BackupsUnsupported")
    assert condition(obk, "Ready")[:2] == ("False", "BackupsUnsupported")
    assert "BackupsUnsupported" in b.reasons("adhoc")


async def test_a_failing_backup_is_failed_with_the_api_reason_and_an_event(harness: Harness) -> None:
    h = harness
    await running_env(h)
    await h.sim.patch_config(fail_next_backups=1, fail_backup_message="storage quota exceeded")
    b = Backups(h)
    obk = b.add("adhoc")
    before = counted("failed")
    await b.step(obk)
    h.sim.clock.advance(DONE)
    assert await b.step(obk) is None  # terminal: no more steps
    assert status(obk).phase == "Failed"
    # nothing to keep, so no expiry (kubectl's EXPIRES column) and no completion time (COMPLETED)
    assert (status(obk).expires_at, status(obk).completed_at) == (None, None)
    stalled, reason, message = condition(obk, "Stalled")
    assert (stalled, reason) == ("True", "BackupFailed") and "storage quota exceeded" in message
    assert b.reasons("adhoc") == ["BackupFailed"]
    assert counted("failed") == before + 1
    await b.step(obk)
    assert len(await posts(h)) == 1 and counted("failed") == before + 1  # never again, counted once


async def test_a_completed_backup_turns_expired_when_its_expiry_passes_without_an_api_call(harness: Harness) -> None:
    h = harness
    await running_env(h)
    b = Backups(h)
    obk = b.add("daily-one", retention="daily")
    before = counted("completed")
    await b.step(obk)
    h.sim.clock.advance(DONE)
    delay = await b.step(obk)
    assert status(obk).phase == "Completed" and status(obk).expires_at is not None
    assert counted("completed") == before + 1
    expires = datetime.datetime.fromisoformat(str(status(obk).expires_at).replace("Z", "+00:00"))
    assert delay is not None and 0 < delay <= (expires - datetime.datetime.now(datetime.UTC)).total_seconds() + 1
    requests = len((await h.sim.admin.get("/requests")).json())
    b.controller.now = lambda: expires - datetime.timedelta(seconds=10)
    assert 0 < (await b.step(obk) or 0) <= 11  # not yet: the next look is at the expiry
    b.controller.now = lambda: expires + datetime.timedelta(seconds=1)
    assert await b.step(obk) is None
    assert status(obk).phase == "Expired"
    assert condition(obk, "Stalled")[:2] == ("True", "Expired") and condition(obk, "Ready")[0] == "False"
    assert len((await h.sim.admin.get("/requests")).json()) == requests  # a local check, no API call


async def test_a_completed_backup_is_read_once_a_day_and_says_completed_once(harness: Harness) -> None:
    h = harness
    await running_env(h)
    b = Backups(h)
    obk = b.add("kept", retention="yearly")
    await b.step(obk)
    h.sim.clock.advance(DONE)
    await b.step(obk)
    assert status(obk).phase == "Completed" and b.reasons("kept") == ["Completed"]
    reads = len((await h.sim.admin.get("/requests")).json())
    completed = datetime.datetime.fromisoformat(str(status(obk).completed_at).replace("Z", "+00:00"))
    slot = completed + datetime.timedelta(seconds=spread(obk["metadata"]["uid"]) * 86400 + 1)
    b.controller.now = lambda: slot - datetime.timedelta(hours=1)
    assert 3598 <= (await b.step(obk) or 0) <= 3601  # between reads: a wait, no request
    assert len((await h.sim.admin.get("/requests")).json()) == reads
    b.controller.now = lambda: slot
    delay = await b.step(obk)  # the daily read
    assert len((await h.sim.admin.get("/requests")).json()) == reads + 1
    assert delay is not None and 86390 <= delay <= 86400  # the next one a day later
    assert b.reasons("kept") == ["Completed"] and status(obk).phase == "Completed"


async def test_spec_backup_id_observes_an_existing_backup_without_creating_one(harness: Harness) -> None:
    h = harness
    environment_id = await running_env(h)
    made = await h.sim.api.post(f"/environments/{environment_id}/backups",
                                json={"backup_type": "manual", "retention_type": "weekly"})
    assert made.status_code == 201, made.text
    b = Backups(h)
    obk = b.add("adopted", backupId=made.json()["id"])
    await b.step(obk)
    assert status(obk).backup_id == made.json()["id"] and status(obk).phase in ("Pending", "Running")
    h.sim.clock.advance(DONE)
    await b.step(obk)
    assert status(obk).phase == "Completed" and status(obk).environment_id == environment_id
    assert len(await posts(h)) == 1  # only the test's own create


async def test_a_missing_or_uncreated_environment_waits_with_environment_not_ready(harness: Harness) -> None:
    h = harness
    b = Backups(h)
    obk = b.add("early", env="later")
    await b.step(obk)
    ready, reason, message = condition(obk, "Reconciling")
    assert (ready, reason) == ("True", "EnvironmentNotReady") and "OdooEnvironment later" in message
    assert condition(obk, "Stalled")[0] is None and len(await posts(h)) == 0 and status(obk).phase == "Pending"
    h.add("later")  # exists now, but has no OEC.sh environment yet
    await b.step(obk)
    assert "no OEC.sh environment yet" in condition(obk, "Reconciling")[2]


def test_deleting_an_odoo_backup_says_the_data_stays_in_oec() -> None:
    event = BackupController.deleted({"metadata": {"name": "x"}, "status": {"backupId": "b-1"}})
    assert (event.type, event.reason) == ("Normal", "BackupKept")
    assert "backup b-1 stays in OEC.sh" in event.message and "never deletes" in event.message



async def test_an_unknown_spec_backup_id_fails_with_backup_not_found_and_sends_nothing(harness: Harness) -> None:
    h = harness
    await running_env(h)
    b = Backups(h)
    obk = b.add("typo", backupId="99999999-9999-4999-8999-999999999999")
    assert await b.step(obk) is None
    assert status(obk).phase == "Failed" and condition(obk, "Stalled")[:2] == ("True", "BackupNotFound")
    assert b.reasons("typo") == ["BackupNotFound"] and len(await posts(h)) == 0


async def test_a_backup_whose_environment_was_deleted_before_it_was_taken_fails_and_stops_sending(
        harness: Harness) -> None:
    """The OdooBackup waited (409: another backup ran) and meanwhile its environment was deleted:
    nothing can be backed up any more. It must end (Failed, saying why), not stay Pending for ever
    sending a create (a write) to a gone environment at every look."""
    h = harness
    environment_id = await env_with_a_backup_running(h)
    b = Backups(h)
    obk = b.add("adhoc")
    await b.step(obk)
    assert condition(obk, "Reconciling")[:2] == ("True", "BackupInProgress")
    assert (await h.sim.admin.delete(f"/environments/{environment_id}")).status_code == 200
    del h.kube.objects[("team", "shop")]  # the OdooEnvironment was deleted (deletionPolicy Delete)
    h.sim.clock.advance(61)
    assert await b.step(obk) is None  # terminal
    assert status(obk).phase == "Failed"
    stalled, reason, message = condition(obk, "Stalled")
    assert (stalled, reason) == ("True", "EnvironmentGone") and environment_id in message
    assert b.reasons("adhoc") == ["EnvironmentGone"]
    sent = len(await posts(h))
    assert await b.step(obk) is None
    assert len(await posts(h)) == sent  # never sent again


async def completed_backup(h: Harness, name: str) -> dict[str, Any]:
    """A yearly OdooBackup of a running environment, taken and Completed."""
    await running_env(h)
    b = Backups(h)
    obk = b.add(name, retention="yearly")
    await b.step(obk)
    h.sim.clock.advance(DONE)
    await b.step(obk)
    assert status(obk).phase == "Completed"
    return obk


async def test_a_restarted_process_shows_the_age_of_a_completed_backup_without_reading_it(harness: Harness) -> None:
    """After a restart the backup-age metric comes back from the completed OdooBackups at their
    first look (no API call, it is not their daily read), as long as their environment exists."""
    h = harness
    obk = await completed_backup(h, "kept")
    metrics.LATEST_BACKUPS.forget("team", "shop")  # a new process: nothing known
    requests = len((await h.sim.admin.get("/requests")).json())
    await Backups(h).step(obk)
    assert len((await h.sim.admin.get("/requests")).json()) == requests
    samples = next(iter(metrics.LATEST_BACKUPS.collect())).samples
    assert [s.labels for s in samples if s.labels["environment"] == "shop"] == [{"namespace": "team",
                                                                                 "environment": "shop"}]


def test_deleting_an_odoo_backup_whose_create_was_sent_does_not_say_nothing_was_made() -> None:
    """Deleted after its create was sent but before the answer was recorded (a lost answer): a
    backup may exist in OEC.sh. The Event must not tell the user that none was made."""
    event = BackupController.deleted({"metadata": {"name": "x", "uid": "u-1"},
                                      "status": {"createRequestedAt": "2026-12-04T10:00:00Z"}})
    assert "no backup was made" not in event.message
    assert "[k8s:u-1]" in event.message and "2026-12-04T10:00:00Z" in event.message


async def test_a_backup_of_an_earlier_environment_of_that_name_does_not_show_as_the_new_ones(
        harness: Harness) -> None:
    """The OdooEnvironment was deleted and created again (a Git revert): a new OEC.sh environment
    with no backup yet. The old environment's completed OdooBackups must not make the backup-age
    metric say the new one was backed up."""
    h = harness
    obk = await completed_backup(h, "old")
    metrics.LATEST_BACKUPS.forget("team", "shop")  # the deletion dropped its series
    del h.kube.objects[("team", "shop")]
    assert (await h.sim.admin.delete(f"/environments/{status(obk).environment_id}")).status_code == 200
    await running_env(h)  # created again: another OEC.sh environment
    assert h.kube.objects[("team", "shop")]["status"]["environmentId"] != status(obk).environment_id
    await Backups(h).step(obk)  # a restarted process's first look
    samples = next(iter(metrics.LATEST_BACKUPS.collect())).samples
    assert [s for s in samples if s.labels["environment"] == "shop"] == []
