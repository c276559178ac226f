"""An agency's profile on disk: what a client needs to act as that agency.

``exchange-hub init`` writes one profile per agency under ``DIR/agencies/<id>/``::

    profile.toml          agency_id, hub_address, [paths], [partners], [audit], [taxii]
    ca.pem  ca-key.pem    the agency's CA (key 0600)
    tls.pem tls-key.pem   mTLS client certificate and key (0600)
    signing.pem signing-key.pem        Ed25519 key certificate + private key (0600)
    encryption.pem encryption-key.pem  X25519 key certificate + private key (0600)
    witness.pem witness-key.pem        Ed25519 witness (cosigning) key certificate + key (0600)
    hub-ca.pem            the hub's CA, to verify the hub's TLS certificate
    partners/<id>.pem     each partner agency's CA certificate (own one included)
    keys.dsse             this agency's latest AgencyKeys statement, DSSE JSON
    retired-keys/         encryption keys replaced by `exchange keys rotate`, `revoke` or
                          `recover` (0700), kept to open what was wrapped to them:
                          encryption-key-<n>.pem, encryption-<n>.pem
    replaced-keys/        every file `keys revoke` or `keys recover` replaced, as <n>-<name>
    rotate.lock           the one key-change lock (rotate, revoke, recover)
    rotation/ pending-keys/  a key change the hub has not answered yet (finished by rotate,
                          by hand for revoke and recover: OPERATIONS, "Key lifecycle")
    state/                client state: cursor, last checkpoint, outbox (0700)

:class:`ProfileConfig` is ``profile.toml`` parsed (paths made absolute against the profile
directory); :func:`load_profile` reads and checks everything it names into a
:class:`ProfileData`. Every problem is a :class:`ConfigurationError` naming the file and what to do,
because a profile is fixed by an operator, not by retrying.

:func:`parse_host_port` lives here because the client's hub address and the hub's listen address
share one syntax.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple, TypeVar

import tomli_w
from cryptography import x509

from exchange import pki
from exchange.config.toml_files import TomlTable, read_toml
from exchange.crypto.dsse import Envelope
from exchange.crypto.keys import DecryptionKey, SigningKey
from exchange.crypto.notes import NoteVerifier
from exchange.errors import ConfigurationError, ExchangeError, InvalidInputError
from exchange.statements.codec import PAYLOAD_TYPES

PROFILE_FILE_NAME = "profile.toml"

AGENCY_KEYS_PAYLOAD_TYPE = PAYLOAD_TYPES["agency_keys"]
"""The DSSE payload type of an ``AgencyKeys`` statement (``keys.dsse``)."""

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIRECTORY_MODE = 0o700

DEFAULT_MAX_COSIGNATURE_AGE_SECONDS = 3600
"""``[audit] max_cosignature_age_seconds`` when unset: required cosignatures an hour old at most."""


# --- addresses ---------------------------------------------------------------------------------


def parse_host_port(value: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[v6]:PORT`` for IPv6) into host and port.

    Raises :class:`ConfigurationError` for anything else, such as a missing port or one outside
    0-65535 (0 asks the system for a free port, which only a listen address may want).
    """
    host, separator, port_text = value.rpartition(":")
    if not separator or not host or not port_text.isascii() or not port_text.isdigit():
        raise ConfigurationError(f"address {value!r} is not HOST:PORT")
    port = int(port_text)
    if port > 65535:
        raise ConfigurationError(f"address {value!r} has a port outside 0-65535")
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError as e:
            raise ConfigurationError(f"address {value!r} has an invalid IPv6 host") from e
        return host[1:-1], port
    if ":" in host:
        raise ConfigurationError(f"address {value!r}: write an IPv6 host in brackets, [::1]:PORT")
    if any(c.isspace() for c in host) or not host.isascii():
        raise ConfigurationError(f"address {value!r} has an invalid host")
    return host, port


