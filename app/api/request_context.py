"""The outermost layer of every HTTP request: its id, the limits on its head and body (size,
and the time the body may take to arrive), and its one metrics update and log line once
the response has ended (app/observability/requests.py).

Plain ASGI (not a framework middleware class), in front of both the scoring endpoint and
FastAPI, so that each of these is done once, in one place, for every request.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

import orjson

from app.api.deadlines import BodyDeadlines
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
# The status logged and counted for a request whose client left before its body ended
# (nginx's convention; no response is sent).
CLIENT_CLOSED = 499
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(:path)?\}")


def new_request_id() -> str:
    """A new request id: a random UUID as 32 hex digits."""
    return uuid.uuid4().hex


def refusal(status: int, code: str, message: str, field: str, problem: str
            ) -> tuple[Message, bytes]:
    """A refusal made before the application sees the request (response start message and
    body, in the one error shape); the connection is closed after it."""
    body = orjson.dumps({"error": {"code": code, "message": message,
                                   "details": [{"field": field, "problem": problem}]}})
    start = {"type": "http.response.start", "status": status,
             "headers": [(b"content-type", b"application/json"),
                         (b"content-length", str(len(body)).encode()),
                         (b"connection", b"close")]}
    return start, body


def too_large(limit: int) -> tuple[Message, bytes]:
    """The 413 answer for a body over `limit` bytes."""
    return refusal(413, "payload_too_large", f"the request body exceeds {limit} bytes",
                   "body", f"larger than {limit} bytes")


def head_too_large(limit: int) -> tuple[Message, bytes]:
    """The 431 answer for a request line and headers over `limit` bytes."""
    return refusal(431, "headers_too_large",
                   f"the request line and headers exceed {limit} bytes",
                   "headers", f"larger than {limit} bytes")


def body_too_slow(timeout: float) -> tuple[Message, bytes]:
    """The 408 answer for a body that did not arrive within `timeout` seconds."""
    return refusal(408, "request_timeout",
                   f"the request body did not arrive within {timeout:g} seconds",
                   "body", f"incomplete after {timeout:g} seconds")


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
    """Assigns the request id (from a valid X-Request-ID, or new); refuses a request line and
    headers over `max_header_bytes` (431), a body over `max_body_bytes` (413, declared or
    streamed) and a body not complete `body_timeout` seconds after the head (408); reads the
    body before the application runs, so it only ever sees whole bodies; counts, times and
    logs the request once it ended."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_header_bytes: int,
                 body_timeout: float, routes: RouteTemplates) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_header_bytes = max_header_bytes
        self.body_timeout = body_timeout
        self.deadlines = BodyDeadlines(body_timeout)
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
        chunked = False
        head = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
        for name, value in scope["headers"]:
            head += len(name) + len(value)
            if name == REQUEST_ID_HEADER and VALID_REQUEST_ID.match(value):
                request_id = value.decode()
            elif name == b"content-length":
                length = int(value) if value.isdigit() else None
            elif name == b"transfer-encoding":
                chunked = True
        request_id = request_id or new_request_id()
        state["request_id"] = request_id
        scope.setdefault("state", {})["request_id"] = request_id
        rid_header = (REQUEST_ID_HEADER, request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                message["headers"] = [*message.get("headers", ()), rid_header]
            await send(message)

        if head > self.max_header_bytes:
            await _answer(send_with_id, head_too_large(self.max_header_bytes))
        elif length is not None and length > self.max_body_bytes:
            await _answer(send_with_id, too_large(self.max_body_bytes))
        elif not chunked and not length:  # no body to wait for
            await self.app(scope, receive, send_with_id)
        else:
            body = await self._read_body(receive, send_with_id, state)
            if body is not None:
                await self.app(scope, _replay(body, receive), send_with_id)

    async def _read_body(self, receive: Receive, send: Send, state: dict[str, Any]
                         ) -> list[Message] | None:
        """The body's messages, all of them; None when refused (answered here) or when the
        client left before the end (nothing to answer)."""
        task = asyncio.current_task()
        assert task is not None
        self.deadlines.watch(task)
        messages: list[Message] = []
        received = 0
        try:
            while True:
                message = await receive()
                if message["type"] != "http.request":  # gone before its body ended
                    state["status"] = CLIENT_CLOSED
                    return None
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    await _answer(send, too_large(self.max_body_bytes))
                    return None
                messages.append(message)
                if not message.get("more_body", False):
                    return messages
        except asyncio.CancelledError:
            if not self.deadlines.timed_out(task):
                raise
        finally:
            self.deadlines.unwatch(task)
        await _answer(send, body_too_slow(self.body_timeout))
        return None


def _replay(body: list[Message], receive: Receive) -> Receive:
    """`receive` that first gives the body's messages again, then reads on (disconnect)."""
    pending = body[::-1]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


async def _answer(send: Send, answer: tuple[Message, bytes]) -> None:
    start, body = answer
    await send(start)
    await send({"type": "http.response.body", "body": body})
