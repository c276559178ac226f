"""The offline commands of ``exchange``: ``validate FILE``, ``watchlist show``, ``watchlist match FILE``.

They need no profile and no hub: a draft is parsed and validated, and matched against the
watchlist, entirely on this machine.  Watchlist flags are warnings and identifiers written in a
printed form (``GB82 WEST 1234 ...``) are notices saying which canonical form will be signed:
both are printed but never fail a command.  Exit codes: 0 ok, 1 the draft has errors (every one
is printed), 2 usage.

The watchlist comes from an injectable provider, so the main CLI can hand in the shipped list
merged with the updates a profile has verified; by default it is the shipped list alone.
Everything from a draft is printed as :class:`rich.text.Text`, never parsed as markup.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from exchange import cli_conventions
from exchange.alerts import Draft, FlagReason, Normalisation, Watchlist, WatchlistFlag
from exchange.errors import DraftError, FieldViolation

__all__ = ["WatchlistProvider", "print_notices", "register"]

EXIT_OK = 0
EXIT_ERROR = 1

_REASON_LABELS = {
    FlagReason.LISTED_CAS: "listed CAS RN",
    FlagReason.LISTED_NAME: "listed name",
    FlagReason.RELABELLED: "declared as something else",
    FlagReason.COVER_DESCRIPTION: "known cover description",
}

WatchlistProvider = Callable[[typer.Context], Watchlist]
"""Returns the watchlist to match against; receives the command's context (its ``obj`` holds
whatever the main CLI's callback stored, such as the profile)."""

DraftFile = Annotated[
    Path,
    typer.Argument(
        help="Draft alert, .json or .yaml/.yml", exists=True, dir_okay=False, readable=True
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON (snake_case names) for scripts.")
]


def _shipped_watchlist(context: typer.Context) -> Watchlist:
    return Watchlist.shipped()


def register(app: typer.Typer, *, watchlist_provider: WatchlistProvider | None = None) -> None:
    """Add ``validate`` and the ``watchlist`` group (``show``, ``match``) to ``app``.

    ``watchlist_provider`` supplies the watchlist (default: the shipped list); pass one that
    merges a profile's verified updates with :meth:`Watchlist.merge`.
    """
    provider = watchlist_provider or _shipped_watchlist

    @app.command("validate")
    def validate(context: typer.Context, file: DraftFile, as_json: JsonOption = False) -> None:
        """Check a draft offline: every error is printed (exit 1); watchlist flags are warnings.

        Identifiers may be written as documents print them (an IBAN in groups of four, a BIC in
        lower case, a container number as MSCU 123456-5); each one is shown as a notice with
        the canonical form that publish signs.
        """
        try:
            draft = Draft.from_file(file)
        except DraftError as e:
            _print_errors(e, as_json=as_json)
            raise typer.Exit(EXIT_ERROR) from e
        flags = provider(context).match_draft(draft)
        if as_json:
            _print_json(
                {
                    "valid": True,
                    "file": str(file),
                    "items": len(draft.items),
                    "errors": [],
                    "warnings": [flag.to_dict() for flag in flags],
                    "notices": [_notice_json(notice) for notice in draft.normalisations],
                }
            )
            return
        console = _stdout()
        count = len(draft.items)
        console.print(
            Text(f"{file}: valid ({count} item{'s' if count != 1 else ''})", style="green")
        )
        print_notices(console, draft.normalisations)
        if flags:
            _print_flags(console, flags, title="Watchlist warnings")

    watchlist_app = typer.Typer(
        help="The precursor watchlist: show it, or match a draft against it (offline).",
        no_args_is_help=True,
        rich_markup_mode=None,
    )

    @watchlist_app.command("show")
    def show(context: typer.Context, as_json: JsonOption = False) -> None:
        """List the watchlist entries with their control status and source."""
        watchlist = provider(context)
        if as_json:
            _print_json(watchlist.to_dict())
            return
        console = _stdout()
        table = Table(title=Text(f"Watchlist {watchlist.version}"), title_justify="left")
        for column in ("Substance", "CAS RN", "Control", "Listed by", "Source"):
            table.add_column(column)
        for entry in watchlist.entries:
            table.add_row(
                Text(entry.name),
                Text(entry.cas_rn),
                Text(entry.control_status),
                Text(entry.list_source),
                Text(entry.reference),
            )
        console.print(table)
        for change in watchlist.ignored_changes:
            console.print(Text(f"ignored: {change.message}", style="yellow"))

    @watchlist_app.command("match")
    def match(context: typer.Context, file: DraftFile, as_json: JsonOption = False) -> None:
        """Match a draft against the watchlist; ``--json`` prints a list of flag objects."""
        try:
            draft = Draft.from_file(file)
        except DraftError as e:
            _print_errors(e, as_json=as_json)
            raise typer.Exit(EXIT_ERROR) from e
        flags = provider(context).match_draft(draft)
        if as_json:
            _print_json([flag.to_dict() for flag in flags])
            return
        console = _stdout()
        if not flags:
            console.print(Text(f"{file}: no watchlist matches"))
            return
        _print_flags(console, flags, title=f"{file}: watchlist matches")

    app.add_typer(watchlist_app, name="watchlist")


def _stdout() -> Console:
    # Pipes get a console that never wraps, so that paths and CAS numbers are never cut.
    return cli_conventions.console()


def _print_json(value: object) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def _violations(error: DraftError) -> list[FieldViolation]:
    return error.violations or [FieldViolation("", error.message)]


def _print_errors(error: DraftError, *, as_json: bool) -> None:
    violations = _violations(error)
    if as_json:
        # The report (every error) is the command's output; the failure is also one JSON
        # object on stderr, as for every command run with --json.
        _print_json(
            {
                "valid": False,
                "message": error.message,
                "errors": [
                    {"field": violation.field, "description": violation.description}
                    for violation in violations
                ],
                "warnings": [],
                "notices": [],
            }
        )
        cli_conventions.print_json_error(cli_conventions.error_document(error))
        return
    console = _stdout()
    console.print(Text(error.message, style="bold red"))
    table = Table(show_header=True)
    table.add_column("Field")
    table.add_column("Problem")
    shown, more = cli_conventions.listed(violations)
    for violation in shown:
        table.add_row(Text(violation.field or "(draft)"), Text(violation.description))
    console.print(table)
    if more:
        console.print(Text(f"and {more} more"))


def _notice_json(notice: Normalisation) -> dict[str, str]:
    return {
        "field": notice.field,
        "description": notice.description,
        "original": notice.original,
        "canonical": notice.canonical,
    }


def print_notices(console: Console, notices: Sequence[Normalisation]) -> None:
    """The identifiers a draft gave in a printed form, each with the canonical form signed."""
    for notice in notices:
        console.print(Text(f"notice: {notice}", style="cyan"), soft_wrap=True)


def _print_flags(console: Console, flags: Sequence[WatchlistFlag], *, title: str) -> None:
    table = Table(title=Text(title, style="yellow"), title_justify="left")
    for column in ("Field", "Matched", "Reason", "Substance", "CAS RN", "Control", "Listed by"):
        table.add_column(column)
    for flag in flags:
        table.add_row(
            Text(flag.field),
            Text(flag.matched_text),
            Text(_REASON_LABELS[flag.reason]),
            Text(flag.substance),
            Text(flag.cas_rn),
            Text(flag.control_status),
            Text(flag.list_source),
        )
    console.print(table)
