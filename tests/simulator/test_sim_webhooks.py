"""The simulator's webhook routes (docs/oec-api.md §11.6, §8 offset pagination, §1 row 27): create with
its URL, events and scope rules, idempotent create, the secret shown only once, list/get/patch/delete,
rotate-secret, deliveries, and the 10/min webhook-mutation bucket."""

from __future__ import annotations

from typing import Any

import pytest

from .sim_helpers import PROJECT_A, PROJECT_B, SCOPED_A, Sim, StartSim, auth

HOOK = {"url": "https://hooks.example.com/oec", "events": ["environment.status_changed"]}


async def _create(sim: Sim, key: str | None = None, **body: Any) -> dict[str, Any]:
    headers = auth(key) if key else {}
    response = await sim.api.post("/webhooks", json={**HOOK, **body}, headers=headers)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


def _field_errors(body: dict[str, Any]) -> list[str]:
    return [".".join(map(str, e["loc"][1:])) for e in body["detail"]]


async def test_create_shows_the_secret_once_and_the_webhook_is_managed(sim: Sim) -> None:
    created = await _create(sim, description="operator")
    assert created["secret"].startswith("whsec_")
    assert {k: created[k] for k in ("url", "events", "project_id", "format", "is_active", "failure_count")} == {
        "url": HOOK["url"], "events": HOOK["events"], "project_id": None, "format": "raw", "is_active": True,
        "failure_count": 0,
    }
    got = (await sim.api.get(f"/webhooks/{created['id']}")).json()
    assert "secret" not in got and got["id"] == created["id"] and got["last_triggered_at"] is None

    patched = await sim.api.patch(f"/webhooks/{created['id']}",
                                  json={"events": ["deploy.failed", "deploy.failed"], "is_active": False})
    assert patched.status_code == 200 and patched.json()["events"] == ["deploy.failed"]
    assert patched.json()["is_active"] is False

    rotated = (await sim.api.post(f"/webhooks/{created['id']}/rotate-secret")).json()
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != created["secret"]
    assert (await sim.api.get(f"/webhooks/{created['id']}/deliveries")).json() == []

    deleted = await sim.api.delete(f"/webhooks/{created['id']}")
    assert deleted.status_code == 204
    assert (await sim.api.get(f"/webhooks/{created['id']}")).status_code == 404
    assert (await sim.api.get(f"/webhooks/{created['id']}/deliveries")).status_code == 404


async def test_list_is_offset_paginated(sim: Sim) -> None:
    ids = [(await _create(sim, description=str(n)))["id"] for n in range(3)]
    first = (await sim.api.get("/webhooks", params={"limit": 2})).json()
    assert [h["id"] for h in first["items"]] == ids[:2]
    assert (first["total"], first["limit"], first["offset"], first["has_more"]) == (3, 2, 0, True)
    rest = (await sim.api.get("/webhooks", params={"limit": 2, "offset": 2})).json()
    assert [h["id"] for h in rest["items"]] == ids[2:] and rest["has_more"] is False
    assert all("secret" not in h for h in first["items"] + rest["items"])
    assert (await sim.api.get("/webhooks", params={"limit": 101})).status_code == 422


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "http://hooks.example.com/oec"}, "url"),
        ({"url": "https://127.0.0.1:8443/oec"}, "url"),
        ({"url": "https://10.1.2.3/oec"}, "url"),
        ({"url": "https://localhost/oec"}, "url"),
        ({"url": "https://example.com/" + "a" * 2048}, "url"),
        ({"events": []}, "events"),
        ({"events": ["environment.created"] * 11}, "events"),
        ({"events": ["environment.exploded"]}, "events.0"),
        ({"description": "x" * 501}, "description"),
        ({"format": "xml"}, "format"),
    ],
)
async def test_create_refuses_bad_urls_and_events(sim: Sim, body: dict[str, Any], field: str) -> None:
    response = await sim.api.post("/webhooks", json={**HOOK, **body})
    assert response.status_code == 422, response.text
    assert field in _field_errors(response.json())
    assert (await sim.api.get("/webhooks")).json()["total"] == 0


async def test_the_insecure_url_flag_takes_http_loopback(start_sim: StartSim) -> None:
    sim = await start_sim(webhook_allow_insecure_urls=True)
    created = await _create(sim, url="http://127.0.0.1:9/hook")
    assert created["url"] == "http://127.0.0.1:9/hook"
    assert (await sim.api.post("/webhooks", json={**HOOK, "url": "ftp://127.0.0.1/x"})).status_code == 422


async def test_project_key_must_name_its_own_project_and_sees_only_its_webhooks(sim: Sim) -> None:
    org_hook = await _create(sim)
    missing = await sim.api.post("/webhooks", json=HOOK, headers=auth(SCOPED_A))
    assert missing.status_code == 422 and "project_id" in _field_errors(missing.json())
    other = await sim.api.post("/webhooks", json={**HOOK, "project_id": PROJECT_B}, headers=auth(SCOPED_A))
    assert other.status_code == 422 and "project_id" in _field_errors(other.json())
    own = await _create(sim, SCOPED_A, project_id=PROJECT_A)
    assert own["project_id"] == PROJECT_A
    listed = (await sim.api.get("/webhooks", headers=auth(SCOPED_A))).json()
    assert [h["id"] for h in listed["items"]] == [own["id"]]
    assert (await sim.api.get(f"/webhooks/{org_hook['id']}", headers=auth(SCOPED_A))).status_code == 404
    assert (await sim.api.delete(f"/webhooks/{org_hook['id']}", headers=auth(SCOPED_A))).status_code == 404
    assert {h["id"] for h in (await sim.api.get("/webhooks")).json()["items"]} == {org_hook["id"], own["id"]}


async def test_create_with_the_same_idempotency_key_creates_one_webhook(sim: Sim) -> None:
    headers = {"X-Idempotency-Key": "operator-webhook-1"}
    first = await sim.api.post("/webhooks", json=HOOK, headers=headers)
    again = await sim.api.post("/webhooks", json=HOOK, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["id"] == first.json()["id"]
    assert (await sim.api.get("/webhooks")).json()["total"] == 1


async def test_mutations_beyond_ten_a_minute_are_refused(sim: Sim) -> None:
    hook = await _create(sim)
    for n in range(8):
        assert (await sim.api.patch(f"/webhooks/{hook['id']}", json={"description": str(n)})).status_code == 200
    assert (await sim.api.delete(f"/webhooks/{hook['id']}")).status_code == 204  # the 10th mutation
    refused = await sim.api.post("/webhooks", json=HOOK)
    assert refused.status_code == 429
    detail = refused.json()["detail"]
    assert detail["error"] == "webhook_mutation_rate_limit" and 1 <= detail["retry_after"] <= 60
    assert refused.headers["Retry-After"] == str(detail["retry_after"])
    # reads, test pings and other writes are not webhook mutations
    assert (await sim.api.get("/webhooks")).status_code == 200
    await sim.create_env(PROJECT_A)
    sim.clock.advance(60)
    assert (await sim.api.post("/webhooks", json=HOOK)).status_code == 201
