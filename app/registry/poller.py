"""The thread that keeps a replica's scoring context in step with the registry's aliases."""

from __future__ import annotations

import logging
import threading
from typing import Protocol

log = logging.getLogger("tierwise.registry.live")


class Refreshable(Protocol):
    """What the poller drives (LiveScoring)."""

    def refresh(self) -> bool: ...


class AliasPoller:
    """A daemon thread calling live.refresh() every `interval` seconds (first call at once),
    and at once when woken (wake(): an alias move was notified)."""

    def __init__(self, live: Refreshable, *, interval: float) -> None:
        self._live = live
        self._interval = interval
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tierwise-registry-poller",
                                        daemon=True)

    def start(self) -> None:
        """Start polling in the background."""
        self._thread.start()

    def wake(self) -> None:
        """Refresh now (or right after the refresh under way, so nothing is missed)."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop polling and wait up to `timeout` seconds for the thread to end."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()  # a wake from here on means: refresh again after this one
            try:
                self._live.refresh()
            except Exception:  # never let the poller die
                log.exception("registry poll failed")
            self._wake.wait(self._interval)
