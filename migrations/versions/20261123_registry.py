"""Model registry: families, immutable versions and artifacts, aliases, approvals, ledger, API keys.

Versions, artifacts, approvals and the ledger are write-once: triggers refuse UPDATE and
DELETE on them (and TRUNCATE on PostgreSQL), so the audit trail holds even against a
careless script. Aliases and API keys (revocation) stay updatable.

Revision ID: 20261123_registry
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "20261123_registry"
down_revision = None
branch_labels = None
depends_on = None

FAMILIES = [
    {"name": "tier", "kind": "model", "description": "Wallet tier (multiclass)"},
    {"name": "churn", "kind": "model", "description": "Churn (binary + calibrator)"},
    {"name": "products", "kind": "model", "description": "Product propensities"},
    {"name": "catalog", "kind": "config", "description": "Action catalogue"},
    {"name": "policy", "kind": "config", "description": "Business policy"},
]
# table → what the guard refuses
WRITE_ONCE = {
    "model_versions": "model versions are immutable",
    "artifacts": "artifacts are immutable",
    "approvals": "approvals are append-only",
    "ledger": "the ledger is append-only",
}


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    families = op.create_table(
        "families",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("description", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_families"),
        sa.CheckConstraint("kind IN ('model', 'config')", name="ck_families_kind"),
    )
    op.bulk_insert(families, FAMILIES)
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("family", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("manifest", sa.JSON(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("created_by_key", sa.String(64), nullable=False),
        sa.Column("created_by_name", sa.String(200), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_model_versions"),
        sa.ForeignKeyConstraint(["family"], ["families.name"],
                                name="fk_model_versions_family_families"),
        sa.UniqueConstraint("family", "version", name="uq_model_versions_family_version"),
        sa.UniqueConstraint("sha256", name="uq_model_versions_sha256"),
        sa.CheckConstraint("version >= 1", name="ck_model_versions_version_positive"),
    )
    op.create_table(
        "artifacts",
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("media_type", sa.String(64), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("version_id", name="pk_artifacts"),
        sa.ForeignKeyConstraint(["version_id"], ["model_versions.id"],
                                name="fk_artifacts_version_id_model_versions"),
    )
    op.create_table(
        "aliases",
        sa.Column("family", sa.String(32), nullable=False),
        sa.Column("alias", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        _ts("updated_at"),
        sa.Column("updated_by_key", sa.String(64), nullable=False),
        sa.Column("updated_by_name", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("family", "alias", name="pk_aliases"),
        sa.ForeignKeyConstraint(["family", "version"],
                                ["model_versions.family", "model_versions.version"],
                                name="fk_aliases_family_version_model_versions"),
        sa.CheckConstraint("alias IN ('production', 'staging', 'challenger')",
                           name="ck_aliases_alias_name"),
    )
    op.create_table(
        "approvals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("family", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("approver_key", sa.String(64), nullable=False),
        sa.Column("approver_name", sa.String(200), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_approvals"),
        sa.ForeignKeyConstraint(["family", "version"],
                                ["model_versions.family", "model_versions.version"],
                                name="fk_approvals_family_version_model_versions"),
        sa.UniqueConstraint("family", "version", "approver_key",
                            name="uq_approvals_family_version_approver_key"),
    )
    op.create_table(
        "ledger",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=True, nullable=False),
        _ts("at"),
        sa.Column("actor_key", sa.String(64), nullable=False),
        sa.Column("actor_name", sa.String(200), nullable=False),
        sa.Column("actor_role", sa.String(16), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("family", sa.String(32), nullable=True),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("alias", sa.String(16), nullable=True),
        sa.Column("previous_version", sa.Integer(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ledger"),
        sa.CheckConstraint(
            "action IN ('push', 'approve', 'alias_move', 'key_create', 'key_revoke')",
            name="ck_ledger_action",
        ),
    )
    op.create_index("ix_ledger_family_action", "ledger", ["family", "action"])
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        _ts("created_at"),
        sa.Column("created_by", sa.String(200), nullable=False),
        _ts("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.CheckConstraint("role IN ('scorer', 'publisher', 'approver', 'admin')",
                           name="ck_api_keys_role"),
    )
    _create_guards()


def downgrade() -> None:
    _drop_guards()
    op.drop_table("api_keys")
    op.drop_index("ix_ledger_family_action", table_name="ledger")
    op.drop_table("ledger")
    op.drop_table("approvals")
    op.drop_table("aliases")
    op.drop_table("artifacts")
    op.drop_table("model_versions")
    op.drop_table("families")


def _create_guards() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION tierwise_write_once() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'tierwise: % (% refused on %)', TG_ARGV[0], TG_OP, "
            "TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege'; END $$"
        )
        for table, message in WRITE_ONCE.items():
            op.execute(
                f"CREATE TRIGGER {table}_write_once BEFORE UPDATE OR DELETE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION tierwise_write_once('{message}')"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION tierwise_write_once('{message}')"
            )
        return
    for table, message in WRITE_ONCE.items():
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'tierwise: {message} ({verb} refused)'); END"
            )


def _drop_guards() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in WRITE_ONCE:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_write_once ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        op.execute("DROP FUNCTION IF EXISTS tierwise_write_once()")
        return
    for table in WRITE_ONCE:
        for verb in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{verb}")
