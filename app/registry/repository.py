"""Every query the registry runs. Functions flush, never commit: the caller owns the transaction."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import false, func, select, tuple_, update
from sqlalchemy.orm import Session

from app.registry.tables import (
    AliasRow,
    ApiKeyRow,
    ApprovalRow,
    ArtifactRow,
    FamilyRow,
    LedgerRow,
    PrincipalRow,
    VersionRow,
)

# --- families ------------------------------------------------------------------------


def list_families(session: Session) -> Sequence[FamilyRow]:
    """All families, by name."""
    return session.scalars(select(FamilyRow).order_by(FamilyRow.name)).all()


def get_family(session: Session, name: str, *, lock: bool = False) -> FamilyRow | None:
    """One family; `lock` serialises concurrent pushes to it (no-op on SQLite)."""
    stmt = select(FamilyRow).where(FamilyRow.name == name)
    if lock:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).one_or_none()


# --- versions and artifacts ----------------------------------------------------------


def count_versions(session: Session) -> int:
    """How many versions the registry holds, all families together."""
    return session.scalar(select(func.count()).select_from(VersionRow)) or 0


def latest_version_number(session: Session, family: str) -> int:
    """Highest version number of a family (0 when none)."""
    return session.scalar(
        select(func.coalesce(func.max(VersionRow.version), 0)).where(VersionRow.family == family)
    ) or 0


def get_version(session: Session, family: str, version: int) -> VersionRow | None:
    """One version of a family."""
    return session.scalars(
        select(VersionRow).where(VersionRow.family == family, VersionRow.version == version)
    ).one_or_none()


def get_version_by_sha256(session: Session, sha256: str) -> VersionRow | None:
    """The version whose manifest has this sha256, in any family."""
    return session.scalars(select(VersionRow).where(VersionRow.sha256 == sha256)).one_or_none()


def list_versions(session: Session, family: str | None = None) -> Sequence[VersionRow]:
    """Versions of one family (or all), oldest first."""
    stmt = select(VersionRow).order_by(VersionRow.family, VersionRow.version)
    if family is not None:
        stmt = stmt.where(VersionRow.family == family)
    return session.scalars(stmt).all()


def add_version(session: Session, row: VersionRow, artifact: ArtifactRow) -> VersionRow:
    """Insert a version and its artifact."""
    session.add(row)
    session.flush()
    artifact.version_id = row.id
    session.add(artifact)
    session.flush()
    return row


def get_artifact(session: Session, version_id: int) -> ArtifactRow | None:
    """The stored archive of a version."""
    return session.get(ArtifactRow, version_id)


# --- aliases -------------------------------------------------------------------------


def list_aliases(session: Session, family: str | None = None) -> Sequence[AliasRow]:
    """Alias rows, of one family or all."""
    stmt = select(AliasRow).order_by(AliasRow.family, AliasRow.alias)
    if family is not None:
        stmt = stmt.where(AliasRow.family == family)
    return session.scalars(stmt).all()


def alias_map(session: Session) -> dict[str, dict[str, int]]:
    """family → alias → version, in one small query (what replicas poll)."""
    out: dict[str, dict[str, int]] = {}
    for family, alias, version in session.execute(
        select(AliasRow.family, AliasRow.alias, AliasRow.version)
    ):
        out.setdefault(family, {})[alias] = version
    return out


def lock_alias_moves(session: Session) -> None:
    """Serialise alias moves until the transaction ends; call it before reading any alias.

    PostgreSQL: every family row FOR UPDATE, in name order (moves check production across
    families, so one family's lock is not enough). SQLite has one writer at a time: an UPDATE
    that matches nothing takes the write lock, so the reads that follow see the latest
    commit and nobody can commit in between (a deferred transaction's first read would pin
    an older snapshot)."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(update(FamilyRow).where(false()).values(name=FamilyRow.name))
    else:
        session.execute(select(FamilyRow.name).order_by(FamilyRow.name).with_for_update())


def get_alias(session: Session, family: str, alias: str, *, lock: bool = False) -> AliasRow | None:
    """One alias row (locked for update when asked)."""
    stmt = select(AliasRow).where(AliasRow.family == family, AliasRow.alias == alias)
    if lock:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).one_or_none()


def set_alias(session: Session, *, family: str, alias: str, version: int, at: dt.datetime,
              key: str, name: str) -> AliasRow:
    """Point an alias at a version (creating it if needed)."""
    row = get_alias(session, family, alias)
    if row is None:
        row = AliasRow(family=family, alias=alias)
        session.add(row)
    row.version, row.updated_at, row.updated_by_key, row.updated_by_name = version, at, key, name
    session.flush()
    return row


def delete_alias(session: Session, row: AliasRow) -> None:
    """Remove an alias (staging and challenger may be cleared)."""
    session.delete(row)
    session.flush()


# --- approvals -----------------------------------------------------------------------


def list_approvals(session: Session, family: str, version: int) -> Sequence[ApprovalRow]:
    """Approvals of one version, oldest first."""
    return session.scalars(
        select(ApprovalRow)
        .where(ApprovalRow.family == family, ApprovalRow.version == version)
        .order_by(ApprovalRow.id)
    ).all()


def approval_counts(session: Session, family: str) -> dict[int, int]:
    """version → number of approvals, for one family."""
    return dict(
        session.execute(
            select(ApprovalRow.version, func.count())
            .where(ApprovalRow.family == family)
            .group_by(ApprovalRow.version)
        ).all()
    )


