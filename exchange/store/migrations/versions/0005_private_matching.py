"""private matching: blinded tokens, the indexes' key ids, queries, hits and budget policies

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_AGENCY = sa.String(length=63)
_KEY_ID = sa.String(length=64)


def _time() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "match_tokens",
        sa.Column("holder", _AGENCY, nullable=False),
        sa.Column("querier", _AGENCY, nullable=False),
        sa.Column("token", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("holder", "querier", "token", name=op.f("pk_match_tokens")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "match_indexes",
        sa.Column("holder", _AGENCY, nullable=False),
        sa.Column("querier", _AGENCY, nullable=False),
        sa.Column("holder_key_id", _KEY_ID, nullable=False),
        sa.Column("querier_key_id", _KEY_ID, nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", _time(), nullable=False),
        sa.PrimaryKeyConstraint("holder", "querier", name=op.f("pk_match_indexes")),
    )
    op.create_table(
        "match_queries",
        sa.Column("id", _SERIAL, autoincrement=True, nullable=False),
        sa.Column("querier", _AGENCY, nullable=False),
        sa.Column("holder", _AGENCY, nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("selectors", sa.BigInteger(), nullable=False),
        sa.Column("hits", sa.BigInteger(), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_match_queries")),
    )
    with op.batch_alter_table("match_queries", schema=None) as batch_op:
        batch_op.create_index("ix_match_queries_pair_day", ["holder", "querier", "day"])
        batch_op.create_index("ix_match_queries_querier_day", ["querier", "day"])
    op.create_table(
        "match_hits",
        sa.Column("id", _SERIAL, autoincrement=True, nullable=False),
        sa.Column("query_id", _SERIAL, nullable=False),
        sa.Column("holder", _AGENCY, nullable=False),
        sa.Column("querier", _AGENCY, nullable=False),
        sa.Column("token_digests", sa.LargeBinary(), nullable=False),
        sa.Column("holder_key_id", _KEY_ID, nullable=False),
        sa.Column("querier_key_id", _KEY_ID, nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("query_log_index", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["query_id"], ["match_queries.id"], name=op.f("fk_match_hits_query_id_match_queries")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_match_hits")),
    )
    with op.batch_alter_table("match_hits", schema=None) as batch_op:
        batch_op.create_index("ix_match_hits_holder", ["holder", "id"])
    op.create_table(
        "match_policies",
        sa.Column("holder", _AGENCY, nullable=False),
        sa.Column("number", sa.BigInteger(), nullable=False),
        sa.Column("envelope", sa.LargeBinary(), nullable=False),
        sa.Column("received_at", _time(), nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["holder"], ["agencies.agency_id"], name=op.f("fk_match_policies_holder_agencies")
        ),
        sa.PrimaryKeyConstraint("holder", name=op.f("pk_match_policies")),
    )


def downgrade() -> None:
    for table in ("match_policies", "match_hits", "match_queries", "match_indexes", "match_tokens"):
        op.drop_table(table)
