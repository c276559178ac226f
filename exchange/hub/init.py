"""``exchange-hub init``: a complete exchange in one directory, one CA per agency.

DESIGN §2: even for demos and tests every agency gets its own CA, its keys are generated in its own
profile directory, and what the hub keeps is public material only. :func:`init_exchange` lays out::

    DIR/hub.toml                     the hub's configuration (exchange.hub.config)
    DIR/hub/                         (0700) ca.pem ca-key.pem tls.pem tls-key.pem checkpoint-key.pem
    DIR/agencies/<id>/               (0700) one agency profile each (exchange.config.profile)
    DIR/registry/<id>/               ca.pem signing.pem encryption.pem witness.pem keys.dsse
    DIR/recovery/<id>-recovery-key.pem  (0700/0600) each agency's offline recovery key: its public
                                     half is pinned by key statement 1, and it alone can sign a
                                     statement replacing the agency's CA. Kept apart from the
                                     profile on purpose: move it offline (OPERATIONS "Key lifecycle").

Private keys are written 0600 and their directories 0700, whatever the umask. Every profile names
the hub address, the hub's CA, every agency's CA as a partner, and the hub's checkpoint verifier key
in C2SP note-verifier form (:class:`exchange.crypto.notes.NoteVerifier`), named by the log origin.

:func:`export_public_bundle` writes an agency's public material in the registry layout, and
:func:`read_public_bundle` reads and checks one; that is all ``exchange-hub agency add`` takes.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

from cryptography import x509

from exchange import pki
from exchange.config.profile import (
    AGENCY_KEYS_PAYLOAD_TYPE,
    PRIVATE_DIRECTORY_MODE,
    PRIVATE_FILE_MODE,
    ProfileConfig,
    ProfilePaths,
    parse_host_port,
)
from exchange.crypto.dsse import Envelope, sign_envelope
from exchange.crypto.keys import DecryptionKey, SigningKey, VerifyKey
from exchange.crypto.notes import NoteVerifier
from exchange.errors import (
    CertificateError,
    ConfigurationError,
    ExchangeError,
    InvalidInputError,
    MalformedError,
)
from exchange.hub.config import DEFAULT_LISTEN, DEFAULT_LOG_ORIGIN, HubConfig, check_log_origin
from exchange.statements.agency_keys import AgencyKeys
from exchange.v1 import statements_pb2

HUB_CONFIG_FILE_NAME = "hub.toml"
PUBLIC_FILE_MODE = 0o644
PUBLIC_DIRECTORY_MODE = 0o755

BUNDLE_CA_CERTIFICATE = "ca.pem"
BUNDLE_SIGNING_CERTIFICATE = "signing.pem"
BUNDLE_ENCRYPTION_CERTIFICATE = "encryption.pem"
BUNDLE_WITNESS_CERTIFICATE = "witness.pem"
BUNDLE_KEYS_ENVELOPE = "keys.dsse"
BUNDLE_FILES = (
    BUNDLE_CA_CERTIFICATE,
    BUNDLE_SIGNING_CERTIFICATE,
    BUNDLE_ENCRYPTION_CERTIFICATE,
    BUNDLE_WITNESS_CERTIFICATE,
    BUNDLE_KEYS_ENVELOPE,
)
"""The files of an agency's public bundle (and of each ``DIR/registry/<id>/``)."""

_PRIVATE_KEY_MARKER = b"PRIVATE KEY-----"

RECOVERY_DIRECTORY = "recovery"
"""Under the init directory: each agency's offline recovery key, apart from its profile."""


def recovery_key_path(directory: Path, agency_id: str) -> Path:
    """Where ``init`` writes ``agency_id``'s offline recovery key under ``directory``."""
    return Path(directory) / RECOVERY_DIRECTORY / f"{agency_id}-recovery-key.pem"


