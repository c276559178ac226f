"""The hub's side of private matching: the MatchService servicer.

Each method reads the request, runs one pure check (:mod:`exchange.match.requests`, or the
policy statement's verification) and one store function (:mod:`exchange.store.match`) in one
transaction, and maps the result.  The hub sees tokens, counts and the fact that two tokens are
equal; it holds no key that would let it compute a token itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import grpc

from exchange.errors import FieldViolation, InvalidInputError, NotPermittedError
from exchange.hub.blocking import blocking
from exchange.hub.guard import current_caller
from exchange.hub.metrics import HubMetrics
from exchange.hub.servicers import HubContext
from exchange.match.budget import usage_by_day
from exchange.match.requests import check_query, check_token_updates
from exchange.statements.codec import envelope_from_proto, envelope_to_proto
from exchange.statements.match_policy import MatchPolicyStatement
from exchange.store import match as match_store
from exchange.v1 import match_pb2, match_pb2_grpc

MAX_HITS_PER_PAGE = 1000
DEFAULT_STATS_DAYS = 7
MAX_STATS_DAYS = 366

_DIRECTIONS = {
    "made": match_pb2.MatchDayStats.MADE,
    "received": match_pb2.MatchDayStats.RECEIVED,
}


class MatchServicer(match_pb2_grpc.MatchServiceServicer):
    """Token updates, queries, hits, policies and statistics of private matching."""

    def __init__(self, hub: HubContext, *, metrics: HubMetrics | None = None) -> None:
        self._hub = hub
        self._metrics = metrics

    @blocking
    def UpdateTokens(
        self, request_iterator: Iterator[match_pb2.UpdateTokensRequest], context: grpc.ServicerContext
    ) -> match_pb2.UpdateTokensResponse:
        caller = current_caller()
        changes = check_token_updates(
            request_iterator,
            caller=caller,
            current_key_ids=self._hub.directory.encryption_key_ids(),
        )
        with self._hub.db.write() as connection:
            counts = match_store.update_tokens(connection, caller, changes, now=self._hub.clock())
        return match_pb2.UpdateTokensResponse(
            partners=[
                match_pb2.PartnerTokenCount(
                    partner=c.partner, added=c.added, removed=c.removed, total=c.total
                )
                for c in counts
            ]
        )

    @blocking
    def Query(
        self, request: match_pb2.QueryRequest, context: grpc.ServicerContext
    ) -> match_pb2.QueryResponse:
        query = check_query(
            request,
            caller=current_caller(),
            current_key_ids=self._hub.directory.encryption_key_ids(),
        )
        with self._hub.db.write() as connection:
            outcome = match_store.answer_query(connection, query, now=self._hub.clock())
        if self._metrics is not None:
            self._metrics.match_queries.inc()
            self._metrics.match_selectors.inc(len(query.tokens))
            self._metrics.match_hits.inc(sum(outcome.hits))
            if outcome.burst:
                self._metrics.match_burst_queries.inc()
        return match_pb2.QueryResponse(
            hits=outcome.hits, log_index=outcome.log_index, budget_left=outcome.budget_left
        )

    @blocking
    def ListHits(
        self, request: match_pb2.ListHitsRequest, context: grpc.ServicerContext
    ) -> match_pb2.ListHitsResponse:
        limit = min(request.limit or 100, MAX_HITS_PER_PAGE)
        with self._hub.db.read() as connection:
            hits = match_store.hits_after(connection, current_caller(), request.after, limit)
        return match_pb2.ListHitsResponse(hits=hits)

    @blocking
    def SetPolicy(
        self, request: match_pb2.SetPolicyRequest, context: grpc.ServicerContext
    ) -> match_pb2.SetPolicyResponse:
        if not request.HasField("policy"):
            raise InvalidInputError(
                "the request carries no policy", violations=[FieldViolation("policy", "required")]
            )
        caller = current_caller()
        policy = MatchPolicyStatement.verify(
            envelope_from_proto(request.policy), self._hub.directory.signing_keys(caller)
        )
        if policy.message.holder != caller:
            raise NotPermittedError(
                f"the policy names {policy.message.holder!r} as holder; an agency sets only "
                "its own",
                reason="SIGNER_MISMATCH",
            )
        with self._hub.db.write() as connection:
            log_index = match_store.store_policy(connection, policy, now=self._hub.clock())
        return match_pb2.SetPolicyResponse(log_index=log_index)

    @blocking
    def GetStats(
        self, request: match_pb2.GetStatsRequest, context: grpc.ServicerContext
    ) -> match_pb2.GetStatsResponse:
        caller = current_caller()
        days = min(request.days or DEFAULT_STATS_DAYS, MAX_STATS_DAYS)
        since = self._hub.clock().date() - timedelta(days=days - 1)
        current = self._hub.directory.encryption_key_ids()
        with self._hub.db.read() as connection:
            counts = match_store.query_counts(connection, caller, since=since)
            holders = {c.holder for c in counts}
            budgets = {holder: match_store.budgets_of(connection, holder) for holder in holders}
            states = match_store.index_states(connection, caller)
            policy = match_store.policy_of(connection, caller)
        response = match_pb2.GetStatsResponse(
            days=[
                match_pb2.MatchDayStats(
                    partner=u.partner,
                    direction=_DIRECTIONS[u.direction],
                    day=u.day.isoformat(),
                    queries=u.queries,
                    selectors=u.selectors,
                    hits=u.hits,
                    daily_budget=u.daily_budget,
                    budget_left=u.budget_left,
                    peak_minute_selectors=u.peak_minute_selectors,
                    burst=u.burst,
                )
                for u in usage_by_day(caller, counts, budgets)
            ],
            indexes=[
                match_pb2.MatchIndexStats(
                    partner=s.partner,
                    tokens=s.tokens,
                    holder_key_id=s.holder_key_id,
                    querier_key_id=s.querier_key_id,
                    stale=(s.holder_key_id, s.querier_key_id)
                    != (current.get(caller), current.get(s.partner)),
                )
                for s in states
            ],
        )
        if policy is not None:
            response.policy.CopyFrom(envelope_to_proto(policy.envelope))
        return response
