"""The ``python -m oec_simulator`` command line."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from oec_simulator import DEMO_PROJECT_ID, DEMO_RO_KEY, DEMO_RW_KEY
from oec_simulator.__main__ import CliError, build_config, build_parser, main


def _wait_for_port(path: Path, proc: subprocess.Popen[str], limit: float = 15.0) -> int:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return int(path.read_text())
        if proc.poll() is not None:
            raise AssertionError(f"simulator exited early with {proc.returncode}")
        time.sleep(0.05)
    raise AssertionError("simulator did not write its port file")


def test_cli_serves_the_demo_project_and_keys(tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    proc = subprocess.Popen(
        [sys.executable, "-m", "oec_simulator", "--port", "0", "--port-file", str(port_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = _wait_for_port(port_file, proc)
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=5) as client:
            assert client.get("/_sim/health").json()["status"] == "ok"
            projects = client.get("/api/public/v1/projects", headers={"Authorization": f"Bearer {DEMO_RW_KEY}"})
            assert projects.status_code == 200
            [demo] = projects.json()["data"]
            assert (demo["id"], demo["name"], demo["default_branch"], demo["odoo_version"]) == (
                str(DEMO_PROJECT_ID),
                "demo",
                "main",
                "17.0",
            )
            assert demo["server_id"] is not None
            ro = client.post(
                f"/api/public/v1/projects/{DEMO_PROJECT_ID}/environments",
                json={"name": "x"},
                headers={"X-API-Key": DEMO_RO_KEY},
            )
            assert ro.status_code == 403
    finally:
        proc.terminate()
        stdout, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert f"oec-simulator listening on http://127.0.0.1:{port}" in stdout
    assert "GET /api/public/v1/projects 200" in stderr
    assert "POST /api/public/v1/projects/" in stderr
    assert DEMO_RW_KEY not in stderr and DEMO_RO_KEY not in stderr


def test_remote_host_is_refused_without_allow_remote(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--host", "203.0.113.5", "--port", "0"]) == 2
    assert "--allow-remote" in capsys.readouterr().err


def test_help_names_the_demo_keys(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert DEMO_RW_KEY in out and DEMO_RO_KEY in out and str(DEMO_PROJECT_ID) in out


def test_flags_and_config_file_build_the_config(tmp_path: Path) -> None:
    config_file = tmp_path / "sim.yaml"
    config_file.write_text("deploy_seconds: 1.5\nerror_envelope: toplevel\n")
    project = "44444444-4444-4444-8444-444444444444"
    key = "oec_live_rw_" + "k" * 30
    args = build_parser().parse_args(
        [
            "--config",
            str(config_file),
            "--project",
            f"{project}:shop:develop",
            "--key",
            f"{key}@{project}",
            "--write-limit",
            "5",
            "--variant",
            "delete_status=204",
            "--variant",
            "name_uniqueness=true",
            "--variant",
            "rate_limit_headers=none",
        ]
    )
    config = build_config(args)
    assert config.deploy_seconds == 1.5 and config.error_envelope == "toplevel"
    assert config.write_limit == 5 and config.delete_status == 204
    assert config.name_uniqueness is True and config.rate_limit_headers == "none"
    [proj] = config.projects
    assert (str(proj.id), proj.name, proj.default_branch) == (project, "shop", "develop")
    [k] = config.keys
    assert (k.scope, str(k.project_id)) == ("project", project)
    assert k.key.get_secret_value() == key


def test_bad_key_and_variant_are_reported_without_echoing_the_key() -> None:
    secret = "oec_live_rw_tooshort"
    with pytest.raises(CliError) as excinfo:
        build_config(build_parser().parse_args(["--key", secret]))
    assert secret not in str(excinfo.value)
    with pytest.raises(CliError):
        build_config(build_parser().parse_args(["--variant", "delete_status=418"]))
    with pytest.raises(CliError):
        build_config(build_parser().parse_args(["--variant", "nonsense"]))


def test_json_config_file(tmp_path: Path) -> None:
    path = tmp_path / "sim.json"
    path.write_text(json.dumps({"projects": [{"name": "p", "server_id": None}], "read_limit": 9}))
    config = build_config(build_parser().parse_args(["--config", str(path)]))
    assert config.read_limit == 9
    assert config.projects[0].resolved_server_id() is None
    assert len(config.keys) == 2  # demo keys


def test_request_log_limit_flag() -> None:
    config = build_config(build_parser().parse_args(["--request-log-limit", "50"]))
    assert config.request_log_limit == 50
    with pytest.raises(CliError):
        build_config(build_parser().parse_args(["--request-log-limit", "0"]))


def test_fault_flags_build_the_startup_faults() -> None:
    args = build_parser().parse_args(
        [
            "--fault",
            "kind=error,status=503,share=0.1,route=environment_status",
            "--fault",
            "kind=timeout,when=after,hold_seconds=40,route=create_environment,count=2",
            "--fault-seed",
            "42",
            "--latency",
            "*=0.05",
            "--latency",
            "deploy=1.5",
            "--outage-at",
            "30",
            "--outage-seconds",
            "10",
            "--outage-mode",
            "reset",
            "--fail-next-deploys",
            "2",
            "--fail-deploy-log",
            "ERROR: boom",
            "--destroy-seconds",
            "45",
        ]
    )
    config = build_config(args)
    first, second = config.faults
    assert (first.kind, first.status, first.share, first.route, first.count) == (
        "error",
        503,
        0.1,
        "environment_status",
        None,
    )
    assert (second.kind, second.when, second.hold_seconds, second.count) == ("timeout", "after", 40.0, 2)
    assert config.fault_seed == 42
    assert config.latency == {"*": 0.05, "deploy": 1.5}
    assert config.outage is not None
    assert (config.outage.after_seconds, config.outage.seconds, config.outage.mode) == (30.0, 10.0, "reset")
    assert (config.fail_next_deploys, config.fail_deploy_log, config.destroy_seconds) == (2, ["ERROR: boom"], 45.0)


@pytest.mark.parametrize(
    "argv",
    [
        ["--fault", "kind=error"],  # no status
        ["--fault", "kind=reset,route=nowhere"],
        ["--fault", "status"],
        ["--latency", "deploy=-1"],
        ["--outage-at", "5"],  # no --outage-seconds
        ["--variant", "faults=[]"],
    ],
)
def test_bad_fault_flags_are_refused(argv: list[str]) -> None:
    with pytest.raises(CliError):
        build_config(build_parser().parse_args(argv))


def test_cli_installs_faults_at_start(tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "oec_simulator",
            "--port",
            "0",
            "--port-file",
            str(port_file),
            "--fault",
            "kind=error,status=503,route=list_projects,count=1",
            "--fault-seed",
            "5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = _wait_for_port(port_file, proc)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            headers = {"Authorization": f"Bearer {DEMO_RW_KEY}"}
            assert client.get("/api/public/v1/projects", headers=headers).status_code == 503
            assert client.get("/api/public/v1/projects", headers=headers).status_code == 200
            assert client.get("/_sim/faults/seed").json() == {"seed": 5}
            assert client.get("/_sim/stats").json()["by_route"] == {"list_projects": {"503": 1, "200": 1}}
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_webhook_flags_build_the_config() -> None:
    args = build_parser().parse_args(
        ["--allow-insecure-webhook-urls", "--variant", "webhook_signature=timestamp",
         "--variant", "webhook_retry_delays=[0.5, 2]", "--variant", "webhook_deactivate_after=0"]
    )
    config = build_config(args)
    assert config.webhook_allow_insecure_urls is True
    assert (config.webhook_signature, config.webhook_retry_delays, config.webhook_deactivate_after) == (
        "timestamp", [0.5, 2.0], 0)
    assert build_config(build_parser().parse_args([])).webhook_allow_insecure_urls is False