# --- results -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class InitResult:
    """What :func:`init_exchange` made, for the CLI to print and tests to inspect.

    ``listen`` is where the hub serves; ``hub_address`` is what profiles dial (the listen address,
    with a wildcard host replaced by ``127.0.0.1``). ``profiles`` maps agency ids to their profile
    directories.
    """

    directory: Path
    hub_config_path: Path
    listen: str
    hub_address: str
    log_origin: str
    checkpoint_verifier_key: str
    profiles: Mapping[str, Path]
    registry_dir: Path
    recovery_keys: Mapping[str, Path] = field(default_factory=lambda: MappingProxyType({}))
    """Each agency's offline recovery key file (outside its profile): to be moved offline."""


@dataclass(frozen=True)
class PublicAgencyMaterial:
    """An agency's public material, checked: its CA, key certificates and key statement.

    Every key certificate is issued by ``ca_certificate`` for ``agency_id`` and its purpose, and
    ``keys_envelope`` is signed by the certified signing key over an ``AgencyKeys`` payload
    (``agency_keys``) that names exactly these certificates.
    """

    agency_id: str
    ca_certificate: x509.Certificate
    signing_certificate: x509.Certificate
    encryption_certificate: x509.Certificate
    witness_certificate: x509.Certificate
    keys_envelope: Envelope
    agency_keys: statements_pb2.AgencyKeys
    keys: AgencyKeys
    """The key statement as verified: what the hub registers."""


# --- init --------------------------------------------------------------------------------------


