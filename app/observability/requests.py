"""What happens when an HTTP request ends: it is counted, timed and logged (one line)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

from starlette.routing import Match

from app.observability.logging import log_request
from app.observability.metrics import observe_request

UNMATCHED = "unmatched"


def route_template(scope: Mapping[str, Any]) -> str:
    """The route's path template (/v1/models/{family}/versions), never the raw path, so
    label values stay bounded; "unmatched" for paths no route serves."""
    route = scope.get("route")
    if route is None:  # answered before routing (413 on the declared length), or a 404
        router = getattr(scope.get("app"), "router", None)
        route = _matching(getattr(router, "routes", ()), scope)
    return getattr(route, "path", None) or UNMATCHED


def _matching(routes: Iterable[Any], scope: Mapping[str, Any]) -> Any:
    for candidate in routes:
        included = getattr(candidate, "original_router", None)
        if included is not None:  # FastAPI keeps an included router whole: look inside
            found = _matching(included.routes, scope)
            if found is not None:
                return found
            continue
        match, _ = candidate.matches(scope)
        if match is not Match.NONE:
            return candidate
    return None


def request_finished(scope: MutableMapping[str, Any], started: float,
                     fields: Mapping[str, Any]) -> None:
    """Count, time and log a request that ended; `started` is its time.perf_counter()."""
    seconds = time.perf_counter() - started
    state = scope.get("state") or {}
    status = state.get("status", 500)  # no response started: the server answers 500
    route = route_template(scope)
    method = scope["method"]
    observe_request(route, method, status, seconds)
    log_request(request_id=state.get("request_id", ""), method=method, route=route,
                status=status, seconds=seconds, fields=fields)
