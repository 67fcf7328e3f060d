"""Pure ASGI middleware around every request: request id, body size limit, and the request's
metrics and log line (app/observability/requests.py).

Written as raw ASGI (not BaseHTTPMiddleware) because it runs on every scoring call and
must stay cheap.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.observability.logging import end_request, start_request
from app.observability.requests import request_finished

REQUEST_ID_HEADER = b"x-request-id"
_VALID_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")


def _too_large(limit: int) -> tuple[dict[str, Any], bytes]:
    body = orjson.dumps({"error": {
        "code": "payload_too_large",
        "message": f"the request body exceeds {limit} bytes",
        "details": [{"field": "body", "problem": f"larger than {limit} bytes"}],
    }})
    start = {"type": "http.response.start", "status": 413,
             "headers": [(b"content-type", b"application/json"),
                         (b"content-length", str(len(body)).encode())]}
    return start, body


def _direct_route(scope: Scope) -> tuple[Any, ASGIApp] | None:
    """The (route, ASGI app) registered in app.state.direct_routes for this request's method
    and exact path (no root path), served without the router; None for everything else."""
    app = scope.get("app")
    state = getattr(app, "state", None)
    routes = getattr(state, "direct_routes", None) if state is not None else None
    if not routes or scope.get("root_path"):
        return None
    found: tuple[Any, ASGIApp] | None = routes.get((scope["method"], scope["path"]))
    return found


class RequestContextMiddleware:
    """Assigns the request id (from X-Request-ID or new), enforces the body limit, and
    counts, times and logs the request once its response has ended."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Every request is counted, timed and logged here, the early 413 answers included.
        started = time.perf_counter()
        fields, token = start_request()  # the data plane adds the versions it served
        try:
            await self._handle(scope, receive, send)
        finally:
            end_request(token)
            request_finished(scope, started, fields)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = None
        length = None
        for name, value in scope["headers"]:
            if name == REQUEST_ID_HEADER and _VALID_ID.match(value):
                request_id = value.decode()
            elif name == b"content-length":
                length = int(value) if value.isdigit() else None
        request_id = request_id or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        limit = self.max_body_bytes
        rid_header = (REQUEST_ID_HEADER, request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                scope["state"]["status"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], rid_header]
            await send(message)

        if length is not None and length > limit:
            start, body = _too_large(limit)
            await send_with_id(start)
            await send({"type": "http.response.body", "body": body})
            return

        if length is not None:
            direct = _direct_route(scope)
            if direct is not None:
                route, app = direct
                scope["route"] = route
                scope["endpoint"] = route.endpoint
                scope["path_params"] = {}
                await app(scope, receive, send_with_id)
                return
            await self.app(scope, receive, send_with_id)
            return
        # A chunked body has no declared length: read it here, bounded, and replay it.
        chunks: list[bytes] = []
        received = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > limit:
                start, body = _too_large(limit)
                await send_with_id(start)
                await send({"type": "http.response.body", "body": body})
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        buffered: list[Message] = [{"type": "http.request", "body": b"".join(chunks),
                                    "more_body": False}]

        async def replay() -> Message:
            return buffered.pop() if buffered else await receive()

        await self.app(scope, replay, send_with_id)
