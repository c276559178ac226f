"""The holder's signed match policy: how many selectors each partner may ask about per day.

The hub enforces the budget, but cannot set it: only a policy signed by the holder changes it,
and every policy is a log entry, so a partner refused for its budget can see the limit it was
held to was the holder's own.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Self

from exchange.crypto.keys import SigningKey
from exchange.errors import ExchangeError, MalformedError
from exchange.match.budget import Budgets
from exchange.pki import check_agency_id
from exchange.statements.release import SignedStatement
from exchange.v1 import match_pb2

MAX_PARTNER_BUDGETS = 1000


def _require(condition: bool, problem: str) -> None:
    if not condition:
        raise MalformedError(f"match policy: {problem}")


def _check_agency(agency_id: str, what: str) -> None:
    try:
        check_agency_id(agency_id)
    except ExchangeError as e:
        raise MalformedError(f"match policy: {what}: {e.message}") from e


class MatchPolicyStatement(SignedStatement[match_pb2.MatchPolicy]):
    """A holder's budgets: a default per partner and day, and budgets for named partners."""

    KIND = "match_policy"
    MESSAGE = match_pb2.MatchPolicy

    @classmethod
    def new(
        cls,
        *,
        holder: str,
        number: int,
        default_daily_budget: int,
        budgets: Mapping[str, int],
        created_at: datetime,
        key: SigningKey,
    ) -> Self:
        """Sign policy ``number`` of ``holder``."""
        message = match_pb2.MatchPolicy(
            holder=holder,
            number=number,
            default_daily_budget=default_daily_budget,
            budgets=[
                match_pb2.MatchPolicy.PartnerBudget(partner=partner, daily_budget=budget)
                for partner, budget in sorted(budgets.items())
            ],
        )
        message.created_at.FromDatetime(created_at)
        return cls.sign(message, key)

    @classmethod
    def signer_field(cls) -> str:
        return "holder"

    @classmethod
    def _check(cls, message: match_pb2.MatchPolicy) -> None:
        _check_agency(message.holder, "holder")
        _require(message.number >= 1, "names no policy number")
        _require(message.HasField("created_at"), "has no creation time")
        _require(len(message.budgets) <= MAX_PARTNER_BUDGETS, "lists too many partners")
        partners = [budget.partner for budget in message.budgets]
        for partner in partners:
            _check_agency(partner, "partner")
        _require(partners == sorted(set(partners)), "partners must be sorted, each once")
        _require(message.holder not in partners, "the holder cannot budget itself")

    @property
    def budgets(self) -> Budgets:
        """The budgets this policy sets."""
        return Budgets(
            default=self.message.default_daily_budget,
            partners={b.partner: b.daily_budget for b in self.message.budgets},
        )
