"""``exchange report``: the cooperation record with partner agencies, from the verified log.

* ``report [--partner AGENCY]... [--since DATE] [--until DATE] [--format text|json|html]
  [--output FILE] [--sign]``: replay and verify the whole log first (as ``exchange audit
  verify``; a failure exits 3 naming the first bad entry and prints no figure), then compute
  every figure from the verified entries, each citing its log indices.  ``--sign`` writes the
  signed summary instead: the figures and the checkpoint, signed by this agency.
* ``report verify FILE``: check a partner's signed summary offline, against the partner's CA
  and the hub's checkpoint key in this profile; exit 3 when it does not verify.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from exchange.audit.cooperation import (
    CooperationReport,
    Figure,
    figure_rows,
    format_value,
)
from exchange.errors import ExchangeError
from exchange.statements.cooperation import CooperationBundle
from exchange_client._internal.models import rfc3339
from exchange_client._internal.profile import Profile
from exchange_client._internal.report import verify_summary
from exchange_client.cli.audit import (
    EXIT_USAGE,
    JsonOption,
    _client,
    _print_json,
    _profile_dir,
    _ProgressBar,
    _reported,
    _stderr,
    _stdout,
    fetch_progress,
)

__all__ = ["register", "report_app"]

report_app = typer.Typer(
    name="report",
    help=(
        "The cooperation record with partner agencies, computed only from log entries this "
        "client verified: alerts each way, releases, response times, outcomes, joint cases. "
        "`exchange report verify FILE` checks a partner's signed summary."
    ),
    invoke_without_command=True,
    rich_markup_mode=None,
)


class ReportFormat(str, Enum):
    TEXT = "text"
    JSON = "json"
    HTML = "html"


def register(app: typer.Typer) -> None:
    """Add the ``report`` group to the ``exchange`` application."""
    app.add_typer(report_app, name="report")


def _moment(value: str | None, option: str, *, end: bool) -> datetime | None:
    """A date (a whole UTC day: its start, or with ``end`` the next day's start) or an RFC 3339
    time with an offset."""
    if value is None:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        pass
    else:
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return start + timedelta(days=1) if end else start
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as e:
        raise typer.BadParameter(
            f"{value!r} is neither a date (2026-11-01) nor an RFC 3339 time (2026-11-01T08:00:00Z)",
            param_hint=option,
        ) from e
    if moment.tzinfo is None:
        raise typer.BadParameter(f"{value!r} has no UTC offset: add Z or +HH:MM", param_hint=option)
    return moment.astimezone(UTC)


@report_app.callback()
def report_command(
    ctx: typer.Context,
    partner: Annotated[
        list[str] | None,
        typer.Option(
            "--partner",
            metavar="AGENCY",
            help="A partner agency (repeat for several; default: every partner in the profile).",
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", metavar="DATE", help="From this date (UTC) or RFC 3339 time, inclusive."
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            "--until",
            metavar="DATE",
            help="To this date (UTC, the whole day included) or RFC 3339 time, exclusive.",
        ),
    ] = None,
    output_format: Annotated[
        ReportFormat,
        typer.Option("--format", help="text (default), json, or html (one self-contained file)."),
    ] = ReportFormat.TEXT,
    output: Annotated[
        Path | None,
        typer.Option("--output", metavar="FILE", help="Write to FILE instead of stdout."),
    ] = None,
    sign: Annotated[
        bool,
        typer.Option(
            "--sign",
            help="Write the signed summary (figures and checkpoint, signed by this agency) for "
            "a partner to check with `exchange report verify`.",
        ),
    ] = False,
) -> None:
    """Verify the whole log, then report the cooperation with partner agencies.

    Every figure is computed from log entries this client verified, and cites their log
    indices, so the partner can recompute it from its own copy. A log that fails verification
    exits 3 naming the first bad entry, and no figure is printed.
    """
    if ctx.invoked_subcommand is not None:
        return
    start = _moment(since, "--since", end=False)
    end = _moment(until, "--until", end=True)
    if sign and output_format is ReportFormat.HTML:
        _stderr().print("--sign writes the signed summary (JSON): leave out --format html")
        raise typer.Exit(EXIT_USAGE)
    json_output = output_format is ReportFormat.JSON
    with _client(ctx, json_output) as client, _reported(json_output):
        progress = fetch_progress(quiet=json_output)
        with progress:
            report = client.cooperation_report(
                partners=partner or (), since=start, until=end, progress=_ProgressBar(progress)
            )
        if sign:
            _write(client.sign_cooperation_report(report), output)
            return
    if output_format is ReportFormat.JSON:
        if output is None:
            _print_json(report.to_json())
        else:
            _write((json.dumps(report.to_json(), ensure_ascii=False) + "\n").encode(), output)
    elif output_format is ReportFormat.HTML:
        # Imported here: matplotlib takes a good part of a second to load, and every other
        # command of the CLI would pay for it.
        from exchange_client._internal.report_html import render_html

        _write(render_html(report).encode("utf-8"), output)
    elif output is None:
        _print_report(_stdout(), report)
    else:
        with output.open("w", encoding="utf-8") as file:
            _print_report(Console(file=file, width=200, highlight=False), report)


def _write(data: bytes, output: Path | None) -> None:
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    try:
        output.write_bytes(data)
    except OSError as e:
        _stderr().print(f"error: cannot write {output}: {e}", style="red", markup=False)
        raise typer.Exit(1) from e
    _stderr().print(f"wrote {output}", markup=False)


def _compact(indices: tuple[int, ...], limit: int = 12) -> str:
    """``3-5, 9, 12``: consecutive indices as ranges, at most ``limit`` pieces."""
    pieces: list[str] = []
    run: list[int] = []
    for index in indices:
        if run and index == run[-1] + 1:
            run.append(index)
            continue
        if run:
            pieces.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [index]
    if run:
        pieces.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    if len(pieces) > limit:
        return ", ".join(pieces[:limit]) + f", … ({len(indices)} entries)"
    return ", ".join(pieces) or "-"


def _cell(figure: Figure | None) -> Text:
    if figure is None:
        return Text("")
    cell = Text(format_value(figure))
    if figure.log_indices:
        cell.append(f" [{_compact(figure.log_indices, limit=4)}]", style="dim")
    return cell


def _print_figures(console: Console, figures: list[Figure], agency: str, partner: str) -> None:
    """One row per figure, one column per direction; each value with the log indices cited."""
    table = Table(title=Text(f"{agency} with {partner}"), title_justify="left")
    table.add_column("figure")
    table.add_column(f"{agency} → {partner}")
    table.add_column(f"{partner} → {agency}")
    for row in figure_rows(figures, agency, partner):
        inward = Text("(both)", style="dim") if row.pair else _cell(row.inward)
        table.add_row(row.label, _cell(row.outward), inward)
    console.print(table)
    console.print(
        Text(
            "A → B: A gave (published, was asked), B received (was addressed, asked, "
            "answered); [log indices cited]",
            style="dim",
        )
    )


def _print_report(console: Console, report: CooperationReport) -> None:
    period = (
        f"{rfc3339(report.since) or 'the start of the log'} to "
        f"{rfc3339(report.until) or 'the checkpoint'}"
    )
    console.print(Text(f"cooperation report of {report.agency}", style="bold"))
    console.print(Text(f"  period: {period}; open requests measured at {rfc3339(report.as_of)}"))
    console.print(
        Text(
            f"  computed from {report.entries_in_period} entries in the period; "
            f"{report.entries_verified} log entries verified at checkpoint size "
            f"{report.checkpoint_size}, root {report.checkpoint_root_hash.hex()}",
            style="green",
        )
    )
    for partner in report.partners:
        figures = [f for f in report.figures if partner in (f.from_agency, f.to_agency)]
        _print_figures(console, figures, report.agency, partner)


@report_app.command("verify")
def verify_command(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(metavar="FILE", help="A signed summary (`exchange report --sign`)."),
    ],
    json_output: JsonOption = False,
) -> None:
    """Check a partner's signed cooperation summary, offline.

    The signer's keys must verify against its CA certificate in this profile, the summary's
    signature under them, and its checkpoint under the hub's checkpoint key in this profile.
    Exit 3 when anything fails to verify. To recompute the figures, run `exchange report`
    with the same partner and period, and `exchange audit compare` on the summary's checkpoint.
    """
    profile_dir = _profile_dir(ctx)
    with _reported(json_output):
        try:
            data = file.read_bytes()
        except OSError as e:
            raise ExchangeError(f"cannot read {file}: {e.strerror or e}") from e
        profile = Profile.load(profile_dir)
        bundle = verify_summary(
            data,
            partner_cas=profile.partner_cas,
            checkpoint_verifier_key=profile.checkpoint_verifier_key,
            now=datetime.now(UTC),
        )
    if json_output:
        _print_json(_bundle_json(bundle))
    else:
        _print_bundle(_stdout(), bundle)


def _bundle_json(bundle: CooperationBundle) -> dict[str, object]:
    message = bundle.statement.message
    return {
        "verified": True,
        "agency": message.agency,
        "signing_key_fingerprint": bundle.signer_keys.verify_key.fingerprint,
        "partners": list(message.partners),
        "since": message.since.ToJsonString() if message.HasField("since") else None,
        "until": message.until.ToJsonString() if message.HasField("until") else None,
        "as_of": message.as_of.ToJsonString(),
        "created_at": message.created_at.ToJsonString(),
        "checkpoint": {
            "size": message.checkpoint_size,
            "root_hash": bytes(message.checkpoint_root_hash).hex(),
            "note": message.checkpoint,
        },
        "figures": [Figure.from_proto(f).to_json() for f in message.figures],
    }


def _print_bundle(console: Console, bundle: CooperationBundle) -> None:
    message = bundle.statement.message
    console.print(
        Text(
            f"verified: signed by {message.agency} (signing key "
            f"{bundle.signer_keys.verify_key.fingerprint}, certified by its CA in this profile)",
            style="bold green",
        )
    )
    console.print(
        Text(
            f"  computed at checkpoint size {message.checkpoint_size}, root "
            f"{bytes(message.checkpoint_root_hash).hex()} (signed by the hub: verified)"
        )
    )
    console.print(Text(f"  signed at {message.created_at.ToJsonString()}"))
    figures = [Figure.from_proto(f) for f in message.figures]
    for partner in message.partners:
        _print_figures(
            console,
            [f for f in figures if partner in (f.from_agency, f.to_agency)],
            message.agency,
            partner,
        )
