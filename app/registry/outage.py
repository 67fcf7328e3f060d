"""Whether this replica can reach the registry database, and one place that says so.

Every database call a replica makes on its own (the alias poll, key lookups, pinned
versions, registry routes) reports here. The state feeds `/v1/status` (`registry: up` or
`degraded`), the `tierwise_registry_up` gauge, and the log: one line when the database is
lost, at most one line per `log_interval` while it stays lost (with the number of failed
attempts since the previous line), and one line when it is back. A stopped database
otherwise writes a traceback per request (megabytes a minute).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from app.observability.metrics import REGISTRY_UP
from app.registry.tables import utcnow

log = logging.getLogger("tierwise.registry")


def first_line(exc: BaseException) -> str:
    """The first line of an error (drivers put the SQL and a link on the next ones)."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:500]


class RegistryHealth:
    """Up or down, since when, the last error; thread-safe, cheap to read."""

    def __init__(self, *, log_interval: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._log_interval = log_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._up = True
        self._since = utcnow()
        self._down_at = 0.0
        self._last_error: str | None = None
        self._failures = 0  # failed attempts in this outage
        self._unlogged = 0  # failed attempts since the last log line
        self._logged_at = 0.0
        REGISTRY_UP.set(1)

    @property
    def up(self) -> bool:
        """False from a failed database call until the next one that succeeds."""
        return self._up

    def ok(self) -> None:
        """A database call succeeded."""
        if self._up:
            return
        with self._lock:
            if self._up:
                return
            self._up, self._since = True, utcnow()
            seconds, failures = self._clock() - self._down_at, self._failures
            self._failures = self._unlogged = 0
        REGISTRY_UP.set(1)
        log.warning("registry database reachable again after %.1f s (%d failed attempts); "
                    "key lookups and registry routes use it again", seconds, failures)

    def failed(self, exc: BaseException, during: str) -> None:
        """A database call failed because the database cannot be reached."""
        now = self._clock()
        with self._lock:
            self._last_error = f"{during}: {first_line(exc)}"
            self._failures += 1
            self._unlogged += 1
            if self._up:
                self._up, self._since, self._down_at = False, utcnow(), now
                lost = True
            elif now - self._logged_at >= self._log_interval:
                lost = False
            else:
                return
            self._logged_at, count, self._unlogged = now, self._unlogged, 0
            seconds = now - self._down_at
        REGISTRY_UP.set(0)
        if lost:
            log.error("registry database unreachable (%s); scoring goes on from the live "
                      "context, registry routes answer 503 registry_unavailable",
                      self._last_error)
        else:
            log.error("registry database still unreachable after %.1f s (%d failed attempts "
                      "since the last line): %s", seconds, count, self._last_error)

    def status(self) -> dict[str, Any]:
        """registry (up or degraded), since when, and the last error of this outage."""
        return {
            "registry": "up" if self._up else "degraded",
            "registry_since": self._since.isoformat(),
            "registry_error": None if self._up else self._last_error,
            "registry_failed_attempts": self._failures,
        }
