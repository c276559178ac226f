"""Cooperation reports on both sides of a real exchange (a real hub over mTLS, SQLite and
PostgreSQL): each side verifies its copy of the log and computes the figures from it, and the
figures both can see are the same — the same values, citing the same log indices."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from exchange.audit.cooperation import CooperationReport, Figure
from exchange.config.profile import load_profile
from exchange.errors import InvalidInputError, NotFoundError
from exchange.statements.cooperation import CooperationBundle
from exchange_client import Client, Draft
from exchange_client._internal.report import verify_summary
from tests.conftest import FrozenClock
from tests.integration.test_release_client import clients  # noqa: F401 - the fixture

A, B = "agency-a", "agency-b"
HOUR = 3_600_000_000


def draft(kind: str, title: str, audience: list[str]) -> Draft:
    return Draft.from_dict(
        {
            "kind": kind,
            "title": title,
            "items": [
                {
                    "id": "lead",
                    "policy": {"audience": audience, "release": "IMMEDIATE", "tlp": "AMBER"},
                    "note": {"text": f"{title}: the lead", "language": "en"},
                },
                {
                    "id": "source",
                    "policy": {"audience": audience, "release": "ON_REQUEST", "tlp": "RED"},
                    "note": {"text": f"{title}: the source", "language": "en"},
                },
            ],
        }
    )


def exchange_between(a: Client, b: Client, clock: FrozenClock) -> dict[str, str]:
    """A week of cooperation, with known response times."""
    shipment = a.publish(draft("SHIPMENT", "4-piperidone as cleaning agent", [B])).alert_id
    clock.advance(hours=1)
    b.open(shipment)  # the receipt: one hour after delivery
    first = b.request_release(shipment, "source", reason="to brief customs")
    clock.advance(hours=3)
    a.approve(first.request_id)  # three hours after the request
    funds = a.publish(draft("FUND_FLOW", "USDT to a Tron wallet", [B])).alert_id
    clock.advance(minutes=30)
    b.open(funds)
    denied = b.request_release(funds, "source", reason="asset freeze")
    clock.advance(hours=2)
    a.deny(denied.request_id, reason="source protection")
    clock.advance(hours=20)
    b.feedback(shipment, "SEIZED", note="1.2 t seized at Manzanillo")
    b.request_release(funds, "source", reason="court order")  # left open
    watch = b.publish(draft("WATCHLIST", "A new cover name", [A])).alert_id
    clock.advance(hours=2)
    a.open(watch)
    a.feedback(watch, "INVESTIGATING")
    clock.advance(days=8)  # the open request is now over a week old
    other = a.publish(draft("GENERAL", "For agency-c only", ["agency-c"])).alert_id
    return {"shipment": shipment, "funds": funds, "watch": watch, "other": other}


def by_key(report: CooperationReport) -> dict[tuple[str, str, str, str], Figure]:
    return {figure.key: figure for figure in report.figures}


def test_both_sides_compute_the_same_figures_from_their_own_verified_copies(
    clients: Callable[[str], Client], clock: FrozenClock, hub: object  # noqa: F811
) -> None:
    a, b = clients(A), clients(B)
    exchange_between(a, b, clock)
    hub.checkpoint_now()  # type: ignore[attr-defined]
    ours = a.cooperation_report(partners=[B])
    theirs = b.cooperation_report(partners=[A])
    assert ours.entries_verified > 0 and theirs.entries_verified > 0

    mine, yours = by_key(ours), by_key(theirs)
    assert set(mine) == set(yours)
    for key, figure in mine.items():
        other = yours[key]
        assert (figure.value, figure.unit, figure.log_indices) == (
            other.value, other.unit, other.log_indices
        ), key

    def value(metric: str, giver: str, receiver: str, detail: str = "") -> int:
        return mine[(metric, giver, receiver, detail)].value

    assert value("alerts", A, B, "SHIPMENT") == 1
    assert value("alerts", A, B, "FUND_FLOW") == 1
    assert value("alerts", B, A, "WATCHLIST") == 1
    assert ("alerts", A, B, "GENERAL") not in mine  # the alert to agency-c is not counted
    assert value("items_released_on_request", A, B) == 1
    assert value("approval_time_median", A, B) == 3 * HOUR
    assert value("requests_denied", A, B) == 1
    assert value("open_requests_older_than_a_week", A, B) == 1
    assert value("receipt_time_median", A, B) == HOUR // 2  # nearest rank of 1 h and 30 min
    assert value("receipt_time_p90", A, B) == HOUR
    assert value("feedback_time_median", A, B) == 26 * HOUR + HOUR // 2  # 1 + 3 + 0.5 + 2 + 20 h
    assert value("outcomes_reported", A, B, "SEIZED") == 1
    assert value("outcomes_reported", B, A, "INVESTIGATING") == 1
    for figure in ours.figures:
        assert all(index < ours.checkpoint_size for index in figure.log_indices)


def test_the_signed_summary_verifies_for_the_partner_and_names_the_checkpoint(
    clients: Callable[[str], Client], clock: FrozenClock, hub: object, exchange_dir: Path  # noqa: F811
) -> None:
    a, b = clients(A), clients(B)
    exchange_between(a, b, clock)
    hub.checkpoint_now()  # type: ignore[attr-defined]
    report = a.cooperation_report(partners=[B])
    bundle_bytes = a.sign_cooperation_report(report)
    b_profile = load_profile(exchange_dir / "agencies" / B)
    bundle = verify_summary(
        bundle_bytes,
        partner_cas=b_profile.partner_cas,
        checkpoint_verifier_key=b_profile.checkpoint_verifier_key,
        now=clock(),
    )
    assert isinstance(bundle, CooperationBundle)
    message = bundle.statement.message
    assert (message.agency, list(message.partners)) == (A, [B])
    assert message.checkpoint_size == report.checkpoint_size
    signed = {Figure.from_proto(f).key: Figure.from_proto(f) for f in message.figures}
    assert signed == {f.key: dataclasses.replace(f, samples=()) for f in report.figures}
    # b recomputes from its own copy and gets the figures a signed.
    theirs = by_key(b.cooperation_report(partners=[A]))
    for key, figure in signed.items():
        assert (figure.value, figure.log_indices) == (theirs[key].value, theirs[key].log_indices)


def test_an_unknown_partner_an_empty_period_and_a_quiet_period_are_clear_errors(
    clients: Callable[[str], Client], clock: FrozenClock, hub: object  # noqa: F811
) -> None:
    a, b = clients(A), clients(B)
    start = clock()
    exchange_between(a, b, clock)
    hub.checkpoint_now()  # type: ignore[attr-defined]
    with pytest.raises(InvalidInputError, match="no agreement with 'agency-z'") as unknown:
        a.cooperation_report(partners=["agency-z"])
    assert unknown.value.reason == "UNKNOWN_PARTNER"
    with pytest.raises(InvalidInputError, match="empty") as empty:
        a.cooperation_report(partners=[B], since=start, until=start)
    assert empty.value.reason == "EMPTY_PERIOD"
    with pytest.raises(InvalidInputError, match="nothing between agency-a and agency-b"):
        a.cooperation_report(
            partners=[B], since=start - timedelta(days=30), until=start - timedelta(days=20)
        )
    a.cooperation_report(partners=[B], since=start, until=start + timedelta(days=1))


def test_a_joint_case_is_seen_by_its_members_only_and_a_link_releases_nothing(
    clients: Callable[[str], Client], clock: FrozenClock, hub: object  # noqa: F811
) -> None:
    a, b, c = clients(A), clients(B), clients("agency-c")
    shipment = a.publish(draft("SHIPMENT", "4-piperidone as cleaning agent", [B])).alert_id
    for_c = a.publish(draft("GENERAL", "For agency-c only", ["agency-c"])).alert_id
    case_id = a.cases.open_case("Manzanillo precursor ring", [B]).alert_id
    clock.advance(hours=1)
    b.cases.link(case_id, [shipment])
    a.cases.link(case_id, [for_c])
    b.cases.note(case_id, "Customs hold the container")
    clock.advance(hours=1)
    a.cases.close(case_id, "SEIZED", "1.2 t seized")

    # The link released nothing: b still cannot open the held item.
    assert b.open(shipment).item("source").status == "WITHHELD"
    view = b.cases.show(case_id)
    assert (view.title, view.members, view.status) == (
        "Manzanillo precursor ring", (A, B), "CLOSED"
    )
    assert (view.state.outcome, view.state.closed_by) == ("SEIZED", A)
    linked = {item.link.alert_id: item for item in view.linked}
    assert linked[shipment].visible and linked[shipment].title == "4-piperidone as cleaning agent"
    assert "source" in linked[shipment].detail
    assert not linked[for_c].visible and linked[for_c].title is None
    kinds = [event["event"] for event in view.timeline()]
    assert kinds[0] == "opened" and {"linked", "note", "closed", "publication"} <= set(kinds)
    assert [v.case_id for v in a.cases.list_cases()] == [case_id]
    assert b.cases.list_cases()[0].status == "CLOSED"
    with pytest.raises(InvalidInputError, match="closed by agency-a"):
        b.cases.note(case_id, "too late")

    # agency-c is no member: the case does not exist for it.
    with pytest.raises(NotFoundError, match="no case"):
        c.cases.show(case_id)
    assert c.cases.list_cases() == []

    hub.checkpoint_now()  # type: ignore[attr-defined]
    ours, theirs = by_key(a.cooperation_report(partners=[B])), by_key(b.cooperation_report(partners=[A]))
    for metric in ("joint_cases_opened", "joint_cases_closed"):
        key = (metric, A, B, "")
        assert ours[key].value == theirs[key].value == 1
        assert ours[key].log_indices == theirs[key].log_indices
    assert ours[("alerts", A, B, "SHIPMENT")].value == 1  # the case alerts are not counted as alerts
