"""The safe backup create (``domain/backups.py``): pure logic against a fake API (the behaviour
over real HTTP is in ``tests/controller/test_backup.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from oec_operator.domain import backups
from oec_operator.domain.backups import BackupBusy, BackupsUnsupported, Phase, ensure_backup, phase_of
from oec_operator.domain.final_backup import TIMED_OUT, UNSUPPORTED, final_marker, retry
from oec_operator.models.status import FinalBackupStatus
from oec_operator.oec.errors import OecBackupsUnsupportedError, OecConflictError, OecTransportError


@dataclass
class Item:
    id: str
    notes: str | None


@dataclass
class Page:
    items: list[Item]
    total_pages: int


@dataclass
class FakeApi:
    """Backups of one environment, newest first; ``lose_answer``: the next create is made but its
    answer lost (a timeout)."""

    items: list[Item] = field(default_factory=list)
    lose_answer: bool = False
    conflict: OecConflictError | None = None
    missing: bool = False
    calls: list[str] = field(default_factory=list)

    async def create_backup(self, environment_id: str, *, include_filestore: bool, retention_type: str,
                            notes: str | None) -> Any:
        self.calls.append("create")
        if self.missing:
            raise OecBackupsUnsupportedError("no route", status=404, code="backups_unsupported")
        if self.conflict is not None:
            raise self.conflict
        item = Item(f"b{len(self.items) + 1}", notes)
        self.items.insert(0, item)
        if self.lose_answer:
            self.lose_answer = False
            raise OecTransportError("ReadTimeout on POST", code="timeout")
        return item

    async def list_backups(self, environment_id: str, *, page: int = 1, page_size: int = 20,
                           status: str | None = None, backup_type: str | None = None) -> Any:
        self.calls.append(f"list{page}")
        pages = max(1, -(-len(self.items) // page_size))
        return Page(self.items[(page - 1) * page_size:page * page_size], pages)


async def test_a_lost_answer_then_a_retry_makes_one_backup() -> None:
    api, intents = FakeApi(lose_answer=True), []

    async def record() -> None:
        intents.append("recorded")

    kwargs: dict[str, Any] = {"mark": backups.marker("u1"), "include_filestore": True, "retention": "monthly",
                              "notes": "before migration", "record_intent": record}
    with pytest.raises(OecTransportError):
        await ensure_backup(api, "e1", requested=False, **kwargs)
    found = await ensure_backup(api, "e1", requested=True, **kwargs)
    assert [i.id for i in api.items] == ["b1"] and found.id == "b1"
    assert intents == ["recorded"] and api.calls == ["create", "list1"]
    assert found.notes == "before migration [k8s:u1]"


async def test_the_intent_is_recorded_before_the_post_and_a_failed_record_sends_nothing() -> None:
    api = FakeApi()

    async def record() -> None:
        assert api.calls == []
        raise RuntimeError("status write failed")

    with pytest.raises(RuntimeError):
        await ensure_backup(api, "e1", mark="k8s:u1", include_filestore=True, retention="daily", notes=None,
                            requested=False, record_intent=record)
    assert api.items == []


async def test_the_lookup_searches_two_pages_and_ignores_other_markers() -> None:
    old = Item("mine", "[k8s:u1]")
    api = FakeApi(items=[Item(f"x{i}", f"[k8s:other{i}]") for i in range(30)] + [old])
    found: Any = await backups.find_by_marker(api, "e1", "k8s:u1")
    assert found is old
    assert await backups.find_by_marker(api, "e1", "k8s:u") is None  # a prefix of another uid is no match
    assert api.calls == ["list1", "list2", "list1", "list2"]


async def test_409_is_busy_not_a_failure() -> None:
    api = FakeApi(conflict=OecConflictError("A backup is already running", status=409, code="backup_in_progress"))
    with pytest.raises(BackupBusy) as busy:
        await ensure_backup(api, "e1", mark="k8s:u1", include_filestore=True, retention="daily", notes=None,
                            requested=True, record_intent=_never)
    assert busy.value.reason == "BackupInProgress"
    api.conflict = OecConflictError("Another task", status=409, code="task_in_progress", extras={"task_id": "t9"})
    with pytest.raises(BackupBusy) as busy:
        await ensure_backup(api, "e1", mark="k8s:u1", include_filestore=True, retention="daily", notes=None,
                            requested=True, record_intent=_never)
    assert busy.value.reason == "TaskInProgress" and "t9" in str(busy.value)


async def test_409_invalid_state_waits_for_the_environment_and_does_not_blame_a_task() -> None:
    """OEC.sh refuses a backup of an environment never deployed (409 ``invalid_state``): no task
    runs, so the wait must not say one does."""
    api = FakeApi(conflict=OecConflictError("Cannot back up an environment in status 'pending'.", status=409,
                                            code="invalid_state", extras={"status": "pending"}))
    with pytest.raises(BackupBusy) as busy:
        await ensure_backup(api, "e1", mark="k8s:u1", include_filestore=True, retention="daily", notes=None,
                            requested=True, record_intent=_never)
    assert busy.value.reason == "EnvironmentNotReady"
    assert "another task" not in str(busy.value) and "status 'pending'" in str(busy.value)


async def test_a_missing_route_is_its_own_outcome() -> None:
    with pytest.raises(BackupsUnsupported):
        await ensure_backup(FakeApi(missing=True), "e1", mark="k8s:u1", include_filestore=True, retention="daily",
                            notes=None, requested=True, record_intent=_never)


async def _never() -> None:
    raise AssertionError("the intent was recorded before: not again")


@pytest.mark.parametrize(("status", "phase"), [
    ("pending", Phase.PENDING), ("running", Phase.RUNNING), ("in_progress", Phase.RUNNING),
    ("uploading", Phase.RUNNING), ("completed", Phase.COMPLETED), ("COMPLETED", Phase.COMPLETED),
    ("failed", Phase.FAILED), ("cancelled", Phase.FAILED), ("expired", Phase.EXPIRED),
    ("verifying", Phase.RUNNING), ("upload_failed", Phase.FAILED), ("deleted", Phase.EXPIRED),
])
def test_phase_table_over_both_enum_sets(status: str, phase: Phase) -> None:
    assert phase_of(status) is phase


def test_a_new_final_backup_token_restarts_only_a_stalled_attempt() -> None:
    stalled = [FinalBackupStatus(backup_id="b1", phase="Failed", token="a"),
               FinalBackupStatus(backup_id="b1", phase="Running", message=f"{TIMED_OUT} …"),
               FinalBackupStatus(message=f"{UNSUPPORTED}: 404")]
    for recorded in stalled:
        assert retry(recorded, "b") == FinalBackupStatus(token="b")  # a new attempt
        assert retry(recorded, recorded.token) is recorded  # the same token: nothing
    running = FinalBackupStatus(backup_id="b1", phase="Running")
    assert retry(running, "b") is running and retry(None, "b") == FinalBackupStatus(token="b")
    assert retry(FinalBackupStatus(phase="Completed"), "b") == FinalBackupStatus(phase="Completed")
    assert len({final_marker("u"), final_marker("u", "a"), final_marker("u", "b")}) == 3
