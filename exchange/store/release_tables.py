"""The tables of release controls after publish (DESIGN §5), on the hub's one ``metadata``.

Requests, decisions, revocations, receipts, purge acknowledgements, feedback and retractions are
kept as the exact envelope bytes their signers signed; the other columns are what the hub needs
to find and authorize them.  ``schema`` imports this module, so Alembic and every importer of
``schema.metadata`` see these tables too.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Table,
)

from exchange.store.schema import AgencyId, Serial, Timestamp, metadata

ItemId = String(64)

release_requests = Table(
    "release_requests",
    metadata,
    # Hex sha256 of the request payload.
    Column("request_id", String(64), primary_key=True),
    Column("alert_pk", Serial, ForeignKey("alerts.id"), nullable=False),
    Column("item_id", ItemId, nullable=False),
    Column("requester", AgencyId, nullable=False),
    # The agency the item would go to: the requester, or the agency it asked for (onward).
    Column("target", AgencyId, nullable=False),
    Column("envelope", LargeBinary, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("log_index", BigInteger, nullable=False),
    # The originator's signed decision; NULL while pending.
    Column("decision", LargeBinary, nullable=True),
    Column("outcome", String(16), nullable=True),
    Column("decided_at", Timestamp, nullable=True),
    Column("decision_log_index", BigInteger, nullable=True),
    Index("ix_release_requests_alert", "alert_pk", "item_id"),
    Index("ix_release_requests_requester", "requester"),
)


def _statement_table(
    name: str, *columns: Column[Any] | Index, keyed_by_alert: bool = False
) -> Table:
    """The table of one kind of signed statement about an alert: its key (a serial id, or the
    alert itself for a statement made once per alert), its own ``columns``, then the envelope
    exactly as signed, when it was received and the index of its log leaf."""
    key: list[Column[Any]] = (
        [Column("alert_pk", Serial, ForeignKey("alerts.id"), primary_key=True)]
        if keyed_by_alert
        else [
            Column("id", Serial, primary_key=True, autoincrement=True),
            Column("alert_pk", Serial, ForeignKey("alerts.id"), nullable=False),
        ]
    )
    own = [c for c in columns if isinstance(c, Column)]
    indexes = [c for c in columns if isinstance(c, Index)]
    return Table(
        name,
        metadata,
        *key,
        *own,
        Column("envelope", LargeBinary, nullable=False),
        Column("created_at", Timestamp, nullable=False),
        Column("log_index", BigInteger, nullable=False),
        *indexes,
    )


revocations = _statement_table(
    "revocations",
    Column("item_id", ItemId, nullable=False),
    # Empty: every recipient.
    Column("agency", AgencyId, nullable=False),
)

# One row per (item, agency) the item is currently revoked from; an approval lifts it.
item_revocations = Table(
    "item_revocations",
    metadata,
    Column("alert_pk", Serial, ForeignKey("alerts.id"), primary_key=True),
    Column("item_id", ItemId, primary_key=True),
    Column("agency_id", AgencyId, primary_key=True),
    Column("revocation_id", Serial, ForeignKey("revocations.id"), nullable=False),
)

purge_acks = _statement_table(
    "purge_acks",
    Column("item_id", ItemId, nullable=False),
    Column("recipient", AgencyId, nullable=False),
    Index("ix_purge_acks_item", "alert_pk", "item_id", "recipient"),
)

receipts = _statement_table(
    "receipts",
    Column("recipient", AgencyId, nullable=False),
    Index("ix_receipts_alert", "alert_pk"),
)

feedback = _statement_table(
    "feedback",
    Column("recipient", AgencyId, nullable=False),
    Index("ix_feedback_alert", "alert_pk"),
)

retractions = _statement_table("retractions", keyed_by_alert=True)

# Embargoed grants whose holders have been told of the release (ITEM_RELEASED), one row each.
embargo_releases = Table(
    "embargo_releases",
    metadata,
    Column("alert_pk", Serial, ForeignKey("alerts.id"), primary_key=True),
    Column("item_id", ItemId, primary_key=True),
    Column("recipient", AgencyId, primary_key=True),
    Column("released_at", Timestamp, nullable=False),
)
