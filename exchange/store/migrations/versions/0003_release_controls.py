"""release controls: requests and decisions, revocations, receipts, purge acks, feedback,
retractions and embargo release notices

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "embargo_releases",
        sa.Column("alert_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("item_id", sa.String(length=64), nullable=False),
        sa.Column("recipient", sa.String(length=63), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_pk"], ["alerts.id"], name=op.f("fk_embargo_releases_alert_pk_alerts")
        ),
        sa.PrimaryKeyConstraint(
            "alert_pk", "item_id", "recipient", name=op.f("pk_embargo_releases")
        ),
    )
    op.create_table(
        "feedback",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("alert_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("recipient", sa.String(length=63), nullable=False),
        sa.Column("envelope", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_pk"], ["alerts.id"], name=op.f("fk_feedback_alert_pk_alerts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback")),
    )
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.create_index("ix_feedback_alert", ["alert_pk"], unique=False)

    op.create_table(
        "purge_acks",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("alert_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("item_id", sa.String(length=64), nullable=False),
        sa.Column("recipient", sa.String(length=63), nullable=False),
        sa.Column("envelope", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_pk"], ["alerts.id"], name=op.f("fk_purge_acks_alert_pk_alerts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_purge_acks")),
    )
    with op.batch_alter_table("purge_acks", schema=None) as batch_op:
        batch_op.create_index(
            "ix_purge_acks_item", ["alert_pk", "item_id", "recipient"], unique=False
        )

    op.create_table(
        "receipts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("alert_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("recipient", sa.String(length=63), nullable=False),
        sa.Column("envelope", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_pk"], ["alerts.id"], name=op.f("fk_receipts_alert_pk_alerts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_receipts")),
    )
    with op.batch_alter_table("receipts", schema=None) as batch_op:
        batch_op.create_index("ix_receipts_alert", ["alert_pk"], unique=False)

    op.create_table(
        "release_requests",
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("alert_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("item_id", sa.String(length=64), nullable=False),
        sa.Column("requester", sa.String(length=63), nullable=False),
        sa.Column("target", sa.String(length=63), nullable=False),
        sa.Column("envelope", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=False),
        sa.Column("decision", sa.LargeBinary(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decision_log_index", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["alert_pk"], ["alerts.id"], name=op.f("fk_release_requests_alert_pk_alerts")
        ),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_release_requests")),
    )
    with op.batch_alter_table("release_requests", schema=None) as batch_op:
        batch_op.create_index("ix_release_requests_alert", ["alert_pk", "item_id"], unique=False)
        batch_op.create_index("ix_release_requests_requester", ["requester"], unique=False)

    op.create_table(
        "retractions",
        sa.Column("alert_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("envelope", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_pk"], ["alerts.id"], name=op.f("fk_retractions_alert_pk_alerts")
        ),
        sa.PrimaryKeyConstraint("alert_pk", name=op.f("pk_retractions")),
    )
    op.create_table(
        "revocations",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("alert_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("item_id", sa.String(length=64), nullable=False),
        sa.Column("agency", sa.String(length=63), nullable=False),
        sa.Column("envelope", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_pk"], ["alerts.id"], name=op.f("fk_revocations_alert_pk_alerts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_revocations")),
    )
    op.create_table(
        "item_revocations",
        sa.Column("alert_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("item_id", sa.String(length=64), nullable=False),
        sa.Column("agency_id", sa.String(length=63), nullable=False),
        sa.Column(
            "revocation_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["alert_pk"], ["alerts.id"], name=op.f("fk_item_revocations_alert_pk_alerts")
        ),
        sa.ForeignKeyConstraint(
            ["revocation_id"],
            ["revocations.id"],
            name=op.f("fk_item_revocations_revocation_id_revocations"),
        ),
        sa.PrimaryKeyConstraint(
            "alert_pk", "item_id", "agency_id", name=op.f("pk_item_revocations")
        ),
    )


def downgrade() -> None:
    op.drop_table("item_revocations")
    op.drop_table("revocations")
    op.drop_table("retractions")
    with op.batch_alter_table("release_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_release_requests_requester")
        batch_op.drop_index("ix_release_requests_alert")

    op.drop_table("release_requests")
    with op.batch_alter_table("receipts", schema=None) as batch_op:
        batch_op.drop_index("ix_receipts_alert")

    op.drop_table("receipts")
    with op.batch_alter_table("purge_acks", schema=None) as batch_op:
        batch_op.drop_index("ix_purge_acks_item")

    op.drop_table("purge_acks")
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.drop_index("ix_feedback_alert")

    op.drop_table("feedback")
    op.drop_table("embargo_releases")
