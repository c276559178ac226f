"""Private matching in the store: token updates, queries against the budget, hits, policies.

Every function runs in the caller's transaction and appends its log entry before it reads what
it will change, which takes the one log lock (:mod:`exchange.store.log`): a query sums the day's
usage only then, so two concurrent queries can never both fit the last of a budget, and two
updates of one holder's tokens or policy cannot interleave, across hub replicas.  A refused query raises, and the
caller's rollback leaves nothing behind, its log entries included.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Connection, Table, bindparam, delete, func, insert, select, update

from exchange.audit import leaves
from exchange.errors import ConflictError, OutdatedKeysError, QuotaExceededError
from exchange.match.blinding import pack_tokens, token_digest
from exchange.match.budget import Budgets, QueryCount, day_of, is_burst
from exchange.match.requests import CheckedQuery, TokenChange
from exchange.statements.codec import encode, envelope_from_proto, envelope_to_proto
from exchange.statements.match_policy import MatchPolicyStatement
from exchange.store.log import append_entry
from exchange.store.match_tables import (
    match_hits,
    match_indexes,
    match_policies,
    match_queries,
    match_tokens,
)
from exchange.v1 import match_pb2, statements_pb2

_BATCH = 5_000
_ANALYZE_AFTER = 10_000
_LOOKUP_BATCH = 1_000

_PAIR = (match_tokens.c.holder == bindparam("holder")) & (
    match_tokens.c.querier == bindparam("querier")
)
_DELETE_PAIR = delete(match_tokens).where(_PAIR)
_COUNT_PAIR = select(func.count()).select_from(match_tokens).where(_PAIR)
_FIND_TOKENS = select(match_tokens.c.token).where(
    _PAIR, match_tokens.c.token.in_(bindparam("tokens", expanding=True))
)
_INDEX_ROW = select(match_indexes).where(
    match_indexes.c.holder == bindparam("holder"), match_indexes.c.querier == bindparam("querier")
)
_USED_TODAY = select(func.coalesce(func.sum(match_queries.c.selectors), 0)).where(
    match_queries.c.holder == bindparam("holder"),
    match_queries.c.querier == bindparam("querier"),
    match_queries.c.day == bindparam("day"),
)
_USED_SINCE = _USED_TODAY.where(match_queries.c.created_at >= bindparam("since"))
_POLICY = select(match_policies.c.envelope, match_policies.c.number).where(
    match_policies.c.holder == bindparam("holder")
)


# Token inserts and deletes go to the driver's executemany with plain tuples: SQLAlchemy's
# per-row parameter processing cost more than the database's work (1.0 of 1.8 s for 50,000
# tokens on SQLite).  The statements name only this module's table and columns.
_DRIVER_SQL = {
    "sqlite": (
        "INSERT OR IGNORE INTO match_tokens (holder, querier, token) VALUES (?, ?, ?)",
        "DELETE FROM match_tokens WHERE holder = ? AND querier = ? AND token = ?",
    ),
    "postgresql": (
        (
            "INSERT INTO match_tokens (holder, querier, token) VALUES (%s, %s, %s) "
            "ON CONFLICT DO NOTHING"
        ),
        "DELETE FROM match_tokens WHERE holder = %s AND querier = %s AND token = %s",
    ),
}


def _copy_tokens(connection: Connection, holder: str, partner: str, tokens: list[bytes]) -> None:
    """Add tokens on PostgreSQL through COPY into a temporary table, then one INSERT that skips
    those already held (COPY itself cannot skip duplicates): 5x psycopg's executemany."""
    if not tokens:
        return
    driver = connection.connection.driver_connection
    assert driver is not None
    with driver.cursor() as cursor:
        cursor.execute(
            "CREATE TEMPORARY TABLE IF NOT EXISTS match_tokens_in (token bytea NOT NULL) "
            "ON COMMIT DELETE ROWS"
        )
        with cursor.copy("COPY match_tokens_in (token) FROM STDIN") as copy:
            for token in tokens:
                copy.write_row((token,))
        cursor.execute(
            "INSERT INTO match_tokens (holder, querier, token) SELECT %s, %s, token "
            "FROM match_tokens_in ON CONFLICT DO NOTHING",
            (holder, partner),
        )
        cursor.execute("TRUNCATE match_tokens_in")


