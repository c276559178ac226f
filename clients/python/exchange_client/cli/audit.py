"""``exchange audit``: check the hub's log from this agency's side (DESIGN §8).

* ``checkpoint [--raw]``: the latest checkpoint, verified against the one this profile trusted
  last, with its cosignatures; ``--raw`` prints the signed note exactly, cosignature lines
  included, for a partner to ``compare``.
* ``compare FILE``: prove a partner's checkpoint note consistent with this agency's view, or
  exit 3 naming the fork.
* ``verify``: replay the whole log and name the first entry that fails.
* ``history ALERT_ID``: every entry about one alert this agency may see, each marked as signed by
  an agency or asserted by the hub.

Exit codes as everywhere in ``exchange``: 3 when verification fails (a rewritten, forked or
truncated log, a forged checkpoint, a withheld event), 1 for other errors. ``--json`` prints one
JSON document (snake_case names), also for a failed verification.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table
from rich.text import Text

from exchange import cli_conventions
from exchange.audit.errors import FeedGapError, LogInconsistentError
from exchange.audit.verify import VerificationReport
from exchange.errors import ConfigurationError, ExchangeError, VerificationError
from exchange_client._internal.audit import (
    CheckpointSummary,
    Comparison,
    HistoryEntry,
    report_to_json,
)
from exchange_client._internal.client import Client
from exchange_client._internal.models import rfc3339
from exchange_client._internal.profile import Profile

__all__ = ["audit_app", "register"]

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_VERIFICATION_FAILED = 3

audit_app = typer.Typer(
    name="audit",
    help=(
        "Check the hub's audit log yourself: checkpoints and cosignatures, comparison with a "
        "partner's checkpoint, full replay, one alert's history. Exit code 3 on tampering."
    ),
    no_args_is_help=True,
    rich_markup_mode=None,
)

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON (snake_case names) for scripts.")
]


def register(app: typer.Typer) -> None:
    """Add the ``audit`` group to the ``exchange`` application."""
    app.add_typer(audit_app, name="audit")


def _stdout() -> Console:
    return cli_conventions.console()


def _stderr() -> Console:
    return cli_conventions.console(stderr=True)


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _hex(value: bytes | None) -> str | None:
    return None if value is None else value.hex()


def _error_json(error: ExchangeError) -> dict[str, Any]:
    document: dict[str, Any] = {
        "ok": False,
        "error": type(error).__name__,
        "reason": error.reason,
        "message": error.message,
    }
    if isinstance(error, LogInconsistentError):
        document.update(
            known_size=error.known_size,
            known_root_hash=_hex(error.known_root),
            new_size=error.new_size,
            new_root_hash=_hex(error.new_root),
        )
    if isinstance(error, FeedGapError):
        document["missing_sequence"] = error.missing_sequence
    return document


def _fail(error: ExchangeError, *, json_output: bool, message: str | None = None) -> NoReturn:
    # Imported here: the main CLI module imports this one to register the group.
    from exchange_client.cli import describe_error, exit_code_for

    if json_output:
        _print_json(_error_json(error))  # the command's one document, on stdout
    cli_conventions.fail(
        error,
        code=exit_code_for(error),
        as_json=json_output,
        text=message or describe_error(error),
    )


@contextmanager
def _reported(json_output: bool) -> Iterator[None]:
    try:
        yield
    except ExchangeError as e:
        _fail(e, json_output=json_output)


def _profile_dir(ctx: typer.Context) -> Path:
    """The global ``--profile`` (or ``EXCHANGE_PROFILE``); exit 2 when there is none."""
    profile_dir: Path | None = getattr(ctx.find_root().obj, "profile", None)
    if profile_dir is None:
        _stderr().print("no profile: pass --profile DIR or set EXCHANGE_PROFILE", style="red")
        raise typer.Exit(EXIT_USAGE)
    return profile_dir


@contextmanager
def _client(ctx: typer.Context, json_output: bool) -> Iterator[Client]:
    options = ctx.find_root().obj
    profile_dir = _profile_dir(ctx)
    with _reported(json_output):
        profile = Profile.load(profile_dir)
        with Client(profile, hub=getattr(options, "hub", None)) as client:
            yield client


# --- checkpoint -------------------------------------------------------------------------------------


@audit_app.command("checkpoint")
def checkpoint_command(
    ctx: typer.Context,
    raw: Annotated[
        bool,
        typer.Option(
            "--raw", help="Print the signed note exactly as signed, cosignature lines included."
        ),
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Show the hub's latest checkpoint, verified and cosigned by this agency.

    It must extend the checkpoint this profile verified last (a consistency proof), else exit 3.
    Give the --raw output to a partner by another channel: `exchange audit compare FILE`.
    """
    with _client(ctx, json_output) as client, _reported(json_output):
        summary = client.auditor.summary()
    if raw:
        sys.stdout.write(summary.note)
        sys.stdout.flush()
    elif json_output:
        _print_json(summary.to_json())
    else:
        _print_checkpoint(_stdout(), summary)


