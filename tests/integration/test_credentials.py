"""Credentials lost before the resource (e.g. namespace deletion removes the Secret first)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from .conftest import RO_KEY, RW_KEY, Cluster, Simulator, environment, wait_for

pytestmark = pytest.mark.integration


def test_deletion_without_any_credentials_orphans_after_the_grace_period(
    cluster: Cluster, simulator: Simulator, operator_factory: Any
) -> None:
    project = simulator.new_project("no-credentials")
    # No default key, so once the Secret is gone nothing can delete the environment.
    first = operator_factory(OEC_API_KEY="", OEC_CREDENTIALS_GRACE_PERIOD="3")
    cluster.kubectl("create", "secret", "generic", "team-key", f"--from-literal=apiKey={RW_KEY}")
    cluster.apply(environment("stranded", project, credentialsSecretRef={"name": "team-key"}))
    env_id = cluster.wait_ready("stranded")["status"]["environmentId"]
    first.stop()  # a restart forgets the last key that worked
    cluster.kubectl("delete", "secret", "team-key")
    operator_factory(OEC_API_KEY="", OEC_CREDENTIALS_GRACE_PERIOD="3")
    cluster.kubectl("delete", "odooenv", "stranded", "--wait=false")

    held = cluster.get("stranded")
    assert held is not None and held["metadata"].get("deletionTimestamp")
    wait_for(lambda: cluster.get("stranded") is None, timeout=40, what="finalizer released after the grace period")
    assert [e["id"] for e in simulator.environments(project)] == [env_id]  # kept, not destroyed
    assert simulator.requests("DELETE", f"/environments/{env_id}") == []
    # kopf posts Events from a queue of its own: the Warning may land just after the finalizer went.
    def orphaned_events() -> str | None:
        out = cluster.kubectl("get", "events", "--field-selector", "reason=Orphaned", "-o", "json").stdout
        return out if env_id in out else None

    events = wait_for(orphaned_events, timeout=20, what="the Orphaned Event")
    assert "Warning" in events


def test_a_create_refused_to_a_read_only_key_waits_for_the_key_to_change(
    cluster: Cluster, simulator: Simulator, operator: Any
) -> None:
    project = simulator.new_project("read-only-key")
    cluster.kubectl("create", "secret", "generic", "ro-key", f"--from-literal=apiKey={RO_KEY}")
    cluster.apply(environment("refused", project, credentialsSecretRef={"name": "ro-key"}))
    cluster.wait_condition("refused", "Stalled", "True", reason="AuthFailed", timeout=30)
    time.sleep(4 * 3 + 1)  # four steady polls (3 s in the tests)
    creates = simulator.requests("POST", f"/projects/{project}/environments")
    assert [r["status"] for r in creates] == [403]
    assert (cluster.get("refused") or {})["status"]["refusedWrite"]["status"] == 403  # kept (the CRD's schema)
    assert RO_KEY not in json.dumps(cluster.get("refused"))

    secret = cluster.kubectl("create", "secret", "generic", "ro-key", f"--from-literal=apiKey={RW_KEY}",
                             "--dry-run=client", "-o", "yaml").stdout
    cluster.kubectl("apply", "-f", "-", input=secret)  # rotated to a full-access key
    obj = cluster.wait_ready("refused", timeout=30)
    assert obj["status"]["environmentId"] and "refusedWrite" not in obj["status"]
    assert [r["status"] for r in simulator.requests("POST", f"/projects/{project}/environments")] == [403, 201]