# --- profile.toml ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProfilePaths:
    """Where each file of a profile lives: absolute paths once loaded."""

    ca_certificate: Path
    ca_key: Path
    tls_certificate: Path
    tls_key: Path
    signing_certificate: Path
    signing_key: Path
    encryption_certificate: Path
    encryption_key: Path
    witness_certificate: Path
    witness_key: Path
    hub_ca_certificate: Path
    keys_envelope: Path
    partners: Path
    state: Path
    retired_keys: Path

    @classmethod
    def standard(cls, directory: Path) -> ProfilePaths:
        """The layout ``exchange-hub init`` writes, under ``directory``."""
        return cls(
            ca_certificate=directory / "ca.pem",
            ca_key=directory / "ca-key.pem",
            tls_certificate=directory / "tls.pem",
            tls_key=directory / "tls-key.pem",
            signing_certificate=directory / "signing.pem",
            signing_key=directory / "signing-key.pem",
            encryption_certificate=directory / "encryption.pem",
            encryption_key=directory / "encryption-key.pem",
            witness_certificate=directory / "witness.pem",
            witness_key=directory / "witness-key.pem",
            hub_ca_certificate=directory / "hub-ca.pem",
            keys_envelope=directory / "keys.dsse",
            partners=directory / "partners",
            state=directory / "state",
            retired_keys=directory / "retired-keys",
        )

    def private_keys(self) -> tuple[Path, ...]:
        """The files that must be readable by their owner only."""
        return (self.ca_key, self.tls_key, self.signing_key, self.encryption_key, self.witness_key)


DEFAULT_TAXII_LISTEN = "127.0.0.1:9441"
"""``[taxii] listen`` when unset: loopback only."""


