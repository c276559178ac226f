"""``exchange``: the operator's command line for one agency.

Global options come before the command (``exchange --profile DIR --hub HOST:PORT inbox``),
``--json`` after it.  Exit codes (DESIGN §12): 0 ok, 1 error, 2 usage, 3 verification failed,
4 not permitted.  An :class:`ExchangeError` is printed as one line on stderr saying what went
wrong and what to do, never as a traceback; with ``--json`` as one JSON object on stderr
(:mod:`exchange.cli_conventions`, shared with ``exchange-hub``).  Only this module reads the
environment (``EXCHANGE_PROFILE``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from exchange import cli_conventions
from exchange.alerts.draft import Draft
from exchange.alerts.watchlist import Watchlist
from exchange.config.profile import ProfileConfig, parse_host_port
from exchange.errors import (
    ConfigurationError,
    ExchangeError,
    NotAuthenticatedError,
    NotPermittedError,
    VerificationError,
)
from exchange_client._internal.client import Client
from exchange_client._internal.models import StatementResult
from exchange_client._internal.profile import Profile
from exchange_client._internal.publishing import PUBLISH_RETRY_SECONDS
from exchange_client._internal.watchlist_updates import WatchlistUpdates
from exchange_client.cli import _render
from exchange_client.cli.audit import register as register_audit_commands
from exchange_client.cli.cases import register as register_case_commands
from exchange_client.cli.interop import register as register_interop_commands
from exchange_client.cli.keys import register as register_keys_commands
from exchange_client.cli.match import register as register_match_commands
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
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON (snake_case names) for scripts.")
]

RetrySecondsOption = Annotated[
    float,
    typer.Option(
        "--retry-seconds",
        min=0,
        metavar="SECONDS",
        help="Keep resending this long while the hub is unreachable (0: try once).",
    ),
]


@dataclass(frozen=True)
class _GlobalOptions:
    profile: Path | None
    hub: str | None


def _stdout() -> Console:
    # Pipes get a console that never wraps, so that ids and keys are never cut.
    return cli_conventions.console()


def _stderr() -> Console:
    return cli_conventions.console(stderr=True)


def exit_code_for(error: ExchangeError) -> int:
    """The process exit code for an error: 3 tampering, 4 refused identity or permission, else 1."""
    if isinstance(error, VerificationError):
        return EXIT_VERIFICATION_FAILED
    if isinstance(error, (NotPermittedError, NotAuthenticatedError)):
        return EXIT_NOT_PERMITTED
    return EXIT_ERROR


def describe_error(error: ExchangeError) -> str:
    """The error as printed: what failed, and for some families what to do next.

    Field violations follow one per line, the first 20 and then "and N more".
    """
    if isinstance(error, VerificationError):
        return cli_conventions.describe(error, prefix=f"verification failed ({error.reason})")
    if isinstance(error, NotAuthenticatedError):
        return (
            f"not authenticated: {error.message}; check that this profile's agency is registered "
            "with the hub and not revoked"
        )
    if isinstance(error, NotPermittedError):
        return cli_conventions.describe(error, prefix="not permitted")
    return cli_conventions.describe(error)


def report_error(error: ExchangeError, *, as_json: bool) -> NoReturn:
    """Print ``error`` on stderr (a JSON object with ``--json``) and exit with its code."""
    cli_conventions.fail(
        error, code=exit_code_for(error), as_json=as_json, text=describe_error(error)
    )


def _fail(message: str, code: int) -> NoReturn:
    cli_conventions.print_error_line(message)
    raise typer.Exit(code)


def _usage_error(ctx: typer.Context, message: str) -> NoReturn:
    if cli_conventions.json_requested(ctx):
        cli_conventions.print_json_error(
            {"error": "UsageError", "reason": cli_conventions.USAGE_REASON, "message": message}
        )
        raise typer.Exit(EXIT_USAGE)
    _fail(message, EXIT_USAGE)


@contextmanager
def _reported_errors(ctx: typer.Context | None = None) -> Iterator[None]:
    try:
        yield
    except ExchangeError as e:
        report_error(e, as_json=cli_conventions.json_requested(ctx))


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False) + "\n")
    sys.stdout.flush()


@contextmanager
def _client(ctx: typer.Context, **options: Any) -> Iterator[Client]:
    """The profile's client for the command of ``ctx``; ``options`` go to :class:`Client`."""
    global_options: _GlobalOptions = ctx.obj
    if global_options.profile is None:
        _usage_error(ctx, f"no profile: pass --profile DIR or set {PROFILE_ENV}")
    with _reported_errors(ctx):
        profile = Profile.load(global_options.profile)
        with Client(profile, hub=global_options.hub, **options) as client:
            try:
                yield client
            finally:
                for notice in client.key_notices:
                    _stderr().print(f"notice: {notice}", markup=False, highlight=False)


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
    version: Annotated[bool, cli_conventions.version_option("exchange")] = False,
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
    retry_seconds: RetrySecondsOption = PUBLISH_RETRY_SECONDS,
    json_output: JsonOption = False,
) -> None:
    """Validate, sign, encrypt and publish a draft alert.

    Each item is encrypted for the agencies in its audience only. Identifiers written in a
    printed form are published in their canonical form, each shown as a notice; watchlist
    matches are printed as warnings. While the hub is unreachable the same sealed bytes are
    resent for up to --retry-seconds (30 s); after that the alert is kept in the profile for
    `exchange resend`.
    """
    with _reported_errors(ctx):
        draft = Draft.from_file(file)
    print_notices(_stderr(), draft.normalisations)
    items = len(draft.items)
    with (
        cli_conventions.progress(
            f"publishing {items} item{'s' if items != 1 else ''}", as_json=json_output
        ) as bar,
        _client(
            ctx, retry_seconds=retry_seconds, on_retry=_retry_notice(bar, as_json=json_output)
        ) as client,
        _reported_errors(ctx),
    ):
        receipt = client.publish(draft, supersedes=supersedes)
    if json_output:
        _print_json(receipt.to_json())
    else:
        _render.print_receipt(_stdout(), receipt)
        _render.print_flags(_stderr(), receipt.flags)


