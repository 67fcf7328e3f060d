"""What the registry API returns: pydantic shapes built from rows (ORM and API stay apart)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from app.bundles.manifest import CONFIG_FILES
from app.errors import FieldProblem, NotFound
from app.registry import repository, store
from app.registry.service import MovesDone, require_family, require_version
from app.registry.tables import ApprovalRow, FamilyRow, LedgerRow, VersionRow


class Actor(BaseModel):
    key_id: str = Field(description="The key used")
    name: str = Field(description="The principal's name")
    principal_id: str = Field(description="The person or service account that owns the key "
                                          "(four eyes compares these)")


class ApprovalView(BaseModel):
    approver: Actor
    at: dt.datetime
    note: str


class VersionSummary(BaseModel):
    family: str
    version: int
    sha256: str = Field(description="sha256 of manifest.json: the bundle's identity")
    label: str
    created_by: Actor
    created_at: dt.datetime
    size_bytes: int
    aliases: list[str]
    approvals: int


class ManifestSummary(BaseModel):
    format: str
    label: str
    created_at: str
    created_by: str
    features: list[str]
    models: dict[str, str]
    classes: list[str]
    calibrator: str | None
    files: dict[str, str]
    reference_rows: int


class VersionDetail(VersionSummary):
    manifest: ManifestSummary
    metrics: dict[str, Any]
    training_data: dict[str, Any]
    approved_by: list[ApprovalView]


class FamilyView(BaseModel):
    name: str
    kind: str
    description: str
    aliases: dict[str, int]
    versions: list[VersionSummary]


class RegistryView(BaseModel):
    families: list[FamilyView]


class LedgerActor(Actor):
    role: str


class LedgerEntry(BaseModel):
    id: int
    at: dt.datetime
    actor: LedgerActor
    action: str
    family: str | None
    version: int | None
    alias: str | None
    previous_version: int | None
    detail: dict[str, Any]


class LedgerPage(BaseModel):
    entries: list[LedgerEntry]
    next_after_id: int | None = Field(description="Pass as after_id for the next page; "
                                                  "null at the end")


class UnchangedAlias(BaseModel):
    family: str
    alias: str
    version: int | None


class AliasMovesResult(BaseModel):
    moves: list[LedgerEntry]
    unchanged: list[UnchangedAlias] = Field(
        default_factory=list,
        description="Moves to the version the alias already had: not written, not recorded")


class ConfigDocument(BaseModel):
    family: str
    version: int
    file: str = Field(description="The bundle file the document comes from")
    document: dict[str, Any] = Field(description="The file's JSON, as published")


class HistoryView(BaseModel):
    family: str
    moves: list[LedgerEntry]


def _aliases_of(aliases: Mapping[str, int], version: int) -> list[str]:
    return sorted(a for a, v in aliases.items() if v == version)


def version_summary(row: VersionRow, aliases: Mapping[str, int], approvals: int
                    ) -> VersionSummary:
    """One version in a listing."""
    return VersionSummary(
        family=row.family, version=row.version, sha256=row.sha256, label=row.label,
        created_by=Actor(key_id=row.created_by_key, name=row.created_by_name,
                         principal_id=row.created_by_principal),
        created_at=row.created_at, size_bytes=row.size_bytes,
        aliases=_aliases_of(aliases, row.version), approvals=approvals,
    )


def version_detail(row: VersionRow, aliases: Mapping[str, int],
                   approvals: Sequence[ApprovalRow]) -> VersionDetail:
    """One version with its manifest summary, metrics and approvals."""
    m = row.manifest
    summary = version_summary(row, aliases, len(approvals))
    return VersionDetail(
        **summary.model_dump(),
        manifest=ManifestSummary(
            format=m.get("format", ""), label=m.get("label", ""),
            created_at=m.get("created_at", ""), created_by=m.get("created_by", ""),
            features=[f["name"] for f in m.get("features", [])], models=m.get("models", {}),
            classes=list(m.get("classes", [])),
            calibrator=(m.get("calibrator") or {}).get("method"), files=m.get("files", {}),
            reference_rows=len(m.get("reference_rows", [])),
        ),
        metrics=m.get("metrics", {}), training_data=m.get("training_data", {}),
        approved_by=[ApprovalView(approver=Actor(key_id=a.approver_key, name=a.approver_name,
                                                 principal_id=a.approver_principal),
                                  at=a.created_at, note=a.note) for a in approvals],
    )


def family_view(session: Session, family: FamilyRow) -> FamilyView:
    """A family with its aliases and every version."""
    aliases = {a.alias: a.version for a in repository.list_aliases(session, family.name)}
    counts = repository.approval_counts(session, family.name)
    return FamilyView(
        name=family.name, kind=family.kind, description=family.description, aliases=aliases,
        versions=[version_summary(v, aliases, counts.get(v.version, 0))
                  for v in repository.list_versions(session, family.name)],
    )


def ledger_entry(row: LedgerRow) -> LedgerEntry:
    """One ledger row as the API shows it."""
    return LedgerEntry(
        id=row.id, at=row.at,
        actor=LedgerActor(key_id=row.actor_key, name=row.actor_name, role=row.actor_role,
                          principal_id=row.actor_principal),
        action=row.action, family=row.family, version=row.version, alias=row.alias,
        previous_version=row.previous_version, detail=row.detail,
    )


def moves_result(done: MovesDone) -> AliasMovesResult:
    """An alias-move call's result: the ledger entries written and the no-op moves."""
    return AliasMovesResult(
        moves=[ledger_entry(e) for e in done.entries],
        unchanged=[UnchangedAlias(family=m.family, alias=m.alias, version=m.version)
                   for m in done.unchanged])


