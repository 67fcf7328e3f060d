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

# Rows read per customer asked for at most (newest first): a customer's contacts within the
# longest contact window of a catalogue are a handful; this bounds a pathological one.
# Customers are asked for CHUNK at a time (one query each; a batch of 10,000 makes 20).
EVENTS_PER_CUSTOMER = 100
CHUNK = 500


class RecordedHistory:
    """Recorded contacts of customers, or None when the database cannot be reached."""

    def __init__(self, *, sessions: sessionmaker[Session], health: RegistryHealth) -> None:
        self._sessions = sessions
        self._health = health

    def events(self, customer_ids: Collection[str], since: dt.date
               ) -> dict[str, list[tuple[str, dt.date, str]]] | None:
        """customer id → (action id, day, offered | declined | accepted) from `since` on,
        newest first; None while the registry database is unreachable."""
        if not self._health.up:
            return None
        wanted = list(dict.fromkeys(customer_ids))
        found: dict[str, list[tuple[str, dt.date, str]]] = {}
        try:
            with self._sessions() as session:
                for start in range(0, len(wanted), CHUNK):
                    chunk = wanted[start:start + CHUNK]
                    found.update(contact_events(session, customer_ids=chunk, since=since,
                                                limit=EVENTS_PER_CUSTOMER * len(chunk)))
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
