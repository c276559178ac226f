"""``exchange keys rotate``: new keys, the next key statement published, then the profile moved.

A rotation goes in this order, so that a crash, a refusal or a lost answer never leaves a
profile that does not work:

1. take ``rotate.lock`` in the profile (an exclusive ``flock``; a second rotation at the same
   time is refused, and a crashed one leaves no lock behind);
2. check that the profile's key files are those of its latest key statement (``keys.dsse``);
3. make the new keys and certificates and, for signing, encryption or witness keys, the next
   ``AgencyKeys`` statement (signed by the CA, by the signing key it replaces and by its own);
   write all of it to ``rotation/`` in the profile (the pending rotation), the old encryption
   key included;
4. publish the statement (``PublishKeys``). The hub refuses it: ``rotation/`` is deleted and the
   profile is as it was. No answer: ``rotation/`` stays, and the next ``exchange keys rotate``
   sends the same statement again (the hub answers a retry alike) and finishes;
5. move the files: the old encryption key into ``retired-keys/`` (kept to open what was wrapped
   to it), then each new file over the old one with one rename each, ``keys.dsse`` last; then
   ``rotation/`` is deleted. A crash here is finished by the next run, from ``rotation/``.

A TLS rotation alone publishes nothing: the hub accepts any TLS client certificate the agency's
CA issues. When the TLS certificate is rotated with other keys, the statement is published with
the new certificate, so an expired TLS certificate is no obstacle.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from exchange import pki
from exchange.config.profile import (
    PRIVATE_DIRECTORY_MODE,
    PRIVATE_FILE_MODE,
    ProfileConfig,
    ProfileData,
    load_profile,
    retired_encryption_files,
)
from exchange.crypto.dsse import Envelope
from exchange.crypto.keys import DecryptionKey, SigningKey
from exchange.errors import (
    ConfigurationError,
    ConflictError,
    ExchangeError,
    InvalidInputError,
    UnavailableError,
)
from exchange.statements.agency_keys import AgencyKeys, parse_unverified
from exchange.statements.codec import envelope_to_proto
from exchange.v1 import directory_pb2
from exchange_client._internal.models import JsonObject, rfc3339
from exchange_client._internal.profile import Profile
from exchange_client._internal.transport import Transport

KINDS = ("signing", "encryption", "witness", "tls")
"""What ``exchange keys rotate`` can renew, in the order of its flags."""

LOCK_FILE = "rotate.lock"
"""Taken by every change of the profile's keys: rotate, and revoke and recover
(:mod:`exchange_client._internal.key_recovery`)."""
PENDING_DIRECTORY = "rotation"
OTHER_PENDING_DIRECTORY = "pending-keys"
"""Where ``revoke`` and ``recover`` keep a key change the hub did not answer: a rotation waits
until that is finished by hand."""
PENDING_MANIFEST = "pending.json"
PUBLISHED_MARK = "published"
"""Written into ``rotation/`` once the hub holds the statement: from then on only moving is left."""
PUBLIC_FILE_MODE = 0o644

Publish = Callable[[Profile, Envelope], int]
"""Sends a key statement with the profile's TLS identity; returns the number the hub holds."""


@dataclass(frozen=True)
class RotationResult:
    """What a rotation changed, for the CLI to print."""

    kinds: tuple[str, ...]
    key_number: int
    """The profile's key statement after the rotation (unchanged by a TLS rotation alone)."""
    published: bool
    resumed: bool
    """The rotation finished was one left pending by an earlier run (crash or lost answer)."""
    fingerprints: dict[str, str]
    expires: dict[str, datetime]
    retired: tuple[str, ...]

    def to_json(self) -> JsonObject:
        """The rotation for scripts (``keys rotate --json``)."""
        return {
            "kinds": list(self.kinds),
            "key_number": self.key_number,
            "published": self.published,
            "resumed": self.resumed,
            "fingerprints": dict(self.fingerprints),
            "expires": {kind: rfc3339(moment) for kind, moment in self.expires.items()},
            "retired": list(self.retired),
        }


class RotationUnfinishedError(UnavailableError):
    """The statement was sent but no answer came: the rotation is pending in the profile."""


