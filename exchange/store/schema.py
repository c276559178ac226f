"""The hub's tables (SQLAlchemy Core).  Alembic migrations in ``migrations/`` create them.

Everything the hub stores is public material, ciphertext, or exact signed bytes: there is no
column a plaintext could land in.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# SQLite only autoincrements INTEGER PRIMARY KEY.
Serial = BigInteger().with_variant(Integer(), "sqlite")
AgencyId = String(63)


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored with its time zone and always read back as an aware UTC datetime.

    SQLite keeps no zone and hands back naive datetimes; converting here, at the column type,
    spares every reader from patching them.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("store timezone-aware datetimes only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Timestamp = UtcDateTime()

agencies = Table(
    "agencies",
    metadata,
    Column("agency_id", AgencyId, primary_key=True),
    Column("ca_certificate", LargeBinary, nullable=False),
    Column("added_at", Timestamp, nullable=False),
    Column("revoked_at", Timestamp, nullable=True),
)

agency_keys = Table(
    "agency_keys",
    metadata,
    Column("agency_id", AgencyId, ForeignKey("agencies.agency_id"), primary_key=True),
    Column("key_number", BigInteger, primary_key=True, autoincrement=False),
    Column("envelope", LargeBinary, nullable=False),
    Column("signing_key_id", String(64), nullable=False),
    Column("encryption_key_id", String(64), nullable=False),
    Column("signing_public_key", LargeBinary, nullable=False),
    Column("encryption_public_key", LargeBinary, nullable=False),
    Column("added_at", Timestamp, nullable=False),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("originator", AgencyId, ForeignKey("agencies.agency_id"), nullable=False),
    Column("alert_id", String(64), nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("manifest_hash", LargeBinary(32), nullable=False, unique=True),
    Column("manifest_envelope", LargeBinary, nullable=False),
    Column("request_digest", LargeBinary(32), nullable=False),
    Column("published_at", Timestamp, nullable=False),
    Column("log_index", BigInteger, nullable=False),
    Column("retracted", Boolean, nullable=False, default=False),
    UniqueConstraint("originator", "alert_id", "version", name="uq_alerts_key"),
    # ``show`` by alert id alone, and an agency's own alerts newest first (migration 0007).
    Index("ix_alerts_alert_id", "alert_id"),
    Index("ix_alerts_originator", "originator", "id"),
)

items = Table(
    "items",
    metadata,
    Column("alert_pk", Serial, ForeignKey("alerts.id"), primary_key=True),
    Column("item_id", String(64), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("header", LargeBinary, nullable=False),
    # NULL once purged (expiry); the header and the log entries stay.
    Column("ciphertext", LargeBinary, nullable=True),
    Column("release", String(16), nullable=False),
    Column("embargo_until", Timestamp, nullable=True),
    Column("expires_at", Timestamp, nullable=True),
    Column("summary", Boolean, nullable=False, default=False),
)

# The expiry sweep's lookup: items whose ciphertext is still held, by expiry time (migration 0006).
Index(
    "ix_items_expiring",
    items.c.expires_at,
    sqlite_where=and_(items.c.expires_at.is_not(None), items.c.ciphertext.is_not(None)),
    postgresql_where=and_(items.c.expires_at.is_not(None), items.c.ciphertext.is_not(None)),
)

item_audience = Table(
    "item_audience",
    metadata,
    Column("alert_pk", Serial, ForeignKey("alerts.id"), primary_key=True),
    Column("item_id", String(64), primary_key=True),
    Column("agency_id", AgencyId, primary_key=True),
    Index("ix_item_audience_agency", "agency_id", "alert_pk"),
)

grants = Table(
    "grants",
    metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("alert_pk", Serial, ForeignKey("alerts.id"), nullable=False),
    Column("item_id", String(64), nullable=False),
    Column("recipient", AgencyId, nullable=False),
    Column("recipient_key_id", String(64), nullable=False),
    Column("grant", LargeBinary, nullable=False),
    # The hub hands the grant out only from this time (embargo).
    Column("available_at", Timestamp, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    # When the hub first handed the grant to its recipient (a log entry records it).
    Column("delivered_at", Timestamp, nullable=True),
    UniqueConstraint("alert_pk", "item_id", "recipient", name="uq_grants_item_recipient"),
)

# The embargo sweep's lookup: only grants made under an embargo, by the time it lapses (0006).
Index(
    "ix_grants_embargoed",
    grants.c.available_at,
    sqlite_where=grants.c.available_at > grants.c.created_at,
    postgresql_where=grants.c.available_at > grants.c.created_at,
)

feed_events = Table(
    "feed_events",
    metadata,
    Column("agency_id", AgencyId, primary_key=True),
    Column("sequence", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", String(32), nullable=False),
    Column("originator", AgencyId, nullable=False),
    Column("alert_id", String(64), nullable=False, default=""),
    Column("version", BigInteger, nullable=False, default=0),
    Column("item_id", String(64), nullable=False, default=""),
    Column("request_id", String(64), nullable=False, default=""),
    Column("actor", AgencyId, nullable=False, default=""),
    Column("created_at", Timestamp, nullable=False),
    Column("log_index", BigInteger, nullable=False),
)

feed_heads = Table(
    "feed_heads",
    metadata,
    Column("agency_id", AgencyId, primary_key=True),
    Column("last_sequence", BigInteger, nullable=False),
)

log_entries = Table(
    "log_entries",
    metadata,
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("entry_type", String(32), nullable=False),
    Column("logged_at", Timestamp, nullable=False),
    # The canonical leaf encoding (public) and its RFC 9162 leaf hash.
    Column("leaf", LargeBinary, nullable=False),
    Column("leaf_hash", LargeBinary(32), nullable=False),
    # The statement or event bytes (served only to entitled agencies); NULL once purged.
    Column("body", LargeBinary, nullable=True),
    Column("salt", LargeBinary(16), nullable=False),
    # Agencies entitled to the body, space-separated, for the body-serving query.
    Column("entitled", Text, nullable=False, default=""),
    # By leaf hash, in index order: the lookup takes the first match without sorting (0007).
    Index("ix_log_entries_leaf_hash", "leaf_hash", "idx"),
)

# One row: the log's size.  Appends lock it, so log indexes and feed sequences are assigned under
# one database lock across hub replicas.
log_head = Table(
    "log_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("size", BigInteger, nullable=False),
)

# --- the audit log's tree and checkpoints (hashed and signed after the appends commit) ---------

# The hash of every complete aligned subtree of the log: ``(level, idx)`` covers the leaves
# ``[idx * 2**level, (idx + 1) * 2**level)``; level 0 holds the leaf hashes.  A proof at any size
# reads at most about ``2 * log2(size)`` of these rows.
log_subtrees = Table(
    "log_subtrees",
    metadata,
    Column("level", Integer, primary_key=True, autoincrement=False),
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary(32), nullable=False),
)

# One row: how many leaves the tree builder has hashed into ``log_subtrees``.
log_tree_head = Table(
    "log_tree_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("hashed_size", BigInteger, nullable=False),
)

# Signed checkpoints (C2SP signed notes), one per tree size.
checkpoints = Table(
    "checkpoints",
    metadata,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("root_hash", LargeBinary(32), nullable=False),
    # The note exactly as the hub signed it, without cosignatures.
    Column("note", Text, nullable=False),
    Column("created_at", Timestamp, nullable=False),
)

# Agencies' ``cosignature/v1`` lines over checkpoints, verified with their witness keys.
cosignatures = Table(
    "cosignatures",
    metadata,
    Column(
        "checkpoint_size",
        BigInteger,
        ForeignKey("checkpoints.size"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("cosigner", AgencyId, ForeignKey("agencies.agency_id"), primary_key=True),
    Column("signature_line", Text, nullable=False),
    # The time inside the cosignature (Unix seconds), and when the hub received it.
    Column("cosigned_at", BigInteger, nullable=False),
    Column("received_at", Timestamp, nullable=False),
)
