"""Structured logs: one JSON object per line, and one line per HTTP request.

A request's line carries its id, method, route template, status, duration and, when a score
was served, the model versions and the caller's customer id. Nothing else about the
customer: feature values never reach a log line (tests/ops/test_logs.py searches for them).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
import time
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any, TextIO

import orjson

REQUEST_LOG = logging.getLogger("tierwise.requests")

# LogRecord's own attributes; anything else on a record came from `extra=` and is logged.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "taskName",
}
_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.asgi")
# uvicorn's access line repeats our request line with the client's address and the raw
# query string (an `?apikey=` would be logged verbatim): off however uvicorn was started.
_ACCESS_LOGGER = "uvicorn.access"
# Loggers that say nothing an operator needs at INFO.
_QUIET = {"alembic.runtime.plugins": logging.WARNING}
# Probes and scrapes arrive every few seconds: their lines are DEBUG unless refused or failed.
_PROBE_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})

_DEFAULT_FACTORY = logging.getLogRecordFactory()

# The fields the data plane adds to the current request's line (set by the middleware).
_request_fields: ContextVar[dict[str, Any] | None] = ContextVar("tierwise_request_fields",
                                                               default=None)


class JsonFormatter(logging.Formatter):
    """timestamp, level, logger, message, pid, then every `extra=` field; exceptions as text."""

    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._second_text = ""

    def _timestamp(self, created: float) -> str:
        # Formatting a datetime costs more than the rest of a line: do it once a second.
        second = int(created)
        if second != self._second:
            self._second_text = dt.datetime.fromtimestamp(second, dt.UTC).strftime(
                "%Y-%m-%dT%H:%M:%S")
            self._second = second
        return f"{self._second_text}.{int((created - second) * 1000):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "timestamp": self._timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_FIELDS and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(out, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def configure_logging(level: str, *, stream: TextIO | None = None) -> None:
    """Send the root and uvicorn loggers, as JSON lines, to `stream` (stderr) at `level`;
    uvicorn's access log off (app/api/request_context.py writes the one line per request).

    Idempotent. Replaces console handlers (plain StreamHandlers, ours included) and leaves
    other handlers alone, so test log capture keeps working.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "tierwise_json", False) or type(handler) is logging.StreamHandler:
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.tierwise_json = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Documented logging optimisations: no line uses thread or process names.
    logging.logThreads = False
    logging.logMultiprocessing = False
    for name in _UVICORN_LOGGERS:  # uvicorn's own lines become JSON lines on the root handler
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # No handler and no propagation: uvicorn asks hasHandlers() per connection and then does
    # not even format the line; disabled in case a handler is added later.
    access = logging.getLogger(_ACCESS_LOGGER)
    access.handlers.clear()
    access.propagate = False
    access.disabled = True
    for name, quiet_level in _QUIET.items():
        logging.getLogger(name).setLevel(quiet_level)


def start_request() -> tuple[dict[str, Any], Any]:
    """Open the current request's field dict (middleware); returns it and a reset token."""
    fields: dict[str, Any] = {}
    return fields, _request_fields.set(fields)


def end_request(token: Any) -> None:
    _request_fields.reset(token)


def note_request(**fields: Any) -> None:
    """Add fields to the current request's log line; a no-op outside a request."""
    current = _request_fields.get()
    if current is not None:
        current.update(fields)


def log_request(*, request_id: str, method: str, route: str, status: int, seconds: float,
                fields: Mapping[str, Any]) -> None:
    """The request's one line: INFO (DEBUG for probes and scrapes answered < 400), ERROR for
    a 5xx."""
    if status >= 500:
        level = logging.ERROR
    elif route in _PROBE_ROUTES and status < 400:
        level = logging.DEBUG
    else:
        level = logging.INFO
    if not REQUEST_LOG.isEnabledFor(level):
        return
    extra: dict[str, Any] = {"request_id": request_id, "method": method, "route": route,
                             "status": status, "duration_ms": round(seconds * 1000.0, 3)}
    models = fields.get("models")
    if models is not None:  # a response's models: {family: {"version": …, "sha256": …}}
        extra["models"] = {family: served["version"] for family, served in models.items()}
    for key in ("customer_id", "scored", "failed"):
        if key in fields:
            extra[key] = fields[key]
    handler = _direct_handler(level)
    if handler is not None:
        # Only our JSON handler would see the record: write the same line it would format,
        # without building a LogRecord (a fifth of a scoring request's app-side CPU).
        formatter: JsonFormatter = handler.formatter  # type: ignore[assignment]
        handler.acquire()
        try:
            created = time.time()
            line = orjson.dumps(
                {"timestamp": formatter._timestamp(created),
                 "level": logging.getLevelName(level), "logger": REQUEST_LOG.name,
                 "message": "request", "pid": os.getpid(), **extra},
                default=str, option=orjson.OPT_NON_STR_KEYS).decode()
            handler.stream.write(line + handler.terminator)
            handler.flush()
        except RecursionError:
            raise
        except Exception:
            handler.handleError(REQUEST_LOG.makeRecord(REQUEST_LOG.name, level, __file__, 0,
                                                       "request", (), None, extra=extra))
        finally:
            handler.release()
        return
    # makeRecord + handle: Logger.log would also walk the stack to find the caller (the
    # middleware, always), a third of the line's cost.
    REQUEST_LOG.handle(REQUEST_LOG.makeRecord(REQUEST_LOG.name, level, __file__, 0, "request",
                                              (), None, extra=extra))


def _direct_handler(level: int) -> logging.StreamHandler[Any] | None:
    """Our JSON handler when it is the only place a request line can go (no filters, no other
    handler on the way, the logging module's own record fields unchanged); else None."""
    root = logging.getLogger()
    if (REQUEST_LOG.filters or REQUEST_LOG.disabled or type(REQUEST_LOG) is not logging.Logger
            or logging.getLogRecordFactory() is not _DEFAULT_FACTORY):
        return None
    logger: logging.Logger | None = REQUEST_LOG
    while logger is not None and logger is not root:  # the loggers a record propagates to
        if logger.handlers or not logger.propagate:
            return None
        logger = logger.parent
    if logger is not root or len(root.handlers) != 1:
        return None
    handler = root.handlers[0]
    if (type(handler) is not logging.StreamHandler or handler.filters
            or not getattr(handler, "tierwise_json", False)
            or type(handler.formatter) is not JsonFormatter or handler.level > level
            or not logging.logProcesses):
        return None
    return handler
