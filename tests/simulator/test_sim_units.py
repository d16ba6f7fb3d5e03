"""Pure-logic units of the simulator: store lifecycle, rate limiter, idempotency cache, config, errors."""

from __future__ import annotations

import asyncio
from typing import Literal

import pytest
from pydantic import ValidationError

from oec_simulator import ManualClock
from oec_simulator.errors import ApiError, RequestValidationError, field_error, render
from oec_simulator.idempotency import IdempotencyCache, StoredResponse, fingerprint
from oec_simulator.ratelimit import RateLimiter
from oec_simulator.store import Store

from .sim_helpers import PROJECT_A, PROJECT_NOSERVER, base_config


def _store(clock: ManualClock, **overrides: object) -> Store:
    return Store(base_config(**overrides), clock)


def test_lazy_lifecycle_applies_effects_at_task_end_time(clock: ManualClock) -> None:
    store = _store(clock)
    env = store.create_environment(PROJECT_A, name="a")
    task = store.last_deploy(env)
    assert task is not None
    assert store.task_view(task)["status"] == "queued"
    clock.advance(0.5)
    assert store.task_view(task)["status"] == "running"
    assert store.task_view(task)["current_step"] == "prepare"
    clock.advance(100)  # long after the end: completion time is the task's end, not "now"
    env = store.get_environment(env.id)
    assert env.status == "running"
    assert env.updated_at == task.end_at == env.created_at + 5.0
    view = store.task_view(task)
    assert view["completed_at"] is not None and view["duration_seconds"] == 4.5


def test_only_one_active_task_and_state_rules(clock: ManualClock) -> None:
    store = _store(clock)
    env = store.create_environment(PROJECT_A, name="a")
    with pytest.raises(ApiError) as busy:
        store.start_action(env.id, "restart")
    assert (busy.value.status, busy.value.code) == (409, "task_in_progress")
    clock.advance(5)
    for action in ("start",):
        with pytest.raises(ApiError) as invalid:
            store.start_action(env.id, action)
        assert invalid.value.code == "invalid_state"
    destroy = store.start_action(env.id, "destroy")
    assert store.get_environment(env.id).status == "destroying"
    clock.advance(3)
    with pytest.raises(ApiError) as gone:
        store.get_environment(env.id)
    assert gone.value.status == 404
    assert store.task_view(store.get_task(destroy.id))["status"] == "completed"


def test_zero_durations_complete_on_next_access(clock: ManualClock) -> None:
    store = _store(clock, deploy_seconds=0, destroy_seconds=0)
    env = store.create_environment(PROJECT_A, name="a")
    assert store.get_environment(env.id).status == "running"
    store.start_action(env.id, "destroy")
    with pytest.raises(ApiError):
        store.get_environment(env.id)


def test_serverless_project_and_quota(clock: ManualClock) -> None:
    store = _store(clock, max_environments=1, quota_status=409)
    env = store.create_environment(PROJECT_NOSERVER, name="a")
    assert env.status == "pending" and store.last_deploy(env) is None
    with pytest.raises(ApiError) as quota:
        store.create_environment(PROJECT_A, name="b")
    assert (quota.value.status, quota.value.code) == (409, "quota_exceeded")


def test_rate_limiter_split_and_single(clock: ManualClock) -> None:
    limiter = RateLimiter(clock)

    def consume(is_write: bool, mode: Literal["split", "single"] = "split") -> tuple[bool, int]:
        decision = limiter.consume("k", "rw", is_write, mode=mode, read_limit=2, write_limit=1)
        return decision.allowed, decision.retry_after

    assert consume(True) == (True, 0)
    assert consume(True) == (False, 50)
    assert consume(False) == (True, 0)
    assert consume(False) == (True, 0)
    assert consume(False) == (False, 50)
    clock.advance(50)
    assert consume(True) == (True, 0)
    assert consume(True, "single") == (True, 0)
    clock.advance(59.5)
    assert consume(False, "single") == (False, 1)


async def test_idempotency_cache_serialises_and_replays(clock: ManualClock) -> None:
    cache = IdempotencyCache(clock)
    calls = 0

    async def compute() -> StoredResponse:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return StoredResponse(201, f"call {calls}".encode(), "application/json")

    scope = ("org", "POST", "/p", "k")
    results = await asyncio.gather(
        *(cache.run(scope, "fp", compute, ttl=10, strict=False, wait_inflight=True) for _ in range(4))
    )
    assert calls == 1 and {r.body for r in results} == {b"call 1"}
    with pytest.raises(ApiError) as mismatch:
        await cache.run(scope, "other", compute, ttl=10, strict=True, wait_inflight=True)
    assert mismatch.value.code == "idempotency_key_mismatch"
    clock.advance(10)
    assert (await cache.run(scope, "fp", compute, ttl=10, strict=False, wait_inflight=True)).body == b"call 2"


def test_fingerprint_ignores_json_formatting() -> None:
    assert fingerprint(b'{"a": 1, "b": 2}') == fingerprint(b'{"b":2,"a":1}')
    assert fingerprint(b'{"a": 1}') != fingerprint(b'{"a": 2}')


def test_render_envelopes() -> None:
    error = ApiError(409, "task_in_progress", "busy", extras={"task_id": "t"})
    assert render(error, "detail")[1] == {"detail": {"error": "task_in_progress", "message": "busy", "task_id": "t"}}
    assert render(error, "toplevel")[1] == {"error": "task_in_progress", "message": "busy", "task_id": "t"}
    validation: RequestValidationError = field_error("body", "name", "Field required", "missing")
    assert render(validation, "toplevel")[1]["detail"] == [{"field": "name", "message": "Field required"}]


def test_config_rejects_bad_keys_and_values() -> None:
    with pytest.raises(ValidationError) as bad_key:
        base_config(keys=[{"key": "oec_live_rw_secretbutshort"}])
    assert "oec_live_rw_secretbutshort" not in str(bad_key.value)
    with pytest.raises(ValidationError):
        base_config(keys=[{"key": "oec_live_rw_" + "a" * 30, "scope": "project"}])
    with pytest.raises(ValidationError):
        base_config(delete_status=200)
    config = base_config(rate_limit_headers=False)
    assert config.rate_limit_headers == "body_only"
