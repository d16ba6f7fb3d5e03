"""The checks an ``OdooRestore`` passes before anything is sent (``docs/backups.md`` §3)."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import pytest

from oec_operator import plugin
from oec_operator.domain import restore
from oec_operator.domain.restore import Refusal, Wait
from oec_operator.oec.models import Backup, Task

NOW = datetime.datetime(2026, 12, 4, 12, 0, tzinfo=datetime.UTC)
ENV = "11111111-1111-4111-8111-111111111111"


def _backup(**fields: Any) -> Backup:
    values: dict[str, Any] = {"id": "b1", "environment_id": ENV, "status": "completed", "backup_type": "manual"}
    values.update(fields)
    return Backup.model_validate(values)


def test_an_expired_request_is_refused_and_one_still_valid_is_not() -> None:
    refused = restore.check_not_after(NOW - datetime.timedelta(seconds=1), NOW)
    assert isinstance(refused, Refusal) and refused.reason == "Expired"
    assert "2026-12-04T11:59:59Z" in refused.message
    assert restore.check_not_after(NOW, NOW) is None
    assert restore.check_not_after(NOW + datetime.timedelta(hours=1), NOW) is None


def test_the_confirmation_must_name_the_environment_exactly() -> None:
    assert restore.check_confirmation("acme-staging", ["acme-staging"], "team/staging") is None
    # An observed environment's name in OEC.sh, or the name the operator gives a managed one.
    assert restore.check_confirmation("Acme Staging", ["acme-staging", "Acme Staging"], "team/staging") is None
    for wrong in ("acme-prod", "Acme-Staging", "acme-staging ", ""):
        refused = restore.check_confirmation(wrong, ["acme-staging"], "team/staging")
        assert isinstance(refused, Refusal) and refused.reason == "ConfirmationMismatch"
        assert "'acme-staging'" in refused.message


def test_a_backup_of_another_environment_is_refused() -> None:
    refused = restore.check_backup(_backup(environment_id="22222222-2222-4222-8222-222222222222"), ENV)
    assert isinstance(refused, Refusal) and refused.reason == "ForeignBackup"


def test_only_a_completed_backup_is_restored_and_one_in_flight_is_waited_for() -> None:
    assert restore.check_backup(_backup(), ENV) is None
    for status in ("failed", "cancelled", "expired", "export_failed"):
        refused = restore.check_backup(_backup(status=status), ENV)
        assert isinstance(refused, Refusal) and refused.reason == "BackupNotCompleted", status
    # Both enum sets (docs/oec-api.md §11.5); an unknown status that does not read as an end is
    # followed, as an OdooBackup follows it (docs/backups.md §1), until notAfter.
    for status in ("pending", "running", "in_progress", "uploading", "verifying"):
        assert isinstance(restore.check_backup(_backup(status=status), ENV), Wait), status


def test_a_backup_ref_resolves_to_its_completed_backup_id() -> None:
    assert restore.backup_from_ref("nightly", "Completed", "b9") == "b9"
    assert isinstance(restore.backup_from_ref("nightly", None, None), Wait)
    assert isinstance(restore.backup_from_ref("nightly", "Running", None), Wait)
    for phase in ("Failed", "Expired"):
        refused = restore.backup_from_ref("nightly", phase, "b9")
        assert isinstance(refused, Refusal) and refused.reason == "BackupNotCompleted"


def test_the_idempotency_key_is_fixed_per_object_and_differs_for_a_new_one() -> None:
    key = restore.idempotency_key("uid-1")
    assert key == restore.idempotency_key("uid-1")
    assert key != restore.idempotency_key("uid-2")
    assert key.startswith("oec-operator-restore-") and "uid-1" not in key and len(key) <= 255


def test_the_safety_backup_is_the_one_of_the_restore_task_else_the_newest_pre_restore_since_the_start() -> None:
    started = NOW
    backups = [
        _backup(id="old", backup_type="pre_restore", created_at="2026-12-04T11:00:00Z"),
        _backup(id="manual", backup_type="manual", created_at="2026-12-04T12:00:05Z"),
        _backup(id="safety", backup_type="pre_restore", created_at="2026-12-04T12:00:01Z"),
        _backup(id="linked", backup_type="pre_restore", task_id="t1", created_at="2026-12-04T11:59:58Z"),
    ]
    found = restore.safety_backup(backups, "t1", started)  # the API names the restore's task: that one
    assert found is not None and found.id == "linked"
    found = restore.safety_backup(backups, "t2", started)
    assert found is not None and found.id == "safety"
    assert restore.safety_backup(backups[:2], None, started) is None


def test_a_finished_task_decides_the_phase() -> None:
    def task(status: str) -> Task:
        return Task(id="t", status=status)
    assert restore.task_phase(task("running")) is None
    assert restore.task_phase(task("completed")) == "Completed"
    assert restore.task_phase(task("failed")) == "Failed"
    assert restore.task_phase(task("cancelled")) == "Failed"


def test_answers_that_refuse_the_restore_for_good() -> None:
    assert restore.refused_for_good(400, "confirmation_required")
    assert restore.refused_for_good(404, "not_found")
    assert not restore.refused_for_good(409, "task_in_progress")
    assert not restore.refused_for_good(429, "rate_limited")
    assert not restore.refused_for_good(401, "invalid_key")
    assert not restore.refused_for_good(500, "server_error")
    assert not restore.refused_for_good(None, "transport")


def test_the_task_is_read_less_often_as_it_ages() -> None:
    assert restore.next_read(NOW, NOW, 5.0, 60.0) == 5.0
    assert restore.next_read(NOW - datetime.timedelta(seconds=20), NOW, 5.0, 60.0) == 20.0
    assert restore.next_read(NOW - datetime.timedelta(hours=1), NOW, 5.0, 60.0) == 60.0


# --- kubectl oec restore ----------------------------------------------------------------------

ENV_OBJ = {"metadata": {"name": "staging", "namespace": "team"}, "spec": {"projectId": "p", "name": "acme-staging"}}


def test_kubectl_oec_restore_asks_for_the_environments_name_typed_out() -> None:
    asked: list[str] = []

    def typed(answer: str) -> Callable[[str], str]:
        def ask(prompt: str) -> str:
            asked.append(prompt)
            return answer
        return ask

    assert plugin.confirmation(ENV_OBJ, None, "b1", True, typed("acme-staging\n")) == "acme-staging"
    assert "'acme-staging'" in asked[0] and "b1" in asked[0]
    with pytest.raises(plugin.PluginError, match="nothing was done"):
        plugin.confirmation(ENV_OBJ, None, "b1", True, typed("staging"))  # the object's name is not enough
    with pytest.raises(plugin.PluginError, match="--yes-i-mean-it <the environment's name>") as refused:
        plugin.confirmation(ENV_OBJ, None, "b1", False, typed("acme-staging"))  # a script must say it
    assert "acme-staging" not in str(refused.value)  # not a line to copy without reading: the user types it
    assert plugin.confirmation(ENV_OBJ, "acme-staging", "b1", False) == "acme-staging"
    with pytest.raises(plugin.PluginError):
        plugin.confirmation(ENV_OBJ, "acme-prod", "b1", False)


def test_kubectl_oec_restore_creates_an_odoorestore_that_expires() -> None:
    body = plugin.restore_manifest(ENV_OBJ, confirm="acme-staging", not_after=NOW + plugin.parse_duration("1h30m"),
                                   backup_id="b1")
    assert body["kind"] == "OdooRestore" and body["metadata"] == {"generateName": "staging-restore-",
                                                                  "namespace": "team"}
    assert body["spec"] == {"environmentRef": {"name": "staging"}, "backupId": "b1",
                            "confirmEnvironmentName": "acme-staging", "notAfter": "2026-12-04T13:30:00Z"}
    by_ref = plugin.restore_manifest(ENV_OBJ, confirm="acme-staging", not_after=NOW, backup="nightly")
    assert by_ref["spec"]["backupRef"] == {"name": "nightly"} and "backupId" not in by_ref["spec"]
    args = plugin.parser().parse_args(["restore", "staging", "--backup-id", "b1", "-n", "team"])
    assert (args.backup_id, args.not_after, args.yes_i_mean_it) == ("b1", "1h", None)
    for bad in ("", "0s", "1d", "soon"):
        with pytest.raises(plugin.PluginError):
            plugin.parse_duration(bad)
    assert plugin.parse_duration("90s") == datetime.timedelta(seconds=90)