@dataclass(frozen=True)
class TaxiiSettings:
    """``[taxii]`` of ``profile.toml``: how ``exchange taxii serve`` lets the agency's own tools in.

    ``token_file`` holds the one secret (mode 0600, like a private key): clients send it as a
    bearer token, or as the password of HTTP basic authentication with ``username``.
    ``insecure_serve_tlp_red`` lets TLP:RED items into the feed; they are left out otherwise.
    """

    token_file: Path
    listen: str = DEFAULT_TAXII_LISTEN
    username: str = "exchange"
    insecure_serve_tlp_red: bool = False

    def read_token(self) -> str:
        """The secret, refused when anyone but its owner may read the file."""
        token = _read_private(self.token_file).decode("utf-8", errors="replace").strip()
        if len(token) < 16:
            raise ConfigurationError(
                f"{self.token_file}: the TAXII token must be at least 16 characters; write one "
                "with `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
        return token


@dataclass(frozen=True)
class ProfileConfig:
    """``profile.toml`` parsed: who this agency is, where its hub and files are.

    ``partners`` maps each partner agency id (this agency's own included) to the path of that
    agency's CA certificate, exchanged out of band: the client checks partners' keys against these,
    never against anything the hub sends. ``checkpoint_verifier_key`` is the hub's checkpoint key
    in C2SP note-verifier form (``<origin>+<hex key id>+<base64(0x01 ‖ key)>``) and ``log_origin``
    the origin line its checkpoints carry.
    """

    directory: Path
    agency_id: str
    hub_address: str
    paths: ProfilePaths
    partners: Mapping[str, Path]
    checkpoint_verifier_key: str
    log_origin: str
    require_cosigners: tuple[str, ...] = ()
    """Agencies whose fresh cosignature a checkpoint needs before the client acts on it."""
    max_cosignature_age_seconds: int = DEFAULT_MAX_COSIGNATURE_AGE_SECONDS
    """How old a required cosignature may be."""
    taxii: TaxiiSettings | None = None
    """The local TAXII feed's settings (``[taxii]``), None when the profile has none."""

    @classmethod
    def from_file(cls, path: Path) -> ProfileConfig:
        """Read ``profile.toml`` (or a profile directory holding one).

        Relative paths are resolved against the file's directory; unknown keys are refused, so a
        misspelt setting is an error rather than silently ignored.
        """
        path = Path(path)
        file = path / PROFILE_FILE_NAME if path.is_dir() else path
        directory = file.parent.absolute()
        document = read_toml(
            file,
            missing="no profile here; make one with `exchange-hub init DIR --agency ID` and "
            "point --profile at DIR/agencies/<id>",
            fix="fix or regenerate it",
        )
        top = TomlTable(document, file, "")
        agency_id = top.string("agency_id")
        try:
            pki.check_agency_id(agency_id)
        except ExchangeError as e:
            raise ConfigurationError(f"{file}: agency_id: {e.message}") from e
        hub_address = top.string("hub_address")
        _check_address(hub_address, file, "hub_address")
        standard = ProfilePaths.standard(Path())
        paths_table = top.table("paths", required=False)
        resolved = {
            field.name: _resolve(
                directory, paths_table.path(field.name, default=getattr(standard, field.name))
            )
            for field in fields(ProfilePaths)
        }
        paths_table.refuse_unknown({field.name for field in fields(ProfilePaths)})
        partners_table = top.table("partners", required=False)
        partners: dict[str, Path] = {}
        for partner_id in partners_table.names():
            try:
                pki.check_agency_id(partner_id)
            except ExchangeError as e:
                raise ConfigurationError(f"{file}: [partners]: {e.message}") from e
            partners[partner_id] = _resolve(directory, partners_table.path(partner_id))
        audit = top.table("audit", required=True)
        checkpoint_verifier_key = audit.string("checkpoint_verifier_key")
        log_origin = audit.string("log_origin")
        require_cosigners = audit.agency_ids("require_cosigners")
        max_cosignature_age_seconds = audit.positive_integer(
            "max_cosignature_age_seconds", DEFAULT_MAX_COSIGNATURE_AGE_SECONDS
        )
        audit.refuse_unknown(
            {
                "checkpoint_verifier_key",
                "log_origin",
                "require_cosigners",
                "max_cosignature_age_seconds",
            }
        )
        try:
            verifier = NoteVerifier.from_string(checkpoint_verifier_key)
        except ExchangeError as e:
            raise ConfigurationError(
                f"{file}: [audit] checkpoint_verifier_key: {e.message}; copy it from the hub's "
                "`exchange-hub checkpoint-key`"
            ) from e
        if verifier.name != log_origin:
            raise ConfigurationError(
                f"{file}: [audit] checkpoint_verifier_key does not name the log origin "
                f"{log_origin!r}; copy both from the hub's `exchange-hub checkpoint-key`"
            )
        taxii = _taxii_settings(top, directory)
        top.refuse_unknown({"agency_id", "hub_address", "paths", "partners", "audit", "taxii"})
        return cls(
            directory=directory,
            agency_id=agency_id,
            hub_address=hub_address,
            paths=ProfilePaths(**resolved),
            partners=MappingProxyType(dict(sorted(partners.items()))),
            checkpoint_verifier_key=checkpoint_verifier_key,
            log_origin=log_origin,
            require_cosigners=require_cosigners,
            max_cosignature_age_seconds=max_cosignature_age_seconds,
            taxii=taxii,
        )

    def to_toml(self) -> str:
        """``profile.toml`` text for this configuration; paths inside the profile are relative."""
        document: dict[str, Any] = {
            "agency_id": self.agency_id,
            "hub_address": self.hub_address,
            "paths": {
                field.name: self._relative(getattr(self.paths, field.name))
                for field in fields(ProfilePaths)
            },
            "partners": {
                partner_id: self._relative(path) for partner_id, path in self.partners.items()
            },
            "audit": {
                "checkpoint_verifier_key": self.checkpoint_verifier_key,
                "log_origin": self.log_origin,
            },
        }
        if self.require_cosigners:
            document["audit"]["require_cosigners"] = list(self.require_cosigners)
        if self.max_cosignature_age_seconds != DEFAULT_MAX_COSIGNATURE_AGE_SECONDS:
            document["audit"]["max_cosignature_age_seconds"] = self.max_cosignature_age_seconds
        if self.taxii is not None:
            document["taxii"] = {
                "token_file": self._relative(self.taxii.token_file),
                "listen": self.taxii.listen,
                "username": self.taxii.username,
                "insecure_serve_tlp_red": self.taxii.insecure_serve_tlp_red,
            }
        return tomli_w.dumps(document)

    def _relative(self, path: Path) -> str:
        try:
            return path.relative_to(self.directory).as_posix()
        except ValueError:
            return str(path)


# --- the loaded profile ------------------------------------------------------------------------


@dataclass(frozen=True)
class ProfileData:
    """Everything a profile holds, read and checked: ready for a client to use.

    PEM bytes are kept where gRPC wants bytes (the hub CA, the TLS certificate and key); keys the
    client computes with are loaded as :mod:`exchange.crypto.keys` objects. ``partner_cas`` maps
    each partner agency id to its CA certificate. ``keys_envelope`` is this agency's own
    ``AgencyKeys`` statement as written by ``init`` (parsed, not yet verified: that is the
    statement layer's job).
    """

    config: ProfileConfig
    ca_certificate: x509.Certificate
    hub_ca_certificate_pem: bytes
    tls_certificate_pem: bytes
    tls_key_pem: bytes
    signing_key: SigningKey
    signing_certificate: x509.Certificate
    encryption_key: DecryptionKey
    encryption_certificate: x509.Certificate
    witness_key: SigningKey
    witness_certificate: x509.Certificate
    partner_cas: Mapping[str, x509.Certificate]
    keys_envelope: Envelope
    retired_encryption_keys: Mapping[str, DecryptionKey] = field(
        default_factory=lambda: MappingProxyType({})
    )
    """Encryption keys a rotation replaced, by key id: what was wrapped to them stays readable."""

    @property
    def agency_id(self) -> str:
        """This agency's id."""
        return self.config.agency_id

    @property
    def hub_address(self) -> str:
        """``HOST:PORT`` of the hub."""
        return self.config.hub_address

    @property
    def state_dir(self) -> Path:
        """Where the client keeps its cursor, last checkpoint and outbox."""
        return self.config.paths.state

    @property
    def checkpoint_verifier_key(self) -> str:
        """The hub's checkpoint verifier key, C2SP note-verifier form."""
        return self.config.checkpoint_verifier_key

    @property
    def log_origin(self) -> str:
        """The origin line of the hub's checkpoints."""
        return self.config.log_origin


ROTATE_FLAGS: Mapping[pki.CertificatePurpose, str] = MappingProxyType(
    {"tls-client": "--tls", "signing": "--signing", "encryption": "--encryption",
     "witness": "--witness"}
)
"""The ``exchange keys rotate`` flag that renews each kind of certificate."""


def load_profile(
    path: Path, *, now: datetime | None = None, allow_expired: bool = False
) -> ProfileData:
    """Read the profile at ``path`` (its directory or its ``profile.toml``) and check it.

    Beyond parsing, it checks that private keys are readable by their owner only, that every
    certificate is issued by this agency's CA for this agency and its purpose and is valid at
    ``now`` (default: the current time), that each private key matches its certificate, and that
    each partner CA names the agency it is filed under. The state directory is created (0700) if
    it is missing. Every failure is a :class:`ConfigurationError` naming the file; an expired
    certificate's names the ``exchange keys rotate`` flag that renews it. ``allow_expired``
    skips the validity periods of the agency's own certificates (everything else is checked):
    ``exchange keys rotate`` reads a profile that way to renew them.
    """
    if now is not None and now.tzinfo is None:
        raise InvalidInputError("pass a timezone-aware datetime (UTC) as 'now'")
    moment = now if now is not None else datetime.now(UTC)
    config = ProfileConfig.from_file(Path(path))
    paths = config.paths
    for key_path in paths.private_keys():
        _check_private(key_path)

    ca = _certificate(paths.ca_certificate)
    ca_agency_id = _checked(paths.ca_certificate, lambda: pki.agency_id_from_certificate(ca))
    if ca_agency_id != config.agency_id:
        raise ConfigurationError(
            f"{paths.ca_certificate}: CA certificate is for {ca_agency_id!r}, "
            f"the profile is for {config.agency_id!r}"
        )

    def certified(
        purpose: pki.CertificatePurpose, key_path: Path, certificate_path: Path
    ) -> _CertifiedKey:
        """Read a key and its certificate; check the certificate and that the two match."""
        key_pem = _read_private(key_path)
        certificate_pem = _read(certificate_path)
        certificate = _certificate(certificate_path, data=certificate_pem)
        public_key = _checked(key_path, lambda: _public_key_of(purpose, key_pem))
        at = moment
        if allow_expired:
            at = min(max(moment, certificate.not_valid_before_utc), certificate.not_valid_after_utc)
        elif moment > certificate.not_valid_after_utc:
            raise ConfigurationError(
                f"{certificate_path}: the {purpose} certificate expired at "
                f"{certificate.not_valid_after_utc.isoformat()}; renew it with "
                f"`exchange keys rotate {ROTATE_FLAGS[purpose]}`"
                + (" (the hub refuses expired TLS certificates)" if purpose == "tls-client" else "")
            )
        _checked(
            certificate_path,
            lambda: pki.verify_issued_by(
                certificate, ca, purpose=purpose, now=at, expected_agency_id=config.agency_id
            ),
        )
        if public_key != certificate.public_key():
            raise ConfigurationError(
                f"{key_path}: private key does not match its certificate {certificate_path}; "
                "restore the pair together"
            )
        return _CertifiedKey(key_pem, certificate_pem, certificate)

    tls = certified("tls-client", paths.tls_key, paths.tls_certificate)
    signing = certified("signing", paths.signing_key, paths.signing_certificate)
    encryption = certified("encryption", paths.encryption_key, paths.encryption_certificate)
    witness = certified("witness", paths.witness_key, paths.witness_certificate)

    hub_ca_certificate_pem = _read(paths.hub_ca_certificate)
    _certificate(paths.hub_ca_certificate, data=hub_ca_certificate_pem)

    partner_cas = _partner_cas(config, ca)
    keys_envelope = _keys_envelope(paths.keys_envelope)
    _ensure_state_directory(paths.state)

    return ProfileData(
        config=config,
        ca_certificate=ca,
        hub_ca_certificate_pem=hub_ca_certificate_pem,
        tls_certificate_pem=tls.certificate_pem,
        tls_key_pem=tls.key_pem,
        signing_key=SigningKey.from_pem(signing.key_pem),
        signing_certificate=signing.certificate,
        encryption_key=DecryptionKey.from_pem(encryption.key_pem),
        encryption_certificate=encryption.certificate,
        witness_key=SigningKey.from_pem(witness.key_pem),
        witness_certificate=witness.certificate,
        partner_cas=MappingProxyType(partner_cas),
        keys_envelope=keys_envelope,
        retired_encryption_keys=MappingProxyType(_retired_encryption_keys(paths.retired_keys)),
    )


# --- reading and checking files ----------------------------------------------------------------

_T = TypeVar("_T")


def _taxii_settings(top: TomlTable, directory: Path) -> TaxiiSettings | None:
    if "taxii" not in top.names():
        return None
    table = top.table("taxii", required=True)
    listen = table.string("listen") if "listen" in table.names() else DEFAULT_TAXII_LISTEN
    _check_address(listen, table.file, "[taxii] listen")
    username = table.string("username") if "username" in table.names() else "exchange"
    if ":" in username:
        raise ConfigurationError(f"{table.file}: [taxii] username may not contain ':'")
    serve_red = table.boolean("insecure_serve_tlp_red")
    table.refuse_unknown({"token_file", "listen", "username", "insecure_serve_tlp_red"})
    return TaxiiSettings(
        token_file=_resolve(directory, table.path("token_file")),
        listen=listen,
        username=username,
        insecure_serve_tlp_red=serve_red,
    )


def _resolve(directory: Path, path: Path) -> Path:
    return path if path.is_absolute() else directory / path


def _check_address(value: str, file: Path, key: str) -> None:
    try:
        _, port = parse_host_port(value)
    except ConfigurationError as e:
        raise ConfigurationError(f"{file}: {key}: {e.message}") from e
    if port == 0:
        raise ConfigurationError(f"{file}: {key}: {value!r} needs a real port, not 0")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as e:
        raise ConfigurationError(
            f"{path}: missing from the profile; restore it from the profile's backup or "
            "re-create the profile with `exchange-hub init`"
        ) from e
    except OSError as e:
        raise ConfigurationError(f"{path}: cannot read the file: {e}") from e


def _check_private(path: Path) -> None:
    """Refuse a private key that anyone but its owner can read (or write, or search)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return
    except OSError as e:
        raise ConfigurationError(f"{path}: cannot stat the file: {e}") from e
    if not stat.S_ISREG(mode):
        raise ConfigurationError(f"{path}: a private key must be a regular file")
    if mode & 0o077:
        raise ConfigurationError(
            f"{path}: private key is accessible to group or others (mode "
            f"{stat.S_IMODE(mode):04o}); run `chmod 600 {path}`"
        )


def _read_private(path: Path) -> bytes:
    _check_private(path)
    return _read(path)


def _checked(path: Path, load: Callable[[], _T]) -> _T:
    """Run ``load``, turning any exchange error into a configuration error naming ``path``."""
    try:
        return load()
    except ConfigurationError:
        raise
    except ExchangeError as e:
        raise ConfigurationError(f"{path}: {e.message}") from e


def _certificate(path: Path, *, data: bytes | None = None) -> x509.Certificate:
    pem = _read(path) if data is None else data
    return _checked(path, lambda: pki.load_certificate_pem(pem))


class _CertifiedKey(NamedTuple):
    """A private key's PEM with its certificate, checked to belong together."""

    key_pem: bytes
    certificate_pem: bytes
    certificate: x509.Certificate


def _public_key_of(purpose: pki.CertificatePurpose, key_pem: bytes) -> object:
    """The ``cryptography`` public key of the private key a certificate of ``purpose`` certifies."""
    if purpose == "tls-client":
        return pki.load_tls_private_key_pem(key_pem).public_key()
    if purpose == "encryption":
        return DecryptionKey.from_pem(key_pem).public_key.native
    return SigningKey.from_pem(key_pem).public_key.native


def _partner_cas(config: ProfileConfig, own_ca: x509.Certificate) -> dict[str, x509.Certificate]:
    """Each partner's CA certificate, checked to name the agency it is filed under."""
    partner_cas = {config.agency_id: own_ca}
    for partner_id, path in config.partners.items():
        cert = _certificate(path)
        named = _checked(path, functools.partial(pki.agency_id_from_certificate, cert))
        if named != partner_id:
            raise ConfigurationError(
                f"{path}: CA certificate is for {named!r} but is listed as partner {partner_id!r}"
            )
        if partner_id == config.agency_id and cert != own_ca:
            raise ConfigurationError(
                f"{path}: this agency's own entry differs from {config.paths.ca_certificate}"
            )
        partner_cas[partner_id] = cert
    return dict(sorted(partner_cas.items()))


def _keys_envelope(path: Path) -> Envelope:
    data = _read(path)
    envelope = _checked(path, lambda: Envelope.from_json(data))
    if envelope.payload_type != AGENCY_KEYS_PAYLOAD_TYPE:
        raise ConfigurationError(
            f"{path}: payload type {envelope.payload_type!r}, expected {AGENCY_KEYS_PAYLOAD_TYPE!r}"
        )
    return envelope


RETIRED_ENCRYPTION_KEY_GLOB = "encryption-key-*.pem"


def retired_encryption_files(key_number: int) -> tuple[str, str]:
    """The names in ``retired-keys/`` of the encryption key (private) and its certificate that
    key statement ``key_number`` named, once a later statement replaced them."""
    return f"encryption-key-{key_number}.pem", f"encryption-{key_number}.pem"


def _retired_encryption_keys(directory: Path) -> dict[str, DecryptionKey]:
    """The encryption keys ``exchange keys rotate`` retired, by key id (none when no directory)."""
    if not directory.is_dir():
        return {}
    keys: dict[str, DecryptionKey] = {}
    for path in sorted(directory.glob(RETIRED_ENCRYPTION_KEY_GLOB)):
        pem = _read_private(path)
        key = _checked(path, functools.partial(DecryptionKey.from_pem, pem))
        keys[key.public_key.key_id] = key
    return keys


def _ensure_state_directory(path: Path) -> None:
    if not path.exists():
        try:
            path.mkdir(mode=PRIVATE_DIRECTORY_MODE)
            os.chmod(path, PRIVATE_DIRECTORY_MODE)
        except OSError as e:
            raise ConfigurationError(f"{path}: cannot create the state directory: {e}") from e
        return
    if not path.is_dir():
        raise ConfigurationError(f"{path}: the state directory is not a directory")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigurationError(
            f"{path}: state directory is accessible to group or others (mode {mode:04o}); "
            f"run `chmod 700 {path}`"
        )