# --- read side: one call per endpoint -------------------------------------------------


def overview(*, session: Session) -> RegistryView:
    """Every family with its versions and aliases."""
    return RegistryView(families=[family_view(session, f)
                                  for f in repository.list_families(session)])


def family_versions(*, session: Session, family: str) -> FamilyView:
    """One family's versions and aliases."""
    require_family(session, family)
    row = repository.get_family(session, family)
    assert row is not None
    return family_view(session, row)


def show_version(*, session: Session, family: str, version: int) -> VersionDetail:
    """One version in detail."""
    row = require_version(session, family, version)
    aliases = {a.alias: a.version for a in repository.list_aliases(session, family)}
    return version_detail(row, aliases, repository.list_approvals(session, family, version))


def config_document(*, session: Session, family: str, version: int) -> ConfigDocument:
    """The JSON document of a configuration version (features, catalog or policy)."""
    row = require_version(session, family, version)
    if family not in CONFIG_FILES:
        raise NotFound(f"{family} is a model family: it has no configuration document",
                       [FieldProblem("family", "one of " + ", ".join(CONFIG_FILES))])
    name = CONFIG_FILES[family]
    return ConfigDocument(family=family, version=version, file=name,
                          document=store.load_bundle(session, row).json(name))


def history(*, session: Session, family: str) -> HistoryView:
    """Every alias move of a family, oldest first (from the ledger)."""
    require_family(session, family)
    return HistoryView(family=family, moves=[ledger_entry(r)
                                             for r in repository.alias_moves(session, family)])


def ledger_page(*, session: Session, after_id: int = 0, limit: int = 100,
                family: str | None = None, action: str | None = None) -> LedgerPage:
    """A page of the ledger, oldest first, with the cursor of the next page."""
    rows = repository.list_ledger(session, after_id=after_id, limit=limit + 1, family=family,
                                  action=action)
    entries = [ledger_entry(r) for r in rows[:limit]]
    more = len(rows) > limit
    return LedgerPage(entries=entries, next_after_id=entries[-1].id if more else None)
