"""The tables of private matching (DESIGN §3, matching), on the hub's one ``metadata``.

They hold tokens, token digests, counts and the holders' signed policies: no column a selector
could land in.  ``exchange/store/__init__.py`` imports this module so every reader of the
metadata sees them; migration ``0005`` creates them.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Index, LargeBinary, String, Table

from exchange.store.schema import AgencyId, Serial, Timestamp, metadata

KeyId = String(64)

# The tokens a holder publishes for one querier.  The primary key is the lookup of a query; on
# SQLite the table is that key alone (WITHOUT ROWID), one B-tree instead of two.
match_tokens = Table(
    "match_tokens",
    metadata,
    Column("holder", AgencyId, primary_key=True),
    Column("querier", AgencyId, primary_key=True),
    Column("token", LargeBinary(32), primary_key=True),
    sqlite_with_rowid=False,
)

# One row per (holder, querier) with tokens: the encryption key ids they are blinded under and
# how many there are.
match_indexes = Table(
    "match_indexes",
    metadata,
    Column("holder", AgencyId, primary_key=True),
    Column("querier", AgencyId, primary_key=True),
    Column("holder_key_id", KeyId, nullable=False),
    Column("querier_key_id", KeyId, nullable=False),
    Column("tokens", BigInteger, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
)

# Every query answered: counts only (the budget and the statistics are sums over these).
match_queries = Table(
    "match_queries",
    metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("querier", AgencyId, nullable=False),
    Column("holder", AgencyId, nullable=False),
    # The UTC day (YYYY-MM-DD) the query counts against.
    Column("day", String(10), nullable=False),
    Column("selectors", BigInteger, nullable=False),
    Column("hits", BigInteger, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("log_index", BigInteger, nullable=False),
    Index("ix_match_queries_pair_day", "holder", "querier", "day"),
    Index("ix_match_queries_querier_day", "querier", "day"),
)

# The hits of one query, for the holder: digests of the tokens hit, never the tokens asked.
match_hits = Table(
    "match_hits",
    metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("query_id", Serial, ForeignKey("match_queries.id"), nullable=False),
    Column("holder", AgencyId, nullable=False),
    Column("querier", AgencyId, nullable=False),
    Column("token_digests", LargeBinary, nullable=False),
    Column("holder_key_id", KeyId, nullable=False),
    Column("querier_key_id", KeyId, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("query_log_index", BigInteger, nullable=False),
    Column("log_index", BigInteger, nullable=False),
    Index("ix_match_hits_holder", "holder", "id"),
)

# Each holder's latest signed policy, as signed.
match_policies = Table(
    "match_policies",
    metadata,
    Column("holder", AgencyId, ForeignKey("agencies.agency_id"), primary_key=True),
    Column("number", BigInteger, nullable=False),
    Column("envelope", LargeBinary, nullable=False),
    Column("received_at", Timestamp, nullable=False),
    Column("log_index", BigInteger, nullable=False),
)
