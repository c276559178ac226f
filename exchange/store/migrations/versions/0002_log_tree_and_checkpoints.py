"""the audit log's subtree hashes, tree head, checkpoints and cosignatures

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "log_subtrees",
        sa.Column("level", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("level", "idx", name=op.f("pk_log_subtrees")),
    )
    op.create_table(
        "log_tree_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("hashed_size", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_log_tree_head")),
    )
    op.create_table(
        "checkpoints",
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("size", name=op.f("pk_checkpoints")),
    )
    op.create_table(
        "cosignatures",
        sa.Column("checkpoint_size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("cosigner", sa.String(length=63), nullable=False),
        sa.Column("signature_line", sa.Text(), nullable=False),
        sa.Column("cosigned_at", sa.BigInteger(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["checkpoint_size"],
            ["checkpoints.size"],
            name=op.f("fk_cosignatures_checkpoint_size_checkpoints"),
        ),
        sa.ForeignKeyConstraint(
            ["cosigner"], ["agencies.agency_id"], name=op.f("fk_cosignatures_cosigner_agencies")
        ),
        sa.PrimaryKeyConstraint("checkpoint_size", "cosigner", name=op.f("pk_cosignatures")),
    )
    log_tree_head = sa.table(
        "log_tree_head", sa.column("id", sa.Integer), sa.column("hashed_size", sa.BigInteger)
    )
    op.bulk_insert(log_tree_head, [{"id": 1, "hashed_size": 0}])


def downgrade() -> None:
    op.drop_table("cosignatures")
    op.drop_table("checkpoints")
    op.drop_table("log_tree_head")
    op.drop_table("log_subtrees")
