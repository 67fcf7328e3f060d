"""Monitoring: each replica's cumulative counts of what it scored, per day.

One row per (replica, day, family, version, alias, series, bin); a replica upserts only its
own rows with absolute values (app/registry/monitoring.py), so replicas never contend and a
repeated flush is harmless. Downgrade drops the table (counts only; nothing else refers to
it).

Revision ID: 20261204_monitoring
Revises: 20261203_outcomes
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "20261204_monitoring"
down_revision = "20261203_outcomes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitoring_counts",
        sa.Column("replica", sa.String(64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("family", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("alias", sa.String(32), nullable=False),
        sa.Column("series", sa.String(80), nullable=False),
        sa.Column("bin", sa.String(80), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("replica", "day", "family", "version", "alias", "series", "bin",
                                name="pk_monitoring_counts"),
    )
    op.create_index("ix_monitoring_counts_day", "monitoring_counts", ["day"])


def downgrade() -> None:
    op.drop_index("ix_monitoring_counts_day", table_name="monitoring_counts")
    op.drop_table("monitoring_counts")
