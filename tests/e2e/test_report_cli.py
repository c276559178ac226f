"""``exchange report`` against a real hub (``exchange-hub serve`` in a subprocess, SQLite and
PostgreSQL), driven by the real CLI: both agencies' reports agree, the signed summary verifies
for the partner and fails when altered, and bad input or a tampered log never yields a report."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from exchange.v1 import statements_pb2
from tests.e2e.test_audit_cli import VERIFICATION_FAILED, AuditedExchange, change_leaf

A, B = "agency-a", "agency-b"


def cooperate(exchange: AuditedExchange) -> dict[str, Any]:
    """agency-a publishes to agency-b, which opens it and reports an outcome."""
    receipt = exchange.publish(A, (B,))
    exchange.run("show", receipt["alert_id"], agency=B)
    exchange.run("feedback", receipt["alert_id"], "--outcome", "SEIZED", agency=B)
    exchange.run("audit", "checkpoint", agency=A)
    return receipt


def figures(report: dict[str, Any]) -> dict[tuple[str, ...], tuple[int, list[int]]]:
    return {
        (f["metric"], f["from_agency"], f["to_agency"], f["detail"]): (f["value"], f["log_indices"])
        for f in report["figures"]
    }


def test_both_agencies_reports_agree_and_the_html_has_its_plots(
    exchange: AuditedExchange, tmp_path: Path
) -> None:
    receipt = cooperate(exchange)
    ours = json.loads(exchange.run("report", "--partner", B, "--format", "json", agency=A).stdout)
    theirs = json.loads(exchange.run("report", "--partner", A, "--format", "json", agency=B).stdout)
    assert figures(ours) == figures(theirs)
    shipment = figures(ours)[("alerts", A, B, "SHIPMENT")]
    assert shipment == (1, [receipt["log_index"]])
    assert figures(ours)[("outcomes_reported", A, B, "SEIZED")][0] == 1
    text = exchange.run("report", "--partner", B, agency=A).stdout
    assert "Alerts given: shipment" in text and f"{A} → {B}" in text
    page = tmp_path / "report.html"
    exchange.run("report", "--format", "html", "--output", str(page), agency=A)
    html = page.read_text(encoding="utf-8")
    # Every partner in the profile (agency-b and agency-c), five plots each.
    assert html.count("<svg") == 10 and "<script" not in html


def test_the_signed_summary_verifies_for_the_partner_and_an_altered_one_exits_3(
    exchange: AuditedExchange, tmp_path: Path
) -> None:
    cooperate(exchange)
    summary = tmp_path / "summary.json"
    exchange.run("report", "--partner", B, "--sign", "--output", str(summary), agency=A)
    verified = exchange.json("report", "verify", str(summary), agency=B)
    assert verified["verified"] is True and verified["agency"] == A
    assert ("alerts", A, B, "SHIPMENT") in figures(verified)
    printed = exchange.run("report", "verify", str(summary), agency=B).stdout
    assert "verified: signed by agency-a" in printed

    document = json.loads(summary.read_text())
    payload = statements_pb2.CooperationSummary.FromString(
        base64.b64decode(document["statement"]["payload"])
    )
    payload.figures[0].value += 1
    document["statement"]["payload"] = base64.b64encode(
        payload.SerializeToString(deterministic=True)
    ).decode()
    altered = tmp_path / "altered.json"
    altered.write_text(json.dumps(document))
    failed = exchange.run("report", "verify", str(altered), agency=B, expect=VERIFICATION_FAILED)
    assert "verification failed" in failed.stderr and failed.stdout == ""


def test_bad_input_gets_a_clear_message_and_a_tampered_log_no_report(
    exchange: AuditedExchange,
) -> None:
    receipt = cooperate(exchange)
    unknown = exchange.run("report", "--partner", "agency-z", agency=A, expect=1)
    assert "no agreement with 'agency-z'" in unknown.stderr
    empty = exchange.run("report", "--since", "2026-01-02", "--until", "2026-01-01", agency=A, expect=1)
    assert "empty" in empty.stderr
    quiet = exchange.run("report", "--since", "2001-01-01", "--until", "2001-01-31", agency=A, expect=1)
    assert "nothing between agency-a and agency-b" in quiet.stderr
    bad_date = exchange.run("report", "--since", "last tuesday", agency=A, expect=2)
    assert "--since" in bad_date.stderr

    target = receipt["log_index"]
    change_leaf(exchange, target)
    tampered = exchange.run("report", "--partner", A, agency=B, expect=VERIFICATION_FAILED)
    assert f"entry {target}" in tampered.stderr and "ROOT_MISMATCH" in tampered.stderr
    assert tampered.stdout == ""


def test_joint_case_commands_for_members_and_a_non_member(exchange: AuditedExchange) -> None:
    receipt = cooperate(exchange)
    opened = exchange.json(
        "case", "open", "--title", "Manzanillo ring", "--partner", B, agency=A
    )
    case_id = opened["alert_id"]
    exchange.run("case", "link", case_id, receipt["alert_id"], agency=B)
    exchange.run("case", "note", case_id, "Customs hold the container", agency=B)
    listed = exchange.json("case", "list", agency=B)
    assert [(c["case_id"], c["status"], c["members"]) for c in listed] == [
        (case_id, "OPEN", [A, B])
    ]
    exchange.run("case", "close", case_id, "--outcome", "SEIZED", agency=A)
    shown = exchange.json("case", "show", case_id, agency=B)
    assert (shown["status"], shown["outcome"], shown["closed_by"]) == ("CLOSED", "SEIZED", A)
    assert [linked["alert_id"] for linked in shown["linked_alerts"]] == [receipt["alert_id"]]
    assert {"opened", "linked", "note", "closed"} <= {e["event"] for e in shown["timeline"]}
    printed = exchange.run("case", "show", case_id, agency=A).stdout
    assert "Manzanillo ring" in printed and "CLOSED by agency-a: SEIZED" in printed
    outsider = exchange.run("case", "show", case_id, agency="agency-c", expect=1)
    assert "no case" in outsider.stderr
    bad = exchange.run("case", "close", case_id, "--outcome", "MAYBE", agency=A, expect=2)
    assert "MAYBE" in bad.stderr
