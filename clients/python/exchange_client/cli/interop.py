"""``exchange export``, ``exchange import`` and ``exchange taxii serve``: the field's formats.

Everything happens on this agency's side, after the client has verified and decrypted: the hub
never sees plaintext.  ``export`` writes an opened alert (or ``--all-opened``: every alert this
profile has received and can read) as a STIX 2.1 bundle or a MISP event; ``import`` turns a
bundle or an event into a draft for ``exchange validate``; ``taxii serve`` runs a read-only TAXII
2.1 server on loopback for the agency's own MISP or OpenCTI.  Output files are written whole or
not at all.  Release controls hold in every format: withheld, revoked and expired items are
absent, and TLP:RED items stay out of the TAXII feed unless the profile says otherwise.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.text import Text
from ruamel.yaml import YAML

from exchange import cli_conventions
from exchange.alerts._draft_files import parse_yaml
from exchange.config.profile import ProfileConfig, parse_host_port
from exchange.errors import ConfigurationError, DraftError, ExchangeError
from exchange_client import Client, Draft, OpenedAlert, Profile
from exchange_client.interop import (
    AlertFeed,
    ImportResult,
    TaxiiServer,
    export_misp,
    export_stix,
    exportable_items,
    import_misp,
    import_stix,
    read_import_bytes,
    write_atomically,
)
from exchange_client.interop.taxii import COLLECTION_ID, print_problem

__all__ = ["register"]

EXIT_USAGE = 2


class Format(str, Enum):
    STIX21 = "stix21"
    MISP = "misp"


FormatOption = Annotated[
    Format, typer.Option("--format", help="stix21 (a STIX 2.1 bundle) or misp (a MISP event).")
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON (snake_case names) for scripts.")
]


def register(app: typer.Typer) -> None:
    """Add ``export``, ``import`` and the ``taxii`` group to the ``exchange`` application."""
    app.command("export")(export_command)
    app.command("import")(import_command)
    taxii_app = typer.Typer(
        help="A read-only TAXII 2.1 feed of the alerts this agency received, for its own tools.",
        no_args_is_help=True,
        rich_markup_mode=None,
    )
    taxii_app.command("serve")(taxii_serve_command)
    app.add_typer(taxii_app, name="taxii")


def _stderr() -> Console:
    return cli_conventions.console(stderr=True)


def _fail(error: ExchangeError, ctx: typer.Context | None = None) -> NoReturn:
    from exchange_client.cli import report_error

    report_error(error, as_json=cli_conventions.json_requested(ctx))


@contextmanager
def _reported(ctx: typer.Context | None = None) -> Iterator[None]:
    try:
        yield
    except ExchangeError as e:
        _fail(e, ctx)


def _profile_dir(ctx: typer.Context) -> Path:
    profile: Path | None = getattr(ctx.find_root().obj, "profile", None)
    if profile is None:
        _stderr().print("no profile: pass --profile DIR or set EXCHANGE_PROFILE", style="red")
        raise typer.Exit(EXIT_USAGE)
    return profile


@contextmanager
def _client(ctx: typer.Context) -> Iterator[Client]:
    profile_dir = _profile_dir(ctx)
    with _reported(ctx):
        profile = Profile.load(profile_dir)
        with Client(profile, hub=getattr(ctx.find_root().obj, "hub", None)) as client:
            yield client


def _json_bytes(document: Any) -> bytes:
    return (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def _emit(data: bytes, output: Path | None) -> None:
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    try:
        write_atomically(output, data)
    except OSError as e:
        _fail(ExchangeError(f"cannot write {output}: {e.strerror or e}"))


def _opened_alerts(client: Client, console: Console) -> list[OpenedAlert]:
    """Every alert in the inbox, opened (latest versions), with a progress bar on stderr."""
    entries = client.inbox(limit=1000)
    alerts = []
    with Progress(
        TextColumn("opening alerts"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("open", total=len(entries))
        for entry in entries:
            if not entry.problem:
                alerts.append(client.open(entry.alert_id, originator=entry.originator))
            else:
                console.print(
                    Text(f"warning: {entry.originator}/{entry.alert_id}: {entry.problem}"),
                    soft_wrap=True,
                    style="yellow",
                )
            progress.advance(task)
    return alerts


def export_command(
    ctx: typer.Context,
    alert_id: Annotated[
        str | None, typer.Argument(metavar="ALERT_ID", help="The alert to export.")
    ] = None,
    output_format: FormatOption = Format.STIX21,
    output: Annotated[
        Path | None,
        typer.Option("--output", metavar="FILE", help="Write here (default: standard output)."),
    ] = None,
    all_opened: Annotated[
        bool, typer.Option("--all-opened", help="Every alert this profile has received.")
    ] = False,
    originator: Annotated[
        str | None,
        typer.Option("--originator", metavar="AGENCY_ID", help="The alert's originator."),
    ] = None,
) -> None:
    """Export an opened alert as a STIX 2.1 bundle or a MISP event.

    The alert is fetched, verified and decrypted here; only items visible to this agency and not
    expired are exported, each with its TLP 2.0 marking and handling codes. With --all-opened,
    every received alert goes into one bundle (STIX) or one list of events (MISP).
    """
    if (alert_id is None) == (not all_opened):
        _stderr().print("give ALERT_ID or --all-opened (one of the two)", style="red")
        raise typer.Exit(EXIT_USAGE)
    console = _stderr()
    with _client(ctx) as client, _reported(ctx):
        if all_opened:
            alerts = _opened_alerts(client, console)
        else:
            assert alert_id is not None
            alerts = [client.open(alert_id, originator=originator)]
        now = datetime.now(UTC)
        if output_format == Format.STIX21:
            document: Any = export_stix(alerts, now=now)
        elif all_opened:
            document = {"response": [export_misp(alert, now=now) for alert in alerts]}
        else:
            document = export_misp(alerts[0], now=now)
    _emit(_json_bytes(document), output)
    exported = sum(len(exportable_items(alert, now=now)) for alert in alerts)
    left_out = sum(len(alert.items) for alert in alerts) - exported
    where = f" to {output}" if output is not None else ""
    console.print(
        Text(
            f"exported {exported} item{'s' if exported != 1 else ''} of {len(alerts)} "
            f"alert{'s' if len(alerts) != 1 else ''}{where}"
            + (f"; {left_out} not visible to this agency or expired, left out" if left_out else "")
        ),
        soft_wrap=True,
    )


def _yaml_text(draft: dict[str, Any]) -> str:
    dumper = YAML(typ="safe", pure=True)
    dumper.default_flow_style = False
    dumper.allow_unicode = True
    dumper.width = 4096
    stream = io.StringIO()
    dumper.dump(draft, stream)
    text = stream.getvalue()
    if parse_yaml(text) != draft:  # a value the YAML 1.2 core loader would read otherwise
        raise ExchangeError("the draft cannot be written as YAML faithfully; write it as .json")
    return text


def import_command(
    ctx: typer.Context,
    file: Annotated[
        Path, typer.Argument(metavar="FILE", help="A STIX 2.1 bundle or a MISP event (JSON).")
    ],
    input_format: FormatOption,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            metavar="FILE",
            help="Write the draft here: .yaml/.yml or .json (default: YAML on standard output).",
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Turn a STIX 2.1 bundle or a MISP event into an alert draft.

    Objects this exchange exported come back as the items they were made from; others are
    mapped where a payload kind fits, and everything not carried over is listed as a warning.
    Check the draft with `exchange validate` before publishing it.
    """
    with _reported(ctx):
        raw = read_import_bytes(file)
        result: ImportResult = import_stix(raw) if input_format == Format.STIX21 else import_misp(raw)
        if output is not None and output.suffix.lower() == ".json":
            text = json.dumps(result.draft, ensure_ascii=False, indent=2) + "\n"
        elif output is None or output.suffix.lower() in (".yaml", ".yml"):
            text = _yaml_text(result.draft)
        else:
            raise ConfigurationError(f"{output.name}: the draft file must end in .yaml, .yml or .json")
    if output is not None or not json_output:
        _emit(text.encode("utf-8"), output)
    problems: list[str] = []
    try:
        Draft.from_dict(result.draft)
    except DraftError as e:
        problems = [str(violation) for violation in e.violations] or [e.message]
    if json_output:
        summary: dict[str, Any] = {
            "output": str(output) if output is not None else None,
            "items": len(result.draft.get("items", [])),
            "warnings": list(result.warnings),
            "valid": not problems,
            "errors": problems,
        }
        if output is None:
            summary["draft"] = result.draft
        sys.stdout.write(json.dumps(summary, ensure_ascii=False) + "\n")
        return
    console = _stderr()
    for warning in result.warnings:
        console.print(Text(f"warning: {warning}"), soft_wrap=True, style="yellow")
    if problems:
        console.print(
            Text(
                f"the draft needs {len(problems)} fix{'es' if len(problems) != 1 else ''} before "
                "it can be published (`exchange validate` lists them):"
            ),
            soft_wrap=True,
            style="yellow",
        )
        for problem in problems:
            console.print(Text(f"  {problem}"), soft_wrap=True)