def _print_checkpoint(console: Console, summary: CheckpointSummary) -> None:
    console.print(Text(f"checkpoint of {summary.origin}", style="bold"))
    console.print(Text(f"  size {summary.size}"))
    console.print(Text(f"  root {summary.root_hash.hex()}"))
    console.print(Text("  signed by the hub's checkpoint key: verified", style="green"))
    if not summary.cosignatures:
        console.print(Text("  no cosignatures yet", style="yellow"))
        return
    table = Table(title=Text("cosignatures"), title_justify="left")
    table.add_column("agency", no_wrap=True)
    table.add_column("time", no_wrap=True)
    table.add_column("status")
    for line in summary.cosignatures:
        status = (
            Text("verified", style="green")
            if line.verified
            else Text("not verified (unknown key)", style="yellow")
        )
        table.add_row(Text(line.name), line.to_json()["time"] or "-", status)
    console.print(table)


# --- compare ----------------------------------------------------------------------------------------


@audit_app.command("compare")
def compare_command(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE",
            help="A partner's checkpoint note (`exchange audit checkpoint --raw`).",
            dir_okay=False,
        ),
    ],
    json_output: JsonOption = False,
) -> None:
    """Prove a partner's checkpoint consistent with this agency's view of the log.

    The partner's note must be signed by the hub's checkpoint key. If the two cannot both be
    true, the hub has shown the two agencies two histories: exit 3, naming the fork.
    """
    try:
        note = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        _fail(ConfigurationError(f"{file}: cannot read the note: {e}"), json_output=json_output)
    with _client(ctx, json_output) as client:
        try:
            comparison = client.auditor.compare(note)
        except LogInconsistentError as e:
            _fail(e, json_output=json_output, message=_fork_message(e, file))
        except ExchangeError as e:
            _fail(e, json_output=json_output)
    if json_output:
        _print_json(comparison.to_json())
    else:
        _print_comparison(_stdout(), comparison)


def _fork_message(error: LogInconsistentError, file: Path) -> str:
    return (
        f"verification failed ({error.reason}): FORK: the log this agency sees (size "
        f"{error.known_size}, root {_hex(error.known_root)}) and the partner's checkpoint in "
        f"{file} (size {error.new_size}, root {_hex(error.new_root)}) are two different "
        f"histories; the hub has shown them two views of its log. {error.message}"
    )


def _print_comparison(console: Console, comparison: Comparison) -> None:
    console.print(Text("consistent: one history", style="bold green"))
    ours, theirs = comparison.ours, comparison.theirs
    console.print(Text(f"  ours:    size {ours.size}, root {ours.root_hash.hex()}"))
    console.print(Text(f"  partner: size {theirs.size}, root {theirs.root_hash.hex()}"))
    cosigners = ", ".join(comparison.cosigners) if comparison.cosigners else "none"
    console.print(Text(f"  the partner's note is cosigned by: {cosigners}"))