def _insert_or_update(
    connection: Connection,
    table: Table,
    key: dict[str, str],
    values: dict[str, object],
    *,
    exists: bool,
) -> None:
    """Write the row of ``table`` with primary key ``key``, read earlier in this transaction
    after the log lock was taken, so no other transaction can have written it since."""
    if not exists:
        connection.execute(insert(table), {**key, **values})
        return
    condition = [table.c[name] == value for name, value in key.items()]
    connection.execute(update(table).where(*condition), values)


@dataclass(frozen=True)
class TokenCounts:
    """A partner's tokens after an update, and how many the update added and removed (as asked:
    adding a token already held, or removing one not held, changes nothing)."""

    partner: str
    added: int
    removed: int
    total: int


def update_tokens(
    connection: Connection, holder: str, changes: Sequence[TokenChange], *, now: datetime
) -> list[TokenCounts]:
    """Apply ``holder``'s checked token changes; all of them or (if one raises) none.

    An ``add`` under key ids other than those the partner's tokens are held under is refused
    (:class:`OutdatedKeysError`, ``MATCH_INDEX_STALE``) unless the change replaces them.
    """
    record = match_pb2.MatchIndexRecord(
        holder=holder,
        changes=[
            match_pb2.MatchIndexRecord.Change(
                partner=change.partner,
                added=len(change.add),
                removed=len(change.remove),
                replace=change.replace,
                holder_key_id=change.holder_key_id,
                querier_key_id=change.querier_key_id,
            )
            for change in changes
        ],
    )
    record.created_at.FromDatetime(now)
    # The log entry comes first: it takes the log lock, which serializes two updates of one
    # holder (two processes of one agency) across replicas.
    append_entry(
        connection,
        entry_type=leaves.MATCH_INDEX_UPDATED,
        body=encode(record),
        references=[holder],
        entitled=[holder],
        now=now,
    )
    results = []
    insert_tokens, delete_token = _DRIVER_SQL[connection.dialect.name]
    for change in changes:
        pair = {"holder": holder, "querier": change.partner}
        row = connection.execute(_INDEX_ROW, pair).first()
        keys = (change.holder_key_id, change.querier_key_id)
        if change.replace:
            connection.execute(_DELETE_PAIR, pair)
        elif row is not None and (row.holder_key_id, row.querier_key_id) != keys and row.tokens:
            raise OutdatedKeysError(
                f"your tokens for {change.partner} are blinded under earlier keys; re-blind "
                "them (`exchange match index reblind`) before adding more",
                reason="MATCH_INDEX_STALE",
            )
        for start in range(0, len(change.remove), _BATCH):
            connection.exec_driver_sql(
                delete_token,
                [(holder, change.partner, t) for t in change.remove[start : start + _BATCH]],
            )
        # In key order, B-tree inserts touch each page once instead of at random.
        adding = sorted(change.add)
        if connection.dialect.name == "postgresql":
            _copy_tokens(connection, holder, change.partner, adding)
        else:
            for start in range(0, len(adding), _BATCH):
                connection.exec_driver_sql(
                    insert_tokens,
                    [(holder, change.partner, t) for t in adding[start : start + _BATCH]],
                )
        if connection.dialect.name == "postgresql" and len(change.add) >= _ANALYZE_AFTER:
            # Fresh statistics: planned on stale ones (a table that looked empty), a query's
            # lookup scanned every token of the pair instead of seeking each (163 against
            # 31 ms for 1,000 tokens among 200,000).
            connection.exec_driver_sql("ANALYZE match_tokens")
        total = int(connection.execute(_COUNT_PAIR, pair).scalar_one())
        values = {
            "holder_key_id": change.holder_key_id,
            "querier_key_id": change.querier_key_id,
            "tokens": total,
            "updated_at": now,
        }
        _insert_or_update(connection, match_indexes, pair, values, exists=row is not None)
        results.append(TokenCounts(change.partner, len(change.add), len(change.remove), total))
    return results


