"""POST /v1/score and /v1/score/batch: HTTP only; the data plane does the work."""

from __future__ import annotations

import email.message
import json
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError
from starlette.exceptions import HTTPException
from starlette.routing import Match, Route
from starlette.types import Receive, Scope, Send

from app.api.auth import RequireScorer, require_scorer
from app.api.responses import JSONBytes
from app.api.schemas import BatchRequest, BatchResponse, ErrorResponse, ScoreRequest, ScoreResponse
from app.dataplane import plane as dataplane
from app.dataplane.microbatch import MicroBatcher
from app.errors import FieldProblem, PayloadTooLarge

router = APIRouter(prefix="/v1", tags=["scoring"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": text}
    for status, text in (
        (400, "Malformed JSON"),
        (401, "Missing or unknown API key"),
        (403, "The key's role may not score"),
        (404, "A pinned version or alias does not exist"),
        (413, "Body or batch too large"),
        (422, "Invalid request or features; every problem is listed with its field"),
        (503, "No verified scoring context is live yet"),
    )
}


@router.post("/score", response_model=ScoreResponse, responses=_ERRORS,
             summary="Score one customer: tier, churn and next-best actions")
async def score(body: ScoreRequest, request: Request, principal: RequireScorer) -> JSONBytes:
    # Documents the route (openapi.yaml); requests are served by the lean route below,
    # installed ahead of it by install_lean_score(), with the same behaviour.
    return await _score(body, request)


async def _score(body: ScoreRequest, request: Request) -> JSONBytes:
    state = request.app.state
    return JSONBytes(await scored(body, state.live, request.state.request_id,
                                  getattr(state, "microbatcher", None)))


async def scored(body: ScoreRequest, live: Any, request_id: str,
                 batcher: MicroBatcher | None = None) -> dict[str, Any]:
    """The response body of POST /v1/score for a validated request."""
    # One customer costs tens of microseconds of CPU: less than a thread-pool hop, so it
    # runs inline (with the others ready in the same turn: app/dataplane/microbatch.py); batches go
    # to the thread pool below.
    kwargs = {"live": live, "customer_id": body.customer_id, "features": body.features,
              "context": body.context, "options": body.options}
    if body.options is not None and body.options.pin:
        # A pin may load an older version from the registry: never on the event loop.
        result = await run_in_threadpool(lambda: dataplane.score_one(**kwargs))
    elif batcher is not None:
        one = dataplane.prepare_one(**kwargs)
        result = dataplane.finish_one(one, await batcher.score(one))
    else:
        result = dataplane.score_one(**kwargs)
    result["request_id"] = request_id
    return result


@router.post("/score/batch", response_model=BatchResponse, responses=_ERRORS,
             summary="Score many customers; invalid items get their own error entry")
async def score_batch(body: BatchRequest, request: Request,
                      principal: RequireScorer) -> JSONBytes:
    limit = request.app.state.settings.max_batch_items
    if len(body.items) > limit:
        raise PayloadTooLarge(
            f"a batch may hold at most {limit} customers",
            [FieldProblem("items", f"{len(body.items)} items, the limit is {limit}")],
        )
    result = await run_in_threadpool(
        dataplane.score_batch, live=request.app.state.live, items=body.items,
        options=body.options,
    )
    result["request_id"] = request.state.request_id
    return JSONBytes(result)


# --------------------------------------------------------------------------------------------
# POST /v1/score without FastAPI's per-request dependency and body machinery (~a fifth of a
# request's CPU): the same steps in the same order, with the same errors. FastAPI reads and
# parses the body first (400 for bad JSON), then resolves the dependencies (the API key),
# then validates the body (422); so does this route.

_SCORE_REQUEST: TypeAdapter[ScoreRequest] = TypeAdapter(ScoreRequest)
_MISSING = object()
_JSON_TYPES: dict[str, bool] = {}


def _is_json(content_type: str) -> bool:
    """FastAPI's test of a JSON content type (application/json or application/*+json)."""
    known = _JSON_TYPES.get(content_type)
    if known is None:
        message = email.message.Message()
        message["content-type"] = content_type
        subtype = message.get_content_subtype()
        known = message.get_content_maintype() == "application" and (
            subtype == "json" or subtype.endswith("+json"))
        if len(_JSON_TYPES) < 256:
            _JSON_TYPES[content_type] = known
    return known


def parsed_body(body: bytes, content_type: str | None) -> Any:
    """The parsed JSON body, the raw bytes when it is not declared JSON, or _MISSING."""
    if not body:
        return _MISSING
    if not content_type or not _is_json(content_type):  # strict content type, as FastAPI
        return body
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        # orjson is stricter (NaN, huge integers, lone surrogates, a BOM): the reference
        # parser decides, so what is accepted and the error raised stay FastAPI's.
        return json.loads(body)


def body_error(exc: Exception) -> Exception:
    """What FastAPI raises when reading or parsing the body failed with `exc` (raise it
    from `exc`; an HTTPException is returned as it is)."""
    if isinstance(exc, json.JSONDecodeError):
        return RequestValidationError(
            [{"type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error",
              "input": {}, "ctx": {"error": exc.msg}}],
            body=exc.doc,
        )
    if isinstance(exc, HTTPException):
        return exc
    # A disconnect, bytes that are not UTF-8, nesting too deep... Oversized bodies never get
    # here: they are answered 413 first.
    return HTTPException(status_code=400, detail="There was an error parsing the body")


def validated(raw: Any) -> ScoreRequest:
    """The request envelope, or FastAPI's 422 (RequestValidationError) for it."""
    if raw is _MISSING:
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}])
    try:
        return _SCORE_REQUEST.validate_python(raw, from_attributes=True)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from None


async def _lean_score(request: Request) -> JSONBytes:
    try:
        raw = parsed_body(await request.body(), request.headers.get("content-type"))
    except Exception as exc:
        error = body_error(exc)
        if error is exc:
            raise
        raise error from exc
    await require_scorer(request)
    return await _score(validated(raw), request)


class _LeanRoute(Route):
    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            child_scope["route"] = self  # the metrics and log line read the route's path
        return match, child_scope


async def _direct(scope: Scope, receive: Receive, send: Send) -> None:
    """The lean route as a plain ASGI app for RequestContextMiddleware's direct dispatch:
    what Starlette's exception middleware and router would do around it, without them."""
    request = Request(scope, receive, send)
    try:
        response = await _lean_score(request)
    except Exception as exc:
        handler = handler_for(request.app, exc)
        if handler is None:
            raise  # the server error middleware answers 500, as for any route
        response = await handler(request, exc)
    await response(scope, receive, send)


def handler_for(app: FastAPI, exc: Exception) -> Any:
    """The application's handler for `exc` as Starlette's ExceptionMiddleware picks it
    (status handlers for HTTP errors, then the class hierarchy); not the 500 handler."""
    handlers = app.exception_handlers
    if isinstance(exc, HTTPException) and exc.status_code in handlers:
        return handlers[exc.status_code]
    for cls in type(exc).__mro__:
        if cls is Exception:
            return None
        if cls in handlers:
            return handlers[cls]
    return None


def install_lean_score(app: FastAPI) -> None:
    """Serve POST /v1/score with the lean route (the documented route stays for OpenAPI).

    The route is first in the router; RequestContextMiddleware also dispatches to it
    directly (app.state.direct_routes), skipping the exception middleware and the router."""
    route = _LeanRoute("/v1/score", _lean_score, methods=["POST"], include_in_schema=False)
    app.router.routes.insert(0, route)
    app.state.direct_routes = {("POST", "/v1/score"): (route, _direct)}
