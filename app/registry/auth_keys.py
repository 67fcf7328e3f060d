"""Principals and their API keys: generation, hashing, roles, and a short-lived lookup cache.

A principal is a person or a service account; it owns keys, and each key belongs to exactly
one principal. Four eyes compares principals, so two keys of one person count as one.

A key reads `tw_<id>_<secret>`. Only its sha256 is stored; the id finds the row. The secret
carries 256 random bits, so a plain (unsalted) sha256 is safe against guessing and lets a
replica check a key with one hash.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from app.errors import (
    Conflict,
    FieldProblem,
    Forbidden,
    InvalidRequest,
    NotFound,
    RegistryUnavailable,
)
from app.registry import repository
from app.registry.database import is_unavailable
from app.registry.outage import RegistryHealth
from app.registry.tables import PRINCIPAL_KINDS, ROLES, ApiKeyRow, PrincipalRow, utcnow

# What each role may do: admin everything; publisher and approver may also score.
GRANTS: dict[str, frozenset[str]] = {
    "scorer": frozenset({"scorer"}),
    "publisher": frozenset({"scorer", "publisher"}),
    "approver": frozenset({"scorer", "approver"}),
    "admin": frozenset(ROLES),
}
# Names of the built-in actors: no principal may take them.
RESERVED_NAMES = frozenset({"system", "anonymous"})


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the principal (person or service account) and the key it used."""

    key_id: str
    name: str  # the principal's name
    role: str  # the key's role
    principal_id: str
    kind: str = "person"

    def may(self, capability: str) -> bool:
        """Whether this role grants `capability` (a role name)."""
        return capability in GRANTS.get(self.role, frozenset())


SYSTEM = Principal(key_id="system", name="system", role="admin", principal_id="system",
                   kind="service")
ANONYMOUS = Principal(key_id="anonymous", name="anonymous (auth disabled)", role="admin",
                      principal_id="anonymous", kind="service")


