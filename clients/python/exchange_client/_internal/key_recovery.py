"""Marking this agency's keys compromised, and replacing a lost or stolen CA with the offline
recovery key (``exchange keys revoke --compromised``, ``exchange keys recover``).

Both publish the agency's next ``AgencyKeys`` statement (the rules are in
:mod:`exchange.statements.key_sequence` and :mod:`exchange.statements.key_compromise`) and then
move the profile to the keys it names. The order keeps the profile whole whatever fails:

1. everything is checked and built in memory (a bad time, an unknown key kind, a recovery key
   that is not the one pinned, a profile whose keys do not match its latest statement: a clear
   error, nothing written);
2. the new private keys and certificates are written to ``pending-keys/`` in the profile, so a
   crash after the hub accepted the statement does not lose them;
3. the statement is published; if the hub refuses it, ``pending-keys/`` is removed and the
   profile is as it was; if the hub does not answer, ``pending-keys/`` is kept and the error
   says how to finish or undo by hand;
4. the replaced files are copied to ``replaced-keys/`` (a replaced encryption key also to
   ``retired-keys/``, where the profile finds the keys that open what was wrapped to old ones)
   and the new ones moved into place.

All of it under the profile's one key-change lock (``rotate.lock``, shared with ``exchange keys
rotate``), and never while a rotation is pending in ``rotation/``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from exchange import pki
from exchange.config.profile import ProfileConfig, ProfilePaths, retired_encryption_files
from exchange.crypto.dsse import Envelope
from exchange.crypto.keys import DecryptionKey, SigningKey
from exchange.errors import (
    ConfigurationError,
    ConflictError,
    ExchangeError,
    InvalidInputError,
    MalformedError,
    NotAuthenticatedError,
    NotFoundError,
    NotPermittedError,
    UnavailableError,
    VerificationError,
)
from exchange.statements.agency_keys import AgencyKeys, ca_key_id
from exchange.statements.codec import envelope_to_proto
from exchange.statements.key_compromise import Compromise
from exchange.v1 import directory_pb2
from exchange_client._internal import key_rotation
from exchange_client._internal.calls import Steps, call
from exchange_client._internal.models import JsonObject, rfc3339
from exchange_client._internal.partners import PartnerDirectory
from exchange_client._internal.profile import Profile
from exchange_client._internal.state import write_atomically

KEY_KINDS = ("signing", "encryption", "witness")
"""The keys ``exchange keys revoke --compromised`` can mark (each replaced by a new one)."""

PENDING_DIRECTORY = key_rotation.OTHER_PENDING_DIRECTORY
"""In the profile: new keys written before their statement is published."""
REPLACED_DIRECTORY = "replaced-keys"
"""In the profile: the files a published statement replaced, named after its number."""


@dataclass(frozen=True)
class KeyStatementPublished:
    """What ``revoke`` or ``recover`` published and moved the profile to."""

    agency_id: str
    key_number: int
    compromised: tuple[Compromise, ...]
    replaced: tuple[str, ...]
    """The kinds of key replaced (``ca`` and ``tls`` too for a recovery)."""
    signing_key_fingerprint: str
    encryption_key_fingerprint: str
    ca_fingerprint: str

    def to_json(self) -> JsonObject:
        return {
            "agency_id": self.agency_id,
            "key_number": self.key_number,
            "compromised": [c.to_json() for c in self.compromised],
            "replaced": list(self.replaced),
            "signing_key_fingerprint": self.signing_key_fingerprint,
            "encryption_key_fingerprint": self.encryption_key_fingerprint,
            "ca_fingerprint": self.ca_fingerprint,
        }


def parse_since(text: str, *, now: datetime) -> datetime:
    """``--since TIME``: an RFC 3339 time with a zone (``2026-12-01T08:00:00Z``), not after
    ``now``; raises :class:`InvalidInputError` saying what to pass instead."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as e:
        raise InvalidInputError(
            f"--since {text!r} is not a time: write it as RFC 3339, e.g. 2026-12-01T08:00:00Z"
        ) from e
    if moment.tzinfo is None:
        raise InvalidInputError(
            f"--since {text!r} has no time zone: add Z for UTC, e.g. 2026-12-01T08:00:00Z"
        )
    if moment > now:
        raise InvalidInputError(
            f"--since {text!r} is in the future: a key can only be marked compromised from a "
            "time already past (now is " + (rfc3339(now) or "") + ")"
        )
    return moment


