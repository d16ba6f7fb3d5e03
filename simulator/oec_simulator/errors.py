"""Error values and their wire shapes (docs/oec-api.md §5, §1 rows 2 and 18).

Logic modules raise :class:`ApiError` or :class:`RequestValidationError`; :func:`render` turns them
into ``(status, json_body, headers)`` in the configured envelope:

* ``detail`` (default): ``{"detail": {"error": code, "message": text, ...extras}}``; validation 422:
  ``{"detail": [{"loc": ["body", "name"], "msg": "...", "type": "..."}]}`` (§5.2 shapes 1 and 2).
* ``toplevel`` (REF): ``{"error": code, "message": text, ...extras}``; validation 422:
  ``{"error": "validation_error", "message": ..., "detail": [{"field": "name", "message": ...}]}``
  (§5.1); ``retry_after`` is top-level on 429.
* ``ApiError(..., plain=True)``: ``{"detail": "<message>"}`` (§5.2 shape 3) in the ``detail`` envelope.
* 402 ``subscription_blocked`` always uses §5.2 shape 4: ``{"detail": {"reason", "subscription_status",
  "message"}}``.

Messages never contain API keys.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

NOT_FOUND_MESSAGE = "Resource not found."


class ApiError(Exception):
    """An API error: HTTP ``status``, machine ``code``, human ``message``, body ``extras``, ``headers``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        extras: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        plain: bool = False,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        #: Render as ``{"detail": "<message>"}`` (§5.2 shape 3) in the ``detail`` envelope.
        self.plain = plain
        self.status = status
        self.code = code
        self.message = message
        self.extras = dict(extras or {})
        self.headers = dict(headers or {})


@dataclass(frozen=True)
class FieldError:
    """One request-validation problem: ``loc`` (e.g. ``("body", "name")``), ``msg``, pydantic ``type``."""

    loc: tuple[str | int, ...]
    msg: str
    type: str


@dataclass(eq=False)
class RequestValidationError(Exception):
    """Request validation failure (HTTP 422, §5.2 shape 2); ``errors`` lists every problem."""

    errors: list[FieldError] = field(default_factory=list)

    def __str__(self) -> str:
        return "; ".join(f"{'.'.join(map(str, e.loc))}: {e.msg}" for e in self.errors)


def not_found() -> ApiError:
    """404 ``not_found`` with message ``"Resource not found."`` (§5.4)."""
    return ApiError(404, "not_found", NOT_FOUND_MESSAGE)


def field_error(location: str, name: str, msg: str, type_: str = "value_error") -> RequestValidationError:
    """A single-problem validation error at ``(location, name)``, e.g. ``("query", "lines")``."""
    return RequestValidationError([FieldError((location, name), msg, type_)])


def from_pydantic(exc: ValidationError, location: str = "body") -> RequestValidationError:
    """Convert a pydantic ``ValidationError`` into a validation error with locations under ``location``."""
    return RequestValidationError(
        [FieldError((location, *err["loc"]), err["msg"], err["type"]) for err in exc.errors()]
    )


def _field_name(loc: Sequence[str | int]) -> str:
    parts = list(loc[1:]) if len(loc) > 1 else list(loc)
    return ".".join(str(p) for p in parts)


def render(
    exc: ApiError | RequestValidationError, envelope: Literal["detail", "toplevel"]
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Render an error as ``(status, body, headers)`` in the given envelope (§5.1/§5.2)."""
    if isinstance(exc, RequestValidationError):
        return 422, _render_validation(exc.errors, envelope), {}
    if exc.status == 402:
        body: dict[str, Any] = {
            "detail": {
                "reason": exc.code,
                "subscription_status": exc.extras.get("subscription_status", "past_due"),
                "message": exc.message,
            }
        }
        return 402, body, dict(exc.headers)
    if exc.plain and envelope == "detail":
        return exc.status, {"detail": exc.message}, dict(exc.headers)
    if envelope == "toplevel":
        body = {"error": exc.code, "message": exc.message, **exc.extras}
    else:
        body = {"detail": {"error": exc.code, "message": exc.message, **exc.extras}}
    return exc.status, body, dict(exc.headers)


def _render_validation(errors: Iterable[FieldError], envelope: str) -> dict[str, Any]:
    if envelope == "toplevel":
        return {
            "error": "validation_error",
            "message": "Request validation failed.",
            "detail": [{"field": _field_name(e.loc), "message": e.msg} for e in errors],
        }
    return {"detail": [{"loc": list(e.loc), "msg": e.msg, "type": e.type} for e in errors]}
