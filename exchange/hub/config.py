"""The hub's configuration: ``hub.toml`` parsed into one immutable object.

Only entry points read files and the environment (DESIGN §12); the hub itself takes a
:class:`HubConfig`. Precedence, lowest first: the file's values and the defaults below, then the
environment (:meth:`HubConfig.apply_env`), then command-line flags (:meth:`HubConfig.with_overrides`).

``exchange-hub init`` writes this file::

    listen = "127.0.0.1:50051"
    database_url = "sqlite:///hub.db"        # relative SQLite paths: against this file's directory
    health_listen = "127.0.0.1:50052"        # optional: plaintext gRPC health service only
    metrics_listen = "127.0.0.1:9464"        # optional: Prometheus text format over HTTP

    [tls]
    certificate = "hub/tls.pem"
    key = "hub/tls-key.pem"

    [registry]
    directory = "registry"

    [log]
    origin = "exchange.example/log"
    checkpoint_key = "hub/checkpoint-key.pem"
    checkpoint_interval_seconds = 60
    state_file = "hub/log-state.json"        # default: beside the checkpoint key

    [feed]
    heartbeat_interval_seconds = 15

    [limits]
    max_message_bytes = 8388608
    rate_limit_per_agency = 50
    rate_limit_burst = 100

Every key is optional; each default is documented on :class:`HubConfig`. Unknown keys are refused,
so a misspelt setting is an error rather than silently ignored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from exchange.config.profile import parse_host_port
from exchange.config.toml_files import TomlTable, read_toml
from exchange.errors import ConfigurationError

DEFAULT_LISTEN = "127.0.0.1:50051"
DEFAULT_DATABASE_FILE = "hub.db"
DEFAULT_TLS_CERTIFICATE = "hub/tls.pem"
DEFAULT_TLS_KEY = "hub/tls-key.pem"
DEFAULT_REGISTRY_DIRECTORY = "registry"
DEFAULT_CHECKPOINT_KEY = "hub/checkpoint-key.pem"
DEFAULT_LOG_ORIGIN = "exchange.example/log"
DEFAULT_CHECKPOINT_INTERVAL_SECONDS = 60.0
DEFAULT_HEARTBEAT_INTERVAL_SECONDS = 15.0
DEFAULT_MAX_MESSAGE_BYTES = 8 * 1024 * 1024
DEFAULT_RATE_LIMIT_PER_AGENCY = 50.0
DEFAULT_RATE_LIMIT_BURST = 100

LOG_STATE_FILE_NAME = "log-state.json"

ENV_LISTEN = "EXCHANGE_HUB_LISTEN"
ENV_DATABASE_URL = "EXCHANGE_HUB_DATABASE_URL"


def check_log_origin(origin: str) -> str:
    """Return ``origin`` if it can name a log in C2SP signed notes, else raise.

    The origin is the first line of every checkpoint and the key name of the checkpoint key, so it
    must be non-empty printable ASCII without spaces or ``+`` (which separates the parts of a
    verifier key). A schema-less URL such as ``exchange.example/log`` is conventional.
    """
    if (
        not isinstance(origin, str)
        or not origin
        or not origin.isascii()
        or not origin.isprintable()
        or " " in origin
        or "+" in origin
    ):
        raise ConfigurationError(
            f"log origin {origin!r} must be non-empty printable ASCII without spaces or '+', "
            "such as 'exchange.example/log'"
        )
    return origin


@dataclass(frozen=True)
class HubConfig:
    """Everything ``exchange-hub serve`` needs to know, with paths made absolute.

    Fields and their defaults (relative paths are resolved against the directory of the file):

    - ``listen``: ``HOST:PORT`` to serve on; ``127.0.0.1:50051``. Port 0 picks a free port.
    - ``database_url``: SQLAlchemy URL; ``sqlite:///<config dir>/hub.db``.
    - ``tls_certificate`` / ``tls_key``: the hub's TLS server certificate and key;
      ``hub/tls.pem`` and ``hub/tls-key.pem``.
    - ``registry_dir``: public agency material imported at start; ``registry``.
    - ``checkpoint_key``: the Ed25519 key that signs checkpoints; ``hub/checkpoint-key.pem``.
    - ``log_origin``: the origin line of checkpoints and the checkpoint key's name;
      ``exchange.example/log``. Give every deployment its own.
    - ``checkpoint_interval_seconds``: the longest time between checkpoints when idle; 60.
    - ``heartbeat_interval_seconds``: time between heartbeats on a subscription; 15.
    - ``max_message_bytes``: the largest request the application accepts; 8 MiB. The transport
      limit is set above it so the application answers oversized requests with details.
    - ``rate_limit_per_agency``: requests per second each agency may sustain; 50.
    - ``rate_limit_burst``: requests an agency may make at once above that rate; 100.
    - ``health_listen``: ``HOST:PORT`` of a plaintext port serving only the standard gRPC health
      service, for probes that hold no agency certificate; none by default. Bind it to loopback
      or a pod-internal address: it tells anyone who reaches it whether the hub serves.
    - ``metrics_listen``: ``HOST:PORT`` serving Prometheus metrics over plain HTTP; none by
      default. No metric names an alert, an item or any content.
    - ``log_state_file``: where the hub remembers the latest checkpoint it signed, outside the
      database, so that a database restored from an older backup is refused instead of served
      (``[log] state_file``); ``log-state.json`` beside the checkpoint key.
    """

    config_path: Path
    listen: str
    database_url: str
    tls_certificate: Path
    tls_key: Path
    registry_dir: Path
    checkpoint_key: Path
    log_origin: str
    checkpoint_interval_seconds: float
    heartbeat_interval_seconds: float
    max_message_bytes: int
    rate_limit_per_agency: float
    rate_limit_burst: int
    health_listen: str | None = None
    metrics_listen: str | None = None
    log_state_file: Path | None = None

    @property
    def log_state_path(self) -> Path:
        """The file holding the latest signed checkpoint (see ``log_state_file``)."""
        if self.log_state_file is not None:
            return self.log_state_file
        return self.checkpoint_key.parent / LOG_STATE_FILE_NAME

    @property
    def directory(self) -> Path:
        """The directory holding the configuration file, against which paths are resolved."""
        return self.config_path.parent

    @classmethod
    def from_file(cls, path: Path) -> HubConfig:
        """Read ``hub.toml`` at ``path``; every problem is a :class:`ConfigurationError`."""
        file = Path(path).absolute()
        directory = file.parent
        document = read_toml(
            file,
            missing="no hub configuration here; make one with `exchange-hub init DIR --agency ID`",
            fix="fix it",
        )
        top = TomlTable(document, file, "")
        tls = top.table("tls")
        registry = top.table("registry")
        log = top.table("log")
        feed = top.table("feed")
        limits = top.table("limits")

        listen = top.string("listen", DEFAULT_LISTEN)
        _check_listen(listen, f"{file}: listen")
        health_listen = top.optional_string("health_listen")
        metrics_listen = top.optional_string("metrics_listen")
        for key, value in (("health_listen", health_listen), ("metrics_listen", metrics_listen)):
            if value is not None:
                _check_listen(value, f"{file}: {key}")
        state_file = log.optional_string("state_file")
        database_url = _resolve_database_url(
            top.string("database_url", f"sqlite:///{DEFAULT_DATABASE_FILE}"),
            directory,
            f"{file}: database_url",
        )
        origin = log.string("origin", DEFAULT_LOG_ORIGIN)
        try:
            check_log_origin(origin)
        except ConfigurationError as e:
            raise ConfigurationError(f"{file}: [log] origin: {e.message}") from e
        config = cls(
            config_path=file,
            listen=listen,
            database_url=database_url,
            tls_certificate=directory / tls.string("certificate", DEFAULT_TLS_CERTIFICATE),
            tls_key=directory / tls.string("key", DEFAULT_TLS_KEY),
            registry_dir=directory / registry.string("directory", DEFAULT_REGISTRY_DIRECTORY),
            checkpoint_key=directory / log.string("checkpoint_key", DEFAULT_CHECKPOINT_KEY),
            log_origin=origin,
            checkpoint_interval_seconds=log.positive_number(
                "checkpoint_interval_seconds", DEFAULT_CHECKPOINT_INTERVAL_SECONDS
            ),
            heartbeat_interval_seconds=feed.positive_number(
                "heartbeat_interval_seconds", DEFAULT_HEARTBEAT_INTERVAL_SECONDS
            ),
            max_message_bytes=limits.positive_integer(
                "max_message_bytes", DEFAULT_MAX_MESSAGE_BYTES
            ),
            rate_limit_per_agency=limits.positive_number(
                "rate_limit_per_agency", DEFAULT_RATE_LIMIT_PER_AGENCY
            ),
            rate_limit_burst=limits.positive_integer("rate_limit_burst", DEFAULT_RATE_LIMIT_BURST),
            health_listen=health_listen,
            metrics_listen=metrics_listen,
            log_state_file=None if state_file is None else directory / state_file,
        )
        top.refuse_unknown(
            {
                "listen",
                "database_url",
                "health_listen",
                "metrics_listen",
                "tls",
                "registry",
                "log",
                "feed",
                "limits",
            }
        )
        tls.refuse_unknown({"certificate", "key"})
        registry.refuse_unknown({"directory"})
        log.refuse_unknown(
            {"origin", "checkpoint_key", "checkpoint_interval_seconds", "state_file"}
        )
        feed.refuse_unknown({"heartbeat_interval_seconds"})
        limits.refuse_unknown({"max_message_bytes", "rate_limit_per_agency", "rate_limit_burst"})
        return config

    def with_overrides(
        self,
        *,
        listen: str | None = None,
        database_url: str | None = None,
        health_listen: str | None = None,
        metrics_listen: str | None = None,
    ) -> HubConfig:
        """A copy with the given values replaced (``None`` keeps the current one).

        For command-line flags: a relative SQLite path here is left as given, so it is relative to
        the working directory the operator typed it in.
        """
        changes: dict[str, Any] = {}
        for key, value in (
            ("listen", listen),
            ("health_listen", health_listen),
            ("metrics_listen", metrics_listen),
        ):
            if value is not None:
                _check_listen(value, key.replace("_", " "))
                changes[key] = value
        if database_url is not None:
            _check_database_url(database_url, "database url")
            changes["database_url"] = database_url
        return dataclasses.replace(self, **changes)

    def apply_env(self, environ: Mapping[str, str]) -> HubConfig:
        """A copy with ``EXCHANGE_HUB_LISTEN`` and ``EXCHANGE_HUB_DATABASE_URL`` applied.

        Unset or empty variables change nothing. Only entry points call this, with ``os.environ``.
        """
        listen = environ.get(ENV_LISTEN) or None
        database_url = environ.get(ENV_DATABASE_URL) or None
        try:
            return self.with_overrides(listen=listen, database_url=database_url)
        except ConfigurationError as e:
            raise ConfigurationError(f"environment: {e.message}") from e

    def to_toml(self) -> str:
        """``hub.toml`` text for this configuration; paths under its directory are relative."""
        document: dict[str, Any] = {
            "listen": self.listen,
            "database_url": self._relative_database_url(),
            **({"health_listen": self.health_listen} if self.health_listen else {}),
            **({"metrics_listen": self.metrics_listen} if self.metrics_listen else {}),
            "tls": {
                "certificate": self._relative(self.tls_certificate),
                "key": self._relative(self.tls_key),
            },
            "registry": {"directory": self._relative(self.registry_dir)},
            "log": {
                "origin": self.log_origin,
                "checkpoint_key": self._relative(self.checkpoint_key),
                "checkpoint_interval_seconds": self.checkpoint_interval_seconds,
                **(
                    {"state_file": self._relative(self.log_state_file)}
                    if self.log_state_file is not None
                    else {}
                ),
            },
            "feed": {"heartbeat_interval_seconds": self.heartbeat_interval_seconds},
            "limits": {
                "max_message_bytes": self.max_message_bytes,
                "rate_limit_per_agency": self.rate_limit_per_agency,
                "rate_limit_burst": self.rate_limit_burst,
            },
        }
        return tomli_w.dumps(document)

    @classmethod
    def default(cls, config_path: Path) -> HubConfig:
        """The configuration a ``hub.toml`` at ``config_path`` with no settings at all means."""
        file = Path(config_path).absolute()
        directory = file.parent
        return cls(
            config_path=file,
            listen=DEFAULT_LISTEN,
            database_url=_resolve_database_url(
                f"sqlite:///{DEFAULT_DATABASE_FILE}", directory, "database_url"
            ),
            tls_certificate=directory / DEFAULT_TLS_CERTIFICATE,
            tls_key=directory / DEFAULT_TLS_KEY,
            registry_dir=directory / DEFAULT_REGISTRY_DIRECTORY,
            checkpoint_key=directory / DEFAULT_CHECKPOINT_KEY,
            log_origin=DEFAULT_LOG_ORIGIN,
            checkpoint_interval_seconds=DEFAULT_CHECKPOINT_INTERVAL_SECONDS,
            heartbeat_interval_seconds=DEFAULT_HEARTBEAT_INTERVAL_SECONDS,
            max_message_bytes=DEFAULT_MAX_MESSAGE_BYTES,
            rate_limit_per_agency=DEFAULT_RATE_LIMIT_PER_AGENCY,
            rate_limit_burst=DEFAULT_RATE_LIMIT_BURST,
        )

    def _relative(self, path: Path) -> str:
        try:
            return path.relative_to(self.directory).as_posix()
        except ValueError:
            return str(path)

    def _relative_database_url(self) -> str:
        url = make_url(self.database_url)
        if url.get_backend_name() != "sqlite" or not url.database:
            return self.database_url
        database = Path(url.database)
        if not database.is_absolute():
            return self.database_url
        return url.set(database=self._relative(database)).render_as_string(hide_password=False)


# --- parsing -----------------------------------------------------------------------------------


def _check_listen(listen: str, where: str) -> None:
    try:
        parse_host_port(listen)
    except ConfigurationError as e:
        raise ConfigurationError(f"{where}: {e.message}") from e


def _check_database_url(database_url: str, where: str) -> None:
    try:
        make_url(database_url)
    except (ArgumentError, ValueError) as e:
        raise ConfigurationError(f"{where}: {database_url!r} is not a database URL") from e


def _resolve_database_url(database_url: str, directory: Path, where: str) -> str:
    """Make a relative SQLite file path absolute against ``directory``; leave the rest alone."""
    _check_database_url(database_url, where)
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return database_url
    if url.database.startswith("file:") or Path(url.database).is_absolute():
        return database_url
    return url.set(database=str(directory / url.database)).render_as_string(hide_password=False)
