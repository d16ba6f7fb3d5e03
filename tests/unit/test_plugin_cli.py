"""The ``kubectl oec`` command line: cluster flags before or after the command, as with kubectl; what
the nudging commands patch; the day-2 lines of ``kubectl oec status``."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from oec_operator.oec.models import Backup
from oec_operator.plugin import (
    PluginError,
    backup_command,
    backup_manifest,
    call_api,
    download_link,
    environment_of_backups,
    nudge,
    parser,
    render_backups,
    render_status,
)


@pytest.mark.parametrize("argv", [
    ["-n", "shop", "status", "web"],
    ["status", "web", "-n", "shop"],
    ["status", "-n", "shop", "web"],
])
def test_the_namespace_flag_works_before_and_after_the_command(argv: list[str]) -> None:
    args = parser().parse_args(argv)
    assert (args.command, args.name, args.namespace) == ("status", "web", "shop")


def test_flags_after_the_command_win_and_absent_ones_keep_what_came_before() -> None:
    args = parser().parse_args(["--context", "prod", "-n", "a", "logs", "web", "-n", "b"])
    assert (args.context, args.namespace, args.kubeconfig) == ("prod", "b", None)


@pytest.mark.parametrize("command", ["restart", "start", "stop", "redeploy", "reconcile"])
def test_nudging_commands_parse_with_flags_after_the_name(command: str) -> None:
    args = parser().parse_args([command, "web", "-n", "shop"])
    assert (args.command, args.name, args.namespace) == (command, "web", "shop")


@pytest.mark.parametrize(("command", "patch", "shown"), [
    ("restart", {"metadata": {"annotations": {"oec.sh/restart-requested-at": "T1"}}},
     "oec.sh/restart-requested-at=T1"),
    ("redeploy", {"metadata": {"annotations": {"oec.sh/redeploy-requested-at": "T1"}}},
     "oec.sh/redeploy-requested-at=T1"),
    ("reconcile", {"metadata": {"annotations": {"oec.sh/reconcile-requested-at": "T1"}}},
     "oec.sh/reconcile-requested-at=T1"),
    ("stop", {"spec": {"powerState": "Stopped"}}, "spec.powerState=Stopped"),
    ("start", {"spec": {"powerState": "Running"}}, "spec.powerState=Running"),
])
def test_each_nudge_patches_only_its_annotation_or_power_state(command: str, patch: dict[str, Any],
                                                                shown: str) -> None:
    assert nudge(command, "T1") == (patch, shown)


def day2_object(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "namespace": "shop", "generation": 5},
        "spec": {"projectId": "p1", "powerState": "Stopped", "domain": "erp.example.com", "resizePolicy": "NextDeploy",
                 "deploy": {"request": {"id": "sha-2", "mode": "UpdateSpecific", "updateModules": ["sale", "stock"]}}},
        "status": {"phase": "running", "powerState": "Stopping", "cpuCores": 1.5, "ramMb": 4096, "diskGb": 20,
                   "pendingResources": {"cpuCores": 2, "ramMb": 8192, "appliesOn": "NextDeploy",
                                        "since": "2026-01-15T09:00:00Z"},
                   "customDomain": "erp.example.com", "customDomainVerified": False,
                   "lastHandledDeployRequest": "sha-1",
                   "task": {"id": "t9", "action": "stop", "reason": "spec.powerState Stopped"}, **status},
    }


def test_status_shows_power_sizes_domain_and_deploy_request() -> None:
    lines = render_status(day2_object()).splitlines()
    assert "Power:        Stopping (spec: Stopped)" in lines
    assert ("Size:         1.5 CPU, 4096 MB RAM, 20 GB disk (pending: 2 CPU, 8192 MB RAM, applies at the next "
            "deploy, sent 2026-01-15T09:00:00Z)") in lines
    assert "Domain:       erp.example.com (not verified yet) (spec: erp.example.com)" in lines
    assert "Deploy req.:  last handled sha-1 (spec: sha-2 (UpdateSpecific: sale, stock))" in lines
    assert "Task:         stop t9 (spec.powerState Stopped)" in lines


def test_status_of_a_resource_without_day2_fields() -> None:
    obj = {"metadata": {"name": "web", "namespace": "shop"}, "spec": {"projectId": "p1"}, "status": {}}
    lines = render_status(obj).splitlines()
    assert "Power:        - (spec: Running)" in lines
    assert "Size:         -" in lines
    assert "Domain:       - (spec: not managed)" in lines
    assert "Deploy req.:  last handled - (spec: none)" in lines
    assert not [line for line in lines if line.startswith(("Task:", "Owed deploy:"))]


def test_status_shows_a_platform_subdomain_and_an_owed_quick_update() -> None:
    obj = day2_object(customDomain=None, customDomainVerified=None, task=None,
                      pendingDeploy={"key": "k", "reason": "deploy request sha-2", "mode": "update_specific",
                                     "updateModules": ["sale"], "blockedBy": "t8"})
    obj["spec"]["domain"] = ""
    lines = render_status(obj).splitlines()
    assert "Domain:       platform subdomain (spec: platform subdomain)" in lines
    assert "Owed deploy:  update_specific (deploy request sha-2) modules sale, waits for task t8" in lines


def test_backup_parses_a_create_and_a_download_with_flags_after_the_name() -> None:
    args = parser().parse_args(["backup", "shop", "--retention", "weekly", "--no-filestore", "-n", "team"])
    assert (args.words, args.retention, args.no_filestore, args.namespace) == (["shop"], "weekly", True, "team")
    args = parser().parse_args(["backup", "download", "shop-x1", "--expires-in", "600"])
    assert (args.words, args.expires_in) == (["download", "shop-x1"], 600)
    args = parser().parse_args(["backup", "shop"])
    backup_command(args)
    assert args.retention == "monthly"  # never silently permanent


def test_the_backup_manifest_names_the_environment_and_lets_the_apiserver_complete_the_name() -> None:
    body = backup_manifest("a" * 70, "team", retention="daily", notes="pre-upgrade", include_filestore=False)
    assert body["kind"] == "OdooBackup" and body["metadata"]["generateName"] == "a" * 57 + "-"
    assert body["spec"] == {"environmentRef": {"name": "a" * 70}, "retention": "daily", "includeFilestore": False,
                            "notes": "pre-upgrade"}
    assert "notes" not in backup_manifest("shop", "team", retention="daily", notes=None,
                                          include_filestore=True)["spec"]
    keyed = backup_manifest("shop", "team", retention="daily", notes=None, include_filestore=True,
                            credentials={"name": "team-key", "key": "apiKey"})
    assert keyed["spec"]["credentialsSecretRef"] == {"name": "team-key", "key": "apiKey"}  # read after it is gone


def test_the_backups_table_names_the_odoo_backup_recording_each_and_says_when_cut() -> None:
    made = Backup.model_validate({"id": "b2", "environment_id": "e", "status": "completed", "backup_type": "manual",
                                  "total_size": 1843200, "completed_at": "2026-12-04T22:50:03Z",
                                  "expires_at": "2026-12-11T22:50:03Z"})
    theirs = Backup.model_validate({"id": "b1", "environment_id": "e", "status": "completed",
                                    "backup_type": "scheduled"})
    lines = render_backups([made, theirs], 5, {"b2": "shop-x1"}).splitlines()
    assert lines[0].split() == ["ID", "TYPE", "STATUS", "SIZE", "COMPLETED", "EXPIRES", "ODOOBACKUP"]
    assert lines[1].split() == ["b2", "manual", "completed", "1843200", "2026-12-04T22:50:03Z",
                                "2026-12-11T22:50:03Z", "shop-x1"]
    assert lines[2].split() == ["b1", "scheduled", "completed", "-", "-", "never", "-"]
    assert lines[3] == "(2 newest of 5 backups shown)"


@pytest.mark.parametrize(("phase", "hint"), [("Running", "kubectl wait"), ("Pending", "kubectl wait"),
                                             ("Failed", "nothing to download"), ("Expired", "nothing to download")])
def test_backup_download_of_a_backup_not_completed_says_so_without_calling_the_api(phase: str, hint: str) -> None:
    """A download link exists only for a completed backup: the plugin says what the OdooBackup's
    phase is and what to do, instead of the API's bare refusal (and sends nothing)."""
    record = {"metadata": {"name": "shop-x1", "namespace": "team"}, "spec": {"environmentRef": {"name": "shop"}},
              "status": {"phase": phase, "backupId": "b-1"}}
    with pytest.raises(PluginError) as raised:
        asyncio.run(download_link(record, None, None, 300))  # type: ignore[arg-type]  # no API is reached
    message = str(raised.value)
    assert f"is {phase}" in message and hint in message and "shop-x1" in message


