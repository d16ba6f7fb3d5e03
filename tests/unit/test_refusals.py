"""Which refused writes are kept, and what makes a kept one be sent again (domain/refusals.py)."""

from __future__ import annotations

import pytest

from oec_operator.domain.failures import classify
from oec_operator.domain.refusals import Prints, held_back, prints, refusal
from oec_operator.models.requests import Requests
from oec_operator.oec.errors import (
    OecAuthError,
    OecConflictError,
    OecError,
    OecNotFoundError,
    OecPermissionError,
    OecRateLimitError,
    OecServerError,
    OecValidationError,
)

WRITE = "PATCH /environments/env-1"


def print_(key_id: str = "k1", generation: int = 1, reconcile_token: str | None = None,
           redeploy_token: str | None = None, recreate_token: str | None = None, situation: object = None) -> Prints:
    requests = Requests(reconcile_token=reconcile_token, redeploy_token=redeploy_token, recreate_token=recreate_token)
    return prints(WRITE, {"branch": "b"}, key_id, generation, requests, situation)


@pytest.mark.parametrize("exc", [
    OecAuthError("bad key", status=401, code="invalid_key"),
    OecPermissionError("read only", status=403, code="read_only_key"),
    OecValidationError("too long", status=422, code="validation_error", errors=[("branch", "too long")]),
    OecConflictError("not now", status=409, code="invalid_state"),
])
def test_a_refusal_for_good_is_kept_and_reported_the_same_way(exc: OecError) -> None:
    kept = refusal(exc, WRITE, print_(), "2026-12-04T00:00:00Z")
    assert kept is not None
    again = held_back(kept, print_())
    assert type(again) is type(exc)
    assert again is not None and classify(again, "the key") == classify(exc, "the key")


@pytest.mark.parametrize("exc", [
    OecConflictError("busy", status=409, code="task_in_progress", extras={"task_id": "t1"}),
    OecRateLimitError("slow down", status=429, code="rate_limit_exceeded", retry_after=3),
    OecServerError("oops", status=503, code="service_unavailable"),
    OecNotFoundError("gone", status=404, code="not_found"),
    OecError("no answer", code="transport"),
])
def test_a_failure_that_may_pass_is_not_kept(exc: OecError) -> None:
    assert refusal(exc, WRITE, print_(), "2026-12-04T00:00:00Z") is None


def test_a_new_key_generation_or_token_sends_the_write_again() -> None:
    kept = refusal(OecPermissionError("read only", status=403, code="read_only_key"), WRITE, print_(), "now")
    assert held_back(kept, print_()) is not None
    for changed in (print_(key_id="k2"), print_(generation=2), print_(reconcile_token="t"),
                    print_(redeploy_token="t"), print_(recreate_token="t")):
        assert held_back(kept, changed) is None
    assert held_back(None, print_()) is None


def test_only_a_quota_refusal_is_lifted_by_a_change_the_read_showed() -> None:
    quota = OecValidationError("quota", status=422, code="quota_exceeded", errors=[])
    read_only = OecPermissionError("read only", status=403, code="read_only_key")
    kept_quota = refusal(quota, WRITE, print_(situation=["e1"]), "now")
    kept_ro = refusal(read_only, WRITE, print_(situation=["e1"]), "now")
    assert held_back(kept_quota, print_(situation=["e1"])) is not None
    assert held_back(kept_quota, print_(situation=["e1", "e2"])) is None  # the project changed: try again
    assert held_back(kept_ro, print_(situation=["e1", "e2"])) is not None  # a new environment frees no key