def approved_among(session: Session, wanted: Collection[tuple[str, int]]
                   ) -> set[tuple[str, int]]:
    """The (family, version) pairs of `wanted` the registry holds as approved: an approval
    is recorded, or the ledger shows the version moved to production (the first-start seed,
    which needs no approval, and rollbacks to it)."""
    if not wanted:
        return set()
    pairs = tuple_(ApprovalRow.family, ApprovalRow.version).in_(list(wanted))
    found = {(f, v) for f, v in session.execute(
        select(ApprovalRow.family, ApprovalRow.version).where(pairs).distinct())}
    rest = [w for w in wanted if w not in found]
    if rest:
        found.update((f, v) for f, v in session.execute(
            select(LedgerRow.family, LedgerRow.version).where(
                LedgerRow.action == "alias_move", LedgerRow.alias == "production",
                tuple_(LedgerRow.family, LedgerRow.version).in_(rest)).distinct())
            if f is not None and v is not None)
    return found


def add_approval(session: Session, row: ApprovalRow) -> ApprovalRow:
    """Insert an approval."""
    session.add(row)
    session.flush()
    return row


# --- ledger --------------------------------------------------------------------------


def append_ledger(session: Session, *, at: dt.datetime, actor_key: str, actor_name: str,
                  actor_role: str, actor_principal: str, action: str, family: str | None = None,
                  version: int | None = None, alias: str | None = None,
                  previous_version: int | None = None,
                  detail: dict[str, Any] | None = None) -> LedgerRow:
    """Append one ledger entry (there is deliberately no update or delete)."""
    row = LedgerRow(at=at, actor_key=actor_key, actor_name=actor_name, actor_role=actor_role,
                    actor_principal=actor_principal, action=action, family=family,
                    version=version, alias=alias, previous_version=previous_version,
                    detail=detail or {})
    session.add(row)
    session.flush()
    return row


def list_ledger(session: Session, *, after_id: int = 0, limit: int = 100,
                family: str | None = None, action: str | None = None) -> Sequence[LedgerRow]:
    """Ledger entries with id > after_id, oldest first."""
    stmt = select(LedgerRow).where(LedgerRow.id > after_id).order_by(LedgerRow.id).limit(limit)
    if family is not None:
        stmt = stmt.where(LedgerRow.family == family)
    if action is not None:
        stmt = stmt.where(LedgerRow.action == action)
    return session.scalars(stmt).all()


def alias_moves(session: Session, family: str, alias: str | None = None) -> Sequence[LedgerRow]:
    """Every recorded move of a family's aliases (or one alias), oldest first."""
    stmt = (select(LedgerRow)
            .where(LedgerRow.family == family, LedgerRow.action == "alias_move")
            .order_by(LedgerRow.id))
    if alias is not None:
        stmt = stmt.where(LedgerRow.alias == alias)
    return session.scalars(stmt).all()


# --- principals and API keys -----------------------------------------------------------


def add_principal(session: Session, row: PrincipalRow) -> PrincipalRow:
    """Insert a principal."""
    session.add(row)
    session.flush()
    return row


def get_principal_by_name(session: Session, name: str) -> PrincipalRow | None:
    """One principal by its (unique) name."""
    return session.scalars(select(PrincipalRow).where(PrincipalRow.name == name)).one_or_none()


def get_principal(session: Session, principal_id: str) -> PrincipalRow | None:
    """One principal by id."""
    return session.get(PrincipalRow, principal_id)


def list_principals(session: Session) -> Sequence[PrincipalRow]:
    """All principals, by name."""
    return session.scalars(select(PrincipalRow).order_by(PrincipalRow.name)).all()



def add_api_key(session: Session, row: ApiKeyRow) -> ApiKeyRow:
    """Insert a key (its hash only)."""
    session.add(row)
    session.flush()
    return row


def get_api_key(session: Session, key_id: str) -> ApiKeyRow | None:
    """One key by its public id."""
    return session.get(ApiKeyRow, key_id)


def get_api_key_with_owner(session: Session, key_id: str
                           ) -> tuple[ApiKeyRow, PrincipalRow] | None:
    """One key and its principal, in one query (the authentication lookup)."""
    found = session.execute(
        select(ApiKeyRow, PrincipalRow)
        .join(PrincipalRow, PrincipalRow.id == ApiKeyRow.principal_id)
        .where(ApiKeyRow.id == key_id)
    ).one_or_none()
    return None if found is None else (found[0], found[1])


def list_api_keys(session: Session, *, principal_id: str | None = None) -> Sequence[ApiKeyRow]:
    """All keys (or one principal's), oldest first."""
    stmt = select(ApiKeyRow).order_by(ApiKeyRow.created_at, ApiKeyRow.id)
    if principal_id is not None:
        stmt = stmt.where(ApiKeyRow.principal_id == principal_id)
    return session.scalars(stmt).all()


def count_active_keys(session: Session, role: str | None = None) -> int:
    """Keys not revoked (of one role, or all)."""
    stmt = select(func.count()).select_from(ApiKeyRow).where(ApiKeyRow.revoked_at.is_(None))
    if role is not None:
        stmt = stmt.where(ApiKeyRow.role == role)
    return session.scalar(stmt) or 0
