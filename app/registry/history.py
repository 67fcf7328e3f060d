"""The contact policy's history from recorded outcomes (TIERWISE_CONTACT_HISTORY_FROM_OUTCOMES).

Read when a scoring request sends no context.history: one bounded query for the customers of
a request. While the registry database is unreachable the answer is None at once (no wait
for a connection timeout once the outage is known): scoring goes on without the history, and
the response says so.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection

from sqlalchemy.orm import Session, sessionmaker

from app.registry import database
from app.registry.outage import RegistryHealth
from app.registry.outcomes import contact_events
from app.registry.runtime import RegistryRuntime

# Rows read per request at most: a customer's contacts within the longest contact window of
# a catalogue are a handful; this bounds a pathological one.
MAX_EVENTS = 2000


class RecordedHistory:
    """Recorded contacts of customers, or None when the database cannot be reached."""

    def __init__(self, *, sessions: sessionmaker[Session], health: RegistryHealth,
                 limit: int = MAX_EVENTS) -> None:
        self._sessions = sessions
        self._health = health
        self._limit = limit

    def events(self, customer_ids: Collection[str], since: dt.date
               ) -> dict[str, list[tuple[str, dt.date, str]]] | None:
        """customer id → (action id, day, offered | declined | accepted) from `since` on,
        newest first; None while the registry database is unreachable."""
        if not self._health.up:
            return None
        try:
            with self._sessions() as session:
                found = contact_events(session, customer_ids=customer_ids, since=since,
                                       limit=self._limit)
        except Exception as exc:
            if not database.is_unavailable(exc):
                raise
            self._health.failed(exc, "contact history")
            return None
        self._health.ok()
        return found


def recorded_history(runtime: RegistryRuntime) -> RecordedHistory:
    """The history reader of a registry runtime (its sessions and health)."""
    return RecordedHistory(sessions=runtime.sessionmaker, health=runtime.live.health)
