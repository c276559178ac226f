"""Readable output of the ``exchange`` CLI: tables and indented text, never markup from data.

Everything that comes from an alert is printed as :class:`rich.text.Text` (which strips control
characters) and never parsed as rich markup, so a payload cannot restyle or hide what an operator
reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from exchange_client._internal.models import (
    AgencyInfo,
    DeliveryRecord,
    FeedEvent,
    InboxEntry,
    ItemPolicy,
    OpenedAlert,
    OpenedItem,
    Receipt,
    ReleaseRequest,
    StatementResult,
    payload_to_json,
    rfc3339,
)

STATUS_STYLES = {
    "VISIBLE": "green",
    "WITHHELD": "yellow",
    "EMBARGOED": "yellow",
    "REVOKED": "red",
    "EXPIRED": "dim",
    "INVALID": "bold red",
}


def _plain(console: Console, text: str, *, style: str = "") -> None:
    console.print(Text(text, style=style), soft_wrap=True)


def policy_line(policy: ItemPolicy) -> str:
    """``audience agency-b · IMMEDIATE · TLP:AMBER · H2 · expires 2025-…``."""
    parts = [f"audience {', '.join(policy.audience) if policy.audience else '(originator only)'}"]
    if policy.release:
        parts.append(policy.release)
    if policy.embargo_until is not None:
        parts.append(f"embargo until {rfc3339(policy.embargo_until)}")
    if policy.tlp:
        parts.append(f"TLP:{policy.tlp}")
    if policy.handling:
        parts.append(" ".join(policy.handling))
    if policy.expires_at is not None:
        parts.append(f"expires {rfc3339(policy.expires_at)}")
    return " · ".join(parts)


def _value_lines(value: Any, indent: int) -> list[str]:
    pad = "  " * indent
    if isinstance(value, dict):
        lines = []
        for key, inner in value.items():
            if isinstance(inner, (dict, list)):
                lines.append(f"{pad}{key}:")
                lines += _value_lines(inner, indent + 1)
            else:
                lines.append(f"{pad}{key}: {inner}")
        return lines
    if isinstance(value, list):
        lines = []
        for inner in value:
            if isinstance(inner, (dict, list)):
                nested = _value_lines(inner, indent + 1)
                lines.append(f"{pad}- {nested[0].strip()}" if nested else f"{pad}-")
                lines += nested[1:]
            else:
                lines.append(f"{pad}- {inner}")
        return lines
    return [f"{pad}{value}"]


def print_receipt(console: Console, receipt: Receipt) -> None:
    """What ``publish`` prints."""
    _plain(console, f"published alert {receipt.alert_id} version {receipt.version}", style="bold")
    _plain(console, f"  manifest sha256 {receipt.manifest_hash.hex()}")
    _plain(console, f"  log index {receipt.log_index}, accepted {rfc3339(receipt.accepted_at)}")
    notified = ", ".join(receipt.notified) if receipt.notified else "nobody"
    _plain(console, f"  notified: {notified}")


def print_flags(console: Console, flags: Sequence[str]) -> None:
    """Watchlist matches, as warnings."""
    for flag in flags:
        _plain(console, f"warning: watchlist: {flag}", style="yellow")


def print_item(console: Console, item: OpenedItem) -> None:
    """One item of ``show``: id, status, policy, then its payload or why there is none."""
    line = Text()
    line.append(item.id, style="bold")
    line.append("  ")
    line.append(item.status, style=STATUS_STYLES.get(item.status, ""))
    console.print(line, soft_wrap=True)
    _plain(console, f"  {policy_line(item.policy)}")
    if item.detail:
        _plain(console, f"  {item.detail}", style="red" if item.status == "INVALID" else "dim")
    if item.status == "VISIBLE" and item.payload is not None:
        for text in _value_lines(payload_to_json(item.payload), 2):
            _plain(console, text)
    for flag in item.flags:
        _plain(console, f"  warning: watchlist: {flag}", style="yellow")


def print_alert(console: Console, alert: OpenedAlert) -> None:
    """What ``show`` prints: a header from the summary, then every item."""
    _plain(console, alert.title or "(summary not available)", style="bold")
    header = [
        f"kind {alert.kind or '?'}",
        f"grading {alert.grading or '?'}",
        f"originator {alert.originator}",
        f"version {alert.version}",
    ]
    if alert.versions:
        header[-1] += f" of {', '.join(str(v) for v in alert.versions)}"
    _plain(console, " · ".join(header))
    _plain(console, f"alert {alert.alert_id} · published {rfc3339(alert.published_at)}")
    if alert.operator:
        _plain(console, f"operator {alert.operator}")
    _plain(console, f"manifest sha256 {alert.manifest_hash.hex()}", style="dim")
    if alert.summary_detail:
        _plain(console, f"summary invalid: {alert.summary_detail}", style="red")
    if alert.retracted:
        _plain(console, "this alert is RETRACTED", style="bold red")
    if alert.untrusted:
        _plain(console, f"UNTRUSTED: {alert.untrusted_reason}", style="bold red")
    for item in alert.items:
        console.print()
        print_item(console, item)


def print_inbox(console: Console, entries: Sequence[InboxEntry]) -> None:
    """What ``inbox`` prints: one row per alert version."""
    if not entries:
        _plain(console, "no alerts")
        return
    table = Table(show_lines=False)
    table.add_column("originator", no_wrap=True)
    table.add_column("alert", no_wrap=True, min_width=36)
    table.add_column("ver", justify="right")
    table.add_column("published", no_wrap=True)
    table.add_column("kind")
    table.add_column("title")
    table.add_column("items readable", justify="right", no_wrap=True)
    for entry in entries:
        title = Text(entry.title or "")
        if entry.problem:
            title = Text(entry.problem, style="red")
        if entry.retracted:
            title.append(" (retracted)", style="dim")
        if entry.untrusted:
            title = Text("UNTRUSTED ", style="bold red") + title
        table.add_row(
            Text(entry.originator),
            Text(entry.alert_id),
            str(entry.version),
            rfc3339(entry.published_at) or "",
            Text(entry.kind or ""),
            title,
            f"{entry.items_granted} of {entry.items_total}",
        )
    console.print(table)
    _plain(
        console,
        "items readable: how many of the alert's items this agency can open now (a key was "
        "released to it), of all its items; the others are held, embargoed, revoked or "
        "addressed to other agencies",
        style="dim",
    )


def print_agencies(console: Console, agencies: Sequence[AgencyInfo]) -> None:
    """What ``agencies`` prints: ids, key numbers, fingerprints, and what failed to verify."""
    table = Table()
    table.add_column("agency", no_wrap=True)
    table.add_column("key", justify="right")
    table.add_column("signing key", no_wrap=True)
    table.add_column("encryption key", no_wrap=True)
    table.add_column("status")
    for agency in agencies:
        if agency.revoked:
            status = Text("revoked", style="red")
        elif agency.verified:
            status = Text("verified", style="green")
        else:
            status = Text("NOT VERIFIED", style="bold red")
        if agency.problem:
            status.append(f": {agency.problem}")
        table.add_row(
            Text(agency.agency_id),
            str(agency.key_number or "-"),
            agency.signing_key_fingerprint or "-",
            agency.encryption_key_fingerprint or "-",
            status,
        )
    console.print(table)


def print_event(console: Console, event: FeedEvent) -> None:
    """One line of ``watch``."""
    if event.is_heartbeat:
        _plain(console, f"heartbeat: feed at {event.sequence}", style="dim")
        return
    parts = [f"#{event.sequence}", event.kind]
    if event.originator or event.alert_id:
        parts.append(f"{event.originator} {event.alert_id} v{event.version}")
    if event.item_id:
        parts.append(f"item {event.item_id}")
    if event.actor:
        parts.append(f"by {event.actor}")
    if event.request_id:
        parts.append(f"request {event.request_id}")
    parts.append(f"at {rfc3339(event.created_at)}")
    _plain(console, " ".join(parts))


def print_request_made(console: Console, request: ReleaseRequest) -> None:
    """What ``request`` prints."""
    _plain(console, f"requested: item {request.item_id} of alert {request.alert_id}", style="bold")
    _plain(console, f"  request id {request.request_id}")
    _plain(console, f"  from {request.originator}, for {request.target}")


def print_requests(console: Console, requests: Sequence[ReleaseRequest]) -> None:
    """What ``requests`` prints: one row per request."""
    if not requests:
        _plain(console, "no release requests")
        return
    table = Table()
    table.add_column("request", no_wrap=True)
    table.add_column("alert", no_wrap=True, min_width=36)
    table.add_column("item")
    table.add_column("requester", no_wrap=True)
    table.add_column("for", no_wrap=True)
    table.add_column("reason")
    table.add_column("status", no_wrap=True)
    for request in requests:
        status = Text(request.status)
        if request.decision_reason:
            status.append(f": {request.decision_reason}")
        table.add_row(
            Text(request.request_id),
            Text(request.alert_id),
            Text(request.item_id),
            Text(request.requester),
            Text(request.target),
            Text(request.reason),
            status,
        )
    console.print(table)


def print_statement_result(console: Console, result: StatementResult, line: str) -> None:
    """What ``approve``, ``deny``, ``revoke``, ``retract`` and ``feedback`` print."""
    _plain(console, line, style="bold")
    _plain(console, f"  alert {result.alert_id} version {result.version}, log index {result.log_index}")


def print_delivery_records(console: Console, records: Sequence[DeliveryRecord]) -> None:
    """What ``receipts`` prints: receipts, purge acknowledgements and feedback."""
    if not records:
        _plain(console, "no receipts, acknowledgements or feedback yet")
        return
    for record in records:
        when = rfc3339(record.created_at)
        if record.kind == "RECEIPT":
            opened = ", ".join(record.opened) or "nothing"
            _plain(console, f"receipt from {record.agency} (v{record.version}, {when}): opened {opened}")
            if record.withheld:
                _plain(console, f"  withheld from it: {', '.join(record.withheld)}", style="yellow")
        elif record.kind == "PURGE_ACK":
            _plain(console, f"purge acknowledged by {record.agency}: {record.item_id} (v{record.version}, {when})")
        else:
            note = f": {record.note}" if record.note else ""
            _plain(console, f"feedback from {record.agency} (v{record.version}, {when}): {record.outcome}{note}")
