"""POST /v1/score answered in front of the FastAPI stack, with the same behaviour.

Every request normally passes FastAPI.__call__, Starlette.__call__, the server error
middleware, FastAPI's exception telemetry and body limit middleware, RequestContextMiddleware
and the lean route's own error handling, and its response back through a `send` wrapper of
each: together about as much CPU as scoring the customer. TierwiseAPI answers a scoring
request with a declared Content-Length itself, doing what those layers do for it, in the
same order:

- the request id (X-Request-ID or a new one) and the 413 on the declared length, as
  RequestContextMiddleware; the metrics and the one log line once the response has ended;
- the lean route's steps (app/api/routes/scores.py): body, key, envelope, score, and its
  errors through the application's exception handlers, as Starlette's exception middleware;
- an unexpected exception: the request counted and logged as a 500 first, then the 500
  handler's JSON answer (without X-Request-ID, as the server error middleware sends it) and
  the exception re-raised to the server, which logs it and closes the connection.

Everything else, and any scoring request the shortcut cannot answer exactly as the stack
would (a chunked body, a root path, FastAPI's OpenTelemetry integration switched on, other
middleware, debug mode, FastAPI's own body limit), goes through the stack unchanged.
tests/api/test_fast_path.py compares both ways over many request variants.
"""

from __future__ import annotations

import os
import time
from typing import Any

import orjson
from fastapi import FastAPI
from starlette.requests import ClientDisconnect, Request
from starlette.types import Message, Receive, Scope, Send

from app.api.auth import key_from_headers, scorer_for_key
from app.api.middleware import _VALID_ID, REQUEST_ID_HEADER, RequestContextMiddleware, _too_large
from app.api.routes.scores import body_error, handler_for, parsed_body, scored, validated
from app.observability.logging import end_request, start_request
from app.observability.requests import request_finished

_PATH = "/v1/score"
_JSON = (b"content-type", b"application/json")
# FastAPI's OpenTelemetry check costs a few microseconds: asked at most once a second
# (providers are configured at start-up).
TELEMETRY_RECHECK_SECONDS = 1.0


def new_request_id() -> str:
    """A random version-4 UUID as 32 hex digits: uuid.uuid4().hex, without the UUID object."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    return b.hex()


class TierwiseAPI(FastAPI):
    """FastAPI with POST /v1/score served by _FastScore when it can serve it exactly."""

    fast_score_enabled = True  # tests switch it off to compare with the stack
    _fast: _FastScore | None = None

    def build_middleware_stack(self) -> Any:
        stack = super().build_middleware_stack()
        self._fast = _FastScore.for_app(self) if self.fast_score_enabled else None
        return stack

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fast = self._fast
        if (fast is not None and scope["type"] == "http" and scope["path"] == _PATH
                and scope["method"] == "POST" and await fast(scope, receive, send)):
            return
        await super().__call__(scope, receive, send)


async def _read_body(receive: Receive) -> bytes:
    """Request.body() on the raw receive channel."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "http.request":
            body = message.get("body", b"")
            if not message.get("more_body", False):
                if not chunks:
                    return body
                chunks.append(body)
                return b"".join(chunks)
            if body:
                chunks.append(body)
        elif kind == "http.disconnect":
            raise ClientDisconnect()


class _FastScore:
    """The scoring request's path through the stack, for one application."""

    def __init__(self, app: TierwiseAPI, route: Any, max_body_bytes: int, error_handler: Any,
                 telemetry: Any) -> None:
        self.app = app
        self.route = route
        self.limit = max_body_bytes
        self.error_handler = error_handler
        self.telemetry = telemetry
        self.telemetry_on = False
        self.telemetry_until = -1.0

    @classmethod
    def for_app(cls, app: TierwiseAPI) -> _FastScore | None:
        """The fast path when the built stack is the one it reproduces; else None."""
        direct = getattr(app.state, "direct_routes", None) or {}
        route = direct.get(("POST", _PATH), (None,))[0]
        middleware = app.user_middleware
        telemetry = getattr(app, "_native_telemetry", None)
        error_handler = None
        for key, value in app.exception_handlers.items():  # as FastAPI picks its 500 handler
            if key in (500, Exception):
                error_handler = value
        if (route is None or app.debug or app.root_path or telemetry is None
                or getattr(app, "max_body_size", None) is not None or error_handler is None
                or len(middleware) != 1 or middleware[0].cls is not RequestContextMiddleware
                or set(middleware[0].kwargs) != {"max_body_bytes"}):
            return None
        limit = middleware[0].kwargs["max_body_bytes"]
        assert isinstance(limit, int)
        return cls(app, route, limit, error_handler, telemetry)

    def _telemetry(self) -> bool:
        now = time.monotonic()
        if now >= self.telemetry_until:
            self.telemetry_on = bool(self.telemetry.enabled())
            self.telemetry_until = now + TELEMETRY_RECHECK_SECONDS
        return self.telemetry_on

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Answer the request and return True, or return False having done nothing."""
        request_id = length = api_key = authorization = content_type = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = int(value) if value.isdigit() else None
            elif name == REQUEST_ID_HEADER and _VALID_ID.match(value):
                request_id = value.decode()
            elif name == b"x-api-key" and api_key is None:  # the first, as Headers.get()
                api_key = value.decode("latin-1")
            elif name == b"authorization" and authorization is None:
                authorization = value.decode("latin-1")
            elif name == b"content-type" and content_type is None:
                content_type = value.decode("latin-1")
        if (length is None or scope.get("root_path") or "fastapi.telemetry" in scope
                or self._telemetry()):
            return False
        app = self.app
        scope["app"] = app
        started = time.perf_counter()
        fields, token = start_request()
        state = scope.setdefault("state", {})
        request_id = request_id or new_request_id()
        state["request_id"] = request_id
        try:
            try:
                await self._answer(scope, receive, send, state, length, request_id,
                                   key_from_headers(api_key, authorization), content_type)
            finally:
                end_request(token)
                request_finished(scope, started, fields)
        except Exception as exc:
            # The server error middleware: the 500 handler's answer (straight to the server,
            # so without X-Request-ID), then the exception goes on to the server.
            if "status" not in state:
                response = await self.error_handler(Request(scope), exc)
                await response(scope, receive, send)
            raise
        return True

    async def _answer(self, scope: Scope, receive: Receive, send: Send, state: dict[str, Any],
                      length: int, request_id: str, key: str | None,
                      content_type: str | None) -> None:
        rid_header = (REQUEST_ID_HEADER, request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                message["headers"] = [*message.get("headers", ()), rid_header]
            await send(message)

        if length > self.limit:
            start, body = _too_large(self.limit)
            await send_with_id(start)
            await send({"type": "http.response.body", "body": body})
            return
        route = self.route
        scope["route"] = route
        scope["endpoint"] = route.endpoint
        scope["path_params"] = {}
        app = self.app
        try:
            try:
                raw = parsed_body(await _read_body(receive), content_type)
            except Exception as exc:
                error = body_error(exc)
                if error is exc:
                    raise
                raise error from exc
            await scorer_for_key(app.state, key)
            body = orjson.dumps(await scored(validated(raw), app.state.live, request_id,
                                             app.state.microbatcher))
        except Exception as exc:
            handler = handler_for(app, exc)
            if handler is None:
                raise
            response = await handler(Request(scope, receive, send), exc)
            await response(scope, receive, send_with_id)
            return
        state["status"] = 200
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode()), _JSON,
                                rid_header]})
        await send({"type": "http.response.body", "body": body})