@dataclass(frozen=True)
class QueryOutcome:
    hits: list[bool]
    log_index: int
    budget_left: int
    burst: bool
    """The pair's selectors this minute, this query's included, are a burst."""


def policy_of(connection: Connection, holder: str) -> MatchPolicyStatement | None:
    """``holder``'s current policy as it signed it (verified when it was received)."""
    row = connection.execute(_POLICY, {"holder": holder}).first()
    if row is None:
        return None
    message = statements_pb2.Envelope()
    message.ParseFromString(bytes(row.envelope))
    envelope = envelope_from_proto(message)
    return MatchPolicyStatement.parse_verified(envelope, envelope.payload)


def budgets_of(connection: Connection, holder: str) -> Budgets:
    """``holder``'s budgets: those of its policy, or the defaults."""
    policy = policy_of(connection, holder)
    return Budgets() if policy is None else policy.budgets


def answer_query(connection: Connection, query: CheckedQuery, *, now: datetime) -> QueryOutcome:
    """Look ``query``'s tokens up in the holder's tokens for the querier, log the query and its
    hits, and count it against the day's budget; over the budget raises
    :class:`QuotaExceededError` (``MATCH_BUDGET_EXHAUSTED``)."""
    pair = {"holder": query.holder, "querier": query.querier}
    row = connection.execute(_INDEX_ROW, pair).first()
    if row is not None and row.tokens and (row.holder_key_id, row.querier_key_id) != (
        query.holder_key_id,
        query.querier_key_id,
    ):
        raise OutdatedKeysError(
            f"{query.holder}'s index for you is blinded under earlier keys; it must re-blind "
            "before it can be searched",
            reason="MATCH_INDEX_STALE",
        )
    found: set[bytes] = set()
    if row is not None and row.tokens:
        asked = sorted(set(query.tokens))
        for start in range(0, len(asked), _LOOKUP_BATCH):
            batch = asked[start : start + _LOOKUP_BATCH]
            found.update(
                bytes(token)
                for token in connection.execute(_FIND_TOKENS, {**pair, "tokens": batch}).scalars()
            )
    hits = [token in found for token in query.tokens]
    hit_digests = [token_digest(token) for token in sorted(found)]
    record = match_pb2.MatchQueryRecord(
        querier=query.querier,
        holder=query.holder,
        selectors=len(query.tokens),
        hits=len(found),
        holder_key_id=query.holder_key_id,
        querier_key_id=query.querier_key_id,
    )
    record.created_at.FromDatetime(now)
    entitled = [query.querier, query.holder]
    log_index = append_entry(
        connection,
        entry_type=leaves.MATCH_QUERY,
        body=encode(record),
        references=entitled,
        entitled=entitled,
        now=now,
    )
    # The log lock is held from here to the commit: the day's usage cannot change under us.
    day = day_of(now).isoformat()
    used = int(connection.execute(_USED_TODAY, {**pair, "day": day}).scalar_one())
    budgets = budgets_of(connection, query.holder)
    if not budgets.allows(query.querier, used, len(query.tokens)):
        left = budgets.left(query.querier, used)
        raise QuotaExceededError(
            f"{query.holder}'s daily budget for your queries is "
            f"{budgets.for_partner(query.querier)} selectors; {left} left today (UTC), this "
            f"query has {len(query.tokens)}",
            reason="MATCH_BUDGET_EXHAUSTED",
        )
    query_id = connection.execute(
        insert(match_queries).returning(match_queries.c.id),
        {
            **pair,
            "day": day,
            "selectors": len(query.tokens),
            "hits": len(found),
            "created_at": now,
            "log_index": log_index,
        },
    ).scalar_one()
    if hit_digests:
        hit_record = match_pb2.MatchHitRecord(
            querier=query.querier,
            holder=query.holder,
            token_digests=pack_tokens(hit_digests),
            query_log_index=log_index,
        )
        hit_record.created_at.FromDatetime(now)
        hit_index = append_entry(
            connection,
            entry_type=leaves.MATCH_HIT,
            body=encode(hit_record),
            references=entitled,
            entitled=entitled,
            now=now,
        )
        connection.execute(
            insert(match_hits),
            {
                **pair,
                "query_id": query_id,
                "token_digests": hit_record.token_digests,
                "holder_key_id": query.holder_key_id,
                "querier_key_id": query.querier_key_id,
                "created_at": now,
                "query_log_index": log_index,
                "log_index": hit_index,
            },
        )
    minute = now.replace(second=0, microsecond=0)
    this_minute = int(
        connection.execute(_USED_SINCE, {**pair, "day": day, "since": minute}).scalar_one()
    )
    return QueryOutcome(
        hits=hits,
        log_index=log_index,
        budget_left=budgets.left(query.querier, used + len(query.tokens)),
        burst=is_burst(this_minute, budgets.for_partner(query.querier)),
    )