@app.command()
def resend(
    ctx: typer.Context,
    retry_seconds: RetrySecondsOption = PUBLISH_RETRY_SECONDS,
    json_output: JsonOption = False,
) -> None:
    """Send again the sealed alerts an interrupted publish left in the profile's outbox.

    The very same bytes are sent, so the hub answers with the receipt of the first delivery if
    that one had arrived.
    """
    with (
        cli_conventions.progress("resending the outbox", as_json=json_output) as bar,
        _client(ctx, retry_seconds=retry_seconds, on_retry=_retry_notice(bar, as_json=json_output)) as client,
        _reported_errors(ctx),
    ):
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
    """List the alerts addressed to this agency, with their verified titles.

    "items readable" counts items: how many of the alert's items this agency can open now,
    of all the alert's items (--json also gives how many are addressed to it). An alert signed
    by a key its agency marked compromised from before then is listed as UNTRUSTED, and the
    exit code is then 3.
    """
    with (
        _client(ctx) as client,
        _reported_errors(ctx),
        cli_conventions.progress("opening the inbox", as_json=json_output),
    ):
        entries = client.inbox()
    if json_output:
        _print_json([entry.to_json() for entry in entries])
    else:
        _render.print_inbox(_stdout(), entries)
    if any(entry.untrusted for entry in entries):
        raise typer.Exit(EXIT_VERIFICATION_FAILED)


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
    (decrypted but failing validation). Exit code 3 if anything fails to verify, or if the
    alert is UNTRUSTED: signed by a key its agency marked compromised from before then.
    """
    with _client(ctx) as client, _reported_errors(ctx):
        alert = client.open(alert_id, originator=originator, version=version)
    if json_output:
        _print_json(alert.to_json())
    else:
        _render.print_alert(_stdout(), alert)
    if alert.untrusted:
        raise typer.Exit(EXIT_VERIFICATION_FAILED)


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
    If the hub goes away (a restart), watch says "reconnecting in N s" on stderr and resumes
    from its cursor, waiting longer after each failure (at most 30 s), until stopped.
    A missing event (the hub withheld one) stops with exit code 3.
    """
    limit = 1 if once else count
    console = _stdout()
    with (
        _client(ctx) as client,
        _reported_errors(ctx),
        cli_conventions.progress(
            f"waiting for {limit} events", total=limit, as_json=json_output or limit is None
        ) as bar,
    ):
        subscription = client.subscribe(
            after, heartbeats=heartbeats, on_reconnect=_reconnecting_notice(client.target, bar)
        )
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
                        bar.advance()
                    if limit is not None and printed >= limit:
                        break
        except KeyboardInterrupt:
            # Interrupted while waiting: every event printed was already saved.
            pass