def hash_key(key: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(key.encode()).hexdigest()


def key_id_of(key: str) -> str | None:
    """The public id inside a presented key, or None when it is not shaped like one."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != "tw" or not parts[1] or len(key) > 200:
        return None
    return parts[1]


def principal_of(row: ApiKeyRow, owner: PrincipalRow) -> Principal:
    """The caller a key row stands for."""
    return Principal(key_id=row.id, name=owner.name, role=row.role, principal_id=owner.id,
                     kind=owner.kind)


def acting_principal(session: Session, name: str) -> Principal:
    """The principal NAME as the actor of an admin command: it must hold an active admin key."""
    owner = repository.get_principal_by_name(session, name.strip())
    keys = [] if owner is None else [
        k for k in repository.list_api_keys(session, principal_id=owner.id)
        if k.role == "admin" and k.revoked_at is None]
    if owner is None or not keys:
        raise Forbidden(f"{name!r} is not a principal with an active admin key",
                        [FieldProblem("as", "name a principal that holds an admin key")])
    return principal_of(keys[0], owner)


def ensure_principal(*, session: Session, name: str, kind: str | None, actor: Principal
                     ) -> tuple[PrincipalRow, bool]:
    """The principal called `name`, created (of `kind`, default person) when new; (row, created)."""
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidRequest("a principal needs a name of 1 to 200 characters",
                             [FieldProblem("principal", "empty" if not name else "too long")])
    if name in RESERVED_NAMES:
        raise InvalidRequest(f"{name!r} is reserved", [FieldProblem("principal", "reserved")])
    if kind is not None and kind not in PRINCIPAL_KINDS:
        raise InvalidRequest(f"unknown principal kind {kind!r}",
                             [FieldProblem("kind", "one of " + ", ".join(PRINCIPAL_KINDS))])
    row = repository.get_principal_by_name(session, name)
    if row is not None:
        if kind is not None and kind != row.kind:
            raise Conflict(f"{name!r} is a {row.kind}, not a {kind}",
                           [FieldProblem("kind", f"the principal is a {row.kind}")])
        return row, False
    return repository.add_principal(session, PrincipalRow(
        id=secrets.token_hex(6), name=name, kind=kind or "person", created_at=utcnow(),
        created_by=actor.name)), True


def create_key(*, session: Session, role: str, principal: str | None = None,
               kind: str | None = None, name: str | None = None, actor: Principal = SYSTEM
               ) -> tuple[ApiKeyRow, str]:
    """Create a key for `principal` (created when new); returns the row and the plain key
    (shown once, never stored). `name` is the former spelling of `principal`."""
    if role not in ROLES:
        raise InvalidRequest(f"unknown role {role!r}",
                             [FieldProblem("role", "one of " + ", ".join(ROLES))])
    if principal is not None and name is not None and principal.strip() != name.strip():
        raise InvalidRequest("give the principal once (--name is the old --principal)",
                             [FieldProblem("name", f"differs from principal {principal!r}")])
    owner, created = ensure_principal(session=session, name=principal or name or "", kind=kind,
                                      actor=actor)
    key_id = secrets.token_hex(6)
    plain = f"tw_{key_id}_{secrets.token_urlsafe(32)}"
    now = utcnow()
    row = repository.add_api_key(session, ApiKeyRow(
        id=key_id, name=owner.name, principal_id=owner.id, role=role, key_hash=hash_key(plain),
        created_at=now, created_by=actor.name,
    ))
    _ledger(session, actor, "key_create", now, {
        "key_id": key_id, "name": owner.name, "role": role, "principal": owner.id,
        "kind": owner.kind, "principal_created": created})
    return row, plain


def revoke_key(*, session: Session, key_id: str, actor: Principal = SYSTEM) -> ApiKeyRow:
    """Revoke a key (replicas stop accepting it within the cache lifetime)."""
    row = repository.get_api_key(session, key_id)
    if row is None:
        raise NotFound(f"no API key {key_id}", [FieldProblem("key_id", "unknown")])
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.flush()
        _ledger(session, actor, "key_revoke", row.revoked_at,
                {"key_id": key_id, "name": row.name, "principal": row.principal_id})
    return row


def _ledger(session: Session, actor: Principal, action: str, at: dt.datetime,
            detail: dict[str, object]) -> None:
    repository.append_ledger(session, at=at, actor_key=actor.key_id, actor_name=actor.name,
                             actor_role=actor.role, actor_principal=actor.principal_id,
                             action=action, detail=detail)


def check_key(session: Session, key: str) -> Principal | None:
    """The principal a presented key stands for, or None (unknown, wrong or revoked)."""
    key_id = key_id_of(key)
    if key_id is None:
        return None
    found = repository.get_api_key_with_owner(session, key_id)
    if found is None:
        return None
    row, owner = found
    if row.revoked_at is not None or not hmac.compare_digest(row.key_hash, hash_key(key)):
        return None
    return principal_of(row, owner)


class KeyCache:
    """Remembers key lookups (good and bad) for `ttl` seconds: one DB hit per key per ttl.

    While the database cannot be reached, a lookup verified within the last `grace` seconds
    still answers (so scoring goes on through an outage); a key with no such lookup is
    RegistryUnavailable (503), never 401: it may be valid. The first lookup that reaches the
    database again replaces the remembered answer, so revocations apply on reconnect.
    """

    def __init__(self, sessions: sessionmaker[Session], *, ttl: float = 5.0,
                 grace: float = 300.0, max_entries: int = 4096,
                 health: RegistryHealth | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._sessions = sessions
        self._ttl = ttl
        self._grace = grace
        self._max = max_entries
        self._health = health or RegistryHealth()
        self._clock = clock
        # hash → (verified at, principal or None for a bad key)
        self._entries: OrderedDict[str, tuple[float, Principal | None]] = OrderedDict()
        self._lock = threading.Lock()

    def cached(self, key: str) -> tuple[bool, Principal | None]:
        """(found, principal) from the cache alone: no DB access, safe on the event loop."""
        entry = self._entries.get(hash_key(key))
        if entry is None:
            return False, None
        age = self._clock() - entry[0]
        if age <= self._ttl or (not self._health.up and age <= self._grace):
            return True, entry[1]
        return False, None

    def authenticate(self, key: str) -> Principal | None:
        """Look a key up (cache first, then the database); RegistryUnavailable when the
        database cannot be reached and no lookup of this key is recent enough."""
        found, principal = self.cached(key)
        if found:
            return principal
        hashed = hash_key(key)
        try:
            with self._sessions() as session:
                principal = check_key(session, key)
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            self._health.failed(exc, "key lookup")
            entry = self._entries.get(hashed)
            if entry is not None and self._clock() - entry[0] <= self._grace:
                return entry[1]
            raise RegistryUnavailable(
                "the registry database cannot be reached and this key was not verified "
                "recently; retry later",
                [FieldProblem("X-API-Key", "cannot be checked now")]) from None
        self._health.ok()
        with self._lock:
            self._entries[hashed] = (self._clock(), principal)
            self._entries.move_to_end(hashed)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return principal

    def clear(self) -> None:
        """Forget every cached lookup."""
        with self._lock:
            self._entries.clear()
