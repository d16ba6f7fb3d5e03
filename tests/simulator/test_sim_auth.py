"""Authentication, key tiers, key scopes and the brute-force block (docs/oec-api.md §4)."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from oec_simulator import ManualClock

from .sim_helpers import PROJECT_A, PROJECT_B, RO, RW, SCOPED_A, Sim, auth


async def test_missing_key_is_401_missing_auth_without_rate_headers(sim: Sim) -> None:
    async with httpx.AsyncClient(base_url=sim.api.base_url) as anonymous:
        response = await anonymous.get("/projects")
    assert response.status_code == 401
    assert response.json() == {"detail": {"error": "missing_auth", "message": response.json()["detail"]["message"]}}
    assert "X-RateLimit-Limit" not in response.headers


async def test_malformed_and_unknown_keys_get_distinct_401_codes_and_are_never_echoed(sim: Sim) -> None:
    malformed = "oec_live_xx_short"
    unknown = "oec_live_rw_" + "Z" * 43
    bad = await sim.api.get("/projects", headers=auth(malformed))
    assert bad.status_code == 401
    assert bad.json()["detail"]["error"] == "invalid_key_format"
    wrong = await sim.api.get("/projects", headers={"Authorization": "", "X-API-Key": unknown})
    assert wrong.status_code == 401
    assert wrong.json()["detail"]["error"] == "invalid_key"
    log = (await sim.admin.get("/requests")).text
    for text in (bad.text, wrong.text, log):
        assert malformed not in text
        assert unknown not in text
        assert RW not in text


async def test_x_api_key_works_and_authorization_wins(sim: Sim) -> None:
    via_header = await sim.api.get("/projects", headers={"Authorization": "", "X-API-Key": RW})
    assert via_header.status_code == 200
    # A valid Authorization beats an invalid X-API-Key, and vice versa.
    good_auth = await sim.api.get("/projects", headers={**auth(RW), "X-API-Key": "nonsense"})
    assert good_auth.status_code == 200
    bad_auth = await sim.api.get(
        "/projects", headers={"Authorization": "Bearer oec_live_rw_" + "Q" * 30, "X-API-Key": RW}
    )
    assert bad_auth.status_code == 401
    assert bad_auth.json()["detail"]["error"] == "invalid_key"


async def test_read_only_key_reads_but_cannot_write(sim: Sim) -> None:
    env = await sim.create_env()
    listed = await sim.api.get(f"/projects/{PROJECT_A}/environments", headers=auth(RO))
    assert listed.status_code == 200
    assert [e["id"] for e in listed.json()] == [env["id"]]
    for method, path, body in [
        ("POST", f"/projects/{PROJECT_A}/environments", {"name": "x"}),
        ("PATCH", f"/environments/{env['id']}", {"branch": "x"}),
        ("DELETE", f"/environments/{env['id']}", None),
        ("POST", f"/environments/{env['id']}/deploy", None),
    ]:
        response = await sim.api.request(method, path, json=body, headers={**auth(RO), "X-Confirm-Delete": "true"})
        assert response.status_code == 403, (method, path)
        assert response.json()["detail"]["error"] == "read_only_key"
        assert response.headers["X-RateLimit-Limit"] == "120"
    states = (await sim.admin.get("/environments")).json()
    assert len(states) == 1
    assert states[0]["branch"] == "develop"
    assert states[0]["deleted"] is False


async def test_project_scoped_key_sees_only_its_project(sim: Sim) -> None:
    env_a = await sim.create_env(PROJECT_A, name="a")
    env_b = await sim.create_env(PROJECT_B, name="b")
    scoped = auth(SCOPED_A)
    projects = await sim.api.get("/projects", headers=scoped)
    assert [p["id"] for p in projects.json()["data"]] == [PROJECT_A]
    assert (await sim.api.get(f"/environments/{env_a['id']}", headers=scoped)).status_code == 200
    for path in (
        f"/projects/{PROJECT_B}",
        f"/projects/{PROJECT_B}/environments",
        f"/environments/{env_b['id']}",
        f"/environments/{env_b['id']}/status",
    ):
        response = await sim.api.get(path, headers=scoped)
        assert response.status_code == 404, path
        assert response.json() == {"detail": {"error": "not_found", "message": "Resource not found."}}
    created = await sim.api.post(f"/projects/{PROJECT_B}/environments", json={"name": "x"}, headers=scoped)
    assert created.status_code == 404
    task_b = (await sim.api.get(f"/environments/{env_b['id']}/status")).json()["last_deploy"]["id"]
    assert (await sim.api.get(f"/deployments/{task_b}", headers=scoped)).status_code == 404
    org_only = await sim.api.post("/projects", json={"name": "p", "server_id": PROJECT_A}, headers=scoped)
    assert org_only.status_code == 403
    assert org_only.json()["detail"]["error"] == "org_scope_required"


async def test_project_scope_variant_answers_403(sim: Sim) -> None:
    env_b = await sim.create_env(PROJECT_B)
    await sim.patch_config(not_visible_status=403)
    response = await sim.api.get(f"/environments/{env_b['id']}", headers=auth(SCOPED_A))
    assert response.status_code == 403
    assert response.json()["detail"]["error"] == "project_scoped_key"


async def test_ten_refused_keys_block_the_ip_for_15_minutes(sim: Sim, clock: ManualClock) -> None:
    for index in range(10):
        refused = await sim.api.get("/projects", headers=auth(f"oec_live_rw_{'x' * 30}{index:02d}"))
        assert refused.status_code == 401
        clock.advance(5)
    # Blocked since the 10th refusal, 5 s ago.
    blocked = await sim.api.get("/projects")
    assert blocked.status_code == 429
    assert blocked.json()["detail"]["error"] == "ip_blocked"
    assert int(blocked.headers["Retry-After"]) == 895
    assert blocked.json()["detail"]["retry_after"] == 895
    clock.advance(894)
    assert (await sim.api.get("/projects")).status_code == 429
    clock.advance(2)
    assert (await sim.api.get("/projects")).status_code == 200


async def test_refusals_a_minute_apart_do_not_block(sim: Sim, clock: ManualClock) -> None:
    for _ in range(12):
        assert (await sim.api.get("/projects", headers=auth("oec_live_rw_" + "n" * 30))).status_code == 401
        clock.advance(61)
    assert (await sim.api.get("/projects")).status_code == 200


async def test_expired_and_revoked_keys(sim: Sim, clock: ManualClock) -> None:
    expiring = "oec_live_rw_" + "E" * 30
    expires_at = datetime.fromtimestamp(clock.now() + 60, UTC).isoformat()
    added = await sim.admin.post("/keys", json={"key": expiring, "expires_at": expires_at})
    assert added.status_code == 201
    assert expiring not in added.text
    assert (await sim.api.get("/projects", headers=auth(expiring))).status_code == 200
    clock.advance(61)
    expired = await sim.api.get("/projects", headers=auth(expiring))
    assert expired.status_code == 401
    assert expired.json()["detail"]["error"] == "key_expired"

    revoked = await sim.admin.post("/keys/revoke", json={"key": RW})
    assert revoked.json() == {"revoked": True}
    after = await sim.api.get("/projects")
    assert after.status_code == 401
    assert after.json()["detail"]["error"] == "invalid_key"
    assert RW not in (await sim.admin.get("/keys")).text
