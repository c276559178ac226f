"""``exchange``: the operator's command line for one agency.

Global options come before the command (``exchange --profile DIR --hub HOST:PORT inbox``),
``--json`` after it.  Exit codes (DESIGN §12): 0 ok, 1 error, 2 usage, 3 verification failed,
4 not permitted.  An :class:`ExchangeError` is printed as one line on stderr saying what went
wrong and what to do, never as a traceback.  Only this module reads the environment
(``EXCHANGE_PROFILE``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from exchange.alerts.draft import Draft
from exchange.alerts.watchlist import Watchlist
from exchange.config.profile import ProfileConfig, parse_host_port
from exchange.errors import (
    ConfigurationError,
    ExchangeError,
    InvalidInputError,
    NotAuthenticatedError,
    NotPermittedError,
    VerificationError,
)
from exchange_client._internal.client import Client
from exchange_client._internal.models import StatementResult
from exchange_client._internal.profile import Profile
from exchange_client._internal.watchlist_updates import WatchlistUpdates
from exchange_client.cli import _render
from exchange_client.cli.audit import register as register_audit_commands
from exchange_client.cli.cases import register as register_case_commands
from exchange_client.cli.interop import register as register_interop_commands
from exchange_client.cli.offline import print_notices
from exchange_client.cli.offline import register as register_offline_commands
from exchange_client.cli.report import register as register_report_commands

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_VERIFICATION_FAILED = 3
EXIT_NOT_PERMITTED = 4

PROFILE_ENV = "EXCHANGE_PROFILE"

app = typer.Typer(
    name="exchange",
    help=(
        "Share signed, end-to-end encrypted alerts with partner agencies through the exchange "
        "hub. Global options go before the command; --json goes after it."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON (snake_case names) for scripts.")
]


@dataclass(frozen=True)
class _GlobalOptions:
    profile: Path | None
    hub: str | None


def _stdout() -> Console:
    # Pipes get a wide console so that ids in tables are never cut.
    return Console(highlight=False, width=None if sys.stdout.isatty() else 200)


def _stderr() -> Console:
    return Console(stderr=True, highlight=False)


def exit_code_for(error: ExchangeError) -> int:
    """The process exit code for an error: 3 tampering, 4 refused identity or permission, else 1."""
    if isinstance(error, VerificationError):
        return EXIT_VERIFICATION_FAILED
    if isinstance(error, (NotPermittedError, NotAuthenticatedError)):
        return EXIT_NOT_PERMITTED
    return EXIT_ERROR


def describe_error(error: ExchangeError) -> str:
    """The error as printed: what failed, and for some families what to do next."""
    if isinstance(error, VerificationError):
        text = f"verification failed ({error.reason}): {error.message}"
    elif isinstance(error, NotAuthenticatedError):
        text = (
            f"not authenticated: {error.message}; check that this profile's agency is registered "
            "with the hub and not revoked"
        )
    elif isinstance(error, NotPermittedError):
        text = f"not permitted: {error.message}"
    else:
        text = f"error: {error.message}"
    if isinstance(error, InvalidInputError):
        text += "".join(f"\n  {violation}" for violation in error.violations)
    return text


def _fail(message: str, code: int) -> NoReturn:
    _stderr().print(message, markup=False, soft_wrap=True, style="red")
    raise typer.Exit(code)


@contextmanager
def _reported_errors() -> Iterator[None]:
    try:
        yield
    except ExchangeError as e:
        _fail(describe_error(e), exit_code_for(e))


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False) + "\n")
    sys.stdout.flush()


@contextmanager
def _client(ctx: typer.Context) -> Iterator[Client]:
    options: _GlobalOptions = ctx.obj
    if options.profile is None:
        _fail(f"no profile: pass --profile DIR or set {PROFILE_ENV}", EXIT_USAGE)
    with _reported_errors():
        profile = Profile.load(options.profile)
        with Client(profile, hub=options.hub) as client:
            yield client


def _check_hub(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        _, port = parse_host_port(value)
    except ConfigurationError as e:
        raise typer.BadParameter(e.message) from e
    if port == 0:
        raise typer.BadParameter(f"{value!r} needs a real port")
    return value


@app.callback()
def _global_options(
    ctx: typer.Context,
    profile: Annotated[
        Path | None,
        typer.Option(
            "--profile",
            envvar=PROFILE_ENV,
            metavar="DIR",
            help=f"The agency profile directory (default: ${PROFILE_ENV}).",
        ),
    ] = None,
    hub: Annotated[
        str | None,
        typer.Option(
            "--hub",
            metavar="HOST:PORT",
            callback=_check_hub,
            help="The hub's address, overriding the profile's hub_address.",
        ),
    ] = None,
) -> None:
    """Global options, read before any command runs."""
    ctx.obj = _GlobalOptions(profile=profile, hub=hub)


@app.command()
def publish(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(metavar="FILE", help="The draft alert, JSON or YAML.")],
    supersedes: Annotated[
        str | None,
        typer.Option(
            "--supersedes",
            metavar="ALERT_ID",
            help="Publish as the next version of this alert (one of this agency's own).",
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Validate, sign, encrypt and publish a draft alert.

    Each item is encrypted for the agencies in its audience only. Identifiers written in a
    printed form are published in their canonical form, each shown as a notice; watchlist
    matches are printed as warnings. An interrupted publish is kept in the profile and retried
    by `exchange resend`.
    """
    with _reported_errors():
        draft = Draft.from_file(file)
    print_notices(_stderr(), draft.normalisations)
    with _client(ctx) as client, _reported_errors():
        receipt = client.publish(draft, supersedes=supersedes)
    if json_output:
        _print_json(receipt.to_json())
    else:
        _render.print_receipt(_stdout(), receipt)
        _render.print_flags(_stderr(), receipt.flags)


