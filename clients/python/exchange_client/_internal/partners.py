"""Partner agencies' keys, as this profile verifies them (DESIGN §2): never the hub's word.

The pure part checks one directory record against the CA this profile holds for the agency,
replaying its numbered key statements from the pin this profile keeps
(:func:`check_record`, :mod:`exchange.statements.key_sequence`), and picks the keys to encrypt to
(:func:`encryption_keys`); :class:`PartnerDirectory` fetches the records, keeps the verified copy
and the pins (``state/key-pins.json``), and collects a notice for every rotation it follows.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from cryptography import x509

from exchange import pki
from exchange.crypto.keys import EncryptionKey, VerifyKey
from exchange.errors import (
    ConfigurationError,
    InvalidInputError,
    MalformedError,
    UnknownKeyError,
    VerificationError,
)
from exchange.statements import key_sequence
from exchange.statements.agency_keys import AgencyKeys
from exchange.statements.codec import envelope_from_proto
from exchange.statements.key_compromise import Compromise
from exchange.statements.key_sequence import KeyPin, KeySequenceError
from exchange.v1 import directory_pb2
from exchange_client._internal.calls import SharedLock, Steps, acquire, call, run_blocking
from exchange_client._internal.models import AgencyInfo
from exchange_client._internal.profile import Profile
from exchange_client._internal.state import write_atomically
from exchange_client._internal.transport import AsyncTransport, Transport

KEY_PINS_FILE = "key-pins.json"
"""Under the profile's state directory: the first and latest key statement seen per agency."""


@dataclass(frozen=True)
class PartnerKeys:
    """One agency's directory record as checked against the CA in our profile."""

    agency_id: str
    revoked: bool
    latest: AgencyKeys | None
    verify_keys: Mapping[str, VerifyKey] = field(default_factory=dict)
    problem: str = ""
    ca_fingerprint: str = ""
    pin: KeyPin | None = None
    """What to remember of the sequence accepted (``None`` when nothing was)."""
    notice: str = ""
    """Set when the agency rotated its keys since the pin this record was checked from."""
    tampered: bool = False
    """The key sequence itself was refused: a gap, a fork, a rollback or a forged rotation."""
    statements: tuple[AgencyKeys, ...] = ()
    """The verified sequence, from the pinned statement to the latest."""
    compromised: Mapping[str, Compromise] = field(default_factory=dict)
    """Keys the sequence marks compromised, by key id: what they signed from then on is untrusted."""

    @property
    def verified(self) -> bool:
        return self.latest is not None


# --- the rules ----------------------------------------------------------------------------------


def check_record(
    record: directory_pb2.AgencyRecord,
    partner_cas: Mapping[str, x509.Certificate],
    now: datetime,
    *,
    pin: KeyPin | None = None,
) -> PartnerKeys:
    """``record`` checked against the agency's CA in ``partner_cas`` (the hub's copy of the CA
    is never trusted; a difference is reported), its key statements replayed from ``pin``.

    A sequence with a gap, a fork, a rollback below ``pin`` or a rotation not signed as the rules
    require leaves the agency unverified (``tampered``), so nothing is encrypted to it.
    """
    ca = partner_cas.get(record.agency_id)
    if ca is None:
        return PartnerKeys(
            agency_id=record.agency_id,
            revoked=record.revoked,
            latest=None,
            problem=(
                f"this profile holds no CA certificate for {record.agency_id!r}: obtain it "
                "out of band and add it under [partners] in profile.toml"
            ),
        )
    problems: list[str] = []

    def refused(problem: str, *, tampered: bool = False) -> PartnerKeys:
        """The agency unverified, with every problem found (nothing is encrypted to it)."""
        return PartnerKeys(
            agency_id=record.agency_id,
            revoked=record.revoked,
            latest=None,
            problem="; ".join([*problems, problem]),
            ca_fingerprint=pki.fingerprint(ca),
            pin=pin,
            tampered=tampered,
        )

    if not record.keys:
        return refused("the hub lists no key statement for it")
    try:
        sequence = key_sequence.replay(
            [envelope_from_proto(e) for e in record.keys], ca, now=now, pin=pin
        )
    except KeySequenceError as e:
        return refused(
            f"its key statements are refused ({e.reason}): {e.message}",
            tampered=e.reason != key_sequence.INVALID,
        )
    if sequence.agency_id != record.agency_id:
        return refused(f"a key statement names {sequence.agency_id!r}", tampered=True)
    # The CA in force: the profile's, or the one a recovery statement signed by the pinned
    # recovery key replaced it with.
    in_force = sequence.ca_certificate or ca
    if bytes(record.ca_certificate) != pki.certificate_to_der(in_force):
        problems.append("the hub serves a CA certificate that differs from this profile's")
    notices = key_sequence.changes({} if pin is None else {record.agency_id: pin}, {
        record.agency_id: sequence
    })
    return PartnerKeys(
        agency_id=record.agency_id,
        revoked=record.revoked,
        latest=sequence.latest,
        verify_keys=sequence.verify_keys(),
        problem="; ".join(problems),
        ca_fingerprint=pki.fingerprint(in_force),
        pin=sequence.pin(),
        notice=notices[0] if notices else "",
        statements=sequence.statements,
        compromised=sequence.compromised(),
    )


