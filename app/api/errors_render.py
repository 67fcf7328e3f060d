"""The one JSON error shape, rendered to bytes: {"error": {"code", "message", "details"}}."""

from __future__ import annotations

import json
from typing import Any

import orjson
from pydantic import ValidationError

from app.errors import FieldProblem, TierwiseError

ErrorAnswer = tuple[int, bytes, list[tuple[bytes, bytes]]]


def dumps(content: Any) -> bytes:
    """JSON bytes; text orjson refuses (a lone surrogate echoed from a request) is escaped."""
    try:
        return orjson.dumps(content)
    except TypeError:
        return json.dumps(content, ensure_ascii=True, allow_nan=False).encode()


def error_body(code: str, message: str, details: list[FieldProblem] | None = None) -> bytes:
    """The error shape as JSON bytes."""
    return dumps({"error": {"code": code, "message": message,
                            "details": [d.as_dict() for d in details or ()]}})


def error_answer(err: TierwiseError) -> ErrorAnswer:
    """(status, body, extra headers) for a domain error."""
    headers: list[tuple[bytes, bytes]] = []
    if err.status == 401:
        headers.append((b"www-authenticate", b"ApiKey"))
    elif err.status == 405:
        headers.append((b"allow", b"POST"))
    return err.status, error_body(err.code, err.message, err.details), headers


def field_path(loc: tuple[Any, ...]) -> str:
    """A pydantic location as a dotted path: items[3].features.age."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def validation_problems(exc: ValidationError, prefix: str = "") -> list[FieldProblem]:
    """pydantic errors as field problems with dotted paths under `prefix` (items[3].)."""
    problems = []
    for err in exc.errors(include_url=False):
        path = field_path(tuple(err["loc"]))
        problems.append(FieldProblem(prefix + path if path else prefix.rstrip(".") or "body",
                                     err["msg"]))
    return problems
