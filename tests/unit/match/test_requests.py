"""The hub's checks of token updates and queries, before anything is read or written."""

from __future__ import annotations

import pytest

from exchange.errors import InvalidInputError, NotFoundError, OutdatedKeysError, TooLargeError
from exchange.match.blinding import pack_tokens
from exchange.match.requests import check_query, check_token_updates
from exchange.v1 import match_pb2

CURRENT = {"agency-a": "ka", "agency-b": "kb", "agency-c": "kc"}
TOKENS = pack_tokens([bytes([n]) * 32 for n in range(3)])


def update(**fields: object) -> match_pb2.UpdateTokensRequest:
    values: dict[str, object] = {
        "partner": "agency-a", "holder_key_id": "kb", "querier_key_id": "ka", "add": TOKENS,
    }
    values.update(fields)
    return match_pb2.UpdateTokensRequest(**values)  # type: ignore[arg-type]


def test_updates_are_merged_per_partner() -> None:
    changes = check_token_updates(
        [update(replace=True), update(add=b"", remove=TOKENS), update(partner="agency-c",
                                                                     querier_key_id="kc")],
        caller="agency-b",
        current_key_ids=CURRENT,
    )
    assert [(c.partner, len(c.add), len(c.remove), c.replace) for c in changes] == [
        ("agency-a", 3, 3, True),
        ("agency-c", 3, 0, False),
    ]


@pytest.mark.parametrize(
    ("messages", "error", "text"),
    [
        ([], InvalidInputError, "no message"),
        ([update(partner="")], InvalidInputError, "names no partner"),
        ([update(partner="agency-b")], InvalidInputError, "is this agency"),
        ([update(partner="agency-z")], NotFoundError, "no agency 'agency-z'"),
        ([update(querier_key_id="old")], OutdatedKeysError, "agency-a's is old, current ka"),
        ([update(holder_key_id="")], OutdatedKeysError, "agency-b's is missing"),
        ([update(add=b"x" * 31)], InvalidInputError, "not a whole number"),
        ([update(), update(replace=True)], InvalidInputError, "only its first may replace"),
        ([update(), update(querier_key_id="other")], InvalidInputError, "same key ids"),
    ],
)
def test_bad_updates_are_refused(
    messages: list[match_pb2.UpdateTokensRequest], error: type[Exception], text: str
) -> None:
    with pytest.raises(error, match=text):
        check_token_updates(messages, caller="agency-b", current_key_ids=CURRENT)


def query(**fields: object) -> match_pb2.QueryRequest:
    values: dict[str, object] = {
        "holder": "agency-b", "holder_key_id": "kb", "querier_key_id": "ka", "tokens": TOKENS,
    }
    values.update(fields)
    return match_pb2.QueryRequest(**values)  # type: ignore[arg-type]


def test_a_good_query() -> None:
    checked = check_query(query(), caller="agency-a", current_key_ids=CURRENT)
    assert (checked.querier, checked.holder, len(checked.tokens)) == ("agency-a", "agency-b", 3)


@pytest.mark.parametrize(
    ("request_", "error", "text"),
    [
        (query(holder=""), InvalidInputError, "names the holder"),
        (query(holder="agency-a"), InvalidInputError, "is this agency"),
        (query(holder="agency-z"), NotFoundError, "no agency"),
        (query(holder_key_id="kb-old"), OutdatedKeysError, "not current"),
        (query(tokens=b""), InvalidInputError, "at least one token"),
        (query(tokens=b"\0" * 32 * 10_001), TooLargeError, "at most 10000"),
    ],
)
def test_bad_queries_are_refused(
    request_: match_pb2.QueryRequest, error: type[Exception], text: str
) -> None:
    with pytest.raises(error, match=text):
        check_query(request_, caller="agency-a", current_key_ids=CURRENT)
