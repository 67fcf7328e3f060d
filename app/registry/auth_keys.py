"""API keys: generation, hashing, roles, and a short-lived lookup cache for the request path.

A key reads `tw_<id>_<secret>`. Only its sha256 is stored; the id finds the row. The secret
carries 256 random bits, so a plain (unsalted) sha256 is safe against guessing and lets a
replica check a key with one hash.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from app.errors import FieldProblem, InvalidRequest, NotFound
from app.registry import repository
from app.registry.tables import ROLES, ApiKeyRow, utcnow

# What each role may do: admin everything; publisher and approver may also score.
GRANTS: dict[str, frozenset[str]] = {
    "scorer": frozenset({"scorer"}),
    "publisher": frozenset({"scorer", "publisher"}),
    "approver": frozenset({"scorer", "approver"}),
    "admin": frozenset(ROLES),
}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key's public id, its name and role."""

    key_id: str
    name: str
    role: str

    def may(self, capability: str) -> bool:
        """Whether this role grants `capability` (a role name)."""
        return capability in GRANTS.get(self.role, frozenset())


SYSTEM = Principal(key_id="system", name="system", role="admin")
ANONYMOUS = Principal(key_id="anonymous", name="anonymous (auth disabled)", role="admin")


def hash_key(key: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(key.encode()).hexdigest()


def key_id_of(key: str) -> str | None:
    """The public id inside a presented key, or None when it is not shaped like one."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != "tw" or not parts[1] or len(key) > 200:
        return None
    return parts[1]


def create_key(*, session: Session, name: str, role: str, actor: Principal = SYSTEM
               ) -> tuple[ApiKeyRow, str]:
    """Create a key; returns the row and the plain key (shown once, never stored)."""
    if role not in ROLES:
        raise InvalidRequest(f"unknown role {role!r}",
                             [FieldProblem("role", "one of " + ", ".join(ROLES))])
    if not name.strip():
        raise InvalidRequest("a key needs a name", [FieldProblem("name", "empty")])
    key_id = secrets.token_hex(6)
    plain = f"tw_{key_id}_{secrets.token_urlsafe(32)}"
    now = utcnow()
    row = repository.add_api_key(session, ApiKeyRow(
        id=key_id, name=name.strip(), role=role, key_hash=hash_key(plain), created_at=now,
        created_by=actor.name,
    ))
    repository.append_ledger(session, at=now, actor_key=actor.key_id, actor_name=actor.name,
                             actor_role=actor.role, action="key_create",
                             detail={"key_id": key_id, "name": row.name, "role": role})
    return row, plain


def revoke_key(*, session: Session, key_id: str, actor: Principal = SYSTEM) -> ApiKeyRow:
    """Revoke a key (replicas stop accepting it within the cache lifetime)."""
    row = repository.get_api_key(session, key_id)
    if row is None:
        raise NotFound(f"no API key {key_id}", [FieldProblem("key_id", "unknown")])
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.flush()
        repository.append_ledger(session, at=row.revoked_at, actor_key=actor.key_id,
                                 actor_name=actor.name, actor_role=actor.role,
                                 action="key_revoke", detail={"key_id": key_id, "name": row.name})
    return row


def check_key(session: Session, key: str) -> Principal | None:
    """The principal a presented key stands for, or None (unknown, wrong or revoked)."""
    key_id = key_id_of(key)
    if key_id is None:
        return None
    row = repository.get_api_key(session, key_id)
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.key_hash, hash_key(key)):
        return None
    return Principal(key_id=row.id, name=row.name, role=row.role)


class KeyCache:
    """Remembers key lookups (good and bad) for `ttl` seconds: one DB hit per key per ttl."""

    def __init__(self, sessions: sessionmaker[Session], *, ttl: float = 5.0,
                 max_entries: int = 4096, clock: Callable[[], float] = time.monotonic) -> None:
        self._sessions = sessions
        self._ttl = ttl
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, Principal | None]] = OrderedDict()
        self._lock = threading.Lock()

    def cached(self, key: str) -> tuple[bool, Principal | None]:
        """(found, principal) from the cache alone: no DB access, safe on the event loop."""
        entry = self._entries.get(hash_key(key))
        if entry is None or entry[0] < self._clock():
            return False, None
        return True, entry[1]

    def authenticate(self, key: str) -> Principal | None:
        """Look a key up (cache first, then the database)."""
        found, principal = self.cached(key)
        if found:
            return principal
        with self._sessions() as session:
            principal = check_key(session, key)
        with self._lock:
            self._entries[hash_key(key)] = (self._clock() + self._ttl, principal)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return principal

    def clear(self) -> None:
        """Forget every cached lookup."""
        with self._lock:
            self._entries.clear()
