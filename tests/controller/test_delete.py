"""The delete controller: destroy or orphan, replay of an unrecorded create, credential fallback,
the grace period, the CRD's own deletion."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from oec_operator.models.conditions import now_rfc3339
from oec_operator.oec.client import OecClient, make_http_client
from tests.controller.conftest import Harness
from tests.controller.test_sync import environments, status
from tests.simulator.sim_helpers import API, PROJECT_A, RW


async def running(h: Harness, name: str, **spec: Any) -> dict[str, Any]:
    body = h.add(name, **spec)
    await h.change(body)
    h.sim.clock.advance(60)
    return body


async def test_delete_destroys_then_releases(harness: Harness) -> None:
    body = await running(harness, "shop")
    step = await harness.delete_step(body)
    assert not step.done and "destroying" in step.message
    ready = status(harness, "shop").condition("Ready")
    assert ready is not None and ready["reason"] == "Deleting"
    again = await harness.delete_step(body)
    assert not again.done
    harness.sim.clock.advance(10)  # the destroy is done
    assert (await harness.delete_step(body)).done
    assert await environments(harness) == []
    assert harness.reasons("shop")[-1] == "Deleted"
    deletes = (await harness.sim.admin.get("/stats")).json()["writes"]
    assert deletes == 2  # the create and one DELETE: never a DELETE while destroying


async def test_orphan_policy_keeps_the_environment(harness: Harness) -> None:
    body = await running(harness, "shop", deletionPolicy="Orphan")
    assert (await harness.delete_step(body)).done
    assert [e["name"] for e in await environments(harness)] == ["shop"]
    assert harness.reasons("shop")[-1] == "Orphaned"


async def test_crd_deletion_orphans(harness: Harness) -> None:
    body = await running(harness, "shop")
    harness.kube.crd_deleting = True
    assert (await harness.delete_step(body)).done
    assert [e["name"] for e in await environments(harness)] == ["shop"]


async def test_an_unrecorded_create_is_found_and_destroyed(harness: Harness) -> None:
    """A crash after the POST, before the id was recorded: the deletion replays the recorded create
    (same idempotency key: the API answers with the first result) and destroys that one."""
    body = harness.add("shop")
    harness.kube.fail_status_writes = None
    request = {"key": "oec-operator-create-crashed", "name": "shop", "environmentType": "development",
               "requestedAt": "2026-12-01T00:00:00Z"}
    body["status"] = {"createRequest": request}
    harness.kube.objects[("team", "shop")] = body
    async with make_http_client(harness.sim.base_url + API, timeout=5) as http:
        await OecClient(http, RW).create_environment(PROJECT_A, name="shop", environment_type="development",
                                                     idempotency_key=request["key"])
    harness.sim.clock.advance(60)
    assert not (await harness.delete_step(body)).done
    harness.sim.clock.advance(10)
    assert (await harness.delete_step(body)).done
    assert await environments(harness) == []
    listed = (await harness.sim.admin.get("/environments")).json()
    assert len(listed) == 1  # one environment ever: the replay created nothing


async def test_a_lost_secret_falls_back_to_the_last_key_that_worked(harness: Harness) -> None:
    harness.kube.set_key(RW, ("team", "team-key"))
    body = await running(harness, "shop", credentialsSecretRef={"name": "team-key"})
    assert status(harness, "shop").environment_id
    harness.kube.secrets.clear()  # namespace teardown: the Secret went first
    harness.runtime.secrets.invalidate("team", "team-key")
    harness.sim.clock.advance(60)
    step = await harness.delete_step(body)
    assert not step.done and "destroying" in step.message


async def test_no_credentials_at_all_orphans_after_the_grace_period(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(credentials_grace_period=0)
    body = h.add("shop", credentialsSecretRef={"name": "gone"})
    body["status"] = {"environmentId": "d4b490d2-d00f-4c66-a1a8-000000000000"}
    h.kube.secrets.clear()
    assert (await h.delete_step(body)).done
    assert h.reasons("shop")[-1] == "Orphaned"


async def test_credentials_wait_within_the_grace_period(harness: Harness) -> None:
    body = harness.add("shop", credentialsSecretRef={"name": "gone"})
    body["status"] = {"environmentId": "d4b490d2-d00f-4c66-a1a8-000000000000"}
    harness.kube.secrets.clear()
    body["metadata"]["deletionTimestamp"] = now_rfc3339()
    step = await harness.delete_step(body)
    assert not step.done and "waits for credentials" in step.message
