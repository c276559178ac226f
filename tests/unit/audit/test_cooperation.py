"""The cooperation figures, computed from hand-made verified entries: each figure's value and the
log indices it cites, by the rules of exchange.audit.cooperation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from exchange.audit import leaves
from exchange.audit.cooperation import (
    AlertFacts,
    AlertKey,
    Figure,
    LoggedStatement,
    cooperation_figures,
    iso_week,
    nearest_rank,
)
from exchange.statements.codec import sha256
from exchange.v1 import statements_pb2

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # a Monday
US, CN, MX = "us-dea", "cn-nncc", "mx-fgr"


class Log:
    """Builds a verified log in order: each call appends one entry at T0 + the given hours."""

    def __init__(self) -> None:
        self.entries: list[LoggedStatement] = []
        self.alerts: dict[AlertKey, AlertFacts] = {}
        self.outcomes: dict[int, str] = {}

    def _add(self, hours: float, entry_type: str, message: object, digest: bytes = b"") -> int:
        index = len(self.entries)
        self.entries.append(
            LoggedStatement(index, T0 + timedelta(hours=hours), entry_type, message, digest)  # type: ignore[arg-type]
        )
        return index

    def publish(
        self,
        hours: float,
        originator: str,
        alert_id: str,
        kind: str | None,
        audience: set[str],
        *,
        version: int = 1,
        **facts: object,
    ) -> int:
        manifest = statements_pb2.AlertManifest(
            originator=originator, alert_id=alert_id, version=version
        )
        self.alerts[(originator, alert_id, version)] = AlertFacts(
            kind=kind, audience=frozenset(audience), **facts  # type: ignore[arg-type]
        )
        return self._add(hours, leaves.ALERT_PUBLISHED, manifest)

    def request(self, hours: float, requester: str, originator: str, alert_id: str) -> tuple[int, bytes]:
        message = statements_pb2.ReleaseRequest(
            requester=requester, originator=originator, alert_id=alert_id, version=1,
            item_id="bank", reason=f"request {len(self.entries)}",
        )
        digest = sha256(message.SerializeToString(deterministic=True))
        return self._add(hours, leaves.RELEASE_REQUEST, message, digest), digest

    def decide(self, hours: float, originator: str, request: bytes, *, approve: bool) -> int:
        outcome = statements_pb2.ReleaseDecision.APPROVED if approve else statements_pb2.ReleaseDecision.DENIED
        message = statements_pb2.ReleaseDecision(originator=originator, request_hash=request, outcome=outcome)
        return self._add(hours, leaves.RELEASE_DECISION, message)

    def receipt(self, hours: float, recipient: str, originator: str, alert_id: str, version: int = 1) -> int:
        message = statements_pb2.Receipt(recipient=recipient, originator=originator, alert_id=alert_id, version=version)
        return self._add(hours, leaves.RECEIPT, message)

    def feedback(self, hours: float, recipient: str, originator: str, alert_id: str, outcome: str | None) -> int:
        message = statements_pb2.Feedback(recipient=recipient, originator=originator, alert_id=alert_id, version=1)
        index = self._add(hours, leaves.FEEDBACK, message)
        if outcome is not None:
            self.outcomes[index] = outcome
        return index

    def figures(self, agency: str = US, partners: tuple[str, ...] = (CN,), **period: datetime) -> dict[tuple[str, str, str, str], Figure]:
        as_of = period.pop("as_of", max(e.logged_at for e in self.entries))
        computed = cooperation_figures(
            self.entries, self.alerts, self.outcomes, agency=agency, partners=partners,
            as_of=as_of, **period,
        )
        keys = [figure.key for figure in computed]
        assert len(keys) == len(set(keys)), "two figures share a key"
        return {figure.key: figure for figure in computed}


def value(figures: dict[tuple[str, str, str, str], Figure], metric: str, giver: str, receiver: str,
          detail: str = "") -> tuple[int, tuple[int, ...]]:
    figure = figures[(metric, giver, receiver, detail)]
    return figure.value, figure.log_indices


def test_alerts_are_counted_by_kind_each_way_with_their_publications_cited() -> None:
    log = Log()
    a = log.publish(0, US, "a1", "SHIPMENT", {CN})
    b = log.publish(1, US, "a2", "FUND_FLOW", {CN, MX})
    log.publish(2, US, "a3", "SHIPMENT", {MX})          # not to cn-nncc
    c = log.publish(3, CN, "c1", "WATCHLIST", {US})
    log.publish(4, US, "a1", "SHIPMENT", {CN}, version=2)  # an update, not another alert
    d = log.publish(5, CN, "c2", None, set())            # received, summary not opened
    figures = log.figures()
    assert value(figures, "alerts", US, CN, "SHIPMENT") == (1, (a,))
    assert value(figures, "alerts", US, CN, "FUND_FLOW") == (1, (b,))
    assert value(figures, "alerts", US, CN, "WATCHLIST") == (0, ())
    assert value(figures, "alerts", CN, US, "WATCHLIST") == (1, (c,))
    assert value(figures, "alerts", CN, US, "UNKNOWN") == (1, (d,))
    assert ("alerts", US, CN, "UNKNOWN") not in figures
    assert value(figures, "alerts_per_week", US, CN, iso_week(T0)) == (2, (a, b))


def test_case_alerts_count_as_joint_cases_not_alerts_and_a_close_counts_once() -> None:
    log = Log()
    opened = log.publish(0, US, "case-1", "CASE", {CN}, case_members=frozenset({US, CN}))
    log.publish(1, US, "case-2", "CASE", {MX}, case_members=frozenset({US, MX}))
    log.publish(2, CN, "e1", "CASE_ENTRY", {US}, case=(US, "case-1"))
    closed = log.publish(3, CN, "e2", "CASE_ENTRY", {US}, case=(US, "case-1"), closes_case=True)
    log.publish(4, US, "e3", "CASE_ENTRY", {CN}, case=(US, "case-1"), closes_case=True)
    log.publish(5, MX, "e4", "CASE_ENTRY", {US}, case=(US, "case-1"), closes_case=True)
    figures = log.figures()
    assert value(figures, "joint_cases_opened", CN, US) == (1, (opened,))
    assert value(figures, "joint_cases_closed", CN, US) == (1, (closed,))
    assert all(f.value == 0 for k, f in figures.items() if k[0] == "alerts")


def test_releases_denials_and_approval_times_are_measured_from_request_to_decision() -> None:
    log = Log()
    log.publish(0, CN, "c1", "SHIPMENT", {US})
    r1, h1 = log.request(1, US, CN, "c1")
    r2, h2 = log.request(2, US, CN, "c1")
    r3, h3 = log.request(3, US, CN, "c1")
    d1 = log.decide(2, CN, h1, approve=True)      # 1 h
    d2 = log.decide(6, CN, h2, approve=True)      # 4 h
    d3 = log.decide(4, CN, h3, approve=False)
    log.request(5, CN, US, "a-never-published")   # the other way
    figures = log.figures()
    assert value(figures, "items_released_on_request", CN, US) == (2, (r1, r2, d1, d2))
    hour = 3_600_000_000
    assert value(figures, "approval_time_median", CN, US) == (hour, (r1, r2, d1, d2))
    assert value(figures, "approval_time_p90", CN, US) == (4 * hour, (r1, r2, d1, d2))
    assert value(figures, "requests_denied", CN, US) == (1, (r3, d3))
    assert value(figures, "requests_denied", US, CN) == (0, ())
    assert ("approval_time_median", US, CN, "") not in figures


def test_an_open_request_is_stale_after_a_week_measured_at_as_of_never_the_wall_clock() -> None:
    log = Log()
    old, _ = log.request(0, US, CN, "c1")
    log.request(24 * 6, US, CN, "c1")
    answered, digest = log.request(1, US, CN, "c1")
    log.decide(24 * 8, CN, digest, approve=False)
    at = T0 + timedelta(days=7, hours=12)
    assert value(log.figures(as_of=at), "open_requests_older_than_a_week", CN, US) == (
        2, (old, answered)
    )
    assert value(log.figures(), "open_requests_older_than_a_week", CN, US) == (1, (old,))


def test_receipt_and_feedback_times_take_the_first_of_each_and_outcomes_count_every_report() -> None:
    log = Log()
    p1 = log.publish(0, US, "a1", "SHIPMENT", {CN})
    p2 = log.publish(10, US, "a2", "SHIPMENT", {CN})
    r1 = log.receipt(2, CN, US, "a1")
    log.receipt(3, CN, US, "a1")                     # a second receipt: more items opened
    r2 = log.receipt(11, CN, US, "a2")
    f1 = log.feedback(20, CN, US, "a1", "INVESTIGATING")
    f2 = log.feedback(30, CN, US, "a1", "SEIZED")
    f3 = log.feedback(31, CN, US, "a2", None)         # this side cannot read it
    log.receipt(12, MX, US, "a2")                    # another recipient
    figures = log.figures()
    hour = 3_600_000_000
    assert value(figures, "receipt_time_median", US, CN) == (hour, (p1, p2, r1, r2))
    assert value(figures, "receipt_time_p90", US, CN) == (2 * hour, (p1, p2, r1, r2))
    assert value(figures, "feedback_time_median", US, CN) == (20 * hour, (p1, p2, f1, f3))
    assert value(figures, "outcomes_reported", US, CN, "SEIZED") == (1, (f2,))
    assert value(figures, "outcomes_reported", US, CN, "INVESTIGATING") == (1, (f1,))
    assert value(figures, "outcomes_reported", US, CN, "UNKNOWN") == (1, (f3,))
    assert value(figures, "outcomes_reported", US, CN, "FALSE_POSITIVE") == (0, ())


def test_the_period_takes_entries_by_log_time_and_a_duration_by_the_entry_that_ends_it() -> None:
    log = Log()
    p1 = log.publish(0, US, "a1", "SHIPMENT", {CN})
    p2 = log.publish(48, US, "a2", "SHIPMENT", {CN})
    r1 = log.receipt(49, CN, US, "a1")
    log.receipt(100, CN, US, "a2")
    since, until = T0 + timedelta(hours=24), T0 + timedelta(hours=72)
    figures = log.figures(since=since, until=until)
    assert value(figures, "alerts", US, CN, "SHIPMENT") == (1, (p2,))
    assert value(figures, "receipt_time_median", US, CN) == (49 * 3_600_000_000, (p1, r1))


def test_both_sides_compute_the_same_figures_from_what_each_may_read() -> None:
    """us-dea reads its own statements and cn-nncc's about their exchange; cn-nncc the same,
    and neither reads mx-fgr's: the figures between the two are equal."""
    log = Log()
    log.publish(0, US, "a1", "SHIPMENT", {CN, MX})
    log.receipt(1, CN, US, "a1")
    log.receipt(1.5, MX, US, "a1")
    _, digest = log.request(2, CN, US, "a1")
    log.decide(3, US, digest, approve=True)
    log.feedback(4, CN, US, "a1", "SEIZED")
    log.publish(5, CN, "c1", "FUND_FLOW", {US})
    log.receipt(6, US, CN, "c1")

    def readable_by(agency: str) -> Log:
        view = Log()
        for entry in log.entries:
            message = entry.message
            parties = {getattr(message, name, "") for name in ("originator", "recipient", "requester")}
            if entry.entry_type == leaves.ALERT_PUBLISHED:
                parties |= log.alerts[(message.originator, message.alert_id, message.version)].audience  # type: ignore[attr-defined]
            if entry.entry_type == leaves.RELEASE_DECISION or agency in parties:
                view.entries.append(entry)
        view.alerts = dict(log.alerts)
        view.outcomes = dict(log.outcomes)
        return view

    ours = readable_by(US).figures(US, (CN,), as_of=log.entries[-1].logged_at)
    theirs = readable_by(CN).figures(CN, (US,), as_of=log.entries[-1].logged_at)
    assert ours == theirs
    assert {k: (f.value, f.log_indices) for k, f in ours.items()} == {
        k: (f.value, f.log_indices) for k, f in theirs.items()
    }


@pytest.mark.parametrize(
    ("samples", "percent", "expected"),
    [
        pytest.param([5], 50, 5, id="one sample"),
        pytest.param([4, 1, 3, 2], 50, 2, id="even count: the lower middle"),
        pytest.param([1, 2, 3], 50, 2, id="odd count: the middle"),
        pytest.param(list(range(1, 11)), 90, 9, id="ten samples: the ninth"),
        pytest.param(list(range(1, 12)), 90, 10, id="eleven samples: rank 10"),
    ],
)
def test_percentiles_are_nearest_rank(samples: list[int], percent: int, expected: int) -> None:
    assert nearest_rank(samples, percent) == expected


def test_a_figure_round_trips_through_its_signed_form() -> None:
    figure = Figure("alerts", US, CN, 3, detail="SHIPMENT", log_indices=(1, 4, 9))
    assert Figure.from_proto(figure.to_proto()) == figure
    assert figure.to_json()["log_indices"] == [1, 4, 9]
