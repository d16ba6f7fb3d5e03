"""What ``make demo`` prints and ``make demo-status`` lists: the plugin commands that call the
OEC.sh API come after the lines that give the plugin the simulator's key and URL; the status lists
the backup kinds too."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

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
