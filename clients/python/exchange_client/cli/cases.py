"""``exchange case``: joint cases with partner agencies.

A case is end-to-end encrypted to its members like an alert (the hub sees its id and members,
never its title, notes or links); every link, note and closing is the author's own signed alert
to the other members.  Linking a partner's alert releases nothing: ``show`` shows a linked alert
only as far as this agency can open it itself.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from exchange.alerts.cases import CASE_OUTCOMES
from exchange_client._internal.cases import CaseView
from exchange_client._internal.models import Receipt, rfc3339
from exchange_client.cli.audit import JsonOption, _client, _print_json, _reported, _stdout

__all__ = ["case_app", "register"]

case_app = typer.Typer(
    name="case",
    help=(
        "Joint cases with partner agencies: open one, link alerts, add notes, close it with an "
        "outcome. Only the members see a case; a link releases nothing."
    ),
    no_args_is_help=True,
    rich_markup_mode=None,
)

CaseOutcome = Enum("CaseOutcome", {name: name for name in CASE_OUTCOMES}, type=str)  # type: ignore[misc]

CaseId = Annotated[str, typer.Argument(metavar="CASE_ID", help="The case (its alert id).")]


def register(app: typer.Typer) -> None:
    """Add the ``case`` group to the ``exchange`` application."""
    app.add_typer(case_app, name="case")


def _print_written(receipt: Receipt, json_output: bool, line: str, *, case_id: str) -> None:
    if json_output:
        _print_json({"case_id": case_id, **receipt.to_json()})
    else:
        _stdout().print(Text(line), Text(f"(log index {receipt.log_index})", style="dim"))


@case_app.command("open")
def open_command(
    ctx: typer.Context,
    title: Annotated[str, typer.Option("--title", metavar="TEXT", help="What the case is about.")],
    partner: Annotated[
        list[str],
        typer.Option("--partner", metavar="AGENCY", help="A member agency (repeat for several)."),
    ],
    json_output: JsonOption = False,
) -> None:
    """Open a joint case with partner agencies; prints the case id."""
    with _client(ctx, json_output) as client, _reported(json_output):
        receipt = client.cases.open_case(title, partner)
    members = ", ".join(sorted({client.profile.agency_id, *partner}))
    _print_written(
        receipt,
        json_output,
        f"case {receipt.alert_id} opened with {members}",
        case_id=receipt.alert_id,
    )


@case_app.command("link")
def link_command(
    ctx: typer.Context,
    case_id: CaseId,
    alert_ids: Annotated[
        list[str], typer.Argument(metavar="ALERT_ID...", help="Alerts this agency can see.")
    ],
    json_output: JsonOption = False,
) -> None:
    """Link alerts (this agency's own or received) to the case, by reference.

    Releases nothing: a member sees a linked alert only if it could open it anyway.
    """
    with _client(ctx, json_output) as client, _reported(json_output):
        receipt = client.cases.link(case_id, alert_ids)
    _print_written(
        receipt,
        json_output,
        f"linked {len(alert_ids)} alert(s) to case {case_id}",
        case_id=case_id,
    )


@case_app.command("note")
def note_command(
    ctx: typer.Context,
    case_id: CaseId,
    text: Annotated[str, typer.Argument(metavar="TEXT", help="The note, for every member.")],
    json_output: JsonOption = False,
) -> None:
    """Add a note to the case."""
    with _client(ctx, json_output) as client, _reported(json_output):
        receipt = client.cases.note(case_id, text)
    _print_written(receipt, json_output, f"note added to case {case_id}", case_id=case_id)


@case_app.command("close")
def close_command(
    ctx: typer.Context,
    case_id: CaseId,
    outcome: Annotated[
        CaseOutcome,
        typer.Option("--outcome", help="What came of the case."),
    ],
    note: Annotated[str, typer.Option("--note", metavar="TEXT", help="A closing note.")] = "",
    json_output: JsonOption = False,
) -> None:
    """Close the case with an outcome, for every member."""
    with _client(ctx, json_output) as client, _reported(json_output):
        receipt = client.cases.close(case_id, outcome.value, note)
    _print_written(receipt, json_output, f"case {case_id} closed: {outcome.value}", case_id=case_id)


@case_app.command("list")
def list_command(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """List the cases this agency is a member of."""
    with _client(ctx, json_output) as client, _reported(json_output):
        views = client.cases.list_cases()
    if json_output:
        _print_json([_summary_json(view) for view in views])
        return
    console = _stdout()
    if not views:
        console.print("no joint cases")
        return
    table = Table()
    for column in ("case", "opened", "by", "members", "status", "title"):
        table.add_column(column, no_wrap=column != "title")
    for view in views:
        status = view.status + (f" ({view.state.outcome})" if view.state.outcome else "")
        table.add_row(
            view.case_id,
            rfc3339(view.opened_at) or "",
            view.originator,
            ", ".join(view.members),
            status,
            Text(view.title),
        )
    console.print(table)


def _summary_json(view: CaseView) -> dict[str, object]:
    document = view.to_json()
    return {
        key: document[key]
        for key in ("case_id", "originator", "title", "members", "status", "outcome", "opened_at")
    }


@case_app.command("show")
def show_command(ctx: typer.Context, case_id: CaseId, json_output: JsonOption = False) -> None:
    """Show a case: members, status, and a timeline of its entries and of the linked alerts'
    requests, grants, receipts and feedback, as far as this agency may see them."""
    with _client(ctx, json_output) as client, _reported(json_output):
        view = client.cases.show(case_id)
    if json_output:
        _print_json(view.to_json())
    else:
        _print_case(_stdout(), view)


def _print_case(console: Console, view: CaseView) -> None:
    state = view.state
    console.print(Text(f"case {view.case_id}: {view.title}", style="bold"))
    console.print(Text(f"  opened by {view.originator} at {rfc3339(view.opened_at)}"))
    console.print(Text(f"  members: {', '.join(view.members)}"))
    status = state.status
    if state.closed_by:
        status += f" by {state.closed_by}: {state.outcome}"
    console.print(Text(f"  status: {status}", style="green" if state.status == "OPEN" else ""))
    if view.linked:
        table = Table(title=Text("linked alerts"), title_justify="left")
        for column in ("alert", "originator", "ver", "linked by", "kind", "title", "detail"):
            table.add_column(column, no_wrap=column in ("alert", "originator"))
        for linked in view.linked:
            table.add_row(
                linked.link.alert_id,
                linked.link.originator,
                str(linked.link.version),
                linked.linked_by,
                linked.kind or "-",
                Text(linked.title or "(not visible to this agency)"),
                Text(linked.detail),
            )
        console.print(table)
    timeline = Table(title=Text("timeline"), title_justify="left")
    for column in ("time", "event", "agency", "detail"):
        timeline.add_column(column, no_wrap=column != "detail")
    for event in view.timeline():
        timeline.add_row(
            str(event["time"] or ""),
            str(event["event"]),
            str(event["agency"]),
            Text(str(event["detail"])),
        )
    console.print(timeline)