def init_exchange(
    directory: Path,
    agency_ids: list[str],
    *,
    listen: str = DEFAULT_LISTEN,
    log_origin: str = DEFAULT_LOG_ORIGIN,
    now: datetime | None = None,
    force: bool = False,
    tls_days: int = pki.DEFAULT_TLS_VALIDITY_DAYS,
    key_days: int = pki.DEFAULT_KEY_VALIDITY_DAYS,
) -> InitResult:
    """Create a hub and one profile per agency in ``directory`` (``exchange-hub init``).

    Refuses (:class:`ConfigurationError`) a directory that already holds an exchange unless
    ``force`` is set, in which case the previous ``hub.toml``, ``hub/``, ``agencies/``,
    ``registry/`` and default SQLite database are deleted first: their keys and log are gone for
    good. Invalid or repeated agency ids raise :class:`InvalidInputError`. ``tls_days`` is how
    long each agency's TLS client certificate is valid, ``key_days`` its signing, encryption and
    witness key certificates (``exchange keys rotate`` renews them).
    """
    moment = _utc(now)
    ids = [pki.check_agency_id(agency_id) for agency_id in agency_ids]
    if not ids:
        raise InvalidInputError("name at least one agency (--agency ID)")
    repeated = sorted({agency_id for agency_id in ids if ids.count(agency_id) > 1})
    if repeated:
        raise InvalidInputError(f"agency ids named more than once: {', '.join(repeated)}")
    listen_host, port = parse_host_port(listen)
    if port == 0:
        raise ConfigurationError(
            f"listen address {listen!r} needs a real port: profiles dial it "
            "(`exchange-hub serve --listen HOST:0` can still override it later)"
        )
    check_log_origin(log_origin)
    for name, days in (("tls_days", tls_days), ("key_days", key_days)):
        if isinstance(days, bool) or not isinstance(days, int) or days < 1:
            raise InvalidInputError(f"{name} must be a positive number of days, not {days!r}")
    hub_address = _hub_address(listen_host, port)

    root = Path(directory).absolute()
    _prepare_directory(root, force=force)

    hub_dir = root / "hub"
    _make_directory(hub_dir, PRIVATE_DIRECTORY_MODE)
    hub_ca_key, hub_ca = pki.make_hub_ca(now=moment)
    hub_tls_key, hub_tls = pki.issue_hub_server_cert(
        hub_ca_key, hub_ca, _server_hosts(listen_host), now=moment
    )
    checkpoint_key = SigningKey.generate()
    verifier_key = NoteVerifier(log_origin, checkpoint_key.public_key.raw).to_string()
    hub_config = replace(
        HubConfig.default(root / HUB_CONFIG_FILE_NAME), listen=listen, log_origin=log_origin
    )
    _write_public(hub_dir / "ca.pem", pki.certificate_to_pem(hub_ca))
    _write_private(hub_dir / "ca-key.pem", pki.private_key_to_pem(hub_ca_key))
    _write_public(hub_config.tls_certificate, pki.certificate_to_pem(hub_tls))
    _write_private(hub_config.tls_key, pki.private_key_to_pem(hub_tls_key))
    _write_private(hub_config.checkpoint_key, checkpoint_key.to_pem())

    agencies_dir = root / "agencies"
    _make_directory(agencies_dir, PRIVATE_DIRECTORY_MODE)
    _make_directory(root / RECOVERY_DIRECTORY, PRIVATE_DIRECTORY_MODE)
    agency_cas: dict[str, x509.Certificate] = {}
    profiles: dict[str, Path] = {}
    recovery_keys: dict[str, Path] = {}
    for agency_id in ids:
        profile_dir = agencies_dir / agency_id
        recovery_key = SigningKey.generate()
        recovery_keys[agency_id] = recovery_key_path(root, agency_id)
        _write_private(recovery_keys[agency_id], recovery_key.to_pem())
        agency_cas[agency_id] = _write_agency_keys(
            profile_dir, agency_id, moment, recovery_key=recovery_key.public_key,
            tls_days=tls_days, key_days=key_days,
        )
        profiles[agency_id] = profile_dir

    for agency_id, profile_dir in profiles.items():
        paths = ProfilePaths.standard(profile_dir)
        _write_public(paths.hub_ca_certificate, pki.certificate_to_pem(hub_ca))
        _make_directory(paths.partners, PRIVATE_DIRECTORY_MODE)
        partners: dict[str, Path] = {}
        for partner_id, partner_ca in agency_cas.items():
            partners[partner_id] = paths.partners / f"{partner_id}.pem"
            _write_public(partners[partner_id], pki.certificate_to_pem(partner_ca))
        _make_directory(paths.state, PRIVATE_DIRECTORY_MODE)
        config = ProfileConfig(
            directory=profile_dir,
            agency_id=agency_id,
            hub_address=hub_address,
            paths=paths,
            partners=partners,
            checkpoint_verifier_key=verifier_key,
            log_origin=log_origin,
        )
        _write_public(profile_dir / "profile.toml", config.to_toml().encode("utf-8"))

    _make_directory(hub_config.registry_dir, PUBLIC_DIRECTORY_MODE)
    for agency_id, profile_dir in profiles.items():
        export_public_bundle(profile_dir, hub_config.registry_dir / agency_id, now=moment)

    _write_public(hub_config.config_path, hub_config.to_toml().encode("utf-8"))
    return InitResult(
        directory=root,
        hub_config_path=hub_config.config_path,
        listen=listen,
        hub_address=hub_address,
        log_origin=log_origin,
        checkpoint_verifier_key=verifier_key,
        profiles=MappingProxyType(profiles),
        registry_dir=hub_config.registry_dir,
        recovery_keys=MappingProxyType(recovery_keys),
    )


