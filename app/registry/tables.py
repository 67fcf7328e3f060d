"""The registry's tables (SQLAlchemy 2 ORM); "model" means the ML model, so ORM classes are rows.

Versions, artifacts, approvals and the ledger are written once and never changed; the
migration backs that with database triggers. Aliases are the only mutable pointers, and
every move of one is recorded in the ledger. Principals (people and service accounts) own
API keys; versions, approvals and ledger entries record the principal and the key it used.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

ALIASES: tuple[str, ...] = ("production", "staging", "challenger")
ROLES: tuple[str, ...] = ("scorer", "publisher", "approver", "admin")
LEDGER_ACTIONS: tuple[str, ...] = ("push", "approve", "alias_move", "key_create", "key_revoke")
PRINCIPAL_KINDS: tuple[str, ...] = ("person", "service")
# What happened after a decision: offered, then accepted / declined, and converted (bought
# the product; for a retention action, stayed); churned = the customer left.
OUTCOMES: tuple[str, ...] = ("offered", "accepted", "declined", "converted", "churned")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
# SQLite only auto-increments an INTEGER PRIMARY KEY, not a BIGINT one.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Aware UTC datetimes on every backend (SQLite keeps no zone, so we restore it)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("registry timestamps must be timezone-aware")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None,
                             dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    """Now, in UTC, to the microsecond."""
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class FamilyRow(Base):
    """One of the six families (features, tier, churn, products, catalog, policy); inserted by
    migration."""

    __tablename__ = "families"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(String(200), default="")

    __table_args__ = (CheckConstraint("kind IN ('model', 'config')", name="kind"),)


class VersionRow(Base):
    """An immutable, verified version of a family: its manifest, identity and publisher."""

    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    family: Mapped[str] = mapped_column(
        String(32), ForeignKey("families.name", name="fk_model_versions_family_families")
    )
    version: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(200), default="")
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON)
    size_bytes: Mapped[int] = mapped_column(Integer)
    created_by_key: Mapped[str] = mapped_column(String(64))
    created_by_name: Mapped[str] = mapped_column(String(200))
    created_by_principal: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("family", "version", name="uq_model_versions_family_version"),
        UniqueConstraint("sha256", name="uq_model_versions_sha256"),
        CheckConstraint("version >= 1", name="version_positive"),
    )


class ArtifactRow(Base):
    """A version's bundle archive (.tar.gz), in the database so replicas need only its URL."""

    __tablename__ = "artifacts"

    version_id: Mapped[int] = mapped_column(
        Integer,
        ForeignKey("model_versions.id", name="fk_artifacts_version_id_model_versions"),
        primary_key=True,
    )
    media_type: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary)


class AliasRow(Base):
    """A named pointer (production, staging, challenger) to one version of a family."""

    __tablename__ = "aliases"

    family: Mapped[str] = mapped_column(String(32), primary_key=True)
    alias: Mapped[str] = mapped_column(String(16), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    updated_by_key: Mapped[str] = mapped_column(String(64))
    updated_by_name: Mapped[str] = mapped_column(String(200))

    __table_args__ = (
        ForeignKeyConstraint(
            ["family", "version"], ["model_versions.family", "model_versions.version"],
            name="fk_aliases_family_version_model_versions",
        ),
        CheckConstraint("alias IN ('production', 'staging', 'challenger')", name="alias_name"),
    )


class ApprovalRow(Base):
    """One approver's sign-off on a version (needed before it may become production)."""

    __tablename__ = "approvals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    family: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer)
    approver_key: Mapped[str] = mapped_column(String(64))
    approver_name: Mapped[str] = mapped_column(String(200))
    approver_principal: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        ForeignKeyConstraint(
            ["family", "version"], ["model_versions.family", "model_versions.version"],
            name="fk_approvals_family_version_model_versions",
        ),
        UniqueConstraint("family", "version", "approver_key",
                         name="uq_approvals_family_version_approver_key"),
        # One approval per person: a second key of the same principal adds nothing.
        Index("ix_approvals_one_per_principal", "family", "version", "approver_principal",
              unique=True),
    )


