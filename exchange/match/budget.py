"""Query budgets and usage: the rules the hub enforces and ``exchange match stats`` shows.

A querier never sees the holder's tokens, so the only way it can test guesses is to ask; the
holder bounds that with a daily budget per partner, counted in selectors (a query of 1,000
selectors is 1,000 guesses) over the UTC day of the hub's clock.  A query that would go over the
budget is refused whole.  A *burst* is a minute in which a partner asked about more than a tenth
of its daily budget: not refused (the budget is the limit), but shown so the holder can see a
partner sweeping its index.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime

__all__ = [
    "BURST_SHARE",
    "DEFAULT_DAILY_BUDGET",
    "MAX_QUERY_SELECTORS",
    "Budgets",
    "DayUsage",
    "QueryCount",
    "day_of",
    "is_burst",
    "usage_by_day",
]

DEFAULT_DAILY_BUDGET = 10_000
"""Selectors a partner may ask a holder about per UTC day while the holder has signed no policy."""

MAX_QUERY_SELECTORS = 10_000
"""Tokens in one query call; the client splits longer lists into several queries."""

BURST_SHARE = 10
"""A minute with more than 1/BURST_SHARE of the daily budget asked is a burst."""


def day_of(moment: datetime) -> date:
    """The UTC day a moment falls on: budgets reset at midnight UTC."""
    if moment.tzinfo is None:
        raise ValueError("pass a timezone-aware datetime")
    return moment.astimezone(UTC).date()


def is_burst(selectors_in_a_minute: int, daily_budget: int) -> bool:
    """Whether a minute with this many selectors asked is a burst for this daily budget."""
    return selectors_in_a_minute * BURST_SHARE > daily_budget


@dataclass(frozen=True)
class Budgets:
    """A holder's daily budgets: one per listed partner, a default for the others."""

    default: int = DEFAULT_DAILY_BUDGET
    partners: Mapping[str, int] | None = None

    def for_partner(self, partner: str) -> int:
        """Selectors ``partner`` may ask about per day."""
        return (self.partners or {}).get(partner, self.default)

    def left(self, partner: str, used_today: int) -> int:
        """What is left of ``partner``'s budget after ``used_today`` selectors."""
        return max(self.for_partner(partner) - used_today, 0)

    def allows(self, partner: str, used_today: int, asking: int) -> bool:
        """Whether a query of ``asking`` selectors fits what is left today."""
        return used_today + asking <= self.for_partner(partner)


@dataclass(frozen=True)
class QueryCount:
    """One answered query, as the hub keeps it: who asked whom, when, how much, how many hit."""

    querier: str
    holder: str
    created_at: datetime
    selectors: int
    hits: int


@dataclass(frozen=True)
class DayUsage:
    """One partner's queries in one direction on one UTC day."""

    partner: str
    direction: str
    """``made`` (this agency asked the partner) or ``received`` (the partner asked it)."""
    day: date
    queries: int
    selectors: int
    hits: int
    daily_budget: int
    peak_minute_selectors: int

    @property
    def budget_left(self) -> int:
        return max(self.daily_budget - self.selectors, 0)

    @property
    def burst(self) -> bool:
        return is_burst(self.peak_minute_selectors, self.daily_budget)


def usage_by_day(
    agency: str,
    counts: Iterable[QueryCount],
    budgets_of: Mapping[str, Budgets],
) -> list[DayUsage]:
    """``agency``'s usage per partner, direction and day, from the queries it made or received.

    ``budgets_of`` maps each holder to its budgets (a holder missing from it has the default).
    Sorted by day (latest first), then direction and partner.
    """
    groups: dict[tuple[date, str, str], list[QueryCount]] = {}
    for count in counts:
        if count.querier == agency:
            key = (day_of(count.created_at), "made", count.holder)
        elif count.holder == agency:
            key = (day_of(count.created_at), "received", count.querier)
        else:
            continue
        groups.setdefault(key, []).append(count)
    usage = []
    for (day, direction, partner), queries in groups.items():
        holder, querier = (partner, agency) if direction == "made" else (agency, partner)
        per_minute: dict[datetime, int] = {}
        for query in queries:
            minute = query.created_at.astimezone(UTC).replace(second=0, microsecond=0)
            per_minute[minute] = per_minute.get(minute, 0) + query.selectors
        usage.append(
            DayUsage(
                partner=partner,
                direction=direction,
                day=day,
                queries=len(queries),
                selectors=sum(q.selectors for q in queries),
                hits=sum(q.hits for q in queries),
                daily_budget=budgets_of.get(holder, Budgets()).for_partner(querier),
                peak_minute_selectors=max(per_minute.values()),
            )
        )
    usage.sort(key=lambda u: (-u.day.toordinal(), u.direction, u.partner))
    return usage