def rotate_keys(
    profile_dir: Path,
    kinds: Sequence[str],
    *,
    key_days: int = pki.DEFAULT_KEY_VALIDITY_DAYS,
    tls_days: int = pki.DEFAULT_TLS_VALIDITY_DAYS,
    publish: Publish,
    now: datetime | None = None,
) -> RotationResult:
    """Rotate ``kinds`` (of :data:`KINDS`) in the profile at ``profile_dir``; see the module.

    A rotation left pending by an earlier run is finished first, whatever ``kinds`` says (the
    result's ``resumed`` is set); run again for more. Raises :class:`ConfigurationError` naming
    the file for a profile that does not match its statement or another rotation under way,
    the hub's refusal as it came (the profile unchanged), and :class:`RotationUnfinishedError`
    when the hub did not answer (run again to finish).
    """
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown or not kinds:
        raise InvalidInputError(
            f"nothing to rotate{': unknown ' + ', '.join(unknown) if unknown else ''}: pass "
            "one or more of --signing, --encryption, --witness, --tls (or --all)"
        )
    for name, days in (("--key-days", key_days), ("--tls-days", tls_days)):
        if isinstance(days, bool) or not isinstance(days, int) or days < 1:
            raise InvalidInputError(f"{name} must be a positive number of days, not {days!r}")
    moment = now or datetime.now(UTC)
    directory = ProfileConfig.from_file(Path(profile_dir)).directory
    with key_change_lock(directory):
        if (directory / OTHER_PENDING_DIRECTORY).exists():
            raise ConfigurationError(
                f"{directory / OTHER_PENDING_DIRECTORY} exists: a key revocation or recovery was "
                "left half done; if `exchange keys show` lists its statement, move that "
                "directory's files into the profile, else delete it, then rotate (nothing was "
                "changed)",
                reason="ROTATION_IN_PROGRESS",
            )
        pending = directory / PENDING_DIRECTORY
        resumed = pending.exists()
        if not resumed:
            data = load_profile(directory, now=moment, allow_expired=True)
            _check_matches_statement(data)
            _check_tls_usable(data, kinds, moment)
            _stage(data, tuple(k for k in KINDS if k in kinds), pending, moment,
                   key_days=key_days, tls_days=tls_days)
        plan = _Pending.read(pending)
        if plan.statement and not (pending / PUBLISHED_MARK).exists():
            # The profile's files are untouched until the hub holds the statement.
            _publish(load_profile(directory, now=moment, allow_expired=True), plan, pending,
                     publish)
        _move(pending, plan)
        shutil.rmtree(pending)
        _sync_directory(directory)
    after = load_profile(directory, now=moment, allow_expired=True)
    return _result(after, plan, resumed=resumed)


def _publish(data: ProfileData, plan: _Pending, pending: Path, publish: Publish) -> None:
    """Send the staged statement; mark it published, or undo the rotation on a refusal."""
    paths = data.config.paths
    envelope = Envelope.from_json((pending / plan.statement).read_bytes())
    profile = Profile.from_data(data)
    if "tls" in plan.kinds:
        profile = dataclasses.replace(
            profile,
            tls_certificate_pem=(pending / "tls_certificate").read_bytes(),
            tls_key_pem=(pending / "tls_key").read_bytes(),
        )
    number = plan.key_number
    try:
        held = publish(profile, envelope)
    except UnavailableError as e:
        raise RotationUnfinishedError(
            f"the hub did not answer key statement {number} ({e.message}); the rotation is "
            f"pending in {pending}: run `exchange keys rotate` again to finish it (the same "
            "statement is sent again)"
        ) from e
    except ConflictError as e:
        shutil.rmtree(pending)
        raise ConfigurationError(
            f"the hub refused key statement {number}: {e.message}. The hub holds a later "
            f"statement than this profile's {paths.keys_envelope}: restore the profile from the "
            "backup made with that rotation (nothing was changed)",
            reason=e.reason,
        ) from e
    except ExchangeError as e:
        shutil.rmtree(pending)
        raise type(e)(
            f"the hub refused key statement {number}: {e.message} (the profile is unchanged)",
            reason=e.reason,
        ) from e
    if held != number:
        raise ConfigurationError(
            f"the hub holds key statement {held}, not {number}: nothing was moved; {pending} is "
            "kept for a look"
        )
    _write_new(pending / PUBLISHED_MARK, str(held).encode("ascii"), PRIVATE_FILE_MODE)
    _sync_directory(pending)


