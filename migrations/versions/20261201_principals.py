"""Principals: people and service accounts own API keys; four eyes compares principals.

Each existing API key becomes its own principal (id = the key's id, kind `person`), named
by the key's name; keys that share a name, or are named `system` or `anonymous`, get
"<name> (key <id>)" instead, so no existing deployment silently merges two people.
Versions, approvals and ledger entries get the principal that wrote them: for every
existing row that is the principal made from its key, i.e. the key id itself (`system`
and `anonymous` stay as they are). Filling those columns is the only UPDATE the
write-once tables ever see: their guards are lifted for it inside this migration's
transaction and put back before it ends.

Downgrade drops the principals and the new columns; keys keep their names.

Revision ID: 20261201_principals
Revises: 20261123_registry
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "20261201_principals"
down_revision = "20261123_registry"
branch_labels = None
depends_on = None

# write-once table → (new principal column, the key column it is filled from)
RECORDED_BY = {
    "model_versions": ("created_by_principal", "created_by_key"),
    "approvals": ("approver_principal", "approver_key"),
    "ledger": ("actor_principal", "actor_key"),
}
# The same messages as 20261123_registry's guards (recreated on SQLite).
WRITE_ONCE = {
    "model_versions": "model versions are immutable",
    "approvals": "approvals are append-only",
    "ledger": "the ledger is append-only",
}
PRINCIPALS_FROM_KEYS = """
INSERT INTO principals (id, name, kind, created_at, created_by)
SELECT k.id,
       CASE WHEN k.name IN ('system', 'anonymous')
                 OR (SELECT count(*) FROM api_keys d WHERE d.name = k.name) > 1
            THEN substr(k.name, 1, 180) || ' (key ' || k.id || ')'
            ELSE k.name END,
       'person', k.created_at, 'migration 20261201_principals'
FROM api_keys k
"""


def upgrade() -> None:
    op.create_table(
        "principals",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_principals"),
        sa.UniqueConstraint("name", name="uq_principals_name"),
        sa.CheckConstraint("kind IN ('person', 'service')", name="ck_principals_kind"),
    )
    op.execute(PRINCIPALS_FROM_KEYS)
    op.add_column("api_keys", sa.Column("principal_id", sa.String(64), nullable=True))
    op.execute("UPDATE api_keys SET principal_id = id")
    # SQLite cannot add a NOT NULL foreign key in place: batch mode copies api_keys (no
    # trigger and no foreign key points at it, so the copy is safe).
    with op.batch_alter_table("api_keys") as batch:
        batch.alter_column("principal_id", existing_type=sa.String(64), nullable=False)
        batch.create_foreign_key("fk_api_keys_principal_id_principals", "principals",
                                 ["principal_id"], ["id"])
    for table, (column, _key) in RECORDED_BY.items():
        # NOT NULL needs a default to add a column to filled rows; dropped below (PostgreSQL;
        # SQLite cannot drop a default in place, and every insert names the column).
        op.add_column(table, sa.Column(column, sa.String(64), nullable=False, server_default=""))
    _lift_guards()
    for table, (column, key) in RECORDED_BY.items():
        op.execute(f"UPDATE {table} SET {column} = {key}")
    _restore_guards()
    if op.get_bind().dialect.name == "postgresql":
        for table, (column, _key) in RECORDED_BY.items():
            op.alter_column(table, column, existing_type=sa.String(64), server_default=None)
    op.create_index("ix_approvals_one_per_principal", "approvals",
                    ["family", "version", "approver_principal"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_approvals_one_per_principal", table_name="approvals")
    for table, (column, _key) in RECORDED_BY.items():
        op.drop_column(table, column)  # not an UPDATE: the guards do not fire
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_constraint("fk_api_keys_principal_id_principals", type_="foreignkey")
        batch.drop_column("principal_id")
    op.drop_table("principals")


def _lift_guards() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in RECORDED_BY:
            op.execute(f"ALTER TABLE {table} DISABLE TRIGGER {table}_write_once")
        return
    for table in RECORDED_BY:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")


def _restore_guards() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in RECORDED_BY:
            op.execute(f"ALTER TABLE {table} ENABLE TRIGGER {table}_write_once")
        return
    for table in RECORDED_BY:
        op.execute(
            f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
            f"BEGIN SELECT RAISE(ABORT, 'tierwise: {WRITE_ONCE[table]} (UPDATE refused)'); END"
        )
