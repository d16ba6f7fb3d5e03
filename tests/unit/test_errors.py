"""Parsing of every error body shape and the 429 wait-time chain (docs/oec-api.md §5.2, §6)."""

from __future__ import annotations

import email.utils

import httpx
import pytest

from oec_operator.oec.errors import (
    OecAuthError,
    OecBadRequestError,
    OecConflictError,
    OecNotFoundError,
    OecPaymentRequiredError,
    OecPermissionError,
    OecRateLimitError,
    OecServerError,
    OecValidationError,
    error_from_response,
    parse_error_body,
    retry_after_seconds,
)


def test_shape_1_detail_object_with_extras() -> None:
    body = {"detail": {"error": "task_in_progress", "message": "A task is running.", "task_id": "t-1"}}
    assert parse_error_body(body) == ("task_in_progress", "A task is running.", {"task_id": "t-1"}, [])


def test_shape_2_pydantic_list_names_the_field() -> None:
    body = {"detail": [{"loc": ["body", "name"], "msg": "String should have at most 255 characters",
                        "type": "string_too_long"}]}
    code, message, _, fields = parse_error_body(body)
    assert code == "validation_error"
    assert fields == [("name", "String should have at most 255 characters")]
    assert "name" in message


def test_shape_3_detail_string() -> None:
    assert parse_error_body({"detail": "No storage configuration available."}) == (
        None, "No storage configuration available.", {}, [])


def test_shape_4_subscription_blocked() -> None:
    body = {"detail": {"reason": "subscription_blocked", "subscription_status": "past_due", "message": "Pay."}}
    assert parse_error_body(body) == ("subscription_blocked", "Pay.", {"subscription_status": "past_due"}, [])


def test_shape_5_top_level_envelope_with_field_details() -> None:
    body = {"error": "validation_error", "message": "Invalid input", "detail": [{"field": "branch",
                                                                                   "message": "too long"}]}
    code, message, _, fields = parse_error_body(body)
    assert (code, message, fields) == ("validation_error", "Invalid input", [("branch", "too long")])


@pytest.mark.parametrize(
    ("status", "cls"),
    [(400, OecBadRequestError), (401, OecAuthError), (402, OecPaymentRequiredError), (403, OecPermissionError),
     (404, OecNotFoundError), (409, OecConflictError), (422, OecValidationError), (500, OecServerError),
     (502, OecServerError), (503, OecServerError), (504, OecServerError)],
)
def test_status_codes_map_to_typed_errors(status: int, cls: type) -> None:
    response = httpx.Response(status, json={"detail": {"error": "x", "message": "m"}})
    assert type(error_from_response(response)) is cls


def test_conflict_exposes_the_blocking_task() -> None:
    response = httpx.Response(409, json={"detail": {"error": "task_in_progress", "message": "busy", "task_id": "t9"}})
    exc = error_from_response(response)
    assert isinstance(exc, OecConflictError) and exc.task_id == "t9"


def test_validation_error_keeps_the_field() -> None:
    response = httpx.Response(422, json={"detail": [{"loc": ["body", "branch"], "msg": "too long", "type": "x"}]})
    exc = error_from_response(response)
    assert isinstance(exc, OecValidationError) and exc.field == "branch"
    assert "branch" in str(exc)


def test_non_json_error_body_still_gives_a_typed_error() -> None:
    exc = error_from_response(httpx.Response(502, text="<html>bad gateway</html>"))
    assert isinstance(exc, OecServerError) and exc.status == 502


NOW = 1_800_000_030.0  # 30 s into a minute


def test_retry_after_header_seconds_wins() -> None:
    assert retry_after_seconds(httpx.Headers({"Retry-After": "23"}), {"retry_after": 50}, None, NOW) == 23


def test_retry_after_http_date() -> None:
    date = email.utils.formatdate(NOW + 12, usegmt=True)
    assert retry_after_seconds(httpx.Headers({"Retry-After": date}), {}, None, NOW) == pytest.approx(12, abs=1)


def test_retry_after_from_body_when_no_header() -> None:
    assert retry_after_seconds(httpx.Headers({}), {"retry_after": 17}, "rate_limit_exceeded", NOW) == 17


def test_ratelimit_reset_epoch_and_seconds() -> None:
    assert retry_after_seconds(httpx.Headers({"X-RateLimit-Reset": str(NOW + 9)}), {}, None, NOW) == pytest.approx(9)
    assert retry_after_seconds(httpx.Headers({"X-RateLimit-Reset": "7"}), {}, None, NOW) == 7


def test_no_hint_waits_until_just_past_the_next_minute() -> None:
    assert retry_after_seconds(httpx.Headers({}), {}, "rate_limit_exceeded", NOW) == pytest.approx(31)


def test_ip_block_without_hint_waits_fifteen_minutes() -> None:
    assert retry_after_seconds(httpx.Headers({}), {}, "ip_blocked", NOW) == 900


def test_rate_limit_error_from_body_only_429() -> None:
    response = httpx.Response(429, json={"detail": {"error": "rate_limit_exceeded", "message": "slow down",
                                                    "retry_after": 42}})
    exc = error_from_response(response)
    assert isinstance(exc, OecRateLimitError) and exc.retry_after == 42
    assert exc.stated, "the body stated the wait"


def test_a_429_without_any_hint_is_a_guessed_wait_from_the_given_clock() -> None:
    response = httpx.Response(429, json={"detail": {"error": "rate_limit_exceeded", "message": "slow down"}})
    exc = error_from_response(response, now=NOW)
    assert isinstance(exc, OecRateLimitError)
    assert not exc.stated, "the fallback guessed the wait (docs/oec-api.md §6): the limiter must probe"
    assert exc.retry_after == pytest.approx(31)