def _reconnecting_notice(
    target: str, bar: cli_conventions.ProgressBar
) -> Callable[[float, ExchangeError], None]:
    def notice(seconds: float, error: ExchangeError) -> None:
        bar.note(
            f"lost the hub at {target} ({_short_reason(error)}); reconnecting in {seconds:.1f} s"
        )

    return notice


def _retry_notice(
    bar: cli_conventions.ProgressBar, *, as_json: bool
) -> Callable[[float, ExchangeError], None] | None:
    """Tell a person each wait before a resend; with --json stderr carries only the error."""
    if as_json:
        return None

    def notice(seconds: float, error: ExchangeError) -> None:
        bar.note(f"{_short_reason(error)}; resending in {seconds:.1f} s")

    return notice


def _short_reason(error: ExchangeError) -> str:
    """The first clause of an error's message, for a one-line notice."""
    return error.message.split(": check ", 1)[0]


@app.command()
def agencies(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """List the agencies on the hub with their current key statement number and fingerprints.

    Each agency's keys are verified against its CA certificate in this profile, never the hub's
    copy, and its numbered key statements are replayed from the first one this profile pinned;
    compare fingerprints with the partner out of band. Exits 3 when an agency's key sequence is
    refused (a gap, a fork, a rollback or a forged rotation): the hub may be showing this profile
    keys it shows no one else.
    """
    with _client(ctx) as client, _reported_errors(ctx):
        found = client.agencies()
    if json_output:
        _print_json([agency.to_json() for agency in found])
    else:
        _render.print_agencies(_stdout(), found)
    if any(agency.tampered for agency in found):
        raise typer.Exit(EXIT_VERIFICATION_FAILED)


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
    with _client(ctx) as client, _reported_errors(ctx):
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
    with _client(ctx) as client, _reported_errors(ctx):
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
    with _client(ctx) as client, _reported_errors(ctx):
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
    with _client(ctx) as client, _reported_errors(ctx):
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
    with _client(ctx) as client, _reported_errors(ctx):
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
    with _client(ctx) as client, _reported_errors(ctx):
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
    with _client(ctx) as client, _reported_errors(ctx):
        result = client.feedback(alert_id, outcome.value, note=note, originator=originator)
    _print_result(result, json_output, f"feedback sent: {result.outcome} to {result.originator}")


@app.command()
def receipts(
    ctx: typer.Context,
    alert_id: Annotated[str, typer.Argument(metavar="ALERT_ID", help="One of our alerts.")],
    json_output: JsonOption = False,
) -> None:
    """Who received what, what was withheld from whom, purge acknowledgements and feedback."""
    with _client(ctx) as client, _reported_errors(ctx):
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
    with _reported_errors(ctx):
        config = ProfileConfig.from_file(options.profile)
        return WatchlistUpdates(config.paths.state).merged()


register_offline_commands(app, watchlist_provider=_profile_watchlist)
register_audit_commands(app)
register_report_commands(app)
register_case_commands(app)
register_keys_commands(app)
register_interop_commands(app)
register_match_commands(app)


def main() -> None:
    """Entry point of the ``exchange`` console script."""
    cli_conventions.run(app, on_error=lambda error, as_json: report_error(error, as_json=as_json))