@dataclass(frozen=True)
class _Pending:
    """``rotation/pending.json``: what the staged rotation holds."""

    kinds: tuple[str, ...]
    files: dict[str, str]
    """Staged file name (the profile path's field name) -> the profile file it replaces."""
    retired: dict[str, str]
    """Staged under ``retired-keys/`` -> where it goes in the profile's retired-keys directory."""
    key_number: int
    statement: str = ""
    """The staged statement (``keys_envelope``; empty for a TLS rotation alone)."""
    statement_target: str = ""
    """The profile's ``keys.dsse``, replaced last."""

    def to_json(self) -> bytes:
        return json.dumps(dataclasses.asdict(self)).encode("utf-8")

    @classmethod
    def read(cls, pending: Path) -> _Pending:
        path = pending / PENDING_MANIFEST
        try:
            document = json.loads(path.read_bytes())
            if not isinstance(document, dict):
                raise TypeError("not a JSON object")
            return cls(
                kinds=tuple(str(k) for k in document["kinds"]),
                files={str(k): str(v) for k, v in dict(document["files"]).items()},
                retired={str(k): str(v) for k, v in dict(document["retired"]).items()},
                key_number=int(document["key_number"]),
                statement=str(document.get("statement", "")),
                statement_target=str(document.get("statement_target", "")),
            )
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ConfigurationError(
                f"{path}: the pending rotation cannot be read ({e}); if `exchange keys show` "
                f"lists no statement newer than the profile's keys.dsse, delete {pending} and "
                "rotate again"
            ) from e


def publish_with_transport(profile: Profile, envelope: Envelope, *, timeout: float = 30.0) -> int:
    """:data:`Publish` over a fresh mutual-TLS channel to the profile's hub."""
    transport = Transport.secure(profile, target=profile.hub_address, timeout=timeout)
    try:
        request = directory_pb2.PublishKeysRequest(keys=envelope_to_proto(envelope))
        response: directory_pb2.PublishKeysResponse = transport.call(
            transport.directory.PublishKeys, request
        )
        return response.key_number
    finally:
        transport.close()


# --- the steps ----------------------------------------------------------------------------------


def key_change_lock(directory: Path) -> AbstractContextManager[None]:
    """The profile's one key-change lock (``rotate.lock``): held by a rotation, a revocation or
    a recovery from its first read of the profile to its last file moved."""
    return _locked(directory / LOCK_FILE)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE_MODE)
    except OSError as e:
        raise ConfigurationError(f"{path}: cannot open the rotation lock: {e}") from e
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            raise ConfigurationError(
                f"{path}: another key change (rotate, revoke or recover) of this profile is in "
                "progress; wait for it to end, then check `exchange keys show` (nothing was "
                "changed)",
                reason="ROTATION_IN_PROGRESS",
            ) from e
        yield
    finally:
        os.close(descriptor)


def _check_tls_usable(data: ProfileData, kinds: Sequence[str], now: datetime) -> None:
    """Refuse to publish with a TLS certificate the hub would refuse at the handshake."""
    if "tls" in kinds or not set(kinds) & {"signing", "encryption", "witness"}:
        return
    tls = pki.load_certificate_pem(data.tls_certificate_pem)
    if now > tls.not_valid_after_utc:
        wanted = " ".join(f"--{k}" for k in KINDS if k in kinds)
        raise ConfigurationError(
            f"{data.config.paths.tls_certificate}: the TLS certificate expired at "
            f"{tls.not_valid_after_utc.isoformat()} and the hub refuses it, so the statement "
            f"cannot be published: rotate it too, `exchange keys rotate --tls {wanted}` "
            "(nothing was changed)",
            reason="CERTIFICATE_EXPIRED",
        )