def load_recovery_key(path: Path) -> SigningKey:
    """The offline recovery key in ``path`` (PEM, as ``exchange-hub init`` wrote it)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigurationError(f"{path}: cannot read the recovery key: {e}") from e
    try:
        return SigningKey.from_pem(data)
    except MalformedError as e:
        raise InvalidInputError(
            f"{path}: not a recovery key (an unencrypted PEM Ed25519 private key, as "
            "`exchange-hub init` wrote under DIR/recovery/)"
        ) from e


class KeyRecovery:
    """Publishes this agency's compromise and recovery statements and moves its profile."""

    def __init__(
        self,
        profile: Profile,
        partners: PartnerDirectory,
        *,
        clock: Callable[[], datetime],
        run: Callable[[Steps[directory_pb2.PublishKeysResponse]], directory_pb2.PublishKeysResponse],
    ) -> None:
        self._profile = profile
        self._partners = partners
        self._clock = clock
        self._run = run

    def revoke_compromised(
        self, kinds: Iterable[str], *, since: datetime
    ) -> KeyStatementPublished:
        """Mark this agency's current keys of ``kinds`` compromised from ``since``, replaced by
        new ones certified by the profile's CA, in the next statement (see the module notes)."""
        wanted = tuple(dict.fromkeys(kinds))
        unknown = [k for k in wanted if k not in KEY_KINDS]
        if unknown:
            raise InvalidInputError(
                f"unknown key type {unknown[0]!r}: name one or more of {', '.join(KEY_KINDS)}"
            )
        if not wanted:
            raise InvalidInputError(
                "name the compromised key: --signing, --encryption and/or --witness"
            )
        now = self._clock()
        _check_since(since, now)
        paths = self._paths()
        latest = self._latest_own()
        self._check_profile_matches(latest)
        try:
            ca_key = pki.load_tls_private_key_pem(paths.ca_key.read_bytes())
        except (OSError, MalformedError) as e:
            raise ConfigurationError(
                f"{paths.ca_key}: the CA key is needed to certify the new keys ({e}); if it is "
                "lost or stolen, use `exchange keys recover --recovery-key FILE`"
            ) from e
        ca = self._profile.partner_cas[self._profile.agency_id]
        new = _NewKeys.make(kinds=wanted, ca_key=ca_key, ca=ca, agency_id=latest.agency_id, now=now)
        compromised = tuple(
            Compromise(
                agency_id=latest.agency_id,
                key_type=kind,
                key_id=_key_id(latest, kind),
                since=since,
                key_number=latest.key_number + 1,
            )
            for kind in wanted
        )
        signing_key = new.signing_key or self._profile.signing_key
        envelope = AgencyKeys.create_rotation(
            latest,
            previous_signing_key=self._profile.signing_key,
            signing_key=signing_key,
            ca_key=ca_key,
            ca_certificate=ca,
            signing_certificate=new.certificates.get("signing", latest.signing_certificate),
            encryption_certificate=new.certificates.get(
                "encryption", latest.encryption_certificate
            ),
            witness_certificate=new.certificates.get("witness", latest.witness_certificate),
            compromised=compromised,
            created_at=now,
        )
        keys = AgencyKeys.verify(envelope, ca, now=now)
        self._publish_and_move(paths, envelope, new, key_number=keys.key_number)
        return _published(keys, compromised, wanted, ca)

    def recover(
        self,
        recovery_key: SigningKey,
        *,
        since: datetime | None = None,
        keys_compromised: bool = False,
        next_recovery_key: SigningKey | None = None,
    ) -> KeyStatementPublished:
        """Replace this agency's CA and every key it certified, signed by the offline recovery key.

        The old CA is marked compromised from ``since`` (default: now), and with
        ``keys_compromised`` its signing, encryption and witness keys too. ``next_recovery_key``
        is pinned from then on in place of ``recovery_key``. Raises :class:`VerificationError`
        (``RECOVERY_KEY_MISMATCH``) when ``recovery_key`` is not the one the sequence pins.
        """
        now = self._clock()
        moment = now if since is None else since
        _check_since(moment, now)
        paths = self._paths()
        sequence_keys = self._own_sequence()
        latest = sequence_keys[-1]
        pinned = None
        for statement in sequence_keys:
            pinned = statement.recovery_key or pinned
        if pinned is None:
            raise VerificationError(
                f"{latest.agency_id}'s key statements pin no recovery key (the profile predates "
                "them): the CA can only be replaced by re-registering the agency with the hub "
                "operator and every partner",
                reason="RECOVERY_KEY_MISMATCH",
            )
        if recovery_key.public_key != pinned:
            raise VerificationError(
                f"the recovery key given ({recovery_key.public_key.fingerprint}) is not the one "
                f"{latest.agency_id}'s key statements pin ({pinned.fingerprint}): use the file "
                "`exchange-hub init` wrote under DIR/recovery/ for this agency",
                reason="RECOVERY_KEY_MISMATCH",
            )
        old_ca = self._profile.partner_cas[self._profile.agency_id]
        agency_id = latest.agency_id
        ca_key, ca = pki.make_agency_ca(agency_id, now=now)
        new = _NewKeys.make(
            kinds=(*KEY_KINDS, "tls"), ca_key=ca_key, ca=ca, agency_id=agency_id, now=now
        )
        compromised = [
            Compromise(
                agency_id=agency_id,
                key_type="ca",
                key_id=ca_key_id(old_ca),
                since=moment,
                key_number=latest.key_number + 1,
            )
        ]
        if keys_compromised:
            compromised.extend(
                Compromise(
                    agency_id=agency_id,
                    key_type=kind,
                    key_id=_key_id(latest, kind),
                    since=moment,
                    key_number=latest.key_number + 1,
                )
                for kind in KEY_KINDS
            )
        assert new.signing_key is not None
        envelope = AgencyKeys.create_recovery(
            latest,
            recovery_key=recovery_key,
            signing_key=new.signing_key,
            new_ca_key=ca_key,
            new_ca_certificate=ca,
            signing_certificate=new.certificates["signing"],
            encryption_certificate=new.certificates["encryption"],
            witness_certificate=new.certificates["witness"],
            compromised=compromised,
            created_at=now,
            next_recovery_key=next_recovery_key.public_key if next_recovery_key else None,
        )
        keys = AgencyKeys.verify(envelope, ca, now=now)
        new.ca = (ca_key, ca)
        self._publish_and_move(paths, envelope, new, key_number=keys.key_number)
        return _published(keys, tuple(compromised), ("ca", "tls", *KEY_KINDS), ca)

    # --- internals ------------------------------------------------------------------------------

    def _paths(self) -> ProfilePaths:
        if self._profile.directory is None:
            raise ConfigurationError("the profile was not loaded from a directory: nothing to move")
        return ProfileConfig.from_file(self._profile.directory).paths

    def _own_sequence(self) -> tuple[AgencyKeys, ...]:
        partners = self._partners.load(refresh=True)
        own = partners.get(self._profile.agency_id)
        if own is None or not own.statements:
            why = own.problem if own is not None else "the hub does not list this agency"
            raise VerificationError(
                f"this agency's own key statements are refused: {why}",
                reason="KEY_SEQUENCE_REFUSED",
            )
        return own.statements

    def _latest_own(self) -> AgencyKeys:
        return self._own_sequence()[-1]

    def _check_profile_matches(self, latest: AgencyKeys) -> None:
        profile = self._profile
        if profile.signing_key.public_key != latest.verify_key:
            raise ConfigurationError(
                f"the profile's signing key ({profile.signing_key.public_key.fingerprint}) is not "
                f"the one of key statement {latest.key_number} "
                f"({latest.verify_key.fingerprint}): restore the profile's key files that match "
                "its latest statement (or finish the move left in pending-keys/)"
            )

    def _publish_and_move(
        self, paths: ProfilePaths, envelope: Envelope, new: _NewKeys, *, key_number: int
    ) -> None:
        directory = Path(self._profile.directory or paths.keys_envelope.parent)
        with key_rotation.key_change_lock(directory):
            rotation = directory / key_rotation.PENDING_DIRECTORY
            if rotation.exists():
                raise ConfigurationError(
                    f"{rotation} exists: a key rotation is pending; finish it with `exchange "
                    "keys rotate` first (nothing was changed)",
                    reason="ROTATION_IN_PROGRESS",
                )
            self._publish_and_move_locked(directory, paths, envelope, new, key_number=key_number)

    def _publish_and_move_locked(
        self,
        directory: Path,
        paths: ProfilePaths,
        envelope: Envelope,
        new: _NewKeys,
        *,
        key_number: int,
    ) -> None:
        pending = directory / PENDING_DIRECTORY
        if pending.exists():
            raise ConfigurationError(
                f"{pending} exists: a key change was left half done; if its statement was "
                "published, move its files into place, else delete it, then try again"
            )
        targets = new.targets(paths)
        _make_private_directory(pending)
        try:
            for name, (data, private) in targets.items():
                _write(pending / name.name, data, private=private)
            _write(pending / paths.keys_envelope.name, envelope.to_json(), private=False)
            request = directory_pb2.PublishKeysRequest(keys=envelope_to_proto(envelope))
            self._run(call("directory", "PublishKeys", request))
        except _REFUSALS:
            shutil.rmtree(pending, ignore_errors=True)  # refused: nothing was published
            raise
        except ExchangeError as e:
            # No answer (the hub down, a deadline): the statement may have been taken, so the
            # keys it names are kept.
            raise UnavailableError(
                f"the hub did not answer whether it took key statement {key_number} "
                f"({e.message}); the new keys are in {pending}: if `exchange keys show` lists "
                f"statement {key_number}, move that directory's files into the profile, "
                f"otherwise delete {pending} and run the command again"
            ) from e
        replaced = directory / REPLACED_DIRECTORY
        _make_private_directory(replaced, exist_ok=True)
        for target in [*targets, paths.keys_envelope]:
            if target.exists():
                shutil.copy2(target, replaced / f"{key_number - 1}-{target.name}")
        if paths.encryption_key in targets:
            # Where the profile looks for the keys that open items wrapped to replaced ones
            # (as `exchange keys rotate` keeps them): the agency still reads its old alerts.
            _make_private_directory(paths.retired_keys, exist_ok=True)
            key_name, certificate_name = retired_encryption_files(key_number - 1)
            shutil.copy2(paths.encryption_key, paths.retired_keys / key_name)
            shutil.copy2(paths.encryption_certificate, paths.retired_keys / certificate_name)
        for target, (data, private) in targets.items():
            _write(target, data, private=private)
        own_partner_copy = paths.partners / f"{self._profile.agency_id}.pem"
        if new.ca is not None and own_partner_copy.exists():
            _write(own_partner_copy, pki.certificate_to_pem(new.ca[1]), private=False)
        _write(paths.keys_envelope, envelope.to_json(), private=False)
        shutil.rmtree(pending, ignore_errors=True)


