"""Schemathesis hooks for tests/api/test_schemathesis.py (loaded by SCHEMATHESIS_HOOKS).

The document says what each field may be; a few rules join two fields and JSON Schema cannot
say them. Positive cases are made to respect those rules, so that the positive-data check
still holds for everything else:
- a bundle upload is a real .tar.gz of the family in the URL (random bytes are not a bundle;
  the archives are prepared by the test in TIERWISE_ST_ARCHIVES/<family>/*.tar.gz);
- a contact-history date is not after the decision day (`as_of`, default today);
- one alias-move call moves each family/alias pair at most once.
Negative cases are left as generated, but for one: schemathesis cannot make a body drawn
from a custom media strategy invalid, so a negative upload body is made invalid here (the
archive cut short). Its stateful phase still sends some "negative" uploads whose every part
is valid (a real bundle of the URL's family); the server rightly stores those, and that one
report, checked to be exactly that, is dropped by filter_failure below.
"""

from __future__ import annotations

import datetime as dt
import os
import zlib
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import strategies as st
from schemathesis.core.failures import AcceptedNegativeData
from schemathesis.core.parameters import ParameterLocation

UPLOAD = ("POST", "/v1/models/{family}/versions")
ARCHIVES = Path(os.environ["TIERWISE_ST_ARCHIVES"])
_BY_FAMILY = {d.name: [p.read_bytes() for p in sorted(d.glob("*.tar.gz"))]
              for d in ARCHIVES.iterdir() if d.is_dir()}

# Bodies drawn for the upload before the hook below picks the URL's family.
schemathesis.openapi.media_type(
    "application/gzip", st.sampled_from([a for v in _BY_FAMILY.values() for a in v]),
    aliases=["application/octet-stream"])


def _positive(case: schemathesis.Case) -> bool:
    return case.meta is not None and case.meta.generation.mode.is_positive


def _negative_body(case: schemathesis.Case) -> bool:
    meta = case.meta
    if meta is None:
        return False
    body = meta.components.get(ParameterLocation.BODY)
    return body is not None and body.mode.is_negative


def _fix_history(item: Any) -> None:
    context = item.get("context") if isinstance(item, dict) else None
    if not isinstance(context, dict) or not isinstance(context.get("history"), list):
        return
    as_of = context.get("as_of") or dt.datetime.now(dt.UTC).date().isoformat()
    for event in context["history"]:
        if isinstance(event, dict) and isinstance(event.get("date"), str):
            event["date"] = min(event["date"], as_of)  # ISO dates sort as text


def _unique_moves(body: dict[str, Any]) -> None:
    seen: set[tuple[Any, Any]] = set()
    moves = []
    for move in body.get("moves", []):
        key = (move.get("family"), move.get("alias")) if isinstance(move, dict) else None
        if key not in seen:
            seen.add(key)
            moves.append(move)
    body["moves"] = moves


@schemathesis.hook
def map_case(context: schemathesis.HookContext, case: schemathesis.Case) -> schemathesis.Case:
    """Positive cases that honour the rules joining two fields (see the module docstring)."""
    path, method = case.operation.path, case.method.upper()
    upload = (method, path) == UPLOAD
    if upload and _negative_body(case) and isinstance(case.body, bytes):
        case.body = case.body[: len(case.body) // 2]  # not a readable .tar.gz any more
        return case
    if not _positive(case):
        return case
    if upload:
        family = (case.path_parameters or {}).get("family")
        choices = _BY_FAMILY.get(family) if isinstance(family, str) else None
        if choices:
            case.body = choices[zlib.crc32(repr(case.body).encode()) % len(choices)]
    elif method == "POST" and path == "/v1/score" and isinstance(case.body, dict):
        _fix_history(case.body)
    elif method == "POST" and path == "/v1/score/batch" and isinstance(case.body, dict):
        for item in case.body.get("items", []):
            _fix_history(item)
    elif method == "POST" and path == "/v1/models/aliases" and isinstance(case.body, dict):
        _unique_moves(case.body)
    return case


@schemathesis.hook
def filter_failure(context: schemathesis.HookContext, failure: Any, case: schemathesis.Case,
                   response: schemathesis.Response) -> bool:
    """Keep every failure but "negative data accepted" for an upload that was all valid."""
    if not isinstance(failure, AcceptedNegativeData) or response.status_code != 201:
        return True
    if (case.method.upper(), case.operation.path) != UPLOAD:
        return True
    family = (case.path_parameters or {}).get("family")
    return not (isinstance(family, str) and case.body in _BY_FAMILY.get(family, []))
