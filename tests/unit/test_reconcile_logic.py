"""Pure decisions of the domain logic: what to PATCH, how API states and errors become conditions."""

from __future__ import annotations

import httpx

from oec_operator.domain.assess import assess, merge_status
from oec_operator.domain.failures import error_outcome, retry_delay
from oec_operator.domain.outcome import Outcome
from oec_operator.domain.reconcile import desired_changes, refused_create
from oec_operator.models.conditions import merge_conditions
from oec_operator.models.spec import OdooEnvironmentSpec
from oec_operator.models.status import Status
from oec_operator.oec.errors import OecError, OecTransportError, error_from_response
from oec_operator.oec.models import Environment, EnvironmentHealth

PROJECT = "3f0c9a52-7a1e-4c1b-9d2e-5b8f6a4e2c10"


def env(**kw: object) -> Environment:
    base = {"id": "e1", "name": "shop", "status": "running", "branch": "main", "url": "https://shop.apps.oec.sh"}
    return Environment.model_validate({**base, **kw})


def spec(**kw: object) -> OdooEnvironmentSpec:
    return OdooEnvironmentSpec.from_body({"projectId": PROJECT, **kw})


def test_name_defaults_to_metadata_name_and_branch_is_enforced_only_when_set() -> None:
    assert desired_changes(spec(), "shop", env()) == {}
    assert desired_changes(spec(), "other", env()) == {"name": "other"}
    assert desired_changes(spec(branch="dev"), "shop", env()) == {"branch": "dev"}
    assert desired_changes(spec(name="Shop", branch="main"), "shop", env()) == {"name": "Shop"}


def conditions_of(outcome: Outcome) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in outcome.conditions}


def test_running_is_ready_and_observed() -> None:
    outcome = Outcome()
    assess(env(), EnvironmentHealth(), outcome, fast=1, slow=60)
    assert conditions_of(outcome) == {"Ready": ("True", "Available")}
    assert outcome.observed and outcome.next_poll == 60
    assert set(outcome.remove) == {"Reconciling", "Stalled"}


def test_deploying_is_reconciling_and_polled_fast() -> None:
    outcome = Outcome()
    assess(env(status="deploying"), None, outcome, fast=2, slow=60)
    assert conditions_of(outcome) == {"Ready": ("False", "Provisioning"), "Reconciling": ("True", "Progressing")}
    assert not outcome.observed and outcome.next_poll == 2


def test_failed_deploy_stalls() -> None:
    outcome = Outcome()
    assess(env(status="failed"), None, outcome, fast=2, slow=60)
    assert conditions_of(outcome)["Stalled"] == ("True", "DeployFailed")
    assert outcome.observed


def test_transient_error_keeps_ready_and_backs_off() -> None:
    exc = error_from_response(httpx.Response(503, json={"detail": {"error": "enqueue_failed", "message": "x"}}))
    outcome = error_outcome(exc, had_ready=True, credentials_hint="k", failures=3, fast_poll=2, slow_poll=60)
    assert conditions_of(outcome) == {"Reconciling": ("True", "ProgressingWithRetry")}
    assert outcome.transient and not outcome.observed
    assert 2 * 4 * 0.8 <= outcome.next_poll <= 2 * 4 * 1.2


def test_rate_limit_waits_exactly_as_told() -> None:
    exc = error_from_response(httpx.Response(429, headers={"Retry-After": "37"}, json={}))
    assert 37 <= retry_delay(exc, failures=5, base=2) <= 40
    outcome = error_outcome(exc, had_ready=False, credentials_hint="k", failures=1, fast_poll=2, slow_poll=60)
    assert conditions_of(outcome)["Reconciling"] == ("True", "RateLimited")
    assert conditions_of(outcome)["Ready"] == ("False", "RateLimited")


def test_backoff_is_capped() -> None:
    exc = error_from_response(httpx.Response(500, json={}))
    assert retry_delay(exc, failures=30, base=5) <= 300 * 1.2


def test_auth_failure_stalls_with_what_to_fix() -> None:
    exc = error_from_response(httpx.Response(401, json={"detail": {"error": "invalid_key", "message": "bad"}}))
    outcome = error_outcome(exc, had_ready=True, credentials_hint="Secret ns/k key apiKey", failures=1,
                            fast_poll=2, slow_poll=60)
    assert conditions_of(outcome) == {"Ready": ("False", "AuthFailed"), "Stalled": ("True", "AuthFailed")}
    assert "Secret ns/k key apiKey" in outcome.conditions[0].message
    assert outcome.observed and outcome.next_poll == 60


def test_quota_is_a_plan_limit() -> None:
    exc = error_from_response(httpx.Response(422, json={"detail": {"error": "quota_exceeded", "message": "full"}}))
    outcome = error_outcome(exc, had_ready=False, credentials_hint="k", failures=1, fast_poll=2, slow_poll=60)
    assert conditions_of(outcome)["Stalled"] == ("True", "PlanLimit")


def test_transition_time_only_changes_with_status() -> None:
    first = merge_conditions(None, [], generation=1, now="t0")
    assert first == []
    outcome = Outcome()
    assess(env(status="deploying"), None, outcome, fast=1, slow=60)
    a = merge_status(Status(), outcome, 1, "t1").patch()
    outcome = Outcome()
    assess(env(status="deploying"), None, outcome, fast=1, slow=60)
    b = merge_status(Status.from_body(a), outcome, 1, "t2").patch()
    assert b["conditions"][0]["lastTransitionTime"] == "t1"
    outcome = Outcome()
    assess(env(), None, outcome, fast=1, slow=60)
    c = merge_status(Status.from_body(b), outcome, 2, "t3").patch()
    assert [x["type"] for x in c["conditions"]] == ["Ready"]
    assert c["conditions"][0]["lastTransitionTime"] == "t3"
    assert c["conditions"][0]["observedGeneration"] == 2 and c["observedGeneration"] == 2
    assert "observedGeneration" not in a


def test_only_a_definitive_refusal_proves_a_create_made_nothing() -> None:
    def answer(status: int, body: object) -> OecError:
        return error_from_response(httpx.Response(status, json=body))

    refused = [answer(422, {"detail": {"error": "quota_exceeded", "message": "limit"}}),
               answer(422, {"detail": [{"loc": ["body", "name"], "msg": "too long", "type": "string_too_long"}]}),
               answer(404, {"detail": {"error": "not_found", "message": "no"}}),
               answer(403, {"detail": {"error": "read_only_key", "message": "no"}}),
               answer(401, {"detail": {"error": "invalid_key", "message": "no"}}),
               answer(400, {"detail": {"error": "invalid_json", "message": "no"}})]
    ambiguous = [answer(422, {"detail": {"error": "idempotency_key_mismatch", "message": "other body"}}),
                 answer(409, {"detail": {"error": "concurrent_action", "message": "busy"}}),
                 answer(429, {"detail": {"error": "rate_limit_exceeded", "retry_after": 3}}),
                 answer(503, {"detail": {"error": "enqueue_failed", "message": "later"}}),
                 OecTransportError("timed out", code="timeout")]
    assert [refused_create(e) for e in refused] == [True] * len(refused)
    assert [refused_create(e) for e in ambiguous] == [False] * len(ambiguous)
