"""The holder's signed match policy: built, signed, verified, its invariants enforced."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from exchange.crypto.keys import SigningKey
from exchange.errors import MalformedError, UnknownKeyError
from exchange.statements.match_policy import MatchPolicyStatement
from exchange.v1 import match_pb2

NOW = datetime(2026, 12, 1, tzinfo=UTC)
KEY = SigningKey.generate()


def test_a_policy_round_trips_and_gives_its_budgets() -> None:
    policy = MatchPolicyStatement.new(
        holder="agency-b", number=2, default_daily_budget=500,
        budgets={"agency-c": 10, "agency-a": 0}, created_at=NOW, key=KEY,
    )
    verified = MatchPolicyStatement.verify(policy.envelope, {KEY.public_key.key_id: KEY.public_key})
    assert verified.signer == "agency-b"
    assert [b.partner for b in verified.message.budgets] == ["agency-a", "agency-c"]
    assert verified.budgets.for_partner("agency-a") == 0
    assert verified.budgets.for_partner("agency-d") == 500


def test_another_key_does_not_verify() -> None:
    policy = MatchPolicyStatement.new(holder="agency-b", number=1, default_daily_budget=1,
                                      budgets={}, created_at=NOW, key=KEY)
    other = SigningKey.generate().public_key
    with pytest.raises(UnknownKeyError):
        MatchPolicyStatement.verify(policy.envelope, {other.key_id: other})


@pytest.mark.parametrize(
    ("budgets", "number", "text"),
    [
        ([("agency-c", 1), ("agency-a", 1)], 1, "sorted"),
        ([("agency-a", 1), ("agency-a", 2)], 1, "sorted, each once"),
        ([("agency-b", 1)], 1, "cannot budget itself"),
        ([("Agency A", 1)], 1, "partner"),
        ([], 0, "no policy number"),
    ],
)
def test_bad_policies_are_refused(budgets: list[tuple[str, int]], number: int, text: str) -> None:
    message = match_pb2.MatchPolicy(
        holder="agency-b", number=number, default_daily_budget=5,
        budgets=[match_pb2.MatchPolicy.PartnerBudget(partner=p, daily_budget=b) for p, b in budgets],
    )
    message.created_at.FromDatetime(NOW)
    with pytest.raises(MalformedError, match=text):
        MatchPolicyStatement.sign(message, KEY)
