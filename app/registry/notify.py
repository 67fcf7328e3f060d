"""PostgreSQL LISTEN/NOTIFY for alias moves: replicas hear a move when it commits.

An alias move sends `NOTIFY tierwise_aliases` inside its own transaction, so PostgreSQL
delivers it exactly when the move commits (and never for a move rolled back). Each replica
keeps one connection of its own that LISTENs (psycopg's `Connection.notifies`) and wakes the
alias poller at once. Polling stays: it is the fallback when the listening connection is
lost (the listener reconnects with backoff and wakes the poller once it listens again, so a
move made in between is not missed) and the only mechanism on SQLite.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

import psycopg
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

log = logging.getLogger("tierwise.registry.live")

CHANNEL = "tierwise_aliases"
_PAYLOAD_LIMIT = 7000  # PostgreSQL refuses payloads of 8000 bytes or more


def announce_moves(session: Session, families: Iterable[str]) -> None:
    """Queue a notification of moved aliases in the session's transaction (PostgreSQL only);
    listeners get it when, and only if, the transaction commits."""
    if session.get_bind().dialect.name != "postgresql":
        return
    payload = ",".join(sorted(set(families)))[:_PAYLOAD_LIMIT]
    session.execute(text("SELECT pg_notify(:channel, :payload)"),
                    {"channel": CHANNEL, "payload": payload})


def libpq_conninfo(database_url: str) -> str:
    """A libpq connection URI for a SQLAlchemy PostgreSQL URL (driver name dropped)."""
    url = make_url(database_url)
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class AliasListener:
    """A daemon thread LISTENing on its own connection; calls `wake()` for every notification
    and once after each (re)connection. Reconnects with backoff (0.5 s doubling to
    `max_backoff`); logs a lost connection once and the reconnection once."""

    def __init__(self, database_url: str, wake: Callable[[], None], *,
                 max_backoff: float = 10.0) -> None:
        self._conninfo = libpq_conninfo(database_url)
        self._wake = wake
        self._max_backoff = max_backoff
        self._stop = threading.Event()
        self.listening = False
        self.notifications = 0
        self._thread = threading.Thread(target=self._run, name="tierwise-registry-listener",
                                        daemon=True)

    def start(self) -> None:
        """Start listening in the background."""
        self._thread.start()

    def wait_listening(self, timeout: float = 10.0) -> bool:
        """Block until the LISTEN is in place (or `timeout` passes); True when listening."""
        deadline = time.monotonic() + timeout
        while not self.listening and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.listening

    def stop(self, timeout: float = 5.0) -> None:
        """Stop listening; the thread notices within a second."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        backoff, lost = 0.5, False
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=10,
                                     keepalives=1, keepalives_idle=10, keepalives_interval=5,
                                     keepalives_count=3) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.listening, backoff = True, 0.5
                    if lost:
                        log.warning("listening for alias moves again")
                        lost = False
                    self._wake()  # a move made while not listening is picked up now
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            self.notifications += 1
                            self._wake()
            except Exception as exc:  # connection lost or refused: polling carries on
                if not lost:
                    log.warning("not listening for alias moves (%s); polling until the "
                                "connection is back", str(exc).splitlines()[0] if str(exc)
                                else type(exc).__name__)
                    lost = True
            self.listening = False
            self._stop.wait(backoff)
            backoff = min(backoff * 2, self._max_backoff)
