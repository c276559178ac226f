"""``exchange keys``: this agency's (or a partner's) numbered key statements.

``show`` lists the sequence as this profile verifies it: replayed from the statement it pinned,
against the agency's CA in the profile, never the hub's word.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from exchange_client._internal.models import rfc3339
from exchange_client.cli.audit import JsonOption, _client, _print_json, _reported, _stdout

__all__ = ["keys_app", "register"]

keys_app = typer.Typer(
    name="keys",
    help=(
        "This agency's keys as numbered key statements: list the sequence with fingerprints, "
        "dates and who signed each statement."
    ),
    no_args_is_help=True,
    rich_markup_mode=None,
)


def register(app: typer.Typer) -> None:
    """Add the ``keys`` group to the ``exchange`` application."""
    app.add_typer(keys_app, name="keys")


@keys_app.command("show")
def show_command(
    ctx: typer.Context,
    agency: Annotated[
        str | None,
        typer.Option("--agency", metavar="AGENCY", help="Another agency's sequence (default: ours)."),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """List the key statements with their number, date, fingerprints, expiry and signers.

    Exits 3 when the sequence is refused (a gap, a fork, a rollback or a forged rotation).
    """
    with _client(ctx, json_output) as client, _reported(json_output):
        statements = client.key_statements(agency)
    if json_output:
        _print_json([statement.to_json() for statement in statements])
        return
    table = Table()
    for column in ("#", "created", "signing key", "encryption key", "witness key", "expires"):
        table.add_column(column, no_wrap=column != "created")
    table.add_column("signed by")
    for statement in statements:
        number = Text(str(statement.key_number), style="bold" if statement.current else "")
        table.add_row(
            number,
            rfc3339(statement.created_at) or "-",
            statement.signing_key_fingerprint,
            statement.encryption_key_fingerprint,
            statement.witness_key_fingerprint or "-",
            rfc3339(statement.expires_at) or "-",
            ", ".join(statement.signed_by),
        )
    _stdout().print(table)
