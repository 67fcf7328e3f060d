"""Outcomes of decisions, and the key decision ids are signed with.

`outcomes`: one row per recorded outcome (offered, accepted, declined, converted, churned)
of a decision id or of an action offered to a customer on a day; a unique key over customer,
action, outcome, day and the decision id's MAC makes a repeated post add nothing.
`decision_secrets`: one random secret, written at first start (app/registry/outcomes.py).

Downgrade drops both tables (and with them every recorded outcome).

Revision ID: 20261203_outcomes
Revises: 20261202_features_family
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "20261203_outcomes"
down_revision = "20261202_features_family"
branch_labels = None
depends_on = None

# SQLite only auto-increments an INTEGER PRIMARY KEY, not a BIGINT one.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "outcomes",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("decision_id", sa.String(1024), nullable=True),
        sa.Column("decision_key", sa.String(32), nullable=False),
        sa.Column("customer_id", sa.String(128), nullable=False),
        sa.Column("action_id", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("occurred_on", sa.Date(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_on", sa.Date(), nullable=True),
        sa.Column("versions", sa.JSON(), nullable=True),
        sa.Column("alias", sa.String(16), nullable=True),
        sa.Column("decision_group", sa.String(16), nullable=True),
        sa.Column("rank", sa.Integer(), nullable=True),
        sa.Column("churn_probability", sa.Float(), nullable=True),
        sa.Column("propensity", sa.Float(), nullable=True),
        sa.Column("recorded_by_principal", sa.String(64), nullable=False),
        sa.Column("recorded_by_key", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_outcomes"),
        sa.UniqueConstraint("customer_id", "action_id", "outcome", "occurred_on",
                            "decision_key", name="uq_outcomes_once"),
        sa.CheckConstraint(
            "outcome IN ('offered', 'accepted', 'declined', 'converted', 'churned')",
            name="ck_outcomes_outcome"),
        sa.CheckConstraint(
            "decision_group IS NULL OR decision_group IN ('treatment', 'control')",
            name="ck_outcomes_decision_group"),
    )
    op.create_index("ix_outcomes_occurred_on", "outcomes", ["occurred_on"])
    op.create_table(
        "decision_secrets",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("secret", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_decision_secrets"),
    )


def downgrade() -> None:
    op.drop_table("decision_secrets")
    op.drop_index("ix_outcomes_occurred_on", table_name="outcomes")
    op.drop_table("outcomes")
