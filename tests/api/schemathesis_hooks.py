"""Schemathesis hooks for tests/api/test_schemathesis.py (loaded by SCHEMATHESIS_HOOKS).

The document says what each field may be; a few rules join two fields and JSON Schema cannot
say them. Positive cases are made to respect those rules, so that the positive-data check
still holds for everything else:
- a bundle upload is a real .tar.gz of the family in the URL (random bytes are not a bundle):
  the version already registered (a 409), or for the configuration families, as often, a
  copy relabelled anew each time (a new version: 201, and the links to the version's own
  operations get followed). The registered archives are in TIERWISE_ST_ARCHIVES/<family>.tar.gz;
- a contact-history date is not after the decision day (`as_of`, default today), and its
  action id is one of the default catalogue's (the live one in these runs);
- one alias-move call moves each family/alias pair at most once;
- an outcome is posted by customer (a decision id cannot be forged, that is the point of it),
  for an action of the live catalogue, on a day neither in the future nor past the
  retention, at most TIERWISE_OUTCOMES_MAX_PER_REQUEST (1000) in one post;
- a monitoring window's `since` is not after its `until` (default today), at most 3,660
  days before it.
Negative cases are left as generated, but for one: schemathesis cannot make a body drawn
from a custom media strategy invalid, so a negative upload body is made invalid here (the
archive cut short). Its stateful phase still sends some "negative" uploads whose every part
is valid (a real bundle of the URL's family); the server rightly stores those, and that one
report, checked to be exactly that, is dropped by filter_failure below.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import zlib
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import strategies as st
from schemathesis.core.failures import AcceptedNegativeData
from schemathesis.core.parameters import ParameterLocation

from app.bundles.io import build_bundle, read_archive, to_archive
from app.training.default_config import default_catalog

UPLOAD = ("POST", "/v1/models/{family}/versions")
ARCHIVES = Path(os.environ["TIERWISE_ST_ARCHIVES"])
REGISTERED = {p.name.removesuffix(".tar.gz"): p.read_bytes()
              for p in sorted(ARCHIVES.glob("*.tar.gz"))}
RELABELLED = ("catalog", "policy")  # small, quick to verify
_MADE: set[bytes] = set()  # every relabelled archive handed out
_COUNTER = itertools.count(1)
ACTION_IDS = tuple(a.id for a in default_catalog().actions)

# Bodies drawn for the upload before the hook below picks the URL's family.
schemathesis.openapi.media_type(
    "application/gzip", st.sampled_from(sorted(REGISTERED.values())),
    aliases=["application/octet-stream"])


def _relabelled(family: str) -> bytes:
    """The registered bundle of `family` under a label never used before."""
    bundle = read_archive(REGISTERED[family], max_bytes=1 << 26)
    fields = bundle.manifest.model_dump(mode="json", exclude_none=True)
    fields["label"] = f"{fields.get('label', family)} (schemathesis {next(_COUNTER)})"
    archive = to_archive(build_bundle(fields, bundle.files))
    _MADE.add(archive)
    return archive


def _upload_body(family: object, seed: object) -> bytes | None:
    if not isinstance(family, str) or family not in REGISTERED:
        return None
    if family in RELABELLED and zlib.crc32(repr(seed).encode()) % 2:
        return _relabelled(family)
    return REGISTERED[family]


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
        if isinstance(event, dict) and isinstance(event.get("action_id"), str) \
                and event["action_id"] not in ACTION_IDS:
            event["action_id"] = ACTION_IDS[zlib.crc32(event["action_id"].encode(
                "utf-8", "surrogatepass")) % len(ACTION_IDS)]


def _fix_outcomes(body: dict[str, Any]) -> None:
    items = body.get("outcomes")
    if not isinstance(items, list):
        return
    del items[1000:]
    today = dt.datetime.now(dt.UTC).date()
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        item.pop("decision_id", None)
        if not isinstance(item.get("customer_id"), str):
            item["customer_id"] = f"ST{n}"
        if item.get("action_id") not in ACTION_IDS:
            item["action_id"] = ACTION_IDS[n % len(ACTION_IDS)]
        day = item.get("date")
        if isinstance(day, str):
            oldest = (today - dt.timedelta(days=700)).isoformat()
            item["date"] = max(min(day, today.isoformat()), oldest)  # ISO dates sort as text


def _fix_window(query: dict[str, Any]) -> None:
    today = dt.datetime.now(dt.UTC).date()
    try:
        since = dt.date.fromisoformat(query["since"]) if "since" in query else None
        until = dt.date.fromisoformat(query["until"]) if "until" in query else today
    except (TypeError, ValueError):
        return
    if since is None:
        return
    since = min(since, until)
    since = max(since, until - dt.timedelta(days=3659))
    query["since"] = since.isoformat()


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
        body = _upload_body((case.path_parameters or {}).get("family"), case.query)
        case.body = body if body is not None else case.body
    elif method == "POST" and path == "/v1/score" and isinstance(case.body, dict):
        _fix_history(case.body)
    elif method == "POST" and path == "/v1/score/batch" and isinstance(case.body, dict):
        for item in case.body.get("items", []):
            _fix_history(item)
    elif method == "POST" and path == "/v1/models/aliases" and isinstance(case.body, dict):
        _unique_moves(case.body)
    elif method == "POST" and path == "/v1/outcomes" and isinstance(case.body, dict):
        _fix_outcomes(case.body)
    elif method == "GET" and path.startswith("/v1/monitoring/") and case.query:
        _fix_window(case.query)
    return case


@schemathesis.hook
def filter_failure(context: schemathesis.HookContext, failure: Any, case: schemathesis.Case,
                   response: schemathesis.Response) -> bool:
    """Keep every failure but "negative data accepted" for an upload that was all valid."""
    if not isinstance(failure, AcceptedNegativeData) or response.status_code != 201:
        return True
    if (case.method.upper(), case.operation.path) != UPLOAD:
        return True
    meta = case.meta
    if meta is None or any(c.mode.is_negative for location, c in meta.components.items()
                           if location != ParameterLocation.BODY):
        return True  # something else was meant to be invalid: keep the report
    family = (case.path_parameters or {}).get("family")
    valid = case.body in _MADE or (isinstance(family, str) and case.body == REGISTERED.get(family))
    return not valid