class LedgerRow(Base):
    """One append-only record: who did what to which family, version and alias, and when."""

    __tablename__ = "ledger"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    actor_key: Mapped[str] = mapped_column(String(64))
    actor_name: Mapped[str] = mapped_column(String(200))
    actor_role: Mapped[str] = mapped_column(String(16))
    actor_principal: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    family: Mapped[str | None] = mapped_column(String(32), nullable=True)
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    alias: Mapped[str | None] = mapped_column(String(16), nullable=True)
    previous_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)

    __table_args__ = (
        CheckConstraint(
            "action IN ('push', 'approve', 'alias_move', 'key_create', 'key_revoke')",
            name="action",
        ),
        Index("ix_ledger_family_action", "family", "action"),
    )


class PrincipalRow(Base):
    """A person or service account; it owns API keys, and four eyes compares principals."""

    __tablename__ = "principals"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(200))

    __table_args__ = (
        UniqueConstraint("name", name="uq_principals_name"),
        CheckConstraint("kind IN ('person', 'service')", name="kind"),
    )


class ApiKeyRow(Base):
    """An API key of one principal: only its sha256 is stored; `id` finds it."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    principal_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("principals.id", name="fk_api_keys_principal_id_principals"))
    role: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(200))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (
        CheckConstraint("role IN ('scorer', 'publisher', 'approver', 'admin')", name="role"),
    )


class OutcomeRow(Base):
    """One recorded outcome of a decision (by decision id) or of an action offered to a
    customer (by customer, action and day). The decision's payload is kept beside the id
    (decided_on, versions, alias, group, rank, probabilities) so reports need no decoding.
    A repeated post of the same outcome finds the row by its unique key and adds nothing."""

    __tablename__ = "outcomes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    decision_id: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    # The decision id's MAC (22 characters), or "" for an outcome recorded by customer: part
    # of the unique key (a NULL would never collide).
    decision_key: Mapped[str] = mapped_column(String(32))
    customer_id: Mapped[str] = mapped_column(String(128))
    action_id: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    occurred_on: Mapped[dt.date] = mapped_column(Date)
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    decided_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    versions: Mapped[dict[str, int] | None] = mapped_column(JSON, nullable=True)
    alias: Mapped[str | None] = mapped_column(String(16), nullable=True)
    group: Mapped[str | None] = mapped_column("decision_group", String(16), nullable=True)
    rank: Mapped[int | None] = mapped_column(Integer, nullable=True)
    churn_probability: Mapped[float | None] = mapped_column(Float, nullable=True)
    propensity: Mapped[float | None] = mapped_column(Float, nullable=True)
    recorded_by_principal: Mapped[str] = mapped_column(String(64))
    recorded_by_key: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        UniqueConstraint("customer_id", "action_id", "outcome", "occurred_on", "decision_key",
                         name="uq_outcomes_once"),
        CheckConstraint(
            "outcome IN ('offered', 'accepted', 'declined', 'converted', 'churned')",
            name="outcome"),
        CheckConstraint("decision_group IS NULL OR decision_group IN ('treatment', 'control')",
                        name="decision_group"),
        Index("ix_outcomes_occurred_on", "occurred_on"),
    )


class DecisionSecretRow(Base):
    """The key decision ids are signed with, made once at first start so every replica
    agrees (unless TIERWISE_DECISION_SECRET is set)."""

    __tablename__ = "decision_secrets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    secret: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class MonitoringCountRow(Base):
    """A replica's cumulative count of one bin for one day (app/monitoring/aggregate.py):
    each replica only ever writes its own rows, with absolute values, so no increment is
    lost between replicas and a repeated flush changes nothing."""

    __tablename__ = "monitoring_counts"

    replica: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    family: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    alias: Mapped[str] = mapped_column(String(32), primary_key=True)
    series: Mapped[str] = mapped_column(String(80), primary_key=True)
    bin: Mapped[str] = mapped_column(String(80), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)

    __table_args__ = (Index("ix_monitoring_counts_day", "day"),)