def _write_agency_keys(
    profile_dir: Path, agency_id: str, now: datetime, *, tls_days: int, key_days: int,
    recovery_key: VerifyKey | None = None,
) -> x509.Certificate:
    """Generate an agency's CA and keys inside its own profile directory; return its CA.

    ``recovery_key`` is pinned in key statement 1 (its private half is kept elsewhere)."""
    paths = ProfilePaths.standard(profile_dir)
    _make_directory(profile_dir, PRIVATE_DIRECTORY_MODE)
    ca_key, ca = pki.make_agency_ca(agency_id, now=now)
    tls_key = pki.generate_tls_key()
    tls = pki.issue_tls_client_cert(
        ca_key, ca, agency_id, tls_key.public_key(), now=now, validity_days=tls_days
    )
    signing_key = SigningKey.generate()
    signing = pki.issue_key_certificate(
        ca_key, ca, agency_id, signing_key.public_key.native, "signing", now=now,
        validity_days=key_days,
    )
    encryption_key = DecryptionKey.generate()
    encryption = pki.issue_key_certificate(
        ca_key, ca, agency_id, encryption_key.public_key.native, "encryption", now=now,
        validity_days=key_days,
    )
    witness_key = SigningKey.generate()
    witness = pki.issue_key_certificate(
        ca_key, ca, agency_id, witness_key.public_key.native, "witness", now=now,
        validity_days=key_days,
    )
    envelope = sign_agency_keys(
        agency_id,
        signing_key,
        signing_certificate=signing,
        encryption_certificate=encryption,
        witness_certificate=witness,
        created_at=now,
        recovery_key=recovery_key,
    )
    _write_public(paths.ca_certificate, pki.certificate_to_pem(ca))
    _write_private(paths.ca_key, pki.private_key_to_pem(ca_key))
    _write_public(paths.tls_certificate, pki.certificate_to_pem(tls))
    _write_private(paths.tls_key, pki.private_key_to_pem(tls_key))
    _write_public(paths.signing_certificate, pki.certificate_to_pem(signing))
    _write_private(paths.signing_key, signing_key.to_pem())
    _write_public(paths.encryption_certificate, pki.certificate_to_pem(encryption))
    _write_private(paths.encryption_key, encryption_key.to_pem())
    _write_public(paths.witness_certificate, pki.certificate_to_pem(witness))
    _write_private(paths.witness_key, witness_key.to_pem())
    _write_public(paths.keys_envelope, envelope.to_json())
    return ca


def sign_agency_keys(
    agency_id: str,
    signing_key: SigningKey,
    *,
    signing_certificate: x509.Certificate,
    encryption_certificate: x509.Certificate,
    witness_certificate: x509.Certificate,
    created_at: datetime,
    recovery_key: VerifyKey | None = None,
) -> Envelope:
    """An agency's first ``AgencyKeys`` statement (key number 1), signed with its signing key.

    ``recovery_key``, the public half of the agency's offline recovery key, is pinned by it.
    The payload is the deterministic protobuf encoding, which is what verifiers insist on.
    """
    message = statements_pb2.AgencyKeys(
        agency_id=agency_id,
        key_number=1,
        signing_certificate=pki.certificate_to_der(signing_certificate),
        encryption_certificate=pki.certificate_to_der(encryption_certificate),
        witness_certificate=pki.certificate_to_der(witness_certificate),
    )
    message.created_at.FromDatetime(_utc(created_at))
    if recovery_key is not None:
        message.recovery_public_key = recovery_key.raw
    payload = message.SerializeToString(deterministic=True)
    return sign_envelope(AGENCY_KEYS_PAYLOAD_TYPE, payload, signing_key)


# --- public bundles ----------------------------------------------------------------------------


def export_public_bundle(
    profile_dir: Path, out_dir: Path, *, now: datetime | None = None
) -> PublicAgencyMaterial:
    """Copy an agency's public material from its profile into ``out_dir`` and check the result.

    Only the CA certificate, the three key certificates and the key statement are copied, each
    parsed first so that a misconfigured path can never carry a private key out. Refuses to
    overwrite an existing bundle.
    """
    config = ProfileConfig.from_file(Path(profile_dir))
    sources = {
        BUNDLE_CA_CERTIFICATE: config.paths.ca_certificate,
        BUNDLE_SIGNING_CERTIFICATE: config.paths.signing_certificate,
        BUNDLE_ENCRYPTION_CERTIFICATE: config.paths.encryption_certificate,
        BUNDLE_WITNESS_CERTIFICATE: config.paths.witness_certificate,
        BUNDLE_KEYS_ENVELOPE: config.paths.keys_envelope,
    }
    contents: dict[str, bytes] = {}
    for name, source in sources.items():
        data = _read(source)
        with _naming(source):
            if name == BUNDLE_KEYS_ENVELOPE:
                Envelope.from_json(data)
            else:
                pki.load_certificate_pem(data)
        if _PRIVATE_KEY_MARKER in data:
            raise ConfigurationError(f"{source}: holds a private key; it cannot be exported")
        contents[name] = data
    target = Path(out_dir)
    _make_directory(target, PUBLIC_DIRECTORY_MODE, exist_ok=True)
    for name, data in contents.items():
        _write_public(target / name, data)
    return read_public_bundle(target, now=now)


