"""The `features` family: the feature contract, versioned like the models.

Adds the family row; nothing else changes. A registry seeded before this change has no
features version: `seed` (at startup) adds the default contract as version 1 and moves
production to it.

Downgrade removes the row, and is refused while the family holds versions (versions are
immutable: they are never deleted by a migration).

Revision ID: 20261202_features_family
Revises: 20261201_principals
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "20261202_features_family"
down_revision = "20261201_principals"
branch_labels = None
depends_on = None

FAMILY = {"name": "features", "kind": "config",
          "description": "Feature contract (what callers send)"}


def upgrade() -> None:
    families = sa.table("families", sa.column("name", sa.String), sa.column("kind", sa.String),
                        sa.column("description", sa.String))
    op.bulk_insert(families, [FAMILY])


def downgrade() -> None:
    bind = op.get_bind()
    held = bind.execute(sa.text(
        "SELECT count(*) FROM model_versions WHERE family = 'features'")).scalar()
    if held:
        raise RuntimeError(f"the features family holds {held} version(s); versions are "
                           "immutable, so this downgrade cannot remove the family")
    op.execute("DELETE FROM families WHERE name = 'features'")
