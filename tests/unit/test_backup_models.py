"""The backup kinds' models: the defaults a user relies on, updates as merge patches, selectors."""

from __future__ import annotations

from datetime import UTC, datetime

from oec_operator.models.backups import (
    LabelSelector,
    OdooBackupScheduleSpec,
    OdooBackupSpec,
    OdooBackupStatus,
    OdooRestoreSpec,
)
from oec_operator.models.requests import Requests
from oec_operator.models.spec import OdooEnvironmentSpec


def test_a_backup_defaults_to_monthly_retention_with_the_filestore() -> None:
    spec = OdooBackupSpec.from_body({"environmentRef": {"name": "shop"}})
    assert (spec.environment_ref.name, spec.retention, spec.include_filestore) == ("shop", "monthly", True)


def test_a_schedule_defaults_to_utc_forbid_and_weekly_backups() -> None:
    spec = OdooBackupScheduleSpec.from_body({"schedule": "0 2 * * *", "selector": {"matchLabels": {"tier": "prod"}}})
    assert (spec.time_zone, spec.concurrency_policy, spec.template.retention) == ("UTC", "Forbid", "weekly")
    assert (spec.starting_deadline_seconds, spec.successful_history_limit, spec.failed_history_limit) == (3600, 7, 3)


def test_a_restore_reads_its_deadline_as_a_time() -> None:
    spec = OdooRestoreSpec.from_body({"environmentRef": {"name": "demo"}, "backupId": "b1",
                                      "confirmEnvironmentName": "demo", "notAfter": "2026-12-05T10:00:00Z"})
    assert spec.not_after == datetime(2026, 12, 5, 10, tzinfo=UTC)


def test_a_backup_status_update_is_a_camel_case_merge_patch() -> None:
    current = OdooBackupStatus.from_body({"phase": "Running", "backupId": "b1", "createRequestedAt": "t0"})
    update = OdooBackupStatus(phase="Completed", total_size=2**40, create_requested_at=None)
    assert update.patch() == {"phase": "Completed", "totalSize": 2**40, "createRequestedAt": None}
    merged = current.merged(update)
    assert (merged.phase, merged.backup_id, merged.create_requested_at) == ("Completed", "b1", None)
    assert current.changes(OdooBackupStatus(phase="Running", message="m")).patch() == {"message": "m"}


def test_the_final_backup_is_on_for_production_unless_turned_off() -> None:
    def enabled(**spec: object) -> bool:
        return OdooEnvironmentSpec.from_body({"projectId": "p", **spec}).final_backup_enabled

    assert enabled(environmentType="production")
    assert not enabled(environmentType="staging")
    assert not enabled(environmentType="production", finalBackup={"enabled": False})
    assert enabled(finalBackup={"enabled": True})
    spec = OdooEnvironmentSpec.from_body({"projectId": "p"})
    assert (spec.final_backup.retention, spec.final_backup.timeout_seconds) == ("monthly", 3600)
    assert Requests.from_annotations({"oec.sh/skip-final-backup": "true"}).skip_final_backup


def test_a_label_selector_renders_and_matches_as_the_apiserver_does() -> None:
    selector = LabelSelector.model_validate({
        "matchLabels": {"tier": "prod"},
        "matchExpressions": [{"key": "team", "operator": "In", "values": ["a", "b"]},
                             {"key": "legacy", "operator": "DoesNotExist"}]})
    assert selector.query() == "tier=prod,team in (a,b),!legacy"
    assert selector.matches({"tier": "prod", "team": "a"})
    assert not selector.matches({"tier": "prod", "team": "c"})
    assert not selector.matches({"tier": "prod", "team": "a", "legacy": "x"})
    assert LabelSelector().matches({}) and LabelSelector().query() == ""


def test_the_fake_apiserver_selects_as_the_query_says() -> None:
    """The controller tests' FakeKube reads the query :meth:`LabelSelector.query` writes."""
    from tests.controller.conftest import selects

    selector = LabelSelector.model_validate({
        "matchLabels": {"tier": "prod"},
        "matchExpressions": [{"key": "team", "operator": "In", "values": ["a", "b"]},
                             {"key": "zone", "operator": "NotIn", "values": ["x"]},
                             {"key": "backup", "operator": "Exists"},
                             {"key": "legacy", "operator": "DoesNotExist"}]})
    cases = [{"tier": "prod", "team": "a", "backup": "y"}, {"tier": "prod", "team": "c", "backup": "y"},
             {"tier": "prod", "team": "b", "backup": "y", "zone": "x"}, {"tier": "prod", "team": "a"},
             {"tier": "prod", "team": "a", "backup": "", "legacy": "1"}, {"tier": "dev", "team": "a", "backup": "y"}]
    assert [selects(selector.query(), labels) for labels in cases] == [selector.matches(labels) for labels in cases]
    assert [selector.matches(labels) for labels in cases] == [True, False, False, False, False, False]
    assert selects("a!=b", {"a": "c"}) and not selects("a!=b", {"a": "b"}) and selects("", {})
