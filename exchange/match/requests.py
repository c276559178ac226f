"""The hub's checks of matching requests, before anything is read or written (pure).

A token update or a query names the encryption key ids its tokens are blinded under; the hub
accepts only the current ones of both agencies (from its registry), so an agency that missed a
partner's new key learns it at once instead of publishing tokens nobody can ever match.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from exchange.errors import (
    FieldViolation,
    InvalidInputError,
    NotFoundError,
    OutdatedKeysError,
    TooLargeError,
)
from exchange.match.blinding import TOKEN_LENGTH, unpack_tokens
from exchange.match.budget import MAX_QUERY_SELECTORS
from exchange.v1 import match_pb2

__all__ = [
    "MAX_UPDATE_TOKENS",
    "CheckedQuery",
    "TokenChange",
    "check_query",
    "check_token_updates",
]

MAX_UPDATE_TOKENS = 20_000_000
"""Tokens one update stream may add and remove in all: 20 partners of 10^6 selectors."""


@dataclass(frozen=True)
class TokenChange:
    """What one holder changes in its tokens for one partner (merged over a stream)."""

    partner: str
    holder_key_id: str
    querier_key_id: str
    add: list[bytes]
    remove: list[bytes]
    replace: bool


@dataclass(frozen=True)
class CheckedQuery:
    """A query whose holder, key ids and tokens have been checked."""

    querier: str
    holder: str
    holder_key_id: str
    querier_key_id: str
    tokens: list[bytes]


def _check_keys(
    caller: str,
    partner: str,
    caller_key_id: str,
    partner_key_id: str,
    current: Mapping[str, str],
    *,
    field: str,
) -> None:
    if partner == caller:
        raise InvalidInputError(
            f"{field}: {partner!r} is this agency; match with a partner",
            violations=[FieldViolation(field, "names the caller itself")],
        )
    if partner not in current:
        raise NotFoundError(f"no agency {partner!r} on this hub (or it is revoked)")
    stale = [
        f"{who}'s is {used or 'missing'}, current {current[who]}"
        for who, used in ((caller, caller_key_id), (partner, partner_key_id))
        if used != current[who]
    ]
    if stale:
        raise OutdatedKeysError(
            "tokens blinded under encryption keys that are not current ("
            + "; ".join(stale)
            + "): fetch the directory again and re-blind",
            reason="KEYS_OUTDATED",
        )


def check_token_updates(
    updates: Iterable[match_pb2.UpdateTokensRequest],
    *,
    caller: str,
    current_key_ids: Mapping[str, str],
) -> list[TokenChange]:
    """Merge a stream of token updates per partner and check each; raises on the first problem.

    A partner's key ids must be the same in all its messages, and ``replace`` may only be set on
    its first one (it drops what was there before the stream's first ``add``).
    """
    merged: dict[str, TokenChange] = {}
    total = 0
    for position, update in enumerate(updates):
        where = f"updates[{position}]"
        if not update.partner:
            raise InvalidInputError(
                f"{where}: names no partner",
                violations=[FieldViolation(f"{where}.partner", "is required")],
            )
        change = merged.get(update.partner)
        if change is None:
            _check_keys(
                caller,
                update.partner,
                update.holder_key_id,
                update.querier_key_id,
                current_key_ids,
                field=f"{where}.partner",
            )
            change = TokenChange(
                update.partner, update.holder_key_id, update.querier_key_id, [], [], update.replace
            )
            merged[update.partner] = change
        elif (update.holder_key_id, update.querier_key_id) != (
            change.holder_key_id,
            change.querier_key_id,
        ) or update.replace:
            raise InvalidInputError(
                f"{where}: a partner's messages in one update must name the same key ids, and "
                "only its first may replace"
            )
        change.add.extend(unpack_tokens(update.add, what=f"{where}.add"))
        change.remove.extend(unpack_tokens(update.remove, what=f"{where}.remove"))
        total += (len(update.add) + len(update.remove)) // TOKEN_LENGTH
        if total > MAX_UPDATE_TOKENS:
            raise TooLargeError(f"an update may carry at most {MAX_UPDATE_TOKENS} tokens")
    if not merged:
        raise InvalidInputError("the update stream carried no message")
    return list(merged.values())


def check_query(
    request: match_pb2.QueryRequest,
    *,
    caller: str,
    current_key_ids: Mapping[str, str],
) -> CheckedQuery:
    """Check a query's holder, key ids and tokens (1 to :data:`MAX_QUERY_SELECTORS`)."""
    if not request.holder:
        raise InvalidInputError(
            "a query names the holder whose index it searches",
            violations=[FieldViolation("holder", "is required")],
        )
    _check_keys(
        caller,
        request.holder,
        request.querier_key_id,
        request.holder_key_id,
        current_key_ids,
        field="holder",
    )
    tokens = unpack_tokens(request.tokens)
    if not tokens:
        raise InvalidInputError(
            "a query asks about at least one token",
            violations=[FieldViolation("tokens", "is empty")],
        )
    if len(tokens) > MAX_QUERY_SELECTORS:
        raise TooLargeError(
            f"a query asks about at most {MAX_QUERY_SELECTORS} tokens, not {len(tokens)}; "
            "split it"
        )
    return CheckedQuery(
        querier=caller,
        holder=request.holder,
        holder_key_id=request.holder_key_id,
        querier_key_id=request.querier_key_id,
        tokens=tokens,
    )