def test_without_credentials_the_plugin_says_what_the_plugin_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A user running ``kubectl oec backups`` without a key is told to export OEC_API_KEY (or
    OEC_API_KEY_SECRET) and OEC_API_URL for a non-production API, not to configure the operator."""
    for name in ("OEC_API_KEY", "OEC_API_KEY_SECRET", "OEC_API_URL"):
        monkeypatch.delenv(name, raising=False)

    async def never(client: Any) -> None:
        raise AssertionError("no API call without a key")
    with pytest.raises(PluginError) as raised:
        asyncio.run(call_api(None, "team", None, None, never))  # type: ignore[arg-type]  # no Secret is read
    message = str(raised.value)
    assert "OEC_API_KEY" in message and "OEC_API_KEY_SECRET" in message and "OEC_API_URL" in message
    assert "the operator" not in message


def _backup_args(argv: list[str]) -> tuple[str, str]:
    return backup_command(parser().parse_args(argv))


def test_backup_download_without_a_name_is_an_error_not_an_environment_named_download() -> None:
    with pytest.raises(PluginError, match="download needs the OdooBackup"):
        _backup_args(["backup", "download"])
    assert _backup_args(["backup", "download", "shop-x1"]) == ("download", "shop-x1")
    assert _backup_args(["backup", "shop"]) == ("create", "shop")
    # an environment literally named `download` (or `create`) is backed up with the explicit verb
    assert _backup_args(["backup", "create", "download"]) == ("create", "download")
    assert _backup_args(["backup", "create", "create"]) == ("create", "create")


@pytest.mark.parametrize(("argv", "flag"), [
    (["backup", "shop", "--expires-in", "600"], "--expires-in"),
    (["backup", "create", "shop", "--expires-in", "600"], "--expires-in"),
    (["backup", "download", "shop-x1", "--notes", "x"], "--notes"),
    (["backup", "download", "shop-x1", "--retention", "weekly"], "--retention"),
    (["backup", "download", "shop-x1", "--no-filestore"], "--no-filestore"),
])
def test_backup_flags_that_do_not_apply_are_refused(argv: list[str], flag: str) -> None:
    with pytest.raises(PluginError, match=f"{flag} does not apply"):
        _backup_args(argv)


def test_backup_defaults_still_apply_when_not_given() -> None:
    args = parser().parse_args(["backup", "shop"])
    backup_command(args)
    assert args.retention == "monthly"
    args = parser().parse_args(["backup", "download", "shop-x1"])
    backup_command(args)
    assert args.expires_in == 300


def test_backups_of_a_deleted_environment_come_from_its_odoo_backups() -> None:
    """After the OdooEnvironment is deleted, its OdooBackups (e.g. the final backup) still name its
    OEC.sh environment and credentials: the newest of them is used; none is a clear error."""
    def record(name: str, env: str, env_id: str | None, created: str, ref: dict[str, str] | None = None
               ) -> dict[str, Any]:
        spec: dict[str, Any] = {"environmentRef": {"name": env}}
        if ref:
            spec["credentialsSecretRef"] = ref
        return {"metadata": {"name": name, "creationTimestamp": created}, "spec": spec,
                "status": {"environmentId": env_id} if env_id else {}}
    items = [record("shop-a", "shop", "env-old", "2026-12-01T00:00:00Z"),
             record("shop-final", "shop", "env-new", "2026-12-04T00:00:00Z", {"name": "k", "key": "apiKey"}),
             record("shop-pending", "shop", None, "2026-12-05T00:00:00Z"),
             record("other-a", "other", "env-other", "2026-12-06T00:00:00Z")]
    environment_id, ref = environment_of_backups("shop", "team", items)
    assert environment_id == "env-new" and ref is not None and (ref.name, ref.key) == ("k", "apiKey")
    with pytest.raises(PluginError, match=r"not found in namespace 'team'.*no OdooBackup"):
        environment_of_backups("gone", "team", items)