def _ca_key(path: Path, ca: x509.Certificate) -> ec.EllipticCurvePrivateKey:
    """The agency CA's private key, which certifies every new key and signs every statement."""
    try:
        key = pki.load_tls_private_key_pem(path.read_bytes())
    except FileNotFoundError as e:
        raise ConfigurationError(
            f"{path}: missing; the agency CA key issues the new certificates and signs the "
            "statement: bring it from where it is kept offline for the rotation (nothing was "
            "changed)"
        ) from e
    except (OSError, ExchangeError) as e:
        raise ConfigurationError(f"{path}: cannot use the agency CA key: {e}") from e
    if key.public_key() != ca.public_key():
        raise ConfigurationError(f"{path}: not the key of the agency CA certificate")
    return key


def _latest_statement(data: ProfileData) -> AgencyKeys:
    """The profile's own statement (``keys.dsse``), verified at its own date."""
    envelope = data.keys_envelope
    try:
        message = parse_unverified(envelope)
        return AgencyKeys.verify(
            envelope, data.ca_certificate, now=message.created_at.ToDatetime(tzinfo=UTC)
        )
    except ExchangeError as e:
        raise ConfigurationError(
            f"{data.config.paths.keys_envelope}: {e.message}; restore it from the profile's "
            "backup"
        ) from e


def _check_matches_statement(data: ProfileData) -> None:
    """Refuse a profile whose key files are not those its latest statement names."""
    statement = _latest_statement(data)
    paths = data.config.paths
    pairs: tuple[tuple[Path, x509.Certificate, bytes], ...] = (
        (paths.signing_certificate, data.signing_certificate, statement.message.signing_certificate),
        (
            paths.encryption_certificate,
            data.encryption_certificate,
            statement.message.encryption_certificate,
        ),
        (paths.witness_certificate, data.witness_certificate, statement.message.witness_certificate),
    )
    for path, certificate, named in pairs:
        if pki.certificate_to_der(certificate) != named:
            raise ConfigurationError(
                f"{path} is not the certificate key statement {statement.key_number} "
                f"({paths.keys_envelope}) names: restore the key files of that statement from "
                "the profile's backup (or the keys.dsse that goes with these files); nothing was "
                "changed",
                reason="PROFILE_KEYS_MISMATCH",
            )


def _stage(
    data: ProfileData,
    kinds: tuple[str, ...],
    pending: Path,
    now: datetime,
    *,
    key_days: int,
    tls_days: int,
) -> None:
    """Write the new keys, certificates and statement to ``pending``, then its manifest."""
    paths = data.config.paths
    agency, ca = data.agency_id, data.ca_certificate
    ca_key = _ca_key(paths.ca_key, ca)
    previous = _latest_statement(data)
    staging = pending.with_name(f".{pending.name}.tmp")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(mode=PRIVATE_DIRECTORY_MODE)
    files: dict[str, str] = {}

    def stage(field_name: str, content: bytes, *, private: bool) -> None:
        _write_new(staging / field_name, content, PRIVATE_FILE_MODE if private else PUBLIC_FILE_MODE)
        files[field_name] = str(getattr(paths, field_name))

    def certify(key: SigningKey | DecryptionKey, purpose: pki.KeyPurpose) -> x509.Certificate:
        return pki.issue_key_certificate(
            ca_key, ca, agency, key.public_key.native, purpose, now=now, validity_days=key_days
        )

    signing_key, signing_cert = data.signing_key, data.signing_certificate
    encryption_cert, witness_cert = data.encryption_certificate, data.witness_certificate
    retired: dict[str, str] = {}
    if "signing" in kinds:
        signing_key = SigningKey.generate()
        signing_cert = certify(signing_key, "signing")
        stage("signing_key", signing_key.to_pem(), private=True)
        stage("signing_certificate", pki.certificate_to_pem(signing_cert), private=False)
    if "encryption" in kinds:
        encryption_key = DecryptionKey.generate()
        encryption_cert = certify(encryption_key, "encryption")
        stage("encryption_key", encryption_key.to_pem(), private=True)
        stage("encryption_certificate", pki.certificate_to_pem(encryption_cert), private=False)
        key_name, certificate_name = retired_encryption_files(previous.key_number)
        retired_dir = staging / "retired-keys"
        retired_dir.mkdir(mode=PRIVATE_DIRECTORY_MODE)
        _write_new(retired_dir / key_name, data.encryption_key.to_pem(), PRIVATE_FILE_MODE)
        _write_new(
            retired_dir / certificate_name,
            pki.certificate_to_pem(data.encryption_certificate),
            PUBLIC_FILE_MODE,
        )
        retired = {name: str(paths.retired_keys / name) for name in (key_name, certificate_name)}
    if "witness" in kinds:
        witness_key = SigningKey.generate()
        witness_cert = certify(witness_key, "witness")
        stage("witness_key", witness_key.to_pem(), private=True)
        stage("witness_certificate", pki.certificate_to_pem(witness_cert), private=False)
    if "tls" in kinds:
        tls_key = pki.generate_tls_key()
        tls_cert = pki.issue_tls_client_cert(
            ca_key, ca, agency, tls_key.public_key(), now=now, validity_days=tls_days
        )
        stage("tls_key", pki.private_key_to_pem(tls_key), private=True)
        stage("tls_certificate", pki.certificate_to_pem(tls_cert), private=False)
    statement = ""
    key_number = previous.key_number
    if {"signing", "encryption", "witness"} & set(kinds):
        envelope = AgencyKeys.create_rotation(
            previous,
            previous_signing_key=data.signing_key,
            signing_key=signing_key,
            ca_key=ca_key,
            ca_certificate=ca,
            signing_certificate=signing_cert,
            encryption_certificate=encryption_cert,
            witness_certificate=witness_cert,
            created_at=max(now, previous.created_at),
        )
        statement = "keys_envelope"
        _write_new(staging / statement, envelope.to_json(), PUBLIC_FILE_MODE)
        key_number += 1
    plan = _Pending(
        kinds=kinds,
        files=files,
        retired=retired,
        key_number=key_number,
        statement=statement,
        statement_target=str(paths.keys_envelope) if statement else "",
    )
    _write_new(staging / PENDING_MANIFEST, plan.to_json(), PRIVATE_FILE_MODE)
    _sync_directory(staging)
    os.replace(staging, pending)
    _sync_directory(pending.parent)


