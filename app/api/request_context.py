"""The outermost layer of every HTTP request: its id, the body size limit, and its one
metrics update and log line once the response has ended (app/observability/requests.py).

Plain ASGI (not a framework middleware class), in front of both the scoring endpoint and
FastAPI, so that each of these is done once, in one place, for every request.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

import orjson

from app.observability.logging import end_request, start_request
from app.observability.requests import request_finished

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REQUEST_ID_HEADER = b"x-request-id"
VALID_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
UNMATCHED = "unmatched"
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(:path)?\}")


def new_request_id() -> str:
    """A new request id: a random UUID as 32 hex digits."""
    return uuid.uuid4().hex


def too_large(limit: int) -> tuple[Message, bytes]:
    """The 413 answer (response start message and body) for a body over `limit` bytes."""
    body = orjson.dumps({"error": {
        "code": "payload_too_large",
        "message": f"the request body exceeds {limit} bytes",
        "details": [{"field": "body", "problem": f"larger than {limit} bytes"}],
    }})
    start = {"type": "http.response.start", "status": 413,
             "headers": [(b"content-type", b"application/json"),
                         (b"content-length", str(len(body)).encode())]}
    return start, body


class RouteTemplates:
    """Maps a request path to its route template (/v1/models/{family}/versions), so metric
    labels stay bounded; "unmatched" for paths no route serves."""

    def __init__(self, templates: Iterable[str]) -> None:
        self.exact: dict[str, str] = {}
        self.patterns: list[tuple[re.Pattern[str], str]] = []
        for template in dict.fromkeys(templates):
            if "{" not in template:
                self.exact[template] = template
                continue
            regex, last = "", 0
            for m in _PARAM.finditer(template):
                regex += re.escape(template[last:m.start()]) + (".*" if m.group(2) else "[^/]+")
                last = m.end()
            regex += re.escape(template[last:])
            self.patterns.append((re.compile(f"^{regex}$"), template))

    def of(self, path: str) -> str:
        """The template serving `path`."""
        found = self.exact.get(path)
        if found is not None:
            return found
        for regex, template in self.patterns:
            if regex.match(path):
                return template
        return UNMATCHED


class RequestContext:
    """Assigns the request id (from a valid X-Request-ID, or new), answers 413 for bodies over
    the limit (declared or streamed), and counts, times and logs the request once it ended."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, routes: RouteTemplates) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        fields, token = start_request()  # the data plane adds the versions it served
        state: dict[str, Any] = {}
        try:
            await self._handle(scope, receive, send, state)
        finally:
            end_request(token)
            request_finished(method=scope["method"], route=self.routes.of(scope["path"]),
                             status=state.get("status", 500), request_id=state["request_id"],
                             started=started, fields=fields)

    async def _handle(self, scope: Scope, receive: Receive, send: Send,
                      state: dict[str, Any]) -> None:
        request_id = length = None
        for name, value in scope["headers"]:
            if name == REQUEST_ID_HEADER and VALID_REQUEST_ID.match(value):
                request_id = value.decode()
            elif name == b"content-length":
                length = int(value) if value.isdigit() else None
        request_id = request_id or new_request_id()
        state["request_id"] = request_id
        scope.setdefault("state", {})["request_id"] = request_id
        rid_header = (REQUEST_ID_HEADER, request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                message["headers"] = [*message.get("headers", ()), rid_header]
            await send(message)

        limit = self.max_body_bytes
        if length is not None:
            if length > limit:
                await self._too_large(send_with_id)
                return
            await self.app(scope, receive, send_with_id)
            return
        # A body without a declared length (chunked): read it here, bounded, and replay it.
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
                await self._too_large(send_with_id)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        buffered: list[Message] = [{"type": "http.request", "body": b"".join(chunks),
                                    "more_body": False}]

        async def replay() -> Message:
            return buffered.pop() if buffered else await receive()

        await self.app(scope, replay, send_with_id)

    async def _too_large(self, send: Send) -> None:
        start, body = too_large(self.max_body_bytes)
        await send(start)
        await send({"type": "http.response.body", "body": body})
