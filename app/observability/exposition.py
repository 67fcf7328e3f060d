"""Serving the metrics: the /metrics text, multi-process collection, and keeping them current.

With PROMETHEUS_MULTIPROC_DIR set (`tierwise serve --workers N` sets it), every worker
writes its values to files there and a scrape, answered by any worker, sums the files of
all of them. A worker that stops is marked dead, so its live-only gauges (the model info)
disappear while its counters keep counting in the sums.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)

from app.observability.metrics import (
    FLUSH_SECONDS,
    ScoreTally,
    sync_evaluator_info,
    sync_model_info,
)

log = logging.getLogger("tierwise.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST
_LIVE_GAUGE_FILE = re.compile(r"^gauge_live\w*?_(\d+)\.db$")


def multiprocess_dir() -> str | None:
    """The shared metrics directory of the workers, or None in single-process mode."""
    return os.environ.get(MULTIPROC_ENV) or None


def live_models(live: Any) -> dict[str, Any] | None:
    """The production models a live-contexts object serves now, or None before it is ready."""
    if live is None or not getattr(live, "ready", False):
        return None
    try:
        return dict(live.current().models_served)
    except Exception:  # not ready after all (a race with the first load): nothing to show
        return None


def refresh(live: Any, tally: ScoreTally | None) -> None:
    """Bring this worker's values up to date: the scores tallied, the versions live."""
    if tally is not None:
        tally.flush()
    models = live_models(live)
    sync_model_info(models)
    if models is not None:  # ready: live.current() answers
        try:
            evaluator = live.current().evaluator
        except Exception:  # the same race as in live_models: nothing to show yet
            return
        sync_evaluator_info(evaluator.name, str(getattr(evaluator, "isa", "none")))


def render() -> bytes:
    """The Prometheus text of this replica: every worker's values in multi-process mode."""
    directory = multiprocess_dir()
    if directory is None:
        return generate_latest(REGISTRY)
    forget_dead_workers(directory)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)
    return generate_latest(registry)


def forget_dead_workers(directory: str) -> None:
    """Mark workers that died without a clean shutdown (killed, crashed) as dead."""
    for path in Path(directory).iterdir():
        match = _LIVE_GAUGE_FILE.match(path.name)
        if match is None:
            continue
        pid = int(match.group(1))
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, directory)
        except PermissionError:  # alive, owned by someone else
            pass


@asynccontextmanager
async def metrics_kept_current(live: Callable[[], Any],
                               tally: ScoreTally | None) -> AsyncIterator[None]:
    """While the app runs, refresh this worker's metrics every FLUSH_SECONDS (so scrapes
    answered by another worker see its counts); at shutdown, flush and mark it dead."""

    async def keep() -> None:
        while True:
            try:
                refresh(live(), tally)
            except Exception:  # metrics must never take the service down
                log.exception("refreshing the metrics failed")
            await asyncio.sleep(FLUSH_SECONDS)

    task = asyncio.create_task(keep(), name="tierwise-metrics")
    try:
        yield
    finally:
        task.cancel()
        if tally is not None:
            tally.flush()
        directory = multiprocess_dir()
        if directory is not None:
            multiprocess.mark_process_dead(os.getpid(), directory)