_REFUSALS = (
    InvalidInputError,
    VerificationError,
    NotPermittedError,
    NotAuthenticatedError,
    ConflictError,
    NotFoundError,
)
"""What the hub answers when it did not take a statement."""


@dataclass
class _NewKeys:
    """New private keys with their certificates, before they are written."""

    certificates: dict[str, x509.Certificate]
    private_pems: dict[str, bytes]
    signing_key: SigningKey | None
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None = None

    @classmethod
    def make(
        cls,
        *,
        kinds: Iterable[str],
        ca_key: ec.EllipticCurvePrivateKey,
        ca: x509.Certificate,
        agency_id: str,
        now: datetime,
    ) -> _NewKeys:
        certificates: dict[str, x509.Certificate] = {}
        pems: dict[str, bytes] = {}
        signing_key = None
        for kind in kinds:
            if kind == "tls":
                tls_key = pki.generate_tls_key()
                certificates[kind] = pki.issue_tls_client_cert(
                    ca_key, ca, agency_id, tls_key.public_key(), now=now
                )
                pems[kind] = pki.private_key_to_pem(tls_key)
                continue
            if kind == "encryption":
                decryption = DecryptionKey.generate()
                native: object = decryption.public_key.native
                pems[kind] = decryption.to_pem()
            else:
                key = SigningKey.generate()
                native = key.public_key.native
                pems[kind] = key.to_pem()
                if kind == "signing":
                    signing_key = key
            certificates[kind] = pki.issue_key_certificate(
                ca_key, ca, agency_id, native, kind, now=now  # type: ignore[arg-type]
            )
        return cls(certificates=certificates, private_pems=pems, signing_key=signing_key)

    def targets(self, paths: ProfilePaths) -> dict[Path, tuple[bytes, bool]]:
        """Each profile file to write, with its bytes and whether it is private."""
        files = {
            "signing": (paths.signing_key, paths.signing_certificate),
            "encryption": (paths.encryption_key, paths.encryption_certificate),
            "witness": (paths.witness_key, paths.witness_certificate),
            "tls": (paths.tls_key, paths.tls_certificate),
        }
        targets: dict[Path, tuple[bytes, bool]] = {}
        for kind, certificate in self.certificates.items():
            key_path, certificate_path = files[kind]
            targets[key_path] = (self.private_pems[kind], True)
            targets[certificate_path] = (pki.certificate_to_pem(certificate), False)
        if self.ca is not None:
            targets[paths.ca_key] = (pki.private_key_to_pem(self.ca[0]), True)
            targets[paths.ca_certificate] = (pki.certificate_to_pem(self.ca[1]), False)
        return targets