def hits_after(
    connection: Connection, holder: str, after: int, limit: int
) -> list[match_pb2.MatchHit]:
    """The hits on ``holder``'s tokens with id above ``after``, oldest first."""
    rows = connection.execute(
        select(match_hits)
        .where(match_hits.c.holder == holder, match_hits.c.id > after)
        .order_by(match_hits.c.id)
        .limit(limit)
    )
    found = []
    for row in rows:
        hit = match_pb2.MatchHit(
            id=int(row.id),
            querier=row.querier,
            token_digests=bytes(row.token_digests),
            holder_key_id=row.holder_key_id,
            querier_key_id=row.querier_key_id,
            query_log_index=int(row.query_log_index),
            log_index=int(row.log_index),
        )
        hit.created_at.FromDatetime(row.created_at)
        found.append(hit)
    return found


def store_policy(
    connection: Connection, policy: MatchPolicyStatement, *, now: datetime
) -> int:
    """Store a verified policy of its holder, replacing the current one; returns its log index.

    Its number must be above the current policy's, so an old policy cannot be replayed.  The
    log entry is appended first, under the log lock; a refusal rolls it back with the rest.
    """
    holder = policy.message.holder
    envelope = encode(envelope_to_proto(policy.envelope))
    log_index = append_entry(
        connection,
        entry_type=leaves.MATCH_POLICY,
        body=envelope,
        references=[holder, str(policy.message.number)],
        entitled=[holder, *(b.partner for b in policy.message.budgets)],
        now=now,
    )
    current = connection.execute(_POLICY, {"holder": holder}).first()
    if current is not None and policy.message.number <= int(current.number):
        raise ConflictError(
            f"policy number {policy.message.number} is not above the current one "
            f"({int(current.number)})",
            reason="POLICY_NUMBER_USED",
        )
    values = {
        "number": policy.message.number,
        "envelope": envelope,
        "received_at": now,
        "log_index": log_index,
    }
    _insert_or_update(
        connection, match_policies, {"holder": holder}, values, exists=current is not None
    )
    return log_index


def query_counts(connection: Connection, agency: str, *, since: date) -> list[QueryCount]:
    """Every query ``agency`` made or received since the start of day ``since`` (UTC)."""
    day = since.isoformat()
    rows = connection.execute(
        select(match_queries).where(
            ((match_queries.c.querier == agency) | (match_queries.c.holder == agency))
            & (match_queries.c.day >= day)
        )
    )
    return [
        QueryCount(row.querier, row.holder, row.created_at, int(row.selectors), int(row.hits))
        for row in rows
    ]


@dataclass(frozen=True)
class IndexState:
    partner: str
    tokens: int
    holder_key_id: str
    querier_key_id: str


def index_states(connection: Connection, holder: str) -> list[IndexState]:
    """``holder``'s token sets, one per partner."""
    rows = connection.execute(
        select(match_indexes).where(match_indexes.c.holder == holder).order_by(
            match_indexes.c.querier
        )
    )
    return [
        IndexState(row.querier, int(row.tokens), row.holder_key_id, row.querier_key_id)
        for row in rows
    ]