@app.command()
def resend(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Send again the sealed alerts an interrupted publish left in the profile's outbox.

    The very same bytes are sent, so the hub answers with the receipt of the first delivery if
    that one had arrived.
    """
    with _client(ctx) as client, _reported_errors():
        receipts = client.flush_outbox()
    if json_output:
        _print_json([receipt.to_json() for receipt in receipts])
        return
    console = _stdout()
    if not receipts:
        console.print("the outbox is empty")
    for receipt in receipts:
        _render.print_receipt(console, receipt)


@app.command()
def inbox(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """List the alerts addressed to this agency, with their verified titles."""
    with _client(ctx) as client, _reported_errors():
        entries = client.inbox()
    if json_output:
        _print_json([entry.to_json() for entry in entries])
    else:
        _render.print_inbox(_stdout(), entries)


@app.command()
def show(
    ctx: typer.Context,
    alert_id: Annotated[str, typer.Argument(metavar="ALERT_ID", help="The alert to show.")],
    version: Annotated[
        int | None,
        typer.Option("--version", min=1, metavar="N", help="This version (default: the latest)."),
    ] = None,
    originator: Annotated[
        str | None,
        typer.Option(
            "--originator",
            metavar="AGENCY_ID",
            help="The originating agency, if two agencies used the same alert id.",
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Verify, decrypt and show one alert: every item with its policy and status.

    Status is VISIBLE (decrypted and valid), WITHHELD, EMBARGOED, REVOKED, EXPIRED or INVALID
    (decrypted but failing validation). Exit code 3 if anything fails to verify.
    """
    with _client(ctx) as client, _reported_errors():
        alert = client.open(alert_id, originator=originator, version=version)
    if json_output:
        _print_json(alert.to_json())
    else:
        _render.print_alert(_stdout(), alert)


@app.command()
def watch(
    ctx: typer.Context,
    after: Annotated[
        int | None,
        typer.Option(
            "--after",
            min=0,
            metavar="N",
            help="Start after this sequence number (default: the profile's saved cursor).",
        ),
    ] = None,
    count: Annotated[
        int | None,
        typer.Option("--count", min=1, metavar="N", help="Stop after N events."),
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="Stop after one event.")] = False,
    heartbeats: Annotated[
        bool, typer.Option("--heartbeats", help="Also print the hub's heartbeats.")
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON object per line.")
    ] = False,
) -> None:
    """Print this agency's feed events as they arrive, until Ctrl-C.

    Catches up from the saved cursor (or --after), then waits for new events. The cursor is
    saved as each printed event is done with, so the next `watch` starts where this one ended.
    A missing event (the hub withheld one) stops with exit code 3.
    """
    limit = 1 if once else count
    console = _stdout()
    with _client(ctx) as client, _reported_errors():
        subscription = client.subscribe(after, heartbeats=heartbeats)
        printed = 0
        try:
            # Leaving the block normally saves the cursor for the last event printed; an
            # exception while printing leaves that event to be delivered again.
            with subscription:
                for event in subscription:
                    if json_output:
                        _print_json(event.to_json())
                    else:
                        _render.print_event(console, event)
                    if event.kind == "ITEM_REVOKED":
                        # The client keeps no plaintext or keys: acknowledging is all to do.
                        client.acknowledge_purge(
                            event.alert_id,
                            event.item_id,
                            originator=event.originator,
                            version=event.version,
                        )
                    if not event.is_heartbeat:
                        printed += 1
                    if limit is not None and printed >= limit:
                        break
        except KeyboardInterrupt:
            # Interrupted while waiting: every event printed was already saved.
            pass