def _key_id(statement: AgencyKeys, kind: str) -> str:
    if kind == "signing":
        return statement.verify_key.key_id
    if kind == "encryption":
        return statement.encryption_key.key_id
    witness = statement.witness_key
    if witness is None:
        raise InvalidInputError(
            f"key statement {statement.key_number} names no witness key to mark compromised"
        )
    return witness.key_id


def _check_since(since: datetime, now: datetime) -> None:
    if since.tzinfo is None:
        raise InvalidInputError("pass a timezone-aware time (UTC) as 'since'")
    if since > now:
        raise InvalidInputError(
            f"a key can only be marked compromised from a time already past; {since.isoformat()} "
            "is in the future"
        )


def _published(
    keys: AgencyKeys,
    compromised: tuple[Compromise, ...],
    replaced: tuple[str, ...],
    ca: x509.Certificate,
) -> KeyStatementPublished:
    return KeyStatementPublished(
        agency_id=keys.agency_id,
        key_number=keys.key_number,
        compromised=compromised,
        replaced=replaced,
        signing_key_fingerprint=keys.verify_key.fingerprint,
        encryption_key_fingerprint=keys.encryption_key.fingerprint,
        ca_fingerprint=pki.fingerprint(ca),
    )


def _make_private_directory(path: Path, *, exist_ok: bool = False) -> None:
    try:
        path.mkdir(mode=0o700, exist_ok=exist_ok)
        os.chmod(path, 0o700)
    except OSError as e:
        raise ConfigurationError(f"{path}: cannot create the directory: {e}") from e


def _write(path: Path, data: bytes, *, private: bool) -> None:
    try:
        write_atomically(path, data)
        os.chmod(path, 0o600 if private else 0o644)
    except OSError as e:
        raise ConfigurationError(f"{path}: cannot write it: {e}") from e
