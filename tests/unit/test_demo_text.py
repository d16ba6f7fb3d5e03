"""What ``make demo`` prints and ``make demo-status`` lists: the plugin commands that call the
OEC.sh API come after the lines that give the plugin the simulator's key and URL; the status lists
the backup kinds too."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from oec_testkit import demo


def test_the_try_text_exports_the_demo_key_and_url_before_the_plugin_calls_the_api() -> None:
    api_url = "http://127.0.0.1:4321/api/public/v1"
    lines = demo.try_text("kubectl", Path("/s/kubeconfig"), api_url, Path("/s")).splitlines()
    export = next(i for i, line in enumerate(lines) if "export OEC_API_KEY=" in line)
    assert f"OEC_API_KEY={demo.DEMO_KEY}" in lines[export] and f"OEC_API_URL={api_url}" in lines[export]
    assert export < next(i for i, line in enumerate(lines) if "oec backups" in line)


def test_the_try_text_says_a_new_restore_object_restores_again() -> None:
    text = demo.try_text("kubectl", Path("/s/kubeconfig"), "http://x/api/public/v1", Path("/s"))
    line = next(line for line in text.splitlines() if "odoorestore.yaml" in line)
    assert "once" not in line and "again" in line


def test_demo_status_lists_the_backup_kinds_too(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    asked: list[tuple[str, ...]] = []

    class Recording:
        def __init__(self, *_: Any) -> None:
            pass

        def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
            asked.append(args)
            return subprocess.CompletedProcess(list(args), 0, "", "")
    monkeypatch.setenv("KUBECONFIG_DEMO", str(tmp_path / "kubeconfig"))
    monkeypatch.setattr(demo, "Kubectl", Recording)
    monkeypatch.setattr(demo, "default_kubectl", lambda: "kubectl")
    demo.status(tmp_path)
    assert asked and asked[0][:2] == ("get", "odooenv,odoobackup,odoobackupschedule,odoorestore")


def test_the_demo_operator_listens_on_loopback_where_the_webhook_url_points(tmp_path: Path) -> None:
    env = demo.webhook_env(tmp_path)
    url = httpx.URL(env["OEC_WEBHOOK_URL"])
    assert (url.scheme, url.host, url.path) == ("http", "127.0.0.1", "/oec/webhook")
    assert (env["OEC_WEBHOOK_ADDRESS"], env["OEC_WEBHOOK_PORT"]) == ("127.0.0.1", str(url.port))
    assert env["OEC_WEBHOOK_SECRET"] == "default/oec-operator-webhooks"  # the sample's namespace
    assert demo.webhook_env(tmp_path) == env  # a second `make demo` finds the running receiver


def test_the_push_step_says_when_oec_finished_the_change_and_how_much_later_kubectl_showed_it() -> None:
    text = demo.push_result_text(2.04, 0.31, pushing=True)
    assert "OEC.sh finished the stop 2.0 s after it was asked; kubectl get showed it 0.3 s later (by webhook" in text
    assert "up to 90 s in push mode, 15 s without webhooks" in text
    assert "by polling; the steady poll runs every 15 s" in demo.push_result_text(2.0, 9.5, pushing=False)
    assert "showed it 0.0 s later" in demo.push_result_text(2.0, -0.1, pushing=True)
    assert "every 90 s instead of every 15 s" in demo.push_mode_text(True)


def test_the_demo_operator_serves_metrics_on_a_port_of_its_own_where_the_push_check_reads(tmp_path: Path) -> None:
    # A fixed 8081 failed the demo when another process held it, or read that one's push mode.
    url = httpx.URL(demo.metrics_url(tmp_path))
    assert (url.host, url.path) == ("127.0.0.1", "/metrics")
    assert (tmp_path / "metrics.port").read_text() == str(url.port)
    assert demo.metrics_url(tmp_path) == str(url)  # a second `make demo` finds the running operator on it
    assert f"$(cat {tmp_path}/metrics.port)/metrics" in demo.try_text("kubectl", Path("/k"), "http://x/api/public/v1",
                                                                      tmp_path)


def test_a_new_demo_operator_does_not_reuse_the_ports_of_an_earlier_one(tmp_path: Path) -> None:
    # A port kept after `make demo-down` may be taken by the next `make demo`: the start-up failed on it.
    (tmp_path / "webhook.port").write_text("1")
    (tmp_path / "metrics.port").write_text("2")
    demo.forget_ports(tmp_path)
    assert httpx.URL(demo.webhook_url(tmp_path)).port != 1
    assert httpx.URL(demo.metrics_url(tmp_path)).port != 2
