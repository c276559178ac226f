"""read-path indexes: alerts by id alone, an agency's own alerts newest first, leaves by hash

``show`` names an alert by its id, often without its originator, which the unique key
``(originator, alert_id, version)`` cannot serve; ``inbox --own`` walks an agency's own alerts
backwards by primary key. Without these both read every alert. The leaf-hash index gains the
log index, so the lookup of a leaf's first index reads it in order instead of sorting.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_alerts_alert_id", "alerts", ["alert_id"])
    op.create_index("ix_alerts_originator", "alerts", ["originator", "id"])
    op.drop_index("ix_log_entries_leaf_hash", table_name="log_entries")
    op.create_index("ix_log_entries_leaf_hash", "log_entries", ["leaf_hash", "idx"])


def downgrade() -> None:
    op.drop_index("ix_log_entries_leaf_hash", table_name="log_entries")
    op.create_index("ix_log_entries_leaf_hash", "log_entries", ["leaf_hash"])
    op.drop_index("ix_alerts_originator", table_name="alerts")
    op.drop_index("ix_alerts_alert_id", table_name="alerts")
