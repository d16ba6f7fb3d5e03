"""Typed errors of the OEC.sh public API and the parsing of its error bodies.

The API sends errors in five body shapes (``docs/oec-api.md`` §5.2); :func:`error_from_response`
turns any of them, plus the status code and headers, into one exception class per kind of
failure so that callers decide on the class, never on raw bodies.

Exception messages are built from the status code, the API's machine code and the API's own
human message only. They never contain request headers, so the API key cannot leak through
``str(exc)`` (kopf stores exception text verbatim in an annotation, ``docs/kopf.md`` §4).
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping
from typing import Any

import httpx

#: Seconds to wait after ``ip_blocked`` when the API gives no hint (``docs/oec-api.md`` §6).
IP_BLOCK_SECONDS = 900.0
#: Seconds to wait after a webhook / per-target limit with no hint (``docs/oec-api.md`` §6).
TARGET_LIMIT_SECONDS = 60.0
_MESSAGE_LIMIT = 300


class OecError(Exception):
    """Base class of every OEC.sh API failure.

    Attributes:
        status: HTTP status code, or ``None`` for transport failures.
        code: the API's machine-readable error code (``"not_found"``, ``"read_only_key"``, ...),
            or a generic one chosen here when the body has none.
        message: the API's human-readable message (truncated to 300 characters).
        extras: further fields of the error object (``task_id``, ``required_plan``, ...).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str = "error",
        extras: Mapping[str, Any] | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message[:_MESSAGE_LIMIT]
        self.extras = dict(extras or {})
        prefix = f"OEC API {status} {code}" if status is not None else f"OEC API {code}"
        super().__init__(f"{prefix}: {self.message}" if self.message else prefix)


class OecTransportError(OecError):
    """The request got no HTTP answer: timeout, refused or reset connection, DNS failure."""


class OecBadRequestError(OecError):
    """HTTP 400: malformed request or a missing confirmation header (``docs/oec-api.md`` §5.3)."""


class OecAuthError(OecError):
    """HTTP 401: missing, malformed, unknown, revoked or expired API key (``docs/oec-api.md`` §4)."""


class OecPaymentRequiredError(OecError):
    """HTTP 402: the organization's subscription is blocked (``docs/oec-api.md`` §5.2 shape 4)."""


class OecPermissionError(OecError):
    """HTTP 403: read-only key on a write, plan too low, or project key on an org endpoint."""


class OecNotFoundError(OecError):
    """HTTP 404: not found, deleted, or not visible to this key (``docs/oec-api.md`` §5.3)."""


class OecBackupsUnsupportedError(OecNotFoundError):
    """The API has no backup-create route (404/405 on ``POST /environments/{id}/backups`` for an
    environment that exists; an older API, ``docs/oec-api.md`` §1 row 28). Code ``backups_unsupported``."""


class OecConflictError(OecError):
    """HTTP 409: ``task_in_progress`` (``task_id`` holds the active task), ``concurrent_action``,
    ``invalid_state`` or ``name_conflict`` (``docs/oec-api.md`` §5.4, §11.3)."""

    @property
    def task_id(self) -> str | None:
        """Id of the task that blocks the request, when the API named one."""
        value = self.extras.get("task_id")
        return str(value) if value else None


class OecValidationError(OecError):
    """HTTP 422: the API refused a field value or a business rule (quota, idempotency key).

    Attributes:
        errors: list of ``(field, message)`` pairs; ``field`` is the dotted body path without the
            leading ``body`` (``"name"``), or ``None`` when the API named no field.
    """

    def __init__(self, message: str, *, errors: list[tuple[str | None, str]] | None = None, **kw: Any):
        self.errors = list(errors or [])
        super().__init__(message, **kw)

    @property
    def field(self) -> str | None:
        """The first field the API named, or ``None``."""
        return next((field for field, _ in self.errors if field), None)


class OecRateLimitError(OecError):
    """HTTP 429: rate limit or IP block (``docs/oec-api.md`` §6).

    Attributes:
        retry_after: seconds to wait before the next request may succeed (always > 0), derived
            by :func:`retry_after_seconds`.
        stated: whether the API stated that time (``Retry-After``, body ``retry_after`` or
            ``X-RateLimit-Reset``) rather than it being guessed by the fallback chain (§6).
    """

    def __init__(self, message: str, *, retry_after: float, stated: bool = True, **kw: Any) -> None:
        self.retry_after = retry_after
        self.stated = stated
        super().__init__(message, **kw)


class OecServerError(OecError):
    """HTTP 5xx (or any other unexpected status): retry with backoff (``docs/oec-api.md`` §5.3)."""


_BY_STATUS: dict[int, type[OecError]] = {
    400: OecBadRequestError,
    401: OecAuthError,
    402: OecPaymentRequiredError,
    403: OecPermissionError,
    404: OecNotFoundError,
    409: OecConflictError,
    422: OecValidationError,
}


