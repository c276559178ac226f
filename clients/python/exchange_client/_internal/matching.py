"""Private hit/no-hit matching on the agency's side: the local index, tokens, queries, hits.

The rules are pure and live in :mod:`exchange.match` (selectors, blinding keys, index files,
budgets); this module does the I/O around them: it reads and writes the local index file
(:mod:`~exchange_client._internal.match_index`), derives blinding keys from this profile's
encryption key and partners' verified keys, and calls the hub's ``MatchService``.  Every index
change is one local transaction committed only after the hub accepted the matching token
update, which is itself all or nothing: an error anywhere leaves both as they were.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from exchange.bulk import gc_paused
from exchange.errors import InvalidInputError, NotFoundError
from exchange.match.blinding import (
    TOKEN_LENGTH,
    BlindingKey,
    pack_tokens,
    token_digest,
    unpack_tokens,
)
from exchange.match.budget import MAX_QUERY_SELECTORS
from exchange.match.index_file import IndexRow, read_index_file
from exchange.match.selectors import Selector
from exchange.statements.codec import envelope_from_proto, envelope_to_proto
from exchange.statements.match_policy import MatchPolicyStatement
from exchange.v1 import match_pb2
from exchange_client._internal.context import Concern
from exchange_client._internal.match_index import IndexEntry, LocalIndex
from exchange_client._internal.models import rfc3339
from exchange_client._internal.profile import Profile
from exchange_client._internal.status import hub_errors

Progress = Callable[[str, int, int], None]
"""Called as ``progress(phase, done, total)`` while long work goes on."""

UPLOAD_CHUNK_TOKENS = 20_000
"""Tokens per message of a token update stream (640 KiB, well under any message limit)."""

_HITS_PAGE = 1000

def read_index(path: Path, *, progress: Progress | None = None) -> list[IndexRow]:
    """:func:`~exchange.match.index_file.read_index_file`, reporting ``reading`` progress."""

    def report(done: int, total: int) -> None:
        if progress is not None:
            progress("reading", done, total)

    with gc_paused():
        return read_index_file(path, progress=report)


@dataclass(frozen=True)
class IndexChange:
    """What an ``index add``, ``remove`` or ``reblind`` did, per partner."""

    entries: int
    """Entries added or removed (for ``reblind``: entries re-blinded)."""
    duplicates: int = 0
    """Rows of the file that repeated a selector already in it."""
    tokens: Mapping[str, int] = field(default_factory=dict)
    """Tokens sent to the hub per partner (added, removed or re-blinded)."""
    totals: Mapping[str, int] = field(default_factory=dict)
    """Tokens the hub holds per partner afterwards."""
    reblinded: tuple[str, ...] = ()
    """Partners whose tokens were re-blinded under new keys on the way."""

    def to_json(self) -> dict[str, Any]:
        return {
            "entries": self.entries,
            "duplicates": self.duplicates,
            "tokens": dict(self.tokens),
            "totals": dict(self.totals),
            "reblinded": list(self.reblinded),
        }


@dataclass(frozen=True)
class MatchResult:
    """The answer for one selector asked: hit or no-hit."""

    selector: Selector
    hit: bool

    def to_json(self) -> dict[str, str]:
        return {"selector": str(self.selector), "result": "hit" if self.hit else "no-hit"}


@dataclass(frozen=True)
class HitReport:
    """A partner's query that hit entries of this agency's index."""

    hit_id: int
    querier: str
    created_at: datetime
    entries: tuple[IndexEntry, ...]
    unknown: int
    """Hit tokens no entry maps to any more (removed or re-blinded since)."""
    log_index: int
    query_log_index: int

    def to_json(self) -> dict[str, Any]:
        return {
            "hit_id": self.hit_id,
            "querier": self.querier,
            "created_at": rfc3339(self.created_at),
            "entries": [
                {"selector": str(entry.selector), "note": entry.note} for entry in self.entries
            ],
            "unknown": self.unknown,
            "log_index": self.log_index,
            "query_log_index": self.query_log_index,
        }


@dataclass(frozen=True)
class DayStats:
    partner: str
    direction: str
    day: str
    queries: int
    selectors: int
    hits: int
    daily_budget: int
    budget_left: int
    peak_minute_selectors: int
    burst: bool

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class PartnerIndexStats:
    partner: str
    local_entries: int
    hub_tokens: int
    stale: bool

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class MatchStats:
    """``exchange match stats``: usage per partner and day, and each partner's index."""

    days: tuple[DayStats, ...]
    indexes: tuple[PartnerIndexStats, ...]
    default_daily_budget: int | None
    budgets: Mapping[str, int]
    policy_number: int

    def to_json(self) -> dict[str, Any]:
        return {
            "days": [d.to_json() for d in self.days],
            "indexes": [i.to_json() for i in self.indexes],
            "policy": {
                "number": self.policy_number,
                "default_daily_budget": self.default_daily_budget,
                "budgets": dict(self.budgets),
            },
        }


