"""Running the service under uvicorn: fast settings, a fail-fast start, JSON logs, metrics
summed across workers, and a graceful stop."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile

import uvicorn
from pydantic import ValidationError

from app.config import Settings, get_settings
from app.observability.exposition import MULTIPROC_ENV
from app.observability.logging import configure_logging

log = logging.getLogger("tierwise.server")


def run_server(*, host: str, port: int, workers: int) -> None:
    """Serve create_app() with uvloop/httptools; several workers share the port.

    Bad settings, an unreachable database or missing default models end the command with
    one readable line and a non-zero status, before any worker starts. SIGTERM stops
    accepting connections and lets in-flight requests finish (TIERWISE_GRACEFUL_TIMEOUT_SECONDS).
    """
    settings = _settings_or_exit()
    configure_logging(settings.log_level)
    _check_registry(settings)
    metrics_dir = None
    if workers > 1:
        # prometheus_client's multi-process mode: each worker writes its values here (the
        # variable must be set before a worker imports the metrics), /metrics sums them.
        metrics_dir = tempfile.mkdtemp(prefix="tierwise-metrics-",
                                       dir=os.environ.get(MULTIPROC_ENV) or None)
        os.environ[MULTIPROC_ENV] = metrics_dir
    try:
        uvicorn.run(
            "app.main:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            loop="uvloop",
            http="httptools",
            log_config=None,  # create_app() makes every log line JSON, uvicorn's included
            log_level=settings.log_level.lower(),
            access_log=False,  # app/api/request_context.py writes one line per request instead
            timeout_graceful_shutdown=settings.graceful_timeout_seconds,  # type: ignore[arg-type]
            timeout_keep_alive=settings.keep_alive_timeout_seconds,
            # Bounds the request head while h11 reads it; httptools (ours) has no such option,
            # so app/api/request_context.py refuses an oversized head (431) once it is read.
            h11_max_incomplete_event_size=settings.max_header_bytes,
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _settings_or_exit() -> Settings:
    try:
        return get_settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"TIERWISE_{'.'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors(include_url=False)
        )
        raise SystemExit(f"tierwise: invalid settings: {problems}") from None


def _check_registry(settings: Settings) -> None:
    """Open the registry once, as every worker will: reach the database, migrate, seed."""
    try:
        from app.registry.runtime import open_runtime
    except ImportError:  # pragma: no cover - no registry in this build
        return
    try:
        runtime = open_runtime(settings, start_poller=False)
    except Exception as exc:
        log.debug("start-up check failed", exc_info=True)
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise SystemExit(f"tierwise: cannot start: {first_line}") from None
    runtime.close()
