"""sweep indexes: the expiry and embargo sweeps look up their rows instead of scanning

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_EXPIRING = sa.text("expires_at IS NOT NULL AND ciphertext IS NOT NULL")
_EMBARGOED = sa.text("available_at > created_at")


def upgrade() -> None:
    op.create_index(
        "ix_items_expiring",
        "items",
        ["expires_at"],
        sqlite_where=_EXPIRING,
        postgresql_where=_EXPIRING,
    )
    op.create_index(
        "ix_grants_embargoed",
        "grants",
        ["available_at"],
        sqlite_where=_EMBARGOED,
        postgresql_where=_EMBARGOED,
    )


def downgrade() -> None:
    op.drop_index("ix_grants_embargoed", table_name="grants")
    op.drop_index("ix_items_expiring", table_name="items")
