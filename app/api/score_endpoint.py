"""POST /v1/score and POST /v1/score/batch: one small ASGI endpoint that tierwise owns.

The two hot routes are answered here, in front of FastAPI, with public ASGI only and our own
error rendering; every other request goes on to FastAPI, which also documents these two
(app/api/openapi.py). The steps, in order: method (405), Content-Type (415), API key
(401/403), body parsed and validated against the API's pydantic models (400/422), then one
call to the data plane. The request id, the body size limit, the metrics and the log line
are done once for every request by app/api/request_context.py around this endpoint.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from app.api.auth import SCORER, allowed, key_from_headers, principal_for
from app.api.deps import Services
from app.api.errors_render import ErrorAnswer, error_answer, validation_problems
from app.api.request_context import ASGIApp, Receive, Scope, Send
from app.api.schemas import BatchItem, BatchRequest, ScoreRequest
from app.dataplane.plane import RefusedItem
from app.errors import (
    FieldProblem,
    InvalidRequest,
    MalformedJson,
    MethodNotAllowed,
    NotReady,
    PayloadTooLarge,
    TierwiseError,
    UnsupportedMediaType,
)

log = logging.getLogger("tierwise.api")

SCORE_PATH = "/v1/score"
BATCH_PATH = "/v1/score/batch"
_JSON = (b"content-type", b"application/json")
_BATCH_ITEM: TypeAdapter[BatchItem] = TypeAdapter(BatchItem)




def is_json(content_type: str | None) -> bool:
    """application/json or application/<anything>+json, parameters (charset) allowed."""
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json"))


class ScoreEndpoint:
    """Answers the scoring routes; hands every other request to `app` unchanged."""

    def __init__(self, app: ASGIApp, *, services: Services) -> None:
        self.app = app
        self.services = services
        self.routes = {SCORE_PATH: self._score, BATCH_PATH: self._batch}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.routes.get(scope["path"]) if scope["type"] == "http" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = [_JSON]
        try:
            body = await self._answer(route, scope, receive)
            status = 200
        except TierwiseError as err:
            status, body, extra = error_answer(err)
            headers.extend(extra)
        except Exception:
            log.exception("unexpected error")
            status, body, _ = error_answer(TierwiseError(
                "an unexpected error occurred; see the logs"))
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _answer(self, route: Any, scope: Scope, receive: Receive) -> bytes:
        if scope["method"] != "POST":
            raise MethodNotAllowed(f"{scope['path']} takes POST only",
                                   [FieldProblem("method", f"{scope['method']} is not POST")])
        api_key = authorization = content_type = None
        for name, value in scope["headers"]:
            if name == b"x-api-key" and api_key is None:
                api_key = value.decode("latin-1")
            elif name == b"authorization" and authorization is None:
                authorization = value.decode("latin-1")
            elif name == b"content-type" and content_type is None:
                content_type = value.decode("latin-1")
        if not is_json(content_type):
            raise UnsupportedMediaType(
                "send the request as JSON",
                [FieldProblem("Content-Type", f"is {content_type or 'missing'}; "
                                              "use application/json")])
        services = self.services
        allowed(await principal_for(services, key_from_headers(api_key, authorization)), SCORER)
        raw = await _read_body(receive)
        plane = services.data_plane
        if plane is None or not plane.ready:
            raise NotReady("no verified scoring context is live yet; see /v1/status")
        result: dict[str, Any] = await route(raw)
        result["request_id"] = scope["state"]["request_id"]
        return _json(result)

    async def _score(self, raw: bytes) -> dict[str, Any]:
        request = _validated(ScoreRequest, raw)
        plane = self.services.data_plane
        result: dict[str, Any] = await plane.score(request)
        return result

    async def _batch(self, raw: bytes) -> dict[str, Any]:
        request = _validated(BatchRequest, raw, lenient=True)
        limit = self.services.settings.max_batch_items
        if len(request.items) > limit:
            raise PayloadTooLarge(
                f"a batch may hold at most {limit} customers",
                [FieldProblem("items", f"{len(request.items)} items, the limit is {limit}")])
        items: list[Any] = []
        for i, item in enumerate(request.items):
            try:
                items.append(_BATCH_ITEM.validate_python(item))
            except ValidationError as exc:
                cid = item.get("customer_id") if isinstance(item, dict) else None
                items.append(RefusedItem(cid if _is_text(cid) else None, InvalidRequest(
                    "the item does not follow the contract",
                    [FieldProblem(_printable(p.field), p.problem)
                     for p in validation_problems(exc, f"items[{i}].")])))
        result: dict[str, Any] = await self.services.data_plane.score_batch(items,
                                                                            request.options)
        return result


def _validated(model: Any, raw: bytes, *, lenient: bool = False) -> Any:
    """The request body as `model`; 400 for malformed JSON, 422 naming every bad field.

    `lenient` (batches): a body that is JSON but for escaped lone surrogates ("\\ud800", which
    the fast parser refuses) is read by Python's parser instead, so that only the items
    holding them are refused (their str fields refuse text that is not Unicode)."""
    if not raw:
        raise InvalidRequest("the request does not follow the contract",
                             [FieldProblem("body", "a JSON body is required")])
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        if not any(e["type"] == "json_invalid" for e in errors):
            raise InvalidRequest("the request does not follow the contract",
                                 validation_problems(exc)) from None
        parsed = _with_lone_surrogates(raw) if lenient else None
        if parsed is None:
            raise MalformedJson("the request body is not valid JSON",
                                [FieldProblem("body", str(errors[0]["msg"]))]) from None
    try:
        return model.model_validate(parsed)
    except ValidationError as exc:
        raise InvalidRequest("the request does not follow the contract", [
            FieldProblem(_printable(p.field), p.problem)
            for p in validation_problems(exc)]) from None


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _with_lone_surrogates(raw: bytes) -> Any:
    """The body as Python's JSON parser reads it when it holds a surrogate escape (NaN and
    Infinity refused, as by the fast parser); None when it holds none or is not JSON."""
    if not _SURROGATE_ESCAPE.search(raw):
        return None
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return None


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _is_text(value: object) -> bool:
    """False for a str holding a lone surrogate (it cannot be written as UTF-8)."""
    if not isinstance(value, str):
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _printable(text: str) -> str:
    """`text` with any lone surrogate written as an escape (\\ud800)."""
    return text if _is_text(text) else text.encode("utf-8", "backslashreplace").decode()


def _json(result: dict[str, Any]) -> bytes:
    """The response as JSON; a lone surrogate an error message echoed from a refused batch
    item becomes U+FFFD, so that every client's JSON parser can read the answer."""
    try:
        return orjson.dumps(result)
    except TypeError:
        text = json.dumps(result, ensure_ascii=False, allow_nan=False)
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode()



async def _read_body(receive: Receive) -> bytes:
    """The whole request body (its size is bounded by the request context around us)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone("the client closed the connection")
        body = message.get("body", b"")
        if not message.get("more_body", False):
            if not chunks:
                return bytes(body)
            chunks.append(body)
            return b"".join(chunks)
        chunks.append(body)


class ClientGone(TierwiseError):
    status = 400
    code = "client_disconnected"


__all__ = ["BATCH_PATH", "SCORE_PATH", "ErrorAnswer", "ScoreEndpoint", "is_json"]