@app.command()
def agencies(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """List the agencies on the hub with their key fingerprints.

    Each agency's keys are verified against its CA certificate in this profile, never the hub's
    copy; compare fingerprints with the partner out of band.
    """
    with _client(ctx) as client, _reported_errors():
        found = client.agencies()
    if json_output:
        _print_json([agency.to_json() for agency in found])
    else:
        _render.print_agencies(_stdout(), found)


ReasonOption = Annotated[
    str, typer.Option("--reason", metavar="TEXT", help="Why: recorded, signed, shown to the other side.")
]


@app.command()
def request(
    ctx: typer.Context,
    alert_id: Annotated[str, typer.Argument(metavar="ALERT_ID", help="The alert.")],
    item_id: Annotated[str, typer.Argument(metavar="ITEM_ID", help="The withheld item.")],
    reason: ReasonOption,
    for_agency: Annotated[
        str | None,
        typer.Option(
            "--for",
            metavar="AGENCY",
            help="Ask for the item to go onward to this agency instead of to us.",
        ),
    ] = None,
    originator: Annotated[
        str | None,
        typer.Option("--originator", metavar="AGENCY_ID", help="The alert's originator."),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Ask the originator to release a withheld item (to us, or onward with --for).

    Sends a signed request naming the alert version's manifest; the originator sees it with
    `exchange requests` and answers with `exchange approve` or `exchange deny`.
    """
    with _client(ctx) as client, _reported_errors():
        made = client.request_release(
            alert_id, item_id, reason=reason, for_agency=for_agency, originator=originator
        )
    if json_output:
        _print_json(made.to_json())
    else:
        _render.print_request_made(_stdout(), made)


@app.command()
def requests(
    ctx: typer.Context,
    mine: Annotated[
        bool, typer.Option("--mine", help="The requests this agency made, not those made of it.")
    ] = False,
    include_decided: Annotated[
        bool, typer.Option("--all", help="Include requests already approved or denied.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """List the release requests made of this agency's alerts (pending ones by default)."""
    with _client(ctx) as client, _reported_errors():
        found = client.release_requests(mine=mine, include_decided=include_decided or mine)
    if json_output:
        _print_json([item.to_json() for item in found])
    else:
        _render.print_requests(_stdout(), found)


@app.command()
def approve(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Argument(metavar="REQUEST_ID", help="The request.")],
    json_output: JsonOption = False,
) -> None:
    """Release the requested item: wrap its key for the requester (or the agency it named)."""
    with _client(ctx) as client, _reported_errors():
        result = client.approve(request_id)
    _print_result(result, json_output, f"approved: {result.item_id} released to {result.agency}")


@app.command()
def deny(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Argument(metavar="REQUEST_ID", help="The request.")],
    reason: ReasonOption,
    json_output: JsonOption = False,
) -> None:
    """Refuse a release request; the requester sees the reason."""
    with _client(ctx) as client, _reported_errors():
        result = client.deny(request_id, reason=reason)
    _print_result(result, json_output, f"denied: request {result.request_id}")


@app.command()
def revoke(
    ctx: typer.Context,
    alert_id: Annotated[str, typer.Argument(metavar="ALERT_ID", help="One of our alerts.")],
    item_id: Annotated[str, typer.Argument(metavar="ITEM_ID", help="The item to revoke.")],
    from_agency: Annotated[
        str | None,
        typer.Option("--from", metavar="AGENCY", help="Revoke from this agency only."),
    ] = None,
    reason: Annotated[str, typer.Option("--reason", metavar="TEXT", help="Why.")] = "",
    json_output: JsonOption = False,
) -> None:
    """Stop delivering an item; holders are asked to purge it and acknowledge.

    `exchange receipts ALERT_ID` lists the acknowledgements.
    """
    with _client(ctx) as client, _reported_errors():
        result = client.revoke(alert_id, item_id, from_agency=from_agency, reason=reason)
    whom = result.agency or "every recipient"
    _print_result(
        result,
        json_output,
        f"revoked: {result.item_id} from {whom} ({result.grants_deleted} grants deleted)",
    )


@app.command()
def retract(
    ctx: typer.Context,
    alert_id: Annotated[str, typer.Argument(metavar="ALERT_ID", help="One of our alerts.")],
    reason: ReasonOption,
    json_output: JsonOption = False,
) -> None:
    """Withdraw one of our alerts (every version); recipients see it as retracted."""
    with _client(ctx) as client, _reported_errors():
        result = client.retract(alert_id, reason=reason)
    _print_result(result, json_output, f"retracted: alert {result.alert_id}")


class Outcome(str, Enum):
    SEIZED = "SEIZED"
    NOTHING_FOUND = "NOTHING_FOUND"
    INVESTIGATING = "INVESTIGATING"
    FALSE_POSITIVE = "FALSE_POSITIVE"


@app.command()
def feedback(
    ctx: typer.Context,
    alert_id: Annotated[str, typer.Argument(metavar="ALERT_ID", help="The alert received.")],
    outcome: Annotated[Outcome, typer.Option("--outcome", help="What came of it.")],
    note: Annotated[str, typer.Option("--note", metavar="TEXT", help="Free text.")] = "",
    originator: Annotated[
        str | None,
        typer.Option("--originator", metavar="AGENCY_ID", help="The alert's originator."),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Report the outcome to the originator, encrypted to it and signed."""
    with _client(ctx) as client, _reported_errors():
        result = client.feedback(alert_id, outcome.value, note=note, originator=originator)
    _print_result(result, json_output, f"feedback sent: {result.outcome} to {result.originator}")


@app.command()
def receipts(
    ctx: typer.Context,
    alert_id: Annotated[str, typer.Argument(metavar="ALERT_ID", help="One of our alerts.")],
    json_output: JsonOption = False,
) -> None:
    """Who received what, what was withheld from whom, purge acknowledgements and feedback."""
    with _client(ctx) as client, _reported_errors():
        records = client.receipts(alert_id)
    if json_output:
        _print_json([record.to_json() for record in records])
    else:
        _render.print_delivery_records(_stdout(), records)


def _print_result(result: StatementResult, json_output: bool, line: str) -> None:
    if json_output:
        _print_json(result.to_json())
    else:
        _render.print_statement_result(_stdout(), result, line)


def _profile_watchlist(ctx: typer.Context) -> Watchlist:
    """The shipped watchlist, merged with the updates the profile (if any) has verified.

    Read from the profile's state only: the offline commands never call the hub.
    """
    options: _GlobalOptions | None = ctx.obj
    if options is None or options.profile is None:
        return Watchlist.shipped()
    with _reported_errors():
        config = ProfileConfig.from_file(options.profile)
        return WatchlistUpdates(config.paths.state).merged()


register_offline_commands(app, watchlist_provider=_profile_watchlist)
register_audit_commands(app)
register_report_commands(app)
register_case_commands(app)
register_interop_commands(app)


def main() -> None:
    """Entry point of the ``exchange`` console script."""
    app()