_DIRECTIONS = {match_pb2.MatchDayStats.MADE: "made", match_pb2.MatchDayStats.RECEIVED: "received"}


def _dedupe(rows: Sequence[IndexRow]) -> tuple[list[tuple[Selector, str]], int]:
    """One (selector, note) per selector, in first-seen order; a later non-empty note wins."""
    notes: dict[tuple[str, str], tuple[Selector, str]] = {}
    for row in rows:
        key = (row.selector.kind, row.selector.value)
        if key not in notes or row.note:
            notes[key] = (row.selector, row.note)
    return list(notes.values()), len(rows) - len(notes)


def _chunks(tokens: Sequence[bytes]) -> Iterator[bytes]:
    for start in range(0, len(tokens), UPLOAD_CHUNK_TOKENS):
        yield pack_tokens(tokens[start : start + UPLOAD_CHUNK_TOKENS])


@dataclass
class _PartnerUpdate:
    """The tokens one index change sends for one partner."""

    key: BlindingKey
    add: list[bytes] = field(default_factory=list)
    remove: list[bytes] = field(default_factory=list)
    replace: bool = False

    @property
    def size(self) -> int:
        return len(self.add) + len(self.remove)


class Matcher(Concern):
    """Matching for this client's agency: its index, its queries and the hits on it."""

    # --- keys -----------------------------------------------------------------------------------

    def _keys(self, partners: Iterable[str], *, role: str) -> dict[str, BlindingKey]:
        own = self._profile.agency_id
        wanted = sorted(set(partners))
        if own in wanted:
            raise InvalidInputError(f"{own} is this agency; name a partner")
        available = set(self._partner_ids())
        unknown = [partner for partner in wanted if partner not in available]
        if unknown:
            raise NotFoundError(
                f"no verified, unrevoked partner {', '.join(map(repr, unknown))} on the hub "
                "(`exchange agencies` lists the agencies and why any is unverified)"
            )
        found = self._partners.recipient_keys(wanted)
        return {
            partner: BlindingKey.derive(
                own, self._profile.decryption_key, partner, found[partner], own_role=role
            )
            for partner in wanted
        }

    def _publish_for(self, named: Sequence[str] | None) -> list[str]:
        if named:
            return sorted(set(named))
        partners = self._partner_ids()
        if not partners:
            raise NotFoundError("no verified partner on the hub to publish tokens for")
        return partners

    def _partner_ids(self) -> list[str]:
        """The verified, unrevoked partners on the hub (fetched fresh)."""
        own = self._profile.agency_id
        return [
            p.agency_id
            for p in self._partners.load(refresh=True).values()
            if p.verified and not p.revoked and p.agency_id != own
        ]

    def _call(self, method: Callable[..., Any], request: Any) -> Any:
        return self._transport.call(method, request)

    def _index(self) -> LocalIndex:
        return LocalIndex.open(self._profile.state_dir)

    # --- the index ------------------------------------------------------------------------------

    def add(
        self,
        rows: Sequence[IndexRow],
        *,
        partners: Sequence[str] | None = None,
        progress: Progress | None = None,
    ) -> IndexChange:
        """Add ``rows`` to the index and publish their tokens for ``partners`` (every verified
        partner when none is named).  A partner whose tokens are blinded under keys that are no
        longer current is re-blinded in the same update."""
        keys = self._keys(self._publish_for(partners), role="holder")
        with gc_paused(), self._index() as index, index.transaction():
            entries, duplicates = _dedupe(rows)
            texts = [str(selector) for selector, _ in entries]
            known = index.partners_of(s for s, _ in entries) if index.count() else {}
            updates: dict[str, _PartnerUpdate] = {}
            published: dict[str, tuple[list[int], list[bytes]]] = {}
            for done, (partner, key) in enumerate(keys.items()):
                if progress is not None:
                    progress("blinding", done, len(keys))
                update = _PartnerUpdate(key, replace=self._stale(index, key))
                fresh = [i for i, text in enumerate(texts) if partner not in known.get(text, ())]
                earlier = list(index.published_for(partner)) if update.replace else []
                update.add = key.tokens(earlier + [entries[i][0] for i in fresh])
                updates[partner] = update
                published[partner] = (fresh, update.add[len(earlier) :])
            # The hub's update and the local writes run side by side (both wait outside the
            # GIL); the local transaction commits only once the hub has answered.
            with ThreadPoolExecutor(max_workers=1) as uploader:
                upload = uploader.submit(self._send, updates, progress)
                ids = index.add_entries(entries, now=self._clock())
                for partner, update in updates.items():
                    if update.replace:
                        self._write_reblinded(index, partner, update)
                    fresh, tokens = published[partner]
                    index.publish(
                        partner, zip((ids[i] for i in fresh), map(token_digest, tokens))
                    )
                    index.record_blinding(update.key.pair)
                totals = upload.result()
        return IndexChange(
            entries=len(entries),
            duplicates=duplicates,
            tokens={p: u.size for p, u in updates.items()},
            totals=totals,
            reblinded=tuple(p for p, u in updates.items() if u.replace),
        )

    @staticmethod
    def _stale(index: LocalIndex, key: BlindingKey) -> bool:
        recorded = index.blinding(key.pair.querier)
        current = (key.pair.holder_key_id, key.pair.querier_key_id)
        return recorded is not None and recorded != current

    def _write_reblinded(self, index: LocalIndex, partner: str, update: _PartnerUpdate) -> None:
        selectors = list(index.published_for(partner))
        index.replace_digests(
            partner,
            zip(selectors, (token_digest(t) for t in update.add[: len(selectors)]), strict=True),
        )

    def _send(
        self, updates: Mapping[str, _PartnerUpdate], progress: Progress | None
    ) -> dict[str, int]:
        """Stream the token updates to the hub; returns its totals per partner."""
        total = sum(update.size for update in updates.values())

        def messages() -> Iterator[match_pb2.UpdateTokensRequest]:
            sent = 0
            for partner, update in updates.items():
                pair = update.key.pair
                chunks = [("add", chunk) for chunk in _chunks(update.add)]
                chunks += [("remove", chunk) for chunk in _chunks(update.remove)]
                # With nothing to add or remove, one message still names the partner's key ids
                # (or replaces its tokens by none).
                for position, (field_name, chunk) in enumerate(chunks or [("add", b"")]):
                    message = match_pb2.UpdateTokensRequest(
                        partner=partner,
                        holder_key_id=pair.holder_key_id,
                        querier_key_id=pair.querier_key_id,
                        replace=update.replace and position == 0,
                    )
                    setattr(message, field_name, chunk)
                    yield message
                    sent += len(chunk) // TOKEN_LENGTH
                    if progress is not None:
                        progress("uploading", sent, total)

        # A long upload gets time in proportion to its size: 10 s and a second per 20,000 tokens.
        timeout = 10.0 + total / 20_000
        with hub_errors(self._transport.target):
            response: match_pb2.UpdateTokensResponse = self._transport.match.UpdateTokens(
                messages(), timeout=timeout
            )
        return {count.partner: int(count.total) for count in response.partners}

    def remove(
        self, selectors: Sequence[Selector], *, partners: Sequence[str] | None = None
    ) -> IndexChange:
        """Stop publishing ``selectors`` for ``partners`` (all theirs when none is named); an
        entry published for nobody leaves the index.  Selectors not in the index are refused."""
        wanted = list(dict.fromkeys(selectors))
        with self._index() as index, index.transaction():
            known = index.partners_of(wanted)
            missing = [str(s) for s in wanted if str(s) not in known]
            if missing:
                raise NotFoundError(
                    f"not in the index: {', '.join(missing[:10])}"
                    + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
                    + "; nothing was removed"
                )
            involved = sorted(set().union(*known.values())) if known else []
            if partners:
                involved = [p for p in involved if p in set(partners)]
            keys = self._keys(involved, role="holder") if involved else {}
            updates: dict[str, _PartnerUpdate] = {}
            for partner, key in keys.items():
                gone = [s for s in wanted if partner in known[str(s)]]
                if self._stale(index, key):
                    # The hub's tokens are under earlier keys: replace them by the rest, re-blinded.
                    leaving = set(gone)
                    keep = [s for s in index.published_for(partner) if s not in leaving]
                    updates[partner] = _PartnerUpdate(key, add=key.tokens(keep), replace=True)
                else:
                    updates[partner] = _PartnerUpdate(key, remove=key.tokens(gone))
            totals = self._send(updates, None) if updates else {}
            index.remove(wanted, partners=None if not partners else partners)
            for partner, update in updates.items():
                if update.replace:
                    self._write_reblinded(index, partner, update)
                index.record_blinding(update.key.pair)
        return IndexChange(
            entries=len(wanted),
            tokens={p: u.size for p, u in updates.items()},
            totals=totals,
            reblinded=tuple(p for p, u in updates.items() if u.replace),
        )

    def reblind(
        self,
        *,
        partners: Sequence[str] | None = None,
        force: bool = False,
        progress: Progress | None = None,
    ) -> IndexChange:
        """Re-blind the tokens of every partner whose keys changed (all named ones with
        ``force``), replacing what the hub holds for them by the index under current keys."""
        with gc_paused(), self._index() as index, index.transaction():
            counts = index.partner_counts()
            involved = [p for p in counts if not partners or p in set(partners)]
            keys = self._keys(involved, role="holder") if involved else {}
            updates: dict[str, _PartnerUpdate] = {}
            for partner, key in keys.items():
                if not (force or self._stale(index, key)):
                    continue
                selectors = list(index.published_for(partner))
                if progress is not None:
                    progress("blinding", len(updates), len(keys))
                updates[partner] = _PartnerUpdate(key, add=key.tokens(selectors), replace=True)
            totals = self._send(updates, progress) if updates else {}
            for partner, update in updates.items():
                self._write_reblinded(index, partner, update)
                index.record_blinding(update.key.pair)
        return IndexChange(
            entries=sum(len(u.add) for u in updates.values()),
            tokens={p: u.size for p, u in updates.items()},
            totals=totals,
            reblinded=tuple(updates),
        )

    def entries(
        self, *, partner: str | None = None, kind: str | None = None, limit: int | None = None
    ) -> list[IndexEntry]:
        """The index's entries (read locally; the hub is not asked)."""
        return self.local_entries(self._profile, partner=partner, kind=kind, limit=limit)

    @staticmethod
    def local_entries(
        profile: Profile,
        *,
        partner: str | None = None,
        kind: str | None = None,
        limit: int | None = None,
    ) -> list[IndexEntry]:
        """The entries of ``profile``'s index, without a connection to the hub."""
        with LocalIndex.open(profile.state_dir) as index:
            return list(index.entries(partner=partner, kind=kind, limit=limit))

    # --- queries --------------------------------------------------------------------------------

    def query(self, partner: str, selectors: Sequence[Selector]) -> list[MatchResult]:
        """Ask ``partner`` whether it holds each of ``selectors``: one result per selector, in
        order.  Each distinct selector counts once against the partner's daily budget."""
        if not selectors:
            raise InvalidInputError("name at least one selector to query")
        key = self._keys([partner], role="querier")[partner]
        distinct = list(dict.fromkeys(selectors))
        tokens = key.tokens(distinct)
        hit: set[Selector] = set()
        for start in range(0, len(distinct), MAX_QUERY_SELECTORS):
            batch = tokens[start : start + MAX_QUERY_SELECTORS]
            response: match_pb2.QueryResponse = self._call(
                self._transport.match.Query,
                match_pb2.QueryRequest(
                    holder=partner,
                    holder_key_id=key.pair.holder_key_id,
                    querier_key_id=key.pair.querier_key_id,
                    tokens=pack_tokens(batch),
                ),
            )
            if len(response.hits) != len(batch):
                raise InvalidInputError(
                    f"the hub answered {len(response.hits)} results for {len(batch)} selectors"
                )
            hit.update(
                s for s, found in zip(distinct[start:], response.hits, strict=False) if found
            )
        return [MatchResult(selector, selector in hit) for selector in selectors]

    def hits(self, *, include_seen: bool = False) -> list[HitReport]:
        """The partners' queries that hit this agency's entries since the last call (every one
        with ``include_seen``), each mapped to the entries it hit."""
        reports: list[HitReport] = []
        with self._index() as index:
            after = 0 if include_seen else index.hits_cursor()
            while True:
                response: match_pb2.ListHitsResponse = self._call(
                    self._transport.match.ListHits, match_pb2.ListHitsRequest(after=after, limit=_HITS_PAGE)
                )
                for hit in response.hits:
                    digests = unpack_tokens(bytes(hit.token_digests), what="token digests")
                    found = index.entries_by_digest(hit.querier, digests)
                    reports.append(
                        HitReport(
                            hit_id=int(hit.id),
                            querier=hit.querier,
                            created_at=hit.created_at.ToDatetime(tzinfo=UTC),
                            entries=tuple(found[d] for d in digests if d in found),
                            unknown=sum(1 for d in digests if d not in found),
                            log_index=int(hit.log_index),
                            query_log_index=int(hit.query_log_index),
                        )
                    )
                    after = int(hit.id)
                if len(response.hits) < _HITS_PAGE:
                    break
            if reports and after > index.hits_cursor():
                with index.transaction():
                    index.set_hits_cursor(after)
        return reports

    # --- policy and statistics --------------------------------------------------------------------

    def _current_policy(self, response: match_pb2.GetStatsResponse) -> MatchPolicyStatement | None:
        if not response.HasField("policy"):
            return None
        return MatchPolicyStatement.verify(
            envelope_from_proto(response.policy),
            {self._profile.signing_key.public_key.key_id: self._profile.signing_key.public_key},
        )

    def set_policy(self, *, default_daily_budget: int, budgets: Mapping[str, int]) -> int:
        """Sign and send a new budget policy (numbered one above the current one); returns the
        policy's number."""
        current = self._current_policy(self._stats_response(1))
        number = 1 if current is None else current.message.number + 1
        policy = MatchPolicyStatement.new(
            holder=self._profile.agency_id,
            number=number,
            default_daily_budget=default_daily_budget,
            budgets=budgets,
            created_at=self._clock(),
            key=self._profile.signing_key,
        )
        self._call(
            self._transport.match.SetPolicy,
            match_pb2.SetPolicyRequest(policy=envelope_to_proto(policy.envelope)),
        )
        return number

    def _stats_response(self, days: int) -> match_pb2.GetStatsResponse:
        response: match_pb2.GetStatsResponse = self._call(
            self._transport.match.GetStats, match_pb2.GetStatsRequest(days=days)
        )
        return response

    def stats(self, *, days: int = 7) -> MatchStats:
        """Queries made and received per partner and day, with budgets, hits and bursts; and
        each partner's index: entries here, tokens on the hub, whether it needs re-blinding."""
        response = self._stats_response(days)
        policy = self._current_policy(response)
        with self._index() as index:
            local = index.partner_counts()
        hub = {i.partner: i for i in response.indexes}
        indexes = tuple(
            PartnerIndexStats(
                partner=partner,
                local_entries=local.get(partner, 0),
                hub_tokens=int(hub[partner].tokens) if partner in hub else 0,
                stale=bool(hub[partner].stale) if partner in hub else False,
            )
            for partner in sorted(set(local) | set(hub))
        )
        return MatchStats(
            days=tuple(
                DayStats(
                    partner=d.partner,
                    direction=_DIRECTIONS.get(d.direction, "unknown"),
                    day=d.day,
                    queries=int(d.queries),
                    selectors=int(d.selectors),
                    hits=int(d.hits),
                    daily_budget=int(d.daily_budget),
                    budget_left=int(d.budget_left),
                    peak_minute_selectors=int(d.peak_minute_selectors),
                    burst=bool(d.burst),
                )
                for d in response.days
            ),
            indexes=indexes,
            default_daily_budget=None if policy is None else policy.budgets.default,
            budgets={} if policy is None else dict(policy.budgets.partners or {}),
            policy_number=0 if policy is None else int(policy.message.number),
        )