def taxii_serve_command(
    ctx: typer.Context,
    listen: Annotated[
        str | None,
        typer.Option(
            "--listen",
            metavar="HOST:PORT",
            help="Where to listen (default: the profile's [taxii] listen, else 127.0.0.1:9441).",
        ),
    ] = None,
) -> None:
    """Serve the alerts this agency received as a read-only TAXII 2.1 collection.

    Needs a [taxii] table in profile.toml with token_file (mode 0600). Clients authenticate
    with the token as a bearer token or as the basic-authentication password. Revoked and
    expired items disappear from the next answer; TLP:RED items are served only with
    insecure_serve_tlp_red = true. Stop with Ctrl-C.
    """
    profile_dir = _profile_dir(ctx)
    console = _stderr()
    with _reported(ctx):
        config = ProfileConfig.from_file(profile_dir)
        settings = config.taxii
        if settings is None:
            raise ConfigurationError(
                f"{profile_dir}: profile.toml has no [taxii] table; add one with "
                'token_file = "taxii.token" (a file of mode 0600 holding a long random token)'
            )
        token = settings.read_token()
        host, port = parse_host_port(listen or settings.listen)
    with _client(ctx) as client, _reported(ctx):
        feed = AlertFeed(
            client,
            clock=lambda: datetime.now(UTC),
            include_tlp_red=settings.insecure_serve_tlp_red,
            on_problem=print_problem,
        )
        try:
            server = TaxiiServer(
                feed,
                host=host,
                port=port,
                username=settings.username,
                token=token,
                title=config.agency_id,
                log=lambda line: console.print(Text(line), soft_wrap=True, style="dim"),
            )
        except OSError as e:
            raise ConfigurationError(f"cannot listen on {host}:{port}: {e.strerror or e}") from e
        console.print(
            Text(
                f"serving TAXII 2.1 at {server.url} (collection {COLLECTION_ID})"
                + (", TLP:RED included" if settings.insecure_serve_tlp_red else "")
                + "; Ctrl-C to stop"
            ),
            soft_wrap=True,
        )
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()