def agency_info(partner: PartnerKeys) -> AgencyInfo:
    """How :meth:`Client.agencies` shows a checked record."""
    latest = partner.latest
    return AgencyInfo(
        agency_id=partner.agency_id,
        key_number=latest.key_number if latest else 0,
        signing_key_fingerprint=latest.verify_key.fingerprint if latest else "",
        encryption_key_fingerprint=latest.encryption_key.fingerprint if latest else "",
        revoked=partner.revoked,
        verified=partner.verified,
        problem=partner.problem,
        ca_fingerprint=partner.ca_fingerprint,
        notice=partner.notice,
        tampered=partner.tampered,
    )


def encryption_keys(
    partners: Mapping[str, PartnerKeys], recipients: Iterable[str]
) -> dict[str, EncryptionKey]:
    """The verified current encryption key of each of ``recipients``; raises naming the first
    that is unknown, revoked or unverified."""
    keys: dict[str, EncryptionKey] = {}
    for recipient in recipients:
        partner = partners.get(recipient)
        if partner is None:
            raise InvalidInputError(
                f"no agency {recipient!r} on the hub: check the item audiences "
                "(`exchange agencies` lists the agencies)",
                reason="UNKNOWN_RECIPIENT",
            )
        if partner.revoked:
            raise InvalidInputError(
                f"agency {recipient!r} is revoked: remove it from the item audiences",
                reason="RECIPIENT_REVOKED",
            )
        if partner.latest is None:
            raise VerificationError(
                f"will not encrypt to {recipient!r}: {partner.problem}",
                reason="RECIPIENT_KEYS_UNVERIFIED",
            )
        compromise = partner.compromised.get(partner.latest.encryption_key.key_id)
        if compromise is not None:
            raise VerificationError(
                f"will not encrypt to {recipient!r}: its current encryption key "
                f"{partner.latest.encryption_key.fingerprint} is marked compromised since "
                f"{compromise.since.isoformat()} (key statement {compromise.key_number}); "
                f"{recipient} must publish a new one",
                reason="RECIPIENT_KEY_COMPROMISED",
            )
        keys[recipient] = partner.latest.encryption_key
    return keys


# --- the directory as fetched -------------------------------------------------------------------