def read_public_bundle(directory: Path, *, now: datetime | None = None) -> PublicAgencyMaterial:
    """Read and check an agency's public bundle (the layout of ``DIR/registry/<id>/``).

    Checks that the directory holds no private key, that every key certificate is issued by the
    bundle's CA for that CA's agency and its purpose at ``now``, that the key statement is signed
    by the certified signing key, and that its canonical ``AgencyKeys`` payload names this agency
    and exactly these certificates. Raises :class:`ConfigurationError` for missing files or a
    private key, :class:`MalformedError` for unparseable material, :class:`CertificateError` and
    :class:`~exchange.errors.SignatureError` for material that does not verify; each names the file.
    """
    moment = _utc(now)
    bundle = Path(directory)
    if not bundle.is_dir():
        raise ConfigurationError(f"{bundle}: no public bundle here (not a directory)")
    _refuse_private_keys(bundle)
    ca_path = bundle / BUNDLE_CA_CERTIFICATE
    ca = _bundle_certificate(ca_path)
    with _naming(ca_path):
        agency_id = pki.agency_id_from_certificate(ca)
    files: dict[pki.KeyPurpose, str] = {
        "signing": BUNDLE_SIGNING_CERTIFICATE,
        "encryption": BUNDLE_ENCRYPTION_CERTIFICATE,
        "witness": BUNDLE_WITNESS_CERTIFICATE,
    }
    certificates: dict[pki.KeyPurpose, x509.Certificate] = {}
    for purpose, name in files.items():
        path = bundle / name
        certificates[purpose] = _bundle_certificate(path)
        with _naming(path):
            pki.verify_issued_by(
                certificates[purpose],
                ca,
                purpose=purpose,
                now=moment,
                expected_agency_id=agency_id,
            )

    keys_path = bundle / BUNDLE_KEYS_ENVELOPE
    data = _read(keys_path)
    with _naming(keys_path):
        envelope = Envelope.from_json(data)
        keys = AgencyKeys.verify(envelope, ca, now=moment)
        agency_keys = keys.message
        _check_agency_keys(agency_keys, agency_id, certificates)
    return PublicAgencyMaterial(
        agency_id=agency_id,
        ca_certificate=ca,
        signing_certificate=certificates["signing"],
        encryption_certificate=certificates["encryption"],
        witness_certificate=certificates["witness"],
        keys_envelope=envelope,
        agency_keys=agency_keys,
        keys=keys,
    )


def _check_agency_keys(
    message: statements_pb2.AgencyKeys,
    agency_id: str,
    certificates: Mapping[pki.KeyPurpose, x509.Certificate],
) -> None:
    if message.agency_id != agency_id:
        raise CertificateError(
            f"key statement is for {message.agency_id!r}, the bundle's CA for {agency_id!r}"
        )
    if message.key_number < 1:
        raise MalformedError("key statement has no key number")
    named: dict[pki.KeyPurpose, bytes] = {
        "signing": message.signing_certificate,
        "encryption": message.encryption_certificate,
        "witness": message.witness_certificate,
    }
    for purpose, der in named.items():
        if der != pki.certificate_to_der(certificates[purpose]):
            raise CertificateError(
                f"key statement names another {purpose} certificate than the bundle's"
            )