def parse_error_body(body: Any) -> tuple[str | None, str, dict[str, Any], list[tuple[str | None, str]]]:
    """Parse an API error body in any of the five shapes of ``docs/oec-api.md`` §5.2.

    Args:
        body: the decoded JSON body (any type; non-JSON bodies are passed as ``None``).

    Returns:
        ``(code, message, extras, field_errors)``: the machine code or ``None``; the human
        message (possibly empty); the remaining fields of the error object; and a list of
        ``(field, message)`` pairs from validation details.
    """
    if not isinstance(body, dict):
        return None, "", {}, []
    detail = body.get("detail")
    # Shape 5: top-level {"error", "message", "details"|"detail": [{field, message}]}.
    if "error" in body or ("message" in body and not isinstance(detail, dict)):
        extras = {k: v for k, v in body.items() if k not in ("error", "message", "detail", "details")}
        fields = _field_errors(body.get("detail")) or _field_errors(body.get("details"))
        details = body.get("details")
        if isinstance(details, dict):
            extras.update(details)
        return _str_or_none(body.get("error")), str(body.get("message") or ""), extras, fields
    # Shape 1 ({"detail": {"error", "message", ...}}) and shape 4 ({"detail": {"reason", ...}}).
    if isinstance(detail, dict):
        code = _str_or_none(detail.get("error")) or _str_or_none(detail.get("reason"))
        extras = {k: v for k, v in detail.items() if k not in ("error", "reason", "message")}
        return code, str(detail.get("message") or ""), extras, []
    # Shape 2: pydantic validation list.
    if isinstance(detail, list):
        fields = _field_errors(detail)
        message = "; ".join(f"{f}: {m}" if f else m for f, m in fields)
        return "validation_error", message, {}, fields
    # Shape 3: {"detail": "<text>"}.
    if isinstance(detail, str):
        return None, detail, {}, []
    return None, "", {}, []


def _field_errors(items: Any) -> list[tuple[str | None, str]]:
    if not isinstance(items, list):
        return []
    out: list[tuple[str | None, str]] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        if "loc" in item:
            loc = [str(p) for p in item.get("loc") or [] if p not in ("body", "query", "header", "path")]
            field = ".".join(loc) or None
            out.append((field, str(item.get("msg") or item.get("message") or "")))
        else:
            out.append((_str_or_none(item.get("field")), str(item.get("message") or item.get("msg") or "")))
    return out


def _str_or_none(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def retry_after_seconds(
    headers: Mapping[str, str], body_extras: Mapping[str, Any], code: str | None, now: float | None = None
) -> float:
    """Seconds to wait after a 429, by the fallback chain of ``docs/oec-api.md`` §6.

    ``Retry-After`` (seconds or HTTP-date) -> body ``retry_after`` -> ``X-RateLimit-Reset``
    (seconds or epoch) -> for ``ip_blocked`` 900 s, for webhook/target limits 60 s -> otherwise
    1 s past the next full minute, capped by ``X-RateLimit-Window``.

    Args:
        headers: response headers (case-insensitive mapping).
        body_extras: the error object's extra fields (may hold ``retry_after``).
        code: the API error code, if any.
        now: current Unix time in seconds (defaults to ``time.time()``).

    Returns:
        A delay in seconds, at least 1.
    """
    now = time.time() if now is None else now
    value = stated_retry_after(headers, body_extras, now)
    if value is None and code == "ip_blocked":
        value = IP_BLOCK_SECONDS
    if value is None and code in ("webhook_mutation_rate_limit", "target_rate_limit"):
        value = TARGET_LIMIT_SECONDS
    if value is None:
        value = 60.0 - (now % 60.0) + 1.0
        window = _number(headers.get("x-ratelimit-window"))
        if window:
            value = min(value, window)
    return max(1.0, float(value))


def stated_retry_after(headers: Mapping[str, str], body_extras: Mapping[str, Any], now: float) -> float | None:
    """The wait the API itself stated after a 429 (the first three steps of the fallback chain of
    ``docs/oec-api.md`` §6), in seconds, or ``None`` when it stated none (``now``: Unix time)."""
    value = _parse_delay(headers.get("retry-after"), now)
    if value is None:
        value = _number(body_extras.get("retry_after"))
    if value is None:
        reset = _number(headers.get("x-ratelimit-reset"))
        if reset is not None:
            value = reset - now if reset > 1_000_000_000 else reset
    return value


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _parse_delay(value: str | None, now: float) -> float | None:
    if value is None:
        return None
    number = _number(value)
    if number is not None:
        return number
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def error_for(status: int, code: str, message: str, field: str | None = None) -> OecError:
    """The typed exception of an answer remembered by its status, code, message and field (a
    refusal recorded earlier, reported again without sending the request); not raised.
    Not for 429 (its wait is not remembered)."""
    if status == 422:
        return OecValidationError(message, errors=[(field, message)] if field else [], status=status, code=code)
    return _BY_STATUS.get(status, OecServerError)(message, status=status, code=code)


def error_from_response(response: httpx.Response, *, now: float | None = None) -> OecError:
    """Build the typed exception for a non-2xx API response.

    Args:
        response: an ``httpx.Response`` with status >= 300.
        now: current Unix time in seconds for a 429's wait (defaults to ``time.time()``).

    Returns:
        An instance of the :class:`OecError` subclass for the status code (not raised).
    """
    try:
        body = response.json()
    except ValueError:
        body = None
    code, message, extras, fields = parse_error_body(body)
    status = response.status_code
    if not message:
        message = response.reason_phrase or "error"
    kwargs: dict[str, Any] = {"status": status, "code": code or f"http_{status}", "extras": extras}
    if status == 429:
        at = time.time() if now is None else now
        return OecRateLimitError(
            message, retry_after=retry_after_seconds(response.headers, extras, code, now=at),
            stated=stated_retry_after(response.headers, extras, at) is not None, **kwargs
        )
    if status == 422:
        return OecValidationError(message, errors=fields, **kwargs)
    cls = _BY_STATUS.get(status, OecServerError)
    return cls(message, **kwargs)
