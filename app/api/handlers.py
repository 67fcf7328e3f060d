"""One error handler: every error leaves the service in the same JSON shape."""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from app.api.deps import services_of
from app.api.errors_render import error_body, field_path
from app.errors import FieldProblem, RegistryUnavailable, TierwiseError
from app.registry.database import is_unavailable

log = logging.getLogger("tierwise.api")
_METHODS = {"GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE"}

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def error_response(status: int, code: str, message: str,
                   details: list[FieldProblem] | None = None,
                   headers: dict[str, str] | None = None) -> Response:
    """The one JSON error shape (rendered by app/api/errors_render.py, as the score endpoint's)."""
    return Response(error_body(code, message, details), status_code=status, headers=headers,
                    media_type="application/json")


def _location(loc: tuple[object, ...]) -> str:
    parts = loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc
    return field_path(tuple(parts)) or (str(loc[0]) if loc else "body")


async def _domain(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TierwiseError)
    headers = {"WWW-Authenticate": "ApiKey"} if exc.status == 401 else None
    return error_response(exc.status, exc.code, exc.message, exc.details, headers)


async def _validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(400, "invalid_json", "the request body is not valid JSON",
                              [FieldProblem("body", str(errors[0].get("msg", "")))])
    details = [FieldProblem(_location(tuple(e["loc"])), e["msg"]) for e in errors]
    return error_response(422, "invalid_request", "the request does not follow the contract",
                          details)


def allowed_methods(request: Request, exc: StarletteHTTPException) -> list[str]:
    """Every method this request's path takes: the methods the document lists for every path
    template that matches (a path such as /v1/models/{family}/versions has two operations, and
    the router's 405 names only one of them), HEAD with GET, and any the router named."""
    named = (exc.headers or {}).get("Allow", "")
    methods = {m.strip().upper() for m in named.split(",") if m.strip()}
    doc = request.app.openapi()
    for template, item in doc.get("paths", {}).items():
        pattern = "^" + re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, request.url.path):
            methods.update(m.upper() for m in item if m.upper() in _METHODS)
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    headers = dict(exc.headers) if exc.headers else {}
    message = str(exc.detail)
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(allowed_methods(request, exc))
        message = f"{request.method} is not allowed here"
    elif exc.status_code == 404 and message == "Not Found":
        message = "no route answers this path (paths have no trailing slash)"
    return error_response(exc.status_code, code, message, headers=headers or None)


async def _database(request: Request, exc: Exception) -> Response:
    """The registry database cannot be reached: 503 registry_unavailable, reported to the
    replica's registry health (rate-limited logs, /v1/status, the gauge), no traceback."""
    if not is_unavailable(exc):
        return await _unexpected(request, exc)
    runtime = services_of(request.app).runtime
    if runtime is not None:
        runtime.live.health.failed(exc, f"{request.method} {request.url.path}")
    err = RegistryUnavailable("the registry database cannot be reached; retry later (scoring "
                              "goes on from the live context)")
    return error_response(err.status, err.code, err.message, headers={"Retry-After": "5"})


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error")
    return error_response(500, "internal_error", "an unexpected error occurred; see the logs")


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on an application."""
    app.add_exception_handler(TierwiseError, _domain)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(SQLAlchemyError, _database)
    app.add_exception_handler(Exception, _unexpected)
