"""``exchange keys``: this agency's (or a partner's) numbered key statements.

``show`` lists the sequence as this profile verifies it: replayed from the statement it pinned,
against the agency's CA in the profile, never the hub's word. ``status`` says when each of the
profile's certificates expires, for monitoring (exit 1 within the warning period). ``rotate``
renews keys and certificates: the next statement published first, then the profile moved
(:mod:`exchange_client._internal.key_rotation`). ``revoke --compromised`` marks keys compromised
from a time on and replaces them; ``recover`` replaces a lost or stolen CA with the offline
recovery key ``exchange-hub init`` wrote.
"""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from exchange import pki
from exchange.config.profile import ProfileConfig
from exchange.crypto.dsse import Envelope
from exchange.crypto.keys import SigningKey
from exchange.errors import ConfigurationError, InvalidInputError, MalformedError
from exchange_client._internal.key_lifecycle import DEFAULT_WARNING_DAYS, expiry_report
from exchange_client._internal.key_recovery import (
    KeyStatementPublished,
    load_recovery_key,
    parse_since,
)
from exchange_client._internal.key_rotation import KINDS, publish_with_transport, rotate_keys
from exchange_client._internal.models import rfc3339
from exchange_client._internal.profile import Profile
from exchange_client.cli.audit import (
    JsonOption,
    _client,
    _print_json,
    _profile_dir,
    _reported,
    _stderr,
    _stdout,
)

__all__ = ["keys_app", "register"]

