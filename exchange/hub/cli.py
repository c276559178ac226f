"""``exchange-hub``: set up an exchange, run the hub, manage the registry."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from grpc_health.v1 import health_pb2
from rich.table import Table

from exchange import cli_conventions, pki
from exchange.crypto.keys import SigningKey
from exchange.crypto.notes import NoteSigner
from exchange.errors import ConfigurationError, ExchangeError
from exchange.hub.app import Hub
from exchange.hub.config import HubConfig
from exchange.hub.health import check_health
from exchange.hub.init import init_exchange, read_public_bundle
from exchange.hub.log_format import LogFormat, configure_logging, default_log_format
from exchange.store import registry
from exchange.store.db import Database

app = typer.Typer(
    help="Run and administer an exchange hub: the relay that stores ciphertext, signed "
    "statements and the audit log, and can read none of the alerts it carries.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)
agency_app = typer.Typer(help="Manage the registry of agencies.", no_args_is_help=True)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(agency_app, name="agency")
app.add_typer(db_app, name="db")

out = cli_conventions.console()
err = cli_conventions.console(stderr=True)
log = logging.getLogger("exchange.hub")

EXIT_ERROR = 1
EXIT_USAGE = 2

ConfigOption = Annotated[
    Path,
    typer.Option("--config", "-c", help="The hub's configuration file (written by `init`).",
                 envvar="EXCHANGE_HUB_CONFIG"),
]
DatabaseOption = Annotated[
    str | None,
    typer.Option("--database", help="Database URL, overriding the config: sqlite:///PATH or "
                 "postgresql+psycopg://USER@HOST/DB.", envvar="EXCHANGE_HUB_DATABASE_URL"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _now() -> datetime:
    return datetime.now(UTC)


def _load_config(
    path: Path,
    database: str | None = None,
    listen: str | None = None,
    **listeners: str | None,
) -> HubConfig:
    config = HubConfig.from_file(path).apply_env(os.environ)
    return config.with_overrides(database_url=database, listen=listen, **listeners)


def _exit_code(error: ExchangeError) -> int:
    """2 for a configuration the operator must fix (the file, a key, the database), else 1."""
    return EXIT_USAGE if isinstance(error, ConfigurationError) else EXIT_ERROR


def _fail(error: ExchangeError, *, json_output: bool = False) -> NoReturn:
    cli_conventions.fail(error, code=_exit_code(error), as_json=json_output)


@app.callback()
def _root(
    version: Annotated[
        bool, cli_conventions.version_option("exchange-hub")
    ] = False,
) -> None:
    """Run and administer an exchange hub."""


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Directory to create the exchange in.")],
    agency: Annotated[list[str], typer.Option("--agency", help="An agency id; repeat for each.")],
    listen: Annotated[str, typer.Option(help="HOST:PORT the hub will listen on.")] = "127.0.0.1:50051",
    force: Annotated[bool, typer.Option(help="Overwrite an existing exchange directory.")] = False,
    tls_days: Annotated[
        int,
        typer.Option(
            "--tls-days", min=1, metavar="DAYS",
            help="How long each agency's TLS client certificate is valid.",
        ),
    ] = pki.DEFAULT_TLS_VALIDITY_DAYS,
    key_days: Annotated[
        int,
        typer.Option(
            "--key-days", min=1, metavar="DAYS",
            help="How long each agency's signing, encryption and witness key certificates are "
            "valid.",
        ),
    ] = pki.DEFAULT_KEY_VALIDITY_DAYS,
) -> None:
    """Create a hub and one profile per agency, each with its own CA and keys.

    Writes DIR/hub.toml, the hub's TLS certificate and checkpoint key, DIR/registry/ (public
    material only), DIR/agencies/<id>/ (each agency's private keys, mode 0600) and
    DIR/recovery/<id>-recovery-key.pem (each agency's offline recovery key, pinned by its first
    key statement: move it off the machine; `exchange keys recover` needs it to replace a lost
    or stolen CA). Agency certificates last --tls-days (TLS, default 90) and --key-days (keys,
    default 365); `exchange keys rotate` renews them.
    """
    try:
        result = init_exchange(
            directory, list(agency), listen=listen, force=force, tls_days=tls_days,
            key_days=key_days,
        )
    except ExchangeError as e:
        _fail(e)
        return
    out.print(f"exchange created in [bold]{directory}[/bold]")
    out.print(f"  hub config   {result.hub_config_path}")
    for agency_id, profile in sorted(result.profiles.items()):
        out.print(f"  {agency_id:<12} profile {profile}")
    for agency_id, recovery in sorted(result.recovery_keys.items()):
        out.print(f"  {agency_id:<12} recovery key {recovery} (move it offline)")
    out.print(f"  checkpoint key {result.checkpoint_verifier_key}")
    out.print(f"start the hub:  exchange-hub serve --config {result.hub_config_path}")


@app.command()
def serve(
    config: ConfigOption,
    listen: Annotated[str | None, typer.Option(help="HOST:PORT, overriding the config.")] = None,
    database: DatabaseOption = None,
    metrics_listen: Annotated[
        str | None,
        typer.Option(help="HOST:PORT to serve Prometheus metrics on (http://HOST:PORT/metrics), "
                     "overriding metrics_listen in the config."),
    ] = None,
    health_listen: Annotated[
        str | None,
        typer.Option(help="HOST:PORT of a plaintext port serving only the gRPC health service, "
                     "for probes; overrides health_listen in the config. Keep it on loopback "
                     "or a pod-internal address."),
    ] = None,
    log_format: Annotated[
        LogFormat | None,
        typer.Option(help="json (one object per line) or text; default: text on a terminal, "
                     "json otherwise."),
    ] = None,
) -> None:
    """Migrate the database, import the registry and serve until interrupted."""
    configure_logging(log_format or default_log_format(sys.stderr))
    try:
        hub_config = _load_config(
            config, database, listen, metrics_listen=metrics_listen, health_listen=health_listen
        )
        hub = Hub(hub_config)
        imported = hub.prepare()
        port = hub.start()
    except ExchangeError as e:
        _fail(e)
        return
    if imported.added:
        log.info("registered: %s", ", ".join(imported.added), extra={"event": "registered"})
    host = hub_config.listen.rpartition(":")[0]
    print(f"listening on {host}:{port}", flush=True)
    if hub.health_port is not None and hub_config.health_listen is not None:
        print(f"health on {hub_config.health_listen.rpartition(':')[0]}:{hub.health_port}",
              flush=True)
    if hub.metrics_port is not None and hub_config.metrics_listen is not None:
        print(f"metrics on {hub_config.metrics_listen.rpartition(':')[0]}:{hub.metrics_port}",
              flush=True)

    def shutdown(signum: int, _frame: Any) -> None:
        hub.stop()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    hub.wait()


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption, database: DatabaseOption = None) -> None:
    """Bring the database schema to the latest revision."""
    try:
        hub_config = _load_config(config, database)
        db = Database.from_url(hub_config.database_url)
        db.migrate()
        db.dispose()
    except ExchangeError as e:
        _fail(e)
    out.print("database is at the latest revision")


@agency_app.command("add")
def agency_add(
    config: ConfigOption,
    bundle: Annotated[Path, typer.Argument(help="The agency's public bundle: a directory with "
                                           "ca.pem, signing.pem, encryption.pem, witness.pem and keys.dsse.")],
    database: DatabaseOption = None,
) -> None:
    """Register an agency from its public material only (never a private key).

    The bundle is also copied into the hub's registry directory, so a fresh database gets it at
    the next start.
    """
    try:
        hub_config = _load_config(config, database)
        now = _now()
        material = read_public_bundle(bundle, now=now)
        keys = material.keys
        db = Database.from_url(hub_config.database_url)
        db.migrate()
        with db.write() as connection:
            changed = registry.register_agency(
                connection, ca_certificate=material.ca_certificate, keys=keys, now=now
            )
        db.dispose()
        target = hub_config.registry_dir / keys.agency_id
        if bundle.resolve() != target.resolve():
            target.mkdir(parents=True, exist_ok=True)
            for name in ("ca.pem", "signing.pem", "encryption.pem", "witness.pem", "keys.dsse"):
                source = bundle / name
                if source.exists():
                    (target / name).write_bytes(source.read_bytes())
    except ExchangeError as e:
        _fail(e)
        return
    verb = "registered" if changed else "already registered"
    out.print(f"{verb}: {keys.agency_id} (signing key {keys.verify_key.fingerprint})")


@agency_app.command("list")
def agency_list(config: ConfigOption, database: DatabaseOption = None, json_output: JsonOption = False) -> None:
    """List registered agencies with their CA fingerprints and status."""
    try:
        hub_config = _load_config(config, database)
        db = Database.from_url(hub_config.database_url)
        db.migrate()
        with db.read() as connection:
            rows = registry.list_agencies(connection)
        db.dispose()
    except ExchangeError as e:
        _fail(e, json_output=json_output)
    records = [
        {
            "agency_id": row.agency_id,
            "ca_fingerprint": pki.fingerprint(pki.load_certificate_der(row.ca_certificate_der)),
            "key_statements": len(row.keys),
            "revoked": row.revoked,
            "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
        }
        for row in rows
    ]
    if json_output:
        print(json.dumps(records, indent=2))
        return
    table = Table("agency", "CA fingerprint", "keys", "status")
    for r in records:
        table.add_row(
            str(r["agency_id"]),
            str(r["ca_fingerprint"]),
            str(r["key_statements"]),
            "[red]revoked[/red]" if r["revoked"] else "active",
        )
    out.print(table)


@agency_app.command("revoke")
def agency_revoke(
    config: ConfigOption,
    agency_id: Annotated[str, typer.Argument(help="The agency to revoke.")],
    database: DatabaseOption = None,
) -> None:
    """Revoke an agency: its calls are refused from now on and no grant is accepted for it."""
    try:
        hub_config = _load_config(config, database)
        db = Database.from_url(hub_config.database_url)
        db.migrate()
        with db.write() as connection:
            registry.revoke_agency(connection, agency_id, now=_now())
        db.dispose()
    except ExchangeError as e:
        _fail(e)
    out.print(f"revoked: {agency_id}")


@app.command("checkpoint-key")
def checkpoint_key(config: ConfigOption) -> None:
    """Print the verifier key of the hub's checkpoint-signing key (C2SP signed-note form)."""
    try:
        hub_config = _load_config(config)
        key = SigningKey.from_pem(hub_config.checkpoint_key.read_bytes())
        signer = NoteSigner(hub_config.log_origin, key.native)
    except ExchangeError as e:
        _fail(e)
        return
    print(signer.verifier().to_string())


@app.command()
def health(
    address: Annotated[
        str | None,
        typer.Option(help="HOST:PORT of the hub's plaintext health port; default: "
                     "health_listen from the config."),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="The hub's configuration file, for health_listen.",
                     envvar="EXCHANGE_HUB_CONFIG"),
    ] = None,
    liveness: Annotated[
        bool,
        typer.Option("--liveness", help="Exit 0 whenever the hub answers, even NOT_SERVING (a "
                     "hub waiting for its database is alive: restarting it does not help)."),
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for an answer.")] = 5.0,
) -> None:
    """Ask the hub's gRPC health service; exit 0 when it is SERVING, 1 otherwise.

    This is what the container's HEALTHCHECK and the compose and Kubernetes probes run. It asks
    the plaintext health port (health_listen), which serves nothing but the health service, so
    the probe needs no agency certificate. A hub whose database is unreachable answers
    NOT_SERVING within a few seconds, and SERVING again once the database is back.
    """
    if address is None:
        if config is None:
            err.print("error: name the health port with --address HOST:PORT, or the hub's "
                      "config with --config hub.toml (which must set health_listen)",
                      highlight=False)
            raise typer.Exit(2)
        try:
            hub_config = _load_config(config)
        except ExchangeError as e:
            _fail(e)
        if hub_config.health_listen is None:
            err.print(f"error: {hub_config.config_path} sets no health_listen: add "
                      "health_listen = \"127.0.0.1:50052\" (the hub's plaintext health port) "
                      "and restart the hub, or pass --address", highlight=False)
            raise typer.Exit(2)
        address = _dialable(hub_config.health_listen)
    try:
        status = check_health(address, timeout=timeout)
    except ExchangeError as e:
        err.print(f"error: {e}", highlight=False)
        raise typer.Exit(1) from None
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
    out.print(name, highlight=False)
    serving = status == health_pb2.HealthCheckResponse.SERVING
    raise typer.Exit(0 if serving or liveness else 1)


def _dialable(listen: str) -> str:
    """The address a local probe dials for a listen address: a wildcard host means loopback."""
    host, _, port = listen.rpartition(":")
    if host in ("0.0.0.0", "[::]", "::"):
        host = "127.0.0.1" if host == "0.0.0.0" else "[::1]"
    return f"{host}:{port}"


def main() -> None:
    """Console entry point."""
    # An error escaping a command is still one line, not a trace.
    cli_conventions.run(app, on_error=lambda e, as_json: _fail(e, json_output=as_json))