# --- verify -----------------------------------------------------------------------------------------


class _ProgressBar:
    """A rich progress bar on stderr with one task per phase of the fetch."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._tasks: dict[str, TaskID] = {}

    def __call__(self, phase: str, done: int, total: int) -> None:
        task = self._tasks.get(phase)
        if task is None:
            task = self._progress.add_task(f"fetching {phase}", total=total)
            self._tasks[phase] = task
        self._progress.update(task, completed=done, total=total)


def fetch_progress(*, quiet: bool) -> Progress:
    """The progress display of a log fetch, on stderr, shown only on a terminal."""
    console = _stderr()
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        transient=True,
        disable=quiet or not console.is_terminal,
    )


@audit_app.command("verify")
def verify_command(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Replay the whole log: every leaf, every root, every statement this agency may see.

    Checks the leaves against the checkpoints' roots, the statements' signatures and references,
    and that the feed delivered every event of ours that is logged. Names the first entry that
    fails and exits 3.
    """
    with _client(ctx, json_output) as client, _reported(json_output):
        progress = fetch_progress(quiet=json_output)
        with progress:
            report = client.auditor.verify(progress=_ProgressBar(progress))
    if json_output:
        _print_json(report_to_json(report))
    else:
        _print_report(_stdout(), report)
    if not report.ok:
        try:
            report.raise_for_failure()
        except VerificationError as e:
            _fail(e, json_output=False)


def _print_report(console: Console, report: VerificationReport) -> None:
    table = Table(show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("entries replayed", str(report.size))
    table.add_row("checkpoints verified", str(report.checkpoints_verified))
    table.add_row("bodies verified", str(report.bodies_verified))
    table.add_row("signatures verified", str(report.signatures_verified))
    table.add_row("references verified", str(report.references_verified))
    table.add_row("feed events of ours in the log", str(report.feed_sequence))
    console.print(table)
    console.print(Text(f"root {report.root_hash.hex()}"))
    if report.ok:
        console.print(Text("the log verifies", style="bold green"))
        return
    for failure in report.failures:
        where = f"entry {failure.index}" if failure.index is not None else "checkpoint"
        console.print(Text(f"{where}: {failure.reason}: {failure.message}", style="red"))


# --- history ----------------------------------------------------------------------------------------


@audit_app.command("history")
def history_command(
    ctx: typer.Context,
    alert_id: Annotated[str, typer.Argument(metavar="ALERT_ID", help="The alert.")],
    json_output: JsonOption = False,
) -> None:
    """List every log entry about one alert that this agency may see.

    Publication, deliveries, requests, decisions, revocations, receipts, purges and feedback,
    each marked as signed by an agency (its signature verified here) or as the hub's assertion.
    """
    with _client(ctx, json_output) as client, _reported(json_output):
        entries = client.auditor.history(alert_id)
    if json_output:
        _print_json([entry.to_json() for entry in entries])
    else:
        _print_history(_stdout(), alert_id, entries)


def _print_history(console: Console, alert_id: str, entries: list[HistoryEntry]) -> None:
    if not entries:
        console.print(Text(f"no log entries about {alert_id} that this agency may see"))
        return
    table = Table(title=Text(f"history of {alert_id}"), title_justify="left")
    table.add_column("index", justify="right")
    table.add_column("logged", no_wrap=True)
    table.add_column("entry")
    table.add_column("ver", justify="right")
    table.add_column("agency", no_wrap=True)
    table.add_column("vouched for by")
    table.add_column("detail")
    for entry in entries:
        vouched = (
            Text("the hub's assertion", style="yellow")
            if entry.hub_assertion
            else Text(f"signed by {entry.signed_by}", style="green")
        )
        table.add_row(
            str(entry.index),
            rfc3339(entry.logged_at) or "",
            Text(entry.kind),
            str(entry.version or ""),
            Text(entry.agency),
            vouched,
            Text(entry.detail),
        )
    console.print(table)
