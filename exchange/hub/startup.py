"""What a hub checks before it touches its database or its port, so a bad start changes nothing.

Each problem is one :class:`ConfigurationError` line naming the file or setting and what to do:
a key or certificate that is missing, unreadable, malformed or (a private key) open to group or
others; a listen address another process holds.  And one hub at a time per SQLite database:
:class:`DatabaseDirectoryLock` holds an exclusive ``flock`` on the database's directory for as
long as the hub runs.  Several replicas on one PostgreSQL database stay allowed (DESIGN §9).
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy.engine import make_url

from exchange import pki
from exchange.config.profile import parse_host_port
from exchange.crypto.keys import SigningKey
from exchange.errors import ConfigurationError, ExchangeError
from exchange.hub.config import HubConfig


@dataclass(frozen=True)
class StartupFiles:
    """The hub's own key material, read and checked before anything else happens."""

    tls_key_pem: bytes
    tls_certificate_pem: bytes
    checkpoint_key: SigningKey


def _where(config: HubConfig, setting: str, path: Path) -> str:
    return f"{path} ({config.config_path.name}: {setting})"


def _too_open(status: os.stat_result) -> bool:
    """Whether a private key file is open to others (PostgreSQL's rule for its own key): 0600 or
    less, except that a hub not running as root may read a root-owned key through its group
    (0640), which is how Kubernetes mounts a Secret for a pod's ``fsGroup``."""
    through_group = status.st_uid == 0 and os.geteuid() != 0
    allowed = 0o640 if through_group else 0o600
    return bool(stat.S_IMODE(status.st_mode) & ~allowed & 0o777)


def _read(config: HubConfig, setting: str, path: Path, *, private: bool) -> bytes:
    where = _where(config, setting, path)
    try:
        status = path.stat()
        if private and stat.S_ISREG(status.st_mode) and _too_open(status):
            raise ConfigurationError(
                f"{where}: private key is readable by group or others (mode "
                f"{stat.S_IMODE(status.st_mode):04o}); run `chmod 600 {path}`",
                reason="KEY_FILE_PERMISSIONS",
            )
        return path.read_bytes()
    except FileNotFoundError as e:
        raise ConfigurationError(
            f"{where}: no such file; restore it, or point {setting} at it in "
            f"{config.config_path}",
            reason="KEY_FILE_MISSING",
        ) from e
    except IsADirectoryError as e:
        raise ConfigurationError(f"{where}: is a directory, not a file") from e
    except OSError as e:
        raise ConfigurationError(f"{where}: cannot read the file ({e.strerror})") from e


def read_startup_files(config: HubConfig) -> StartupFiles:
    """Read and check the TLS key and certificate and the checkpoint key named by ``config``."""
    tls_key_pem = _read(config, "[tls] key", config.tls_key, private=True)
    tls_certificate_pem = _read(config, "[tls] certificate", config.tls_certificate, private=False)
    checkpoint_pem = _read(config, "[log] checkpoint_key", config.checkpoint_key, private=True)
    try:
        tls_key = pki.load_tls_private_key_pem(tls_key_pem)
    except ExchangeError as e:
        raise ConfigurationError(
            f"{_where(config, '[tls] key', config.tls_key)}: {e.message}"
        ) from e
    try:
        certificate = pki.load_certificate_pem(tls_certificate_pem)
    except ExchangeError as e:
        where = _where(config, "[tls] certificate", config.tls_certificate)
        raise ConfigurationError(f"{where}: {e.message}") from e
    if _public_der(certificate) != tls_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        raise ConfigurationError(
            f"{config.tls_key} does not belong to the certificate {config.tls_certificate}: "
            "put the key and certificate `exchange-hub init` made together in [tls]"
        )
    try:
        checkpoint_key = SigningKey.from_pem(checkpoint_pem)
    except ExchangeError as e:
        where = _where(config, "[log] checkpoint_key", config.checkpoint_key)
        raise ConfigurationError(f"{where}: {e.message}") from e
    return StartupFiles(tls_key_pem, tls_certificate_pem, checkpoint_key)


def _public_der(certificate: x509.Certificate) -> bytes:
    return certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def check_address_free(listen: str, *, setting: str = "listen") -> None:
    """Refuse ``listen`` if another process holds it (port 0 always passes).

    The hub binds without ``SO_REUSEPORT``, so the bind itself would fail too; asking first
    keeps a refused start from migrating or writing anything.
    """
    host, port = parse_host_port(listen)
    if port == 0:
        return
    try:
        addresses = socket.getaddrinfo(
            host.strip("[]") or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as e:
        raise ConfigurationError(f"{setting} {listen}: cannot resolve {host!r} ({e.strerror})") from e
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as e:
                raise address_error(listen, e.errno, setting=setting) from e


def address_error(listen: str, code: int | None, *, setting: str = "listen") -> ConfigurationError:
    """The one line for a listen address that cannot be bound."""
    if code == errno.EADDRINUSE:
        return ConfigurationError(
            f"{setting} {listen}: the address is already in use (another hub?); stop that "
            "process or choose another address with --listen",
            reason="ADDRESS_IN_USE",
        )
    if code == errno.EACCES:
        return ConfigurationError(
            f"{setting} {listen}: not permitted to listen there; use a port above 1023"
        )
    return ConfigurationError(
        f"{setting} {listen}: cannot listen there ({os.strerror(code) if code else 'unknown'}); "
        "use an address of this machine"
    )


def sqlite_file(database_url: str) -> Path | None:
    """The file of an SQLite database URL; ``None`` for PostgreSQL and in-memory databases."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    database = url.database
    if database.startswith("file:"):
        database = database.removeprefix("file:").partition("?")[0]
        if not database or database == ":memory:":
            return None
    return Path(database).absolute()


class DatabaseDirectoryLock:
    """An exclusive ``flock`` on an SQLite database's directory, held while one hub runs.

    Taken with :meth:`acquire` before the database is opened; the kernel drops it when the hub
    exits, however it exits, so there is no stale lock to clean up.
    """

    def __init__(self, database: Path, descriptor: int) -> None:
        self.database = database
        self._descriptor: int | None = descriptor

    @classmethod
    def acquire(cls, database_url: str) -> DatabaseDirectoryLock | None:
        """Lock the directory of ``database_url``'s file; ``None`` when it has no file."""
        database = sqlite_file(database_url)
        if database is None:
            return None
        directory = database.parent
        try:
            descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError as e:
            raise ConfigurationError(
                f"database {database}: the directory {directory} does not exist; create it or "
                "correct database_url",
                reason="DATABASE_UNAVAILABLE",
            ) from e
        except OSError as e:
            raise ConfigurationError(
                f"database {database}: cannot open its directory ({e.strerror})",
                reason="DATABASE_UNAVAILABLE",
            ) from e
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(descriptor)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise ConfigurationError(
                    f"database {database}: cannot lock {directory} ({e.strerror})"
                ) from e
            raise ConfigurationError(
                f"database {database} is already in use by another hub (its directory "
                f"{directory} is locked); stop that hub, or give this one its own --database",
                reason="DATABASE_IN_USE",
            ) from e
        return cls(database, descriptor)

    def release(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)  # closing the last descriptor drops the flock
            self._descriptor = None
