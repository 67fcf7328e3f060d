"""What happens when an HTTP request ends: it is counted, timed and logged (one line)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from app.observability.logging import log_request
from app.observability.metrics import observe_request


def request_finished(*, method: str, route: str, status: int, request_id: str,
                     started: float, fields: Mapping[str, Any]) -> None:
    """Count, time and log a request that ended; `started` is its time.perf_counter().

    `route` is the route template, never the raw path; `status` 500 when no response began.
    """
    seconds = time.perf_counter() - started
    observe_request(route, method, status, seconds)
    log_request(request_id=request_id, method=method, route=route, status=status,
                seconds=seconds, fields=fields)