def _move(pending: Path, plan: _Pending) -> None:
    """Put the staged files in place: retired keys first, the statement last (idempotent)."""
    for name, target in plan.retired.items():
        retired_dir = Path(target).parent
        retired_dir.mkdir(mode=PRIVATE_DIRECTORY_MODE, exist_ok=True)
        _replace_from(pending / "retired-keys" / name, Path(target))
        _sync_directory(retired_dir)
    for name, target in plan.files.items():
        _replace_from(pending / name, Path(target))
        _sync_directory(Path(target).parent)
    if plan.statement:
        _replace_from(pending / plan.statement, Path(plan.statement_target))
        _sync_directory(Path(plan.statement_target).parent)


def _result(data: ProfileData, plan: _Pending, *, resumed: bool) -> RotationResult:
    certificates = {
        "signing": data.signing_certificate,
        "encryption": data.encryption_certificate,
        "witness": data.witness_certificate,
        "tls": pki.load_certificate_pem(data.tls_certificate_pem),
    }
    return RotationResult(
        kinds=plan.kinds,
        key_number=parse_unverified(data.keys_envelope).key_number,
        published=bool(plan.statement),
        resumed=resumed,
        fingerprints={k: pki.fingerprint(certificates[k].public_key()) for k in plan.kinds},
        expires={k: certificates[k].not_valid_after_utc for k in plan.kinds},
        retired=tuple(plan.retired.values()),
    )


# --- files --------------------------------------------------------------------------------------


def _write_new(path: Path, data: bytes, mode: int) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(descriptor, mode)
        os.write(descriptor, data)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _replace_from(source: Path, path: Path) -> None:
    """Replace ``path`` with a copy of ``source`` (its mode too) in one rename."""
    _replace(path, source.read_bytes(), source.stat().st_mode & 0o777)


def _replace(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` with ``data`` in one rename, the bytes on disk first."""
    temporary = path.with_name(f".{path.name}.rotate.tmp")
    try:
        if temporary.exists():
            temporary.unlink()
        _write_new(temporary, data, mode)
        os.replace(temporary, path)
    except OSError as e:
        raise ConfigurationError(
            f"{path}: cannot replace it: {e}; run `exchange keys rotate` again to finish"
        ) from e


def _sync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