def _refuse_private_keys(bundle: Path) -> None:
    for entry in sorted(bundle.iterdir()):
        if entry.is_file() and _PRIVATE_KEY_MARKER in _read(entry):
            raise ConfigurationError(
                f"{entry}: a public bundle must not hold private keys; export one with "
                "export_public_bundle and keep the profile's keys where they are"
            )


def _bundle_certificate(path: Path) -> x509.Certificate:
    data = _read(path)
    with _naming(path):
        return pki.load_certificate_pem(data)


# --- files -------------------------------------------------------------------------------------


_INIT_OUTPUTS = (HUB_CONFIG_FILE_NAME, "hub", "agencies", "registry", RECOVERY_DIRECTORY)
_DEFAULT_DATABASE_FILES = ("hub.db", "hub.db-wal", "hub.db-shm", "hub.db-journal")


def _prepare_directory(root: Path, *, force: bool) -> None:
    existing = [name for name in _INIT_OUTPUTS if (root / name).exists()]
    if existing and not force:
        raise ConfigurationError(
            f"{root} already holds an exchange ({', '.join(existing)}); pass --force to replace "
            "it, which deletes its keys, profiles and default database"
        )
    if root.exists() and not root.is_dir():
        raise ConfigurationError(f"{root} exists and is not a directory")
    for name in (*_INIT_OUTPUTS, *_DEFAULT_DATABASE_FILES):
        path = root / name
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
        except OSError as e:
            raise ConfigurationError(f"{path}: cannot remove it: {e}") from e
    if not root.exists():
        _make_directory(root, PRIVATE_DIRECTORY_MODE, parents=True)


def _make_directory(
    path: Path, mode: int, *, parents: bool = False, exist_ok: bool = False
) -> None:
    try:
        path.mkdir(mode=mode, parents=parents, exist_ok=exist_ok)
        os.chmod(path, mode)
    except OSError as e:
        raise ConfigurationError(f"{path}: cannot create the directory: {e}") from e


def _write_private(path: Path, data: bytes) -> None:
    _write(path, data, PRIVATE_FILE_MODE)


def _write_public(path: Path, data: bytes) -> None:
    _write(path, data, PUBLIC_FILE_MODE)


def _write(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with exactly ``mode`` (not widened by the umask, never replacing a file)."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError as e:
        raise ConfigurationError(f"{path}: already exists; refusing to overwrite it") from e
    except OSError as e:
        raise ConfigurationError(f"{path}: cannot create the file: {e}") from e
    try:
        os.fchmod(descriptor, mode)
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
    except OSError as e:
        raise ConfigurationError(f"{path}: cannot write the file: {e}") from e


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as e:
        raise ConfigurationError(f"{path}: missing") from e
    except OSError as e:
        raise ConfigurationError(f"{path}: cannot read the file: {e}") from e


@contextmanager
def _naming(path: Path) -> Iterator[None]:
    """Re-raise an exchange error from inside the block with ``path`` in its message."""
    try:
        yield
    except ExchangeError as e:
        raise type(e)(f"{path}: {e.message}", reason=e.reason) from e


# --- small helpers -----------------------------------------------------------------------------


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise InvalidInputError("pass a timezone-aware datetime (UTC) as 'now'")
    return now.astimezone(UTC)


def _hub_address(listen_host: str, port: int) -> str:
    """What clients dial: the listen address, with a wildcard host replaced by loopback."""
    try:
        address = ipaddress.ip_address(listen_host)
    except ValueError:
        return f"{listen_host}:{port}"
    if address.is_unspecified:
        return f"127.0.0.1:{port}"
    return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"


def _server_hosts(listen_host: str) -> list[str]:
    """The names the hub's certificate covers: the listen host (unless a wildcard) and loopback."""
    hosts = ["localhost", "127.0.0.1"]
    try:
        if ipaddress.ip_address(listen_host).is_unspecified:
            return hosts
    except ValueError:
        pass
    return [listen_host, *hosts]