class PartnerDirectory:
    """The hub's agencies with their key statements verified against this profile's CAs."""

    def __init__(
        self,
        transport: Transport | AsyncTransport,
        profile: Profile,
        *,
        clock: Callable[[], datetime],
    ) -> None:
        self._transport = transport
        self._profile = profile
        self._clock = clock
        self._partners: dict[str, PartnerKeys] | None = None
        self.fetched_at = 0.0
        """``time.monotonic()`` of the last ``ListAgencies``."""
        self.notices: list[str] = []
        """One line per rotation followed since this directory was made, for people to read."""
        self._refresh_lock = SharedLock()

    def load(
        self, *, refresh: bool = False, max_age: float | None = None
    ) -> dict[str, PartnerKeys]:
        """The checked records, fetched again when ``refresh`` is set or the copy held is older
        than ``max_age`` seconds."""
        return run_blocking(self.fetch(refresh=refresh, max_age=max_age), self._transport)

    def fetch(
        self, *, refresh: bool = False, max_age: float | None = None
    ) -> Steps[dict[str, PartnerKeys]]:
        """:meth:`load` as steps (see :mod:`~exchange_client._internal.calls`)."""
        held = self._partners
        stale = max_age is not None and time.monotonic() - self.fetched_at > max_age
        if held is None or refresh or stale:
            # One refresh at a time: the pins are read, checked against and written in order,
            # so an older answer is never checked against the pin a newer one has just written
            # (which would look like a rollback).
            yield from acquire(self._refresh_lock)
            try:
                response = yield from call(
                    "directory", "ListAgencies", directory_pb2.ListAgenciesRequest()
                )
                now = self._clock()
                pins = self._read_pins()
                held = {
                    record.agency_id: check_record(
                        record, self._profile.partner_cas, now, pin=pins.get(record.agency_id)
                    )
                    for record in sorted(response.agencies, key=lambda r: r.agency_id)
                }
                self.notices.extend(p.notice for p in held.values() if p.notice)
                self._write_pins(pins, held)
                # Replaced whole: a thread sharing the client sees the old copy or the new one.
                self._partners, self.fetched_at = held, time.monotonic()
            finally:
                self._refresh_lock.release()
        return held

    def _pins_path(self) -> Path:
        return self._profile.state_dir / KEY_PINS_FILE

    def _read_pins(self) -> dict[str, KeyPin]:
        path = self._pins_path()
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as e:
            raise ConfigurationError(f"{path}: cannot read the key pins: {e}") from e
        try:
            return key_sequence.load_pins(data)
        except MalformedError as e:
            raise ConfigurationError(
                f"{path}: {e.message}; restore it from a backup (deleting it trusts the hub's "
                "keys afresh, on first use)"
            ) from e

    def _write_pins(self, before: Mapping[str, KeyPin], partners: Mapping[str, PartnerKeys]) -> None:
        """Keep the pins of sequences accepted; a refused one keeps its old pin."""
        pins = dict(before)
        for agency_id, partner in partners.items():
            if partner.pin is not None:
                pins[agency_id] = partner.pin
        if pins != dict(before):
            path = self._pins_path()
            try:
                path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as e:
                raise ConfigurationError(f"{path.parent}: cannot create the state directory: {e}") from e
            write_atomically(path, key_sequence.dump_pins(pins))

    def latest_keys(self) -> Steps[dict[str, AgencyKeys]]:
        """Every verified agency's latest key statement (for witness keys), as steps."""
        partners = yield from self.fetch()
        return {p.agency_id: p.latest for p in partners.values() if p.latest}

    def signing_keys(self) -> Steps[dict[str, list[VerifyKey]]]:
        """Every agency's verified signing keys (for statements in the log), as steps."""
        partners = yield from self.fetch()
        return {p.agency_id: list(p.verify_keys.values()) for p in partners.values()}

    def compromised_keys(self) -> Steps[dict[str, Compromise]]:
        """Every key any verified agency marks compromised, by key id, as steps."""
        partners = yield from self.fetch()
        return {k: c for p in partners.values() for k, c in p.compromised.items()}

    def verify_keys_of(self, originator: str) -> dict[str, VerifyKey]:
        """The keys statements of ``originator`` must verify under (ours from the profile)."""
        return run_blocking(self.keys_of(originator), self._transport)

    def keys_of(self, originator: str) -> Steps[dict[str, VerifyKey]]:
        """:meth:`verify_keys_of` as steps."""
        partners = yield from self.fetch()
        if originator not in partners:
            partners = yield from self.fetch(refresh=True)
        partner = partners.get(originator)
        keys: dict[str, VerifyKey] = dict(partner.verify_keys) if partner else {}
        if originator == self._profile.agency_id:
            own = self._profile.signing_key.public_key
            keys[own.key_id] = own
        if not keys:
            why = partner.problem if partner else "the hub lists no such agency"
            raise UnknownKeyError(f"cannot verify statements of {originator!r}: {why}")
        return keys

    def recipient_keys(
        self, recipients: Iterable[str], *, max_age: float | None = None
    ) -> dict[str, EncryptionKey]:
        """The verified current encryption key of each recipient other than this agency.

        Fresh from the hub unless ``max_age`` allows a copy that recent, so that a rotated or
        revoked key shows at once; always verified against this profile's CAs.
        """
        return run_blocking(self.recipient_keys_steps(recipients, max_age=max_age), self._transport)

    def recipient_keys_steps(
        self, recipients: Iterable[str], *, max_age: float | None = None
    ) -> Steps[dict[str, EncryptionKey]]:
        """:meth:`recipient_keys` as steps."""
        others = sorted(set(recipients) - {self._profile.agency_id})
        if not others:
            return {}
        partners = yield from self.fetch(refresh=max_age is None, max_age=max_age)
        return encryption_keys(partners, others)