keys_app = typer.Typer(
    name="keys",
    help=(
        "This agency's keys as numbered key statements: list the sequence with fingerprints, "
        "dates and who signed each statement (show); check certificate expiry (status); renew "
        "keys and certificates (rotate); mark keys compromised and replace them (revoke "
        "--compromised); replace a lost or stolen CA with the offline recovery key (recover)."
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


@keys_app.command("status")
def status_command(
    ctx: typer.Context,
    warning_days: Annotated[
        int,
        typer.Option(
            "--warning-days",
            metavar="DAYS",
            min=0,
            help="Warn of certificates that expire within this many days.",
        ),
    ] = DEFAULT_WARNING_DAYS,
    json_output: JsonOption = False,
) -> None:
    """Show when each of this profile's certificates expires, for monitoring.

    Reads the profile's files only (no hub call), so it works on a profile whose certificates
    have already expired. Exits 1 when anything has expired or expires within the warning
    period (default 30 days), 0 otherwise.
    """
    profile_dir = _profile_dir(ctx)
    with _reported(json_output):
        paths = ProfileConfig.from_file(profile_dir).paths
        files = (
            ("ca", paths.ca_certificate),
            ("tls", paths.tls_certificate),
            ("signing", paths.signing_certificate),
            ("encryption", paths.encryption_certificate),
            ("witness", paths.witness_certificate),
        )
        certificates = []
        for kind, path in files:
            try:
                data = path.read_bytes()
            except OSError as e:
                raise ConfigurationError(f"{path}: cannot read the {kind} certificate: {e}") from e
            try:
                certificates.append((kind, str(path), pki.load_certificate_pem(data)))
            except MalformedError as e:
                raise ConfigurationError(f"{path}: {e.message}") from e
        report = expiry_report(
            certificates, now=datetime.now(UTC), warning_days=warning_days
        )
    if json_output:
        _print_json([entry.to_json() for entry in report])
    else:
        table = Table()
        for column in ("certificate", "expires", "days left", "state", "file"):
            table.add_column(column, no_wrap=column != "file")
        styles = {"ok": "green", "expiring": "yellow", "expired": "bold red"}
        for entry in report:
            table.add_row(
                entry.kind,
                rfc3339(entry.not_after) or "-",
                str(entry.days_left),
                Text(entry.state, style=styles[entry.state]),
                entry.path,
            )
        _stdout().print(table)
    if any(entry.needs_action for entry in report):
        if not json_output:
            flags = [
                f"--{entry.kind}" for entry in report if entry.needs_action and entry.kind != "ca"
            ]
            advice = (
                f"renew them with `exchange keys rotate {' '.join(flags)}`"
                if flags
                else "the agency CA itself must be replaced"
            )
            _stderr().print(
                f"some certificates expire soon or have expired: {advice}", markup=False
            )
        raise typer.Exit(1)


@keys_app.command("rotate")
def rotate_command(
    ctx: typer.Context,
    signing: Annotated[
        bool, typer.Option("--signing", help="A new signing key (published in the statement).")
    ] = False,
    encryption: Annotated[
        bool,
        typer.Option(
            "--encryption",
            help="A new encryption key (published); the old one is kept in retired-keys/.",
        ),
    ] = False,
    witness: Annotated[
        bool, typer.Option("--witness", help="A new witness (cosigning) key (published).")
    ] = False,
    tls: Annotated[
        bool,
        typer.Option("--tls", help="A new TLS client certificate and key from the agency CA."),
    ] = False,
    everything: Annotated[
        bool, typer.Option("--all", help="All four: --signing --encryption --witness --tls.")
    ] = False,
    key_days: Annotated[
        int,
        typer.Option(
            "--key-days",
            metavar="DAYS",
            min=1,
            help="Validity of new signing, encryption and witness key certificates.",
        ),
    ] = pki.DEFAULT_KEY_VALIDITY_DAYS,
    tls_days: Annotated[
        int,
        typer.Option(
            "--tls-days", metavar="DAYS", min=1, help="Validity of a new TLS client certificate."
        ),
    ] = pki.DEFAULT_TLS_VALIDITY_DAYS,
    json_output: JsonOption = False,
) -> None:
    """Renew this agency's keys: new keys, the next key statement published, the profile moved.

    Pass what to renew (--signing, --encryption, --witness, --tls, or --all); with none it
    exits 2. New signing, encryption or witness keys go into the next numbered key statement,
    signed by the agency CA and by the signing key it replaces, published to the hub before
    any file of the profile changes: a refusal leaves the profile as it was. Old encryption
    keys are kept in retired-keys/ so alerts wrapped to them stay readable. --tls alone
    publishes nothing (the hub accepts any TLS certificate of the agency CA). If the hub does
    not answer, the rotation stays pending in rotation/: run the command again to finish it.
    Partners follow the rotation on their next call that fetches keys.
    """
    chosen = [
        kind
        for kind, wanted in zip(KINDS, (signing, encryption, witness, tls), strict=True)
        if wanted or everything
    ]
    if not chosen:
        _stderr().print(
            "say what to rotate: --signing, --encryption, --witness, --tls (any of them), or "
            "--all; `exchange keys status` shows what expires",
            markup=False,
        )
        raise typer.Exit(2)  # usage
    profile_dir = _profile_dir(ctx)
    hub = getattr(ctx.find_root().obj, "hub", None)

    def publish(profile: Profile, envelope: Envelope) -> int:
        return publish_with_transport(replace(profile, hub_address=hub) if hub else profile, envelope)

    with _reported(json_output):
        result = rotate_keys(
            profile_dir, chosen, key_days=key_days, tls_days=tls_days, publish=publish
        )
    if json_output:
        _print_json(result.to_json())
        return
    out = _stdout()
    if result.resumed:
        out.print(
            "finished the rotation left pending by an earlier run "
            f"({', '.join(result.kinds)}); run the command again for anything else",
            markup=False,
        )
    for kind in result.kinds:
        out.print(
            f"{kind:<11} {result.fingerprints[kind]}  valid until "
            f"{rfc3339(result.expires[kind])}",
            markup=False,
        )
    if result.published:
        out.print(f"published key statement {result.key_number}", markup=False)
    for path in result.retired:
        out.print(f"kept {path}", markup=False)


SinceHelp = (
    "RFC 3339 time with a zone (2026-12-01T08:00:00Z) from which the key is compromised: what "
    "it signed from then on is flagged untrusted. Not in the future."
)


@keys_app.command("revoke")
def revoke_command(
    ctx: typer.Context,
    compromised: Annotated[
        bool,
        typer.Option("--compromised", help="The keys are compromised (required: the one kind of "
                     "revocation there is)."),
    ] = False,
    since: Annotated[
        str | None, typer.Option("--since", metavar="TIME", help=SinceHelp)
    ] = None,
    signing: Annotated[bool, typer.Option("--signing", help="The current signing key.")] = False,
    encryption: Annotated[
        bool, typer.Option("--encryption", help="The current encryption key.")
    ] = False,
    witness: Annotated[bool, typer.Option("--witness", help="The current witness key.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Mark this agency's current signing, encryption and/or witness key compromised from TIME.

    Publishes the next key statement, signed by the CA, the signing key it replaces and the new
    one; each key named is replaced by a new one certified by the profile's CA, and the profile
    moves to it (the old files are kept under replaced-keys/). Partners then flag what the old
    key signed from TIME on as untrusted (inbox, show, audit verify: exit 3), and the hub refuses
    grants to a compromised encryption key. For a lost or stolen CA key use `keys recover`.
    """
    kinds = [k for k, wanted in (("signing", signing), ("encryption", encryption),
                                 ("witness", witness)) if wanted]
    with _reported(json_output):
        if not compromised:
            raise InvalidInputError(
                "pass --compromised: a key is revoked because it is compromised (to replace a "
                "key that is not, rotate it)"
            )
        if since is None:
            raise InvalidInputError("pass --since TIME: from when the key is compromised")
        if not kinds:
            raise InvalidInputError(
                "name the compromised key: --signing, --encryption and/or --witness"
            )
        moment = parse_since(since, now=datetime.now(UTC))
    with _client(ctx, json_output) as client, _reported(json_output):
        published = client.revoke_compromised_keys(kinds, since=moment)
    _print_published(published, json_output)


@keys_app.command("recover")
def recover_command(
    ctx: typer.Context,
    recovery_key: Annotated[
        Path,
        typer.Option(
            "--recovery-key",
            metavar="FILE",
            help="The agency's offline recovery key (DIR/recovery/<id>-recovery-key.pem from "
            "`exchange-hub init`).",
        ),
    ],
    since: Annotated[
        str | None,
        typer.Option("--since", metavar="TIME", help="From when the old CA is compromised "
                     "(default: now). " + SinceHelp),
    ] = None,
    keys_compromised: Annotated[
        bool,
        typer.Option("--keys-compromised",
                     help="Mark the old signing, encryption and witness keys compromised too."),
    ] = False,
    new_recovery_key: Annotated[
        Path | None,
        typer.Option(
            "--new-recovery-key",
            metavar="FILE",
            help="Write a new recovery key here (it must not exist) and pin it instead of the "
            "one used; move it offline.",
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Replace this agency's lost or stolen CA, signed by the offline recovery key.

    Makes a new CA and new TLS, signing, encryption and witness keys certified by it, and
    publishes them as the next key statement signed by the recovery key that statement 1
    pinned (not by the old CA or keys), marking the old CA compromised from TIME. The hub then
    checks this agency's certificates against the new CA; partners follow on their next call.
    The profile moves to the new files (the old ones are kept under replaced-keys/). Any other
    recovery key is refused (exit 3) and the profile left as it was.
    """
    with _reported(json_output):
        moment = parse_since(since, now=datetime.now(UTC)) if since is not None else None
        key = load_recovery_key(recovery_key)
        next_key = None
        if new_recovery_key is not None:
            if new_recovery_key.exists():
                raise InvalidInputError(
                    f"{new_recovery_key} exists: name a new file for the new recovery key"
                )
            next_key = SigningKey.generate()
    with _client(ctx, json_output) as client, _reported(json_output):
        if next_key is not None and new_recovery_key is not None:
            _write_new_recovery_key(new_recovery_key, next_key)
        try:
            published = client.recover_ca(
                key, since=moment, keys_compromised=keys_compromised, next_recovery_key=next_key
            )
        except BaseException:
            if new_recovery_key is not None and next_key is not None:
                new_recovery_key.unlink(missing_ok=True)
            raise
    _print_published(published, json_output)


def _write_new_recovery_key(path: Path, key: SigningKey) -> None:
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(key.to_pem())
            file.flush()
            os.fsync(file.fileno())
    except OSError as e:
        raise ConfigurationError(f"{path}: cannot write the new recovery key: {e}") from e


def _print_published(published: KeyStatementPublished, json_output: bool) -> None:
    if json_output:
        _print_json(published.to_json())
        return
    console = _stdout()
    console.print(
        f"published key statement {published.key_number} of {published.agency_id}", markup=False
    )
    for compromise in published.compromised:
        console.print(
            f"  {compromise.key_type} key {compromise.key_id} compromised since "
            f"{rfc3339(compromise.since)}",
            markup=False,
        )
    console.print(f"  replaced: {', '.join(published.replaced)}", markup=False)
    console.print(f"  signing key    {published.signing_key_fingerprint}", markup=False)
    console.print(f"  encryption key {published.encryption_key_fingerprint}", markup=False)
    console.print(f"  CA             {published.ca_fingerprint}", markup=False)
