"""The API's answers taken for what they prove, end to end (kubectl -> real apiserver -> operator
process -> simulator): a 404 while the detail routes lag behind a create is not a deletion, and a
create the API refused leaves nothing for ``kubectl delete`` to create (``docs/reconciliation.md``)."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Cluster, OperatorProcess, Simulator, environment, wait_for

pytestmark = pytest.mark.integration

#: Seconds the simulator's detail routes answer 404 after a create (``detail_lag_seconds``): long
#: enough that the first `/status` reads fall inside it even on a loaded machine.
LAG_SECONDS = 20.0


def test_detail_routes_lagging_behind_a_create_never_report_a_deletion(
    cluster: Cluster, simulator: Simulator, operator: OperatorProcess
) -> None:
    project = simulator.new_project("lagging")
    simulator.configure(detail_lag_seconds=LAG_SECONDS)
    try:
        cluster.apply(environment("lagging", project))
        obj = cluster.wait_ready("lagging", timeout=LAG_SECONDS + 40)
        # The first deploy (2 s) ended while GET /environments/{id}/status still answered 404.
        lagged = simulator.requests("GET", "/status")
        assert any(r["status"] == 404 and obj["status"]["environmentId"] in r["path"] for r in lagged)
    finally:
        simulator.configure(detail_lag_seconds=0)
    assert obj["status"]["phase"] == "running"
    events = cluster.events("lagging")
    assert not [e for e in events if e.get("reason") == "ExternallyDeleted" or e.get("type") == "Warning"]


def test_deleting_a_resource_whose_create_was_refused_creates_nothing(
    cluster: Cluster, simulator: Simulator, operator_factory: Any
) -> None:
    project = simulator.new_project("refused")
    # Steady polls far apart, so that nothing but the deletion could send a create after the fix.
    operator_factory(OEC_POLL_INTERVAL="120")
    simulator.inject(kind="error", status=422, code="validation_error", message="branch does not exist",
                     route="create_environment", count=1000)
    try:
        cluster.apply(environment("refused", project, branch="not-pushed-yet"))
        stalled = cluster.wait_condition("refused", "Stalled", reason="InvalidSpec", timeout=30)
        assert "branch does not exist" in stalled["message"]
    finally:
        simulator.clear_faults()  # the branch is pushed: a create would succeed now
    seq = simulator.last_seq()
    cluster.delete("refused")
    wait_for(lambda: cluster.get("refused") is None, timeout=30, what="the finalizer released")
    assert simulator.requests("POST", "/environments", since=seq) == []
    assert simulator.requests("DELETE", since=seq) == []
    assert simulator.environments(project, include_deleted=True) == []
