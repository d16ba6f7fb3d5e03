"""Fixtures of the chaos suite: a :class:`chaos.Lab` on the session's real cluster."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from oec_testkit import chaos


@pytest.fixture
def lab(kube: Any, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[chaos.Lab]:
    """A :class:`chaos.Lab` on the session's cluster; operator logs are printed on failure."""
    with chaos.Lab(kube.kubeconfig, kube.kubectl, tmp_path) as lab:
        yield lab
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            for log in sorted(tmp_path.glob("operator-*.log")):
                sys.stderr.write(f"\n--- {log.name} (tail) ---\n{log.read_text(errors='replace')[-5000:]}\n")


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)
