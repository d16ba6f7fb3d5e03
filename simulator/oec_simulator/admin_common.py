"""Helpers shared by the admin API modules (``admin.py``, ``admin_faults.py``): the admin error and
its ``{"error", "message", "detail"?}`` rendering middleware, and JSON body validation."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, TypeAdapter, ValidationError

from .api import SIM_KEY, Handler
from .errors import ApiError
from .runtime import Simulator

ADMIN_PREFIX = "/_sim"
ModelT = TypeVar("ModelT", bound=BaseModel)
T = TypeVar("T")


class AdminError(Exception):
    """An admin failure: HTTP ``status``, machine ``error``, human ``message``, optional ``detail``."""

    def __init__(self, status: int, error: str, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.status, self.error, self.message, self.detail = status, error, message, detail


def sim_of(request: web.Request) -> Simulator:
    """The simulator state of the app serving ``request``."""
    return request.app[SIM_KEY]


async def read_json(request: web.Request) -> Any:
    """The parsed JSON body (empty → ``{}``); 400 ``invalid_json`` otherwise."""
    raw = await request.read()
    try:
        return json.loads(raw) if raw.strip() else {}
    except ValueError as exc:
        raise AdminError(400, "invalid_json", "The request body is not valid JSON.") from exc


def validation_detail(exc: ValidationError) -> list[dict[str, Any]]:
    """``[{loc, msg, type}]`` of a pydantic error (never the input values)."""
    return [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]


async def read_body(request: web.Request, model: type[ModelT], *, status: int = 422) -> ModelT:
    """The body validated as ``model``; ``status`` (422, or 400 for the fault endpoints)
    ``validation_error`` with ``detail`` otherwise."""
    return await read_typed(request, TypeAdapter(model), status=status)


async def read_typed(request: web.Request, adapter: TypeAdapter[T], *, status: int = 422) -> T:
    """The body validated by a pydantic ``TypeAdapter`` (see :func:`read_body`)."""
    return validate(adapter, await read_json(request), status=status)


def validate(adapter: TypeAdapter[T], data: Any, *, status: int = 422) -> T:
    """``data`` validated by ``adapter``; ``status`` ``validation_error`` with ``detail`` otherwise."""
    try:
        return adapter.validate_python(data)
    except ValidationError as exc:
        raise AdminError(status, "validation_error", "Invalid admin request.", validation_detail(exc)) from exc


@web.middleware
async def admin_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render admin failures as ``{"error", "message", "detail"?}``."""
    if not request.path.startswith(ADMIN_PREFIX + "/"):
        return await handler(request)
    try:
        return await handler(request)
    except AdminError as exc:
        body: dict[str, Any] = {"error": exc.error, "message": exc.message}
        if exc.detail is not None:
            body["detail"] = exc.detail
        return web.json_response(body, status=exc.status)
    except ApiError as exc:
        return web.json_response({"error": exc.code, "message": exc.message}, status=exc.status)
