"""Rate limits (docs/oec-api.md §6, §1 rows 7-8). The manual clock stands 10 s into a calendar minute."""

from __future__ import annotations

from oec_simulator import ManualClock

from .sim_helpers import PROJECT_A, RO, Sim, auth


async def test_21st_write_in_a_minute_is_429_and_reads_are_separate(sim: Sim, clock: ManualClock) -> None:
    env_id = (await sim.create_env())["id"]  # write 1
    remaining = []
    for index in range(19):  # writes 2..20
        response = await sim.api.patch(f"/environments/{env_id}", json={"name": f"n{index}"})
        assert response.status_code == 200
        assert response.headers["X-RateLimit-Limit"] == "20"
        assert response.headers["X-RateLimit-Window"] == "60"
        remaining.append(int(response.headers["X-RateLimit-Remaining"]))
    assert remaining == list(range(18, -1, -1))

    refused = await sim.api.patch(f"/environments/{env_id}", json={"name": "too many"})
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "50"  # to the next full minute
    assert refused.headers["X-RateLimit-Limit"] == "20"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert refused.headers["X-RateLimit-Window"] == "60"
    detail = refused.json()["detail"]
    assert detail["error"] == "rate_limit_exceeded" and detail["retry_after"] == 50
    assert (await sim.api.get(f"/environments/{env_id}")).json()["name"] == "n18"

    read = await sim.api.get(f"/environments/{env_id}")
    assert read.status_code == 200
    assert read.headers["X-RateLimit-Limit"] == "120"
    assert read.headers["X-RateLimit-Remaining"] == "118"

    clock.advance(49)
    assert (await sim.api.patch(f"/environments/{env_id}", json={"name": "x"})).headers["Retry-After"] == "1"
    clock.advance(1)
    # New minute; the refused requests did not consume budget.
    again = await sim.api.patch(f"/environments/{env_id}", json={"name": "x"})
    assert again.status_code == 200
    assert again.headers["X-RateLimit-Remaining"] == "19"


async def test_read_bucket_is_per_key(sim: Sim) -> None:
    await sim.patch_config(read_limit=3)
    for expected in ("2", "1", "0"):
        response = await sim.api.get("/projects")
        assert response.headers["X-RateLimit-Remaining"] == expected
    assert (await sim.api.get("/projects")).status_code == 429
    other = await sim.api.get("/projects", headers=auth(RO))
    assert other.status_code == 200 and other.headers["X-RateLimit-Remaining"] == "2"
    # Writes of the exhausted key still have their own bucket.
    assert (await sim.api.post(f"/projects/{PROJECT_A}/environments", json={"name": "w"})).status_code == 201


async def test_single_bucket_rolling_window_variant(sim: Sim, clock: ManualClock) -> None:
    await sim.patch_config(rate_limit_mode="single", write_limit=3)
    first = await sim.api.get("/projects")
    assert first.headers["X-RateLimit-Limit"] == "3"  # rw key: GETs count against 20-style limit
    clock.advance(20)
    await sim.api.post(f"/projects/{PROJECT_A}/environments", json={"name": "w"})
    await sim.api.get("/projects")
    refused = await sim.api.get("/projects")
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "40"  # oldest request + 60 s
    clock.advance(40)
    assert (await sim.api.get("/projects")).status_code == 200
    ro = await sim.api.get("/projects", headers=auth(RO))
    assert ro.headers["X-RateLimit-Limit"] == "120"


async def test_headerless_429_variant_keeps_body_retry_after(sim: Sim) -> None:
    await sim.patch_config(read_limit=1, rate_limit_headers="body_only")
    await sim.api.get("/projects")
    refused = await sim.api.get("/projects")
    assert refused.status_code == 429
    for header in ("Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Window"):
        assert header not in refused.headers
    assert refused.json()["detail"]["error"] == "rate_limit_exceeded"
    assert refused.json()["detail"]["retry_after"] == 50


async def test_no_hint_429_variant(sim: Sim) -> None:
    await sim.patch_config(read_limit=1, rate_limit_headers="none")
    await sim.api.get("/projects")
    refused = await sim.api.get("/projects")
    assert refused.status_code == 429
    assert "Retry-After" not in refused.headers
    assert "retry_after" not in refused.json()["detail"]


async def test_toplevel_envelope_puts_retry_after_at_top_level(sim: Sim) -> None:
    await sim.patch_config(read_limit=1, error_envelope="toplevel")
    await sim.api.get("/projects")
    refused = await sim.api.get("/projects")
    body = refused.json()
    assert body["error"] == "rate_limit_exceeded" and body["retry_after"] == 50
    assert "detail" not in body
