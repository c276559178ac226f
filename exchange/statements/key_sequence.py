"""An agency's numbered key statements, replayed from a pin (DESIGN §2, OPERATIONS "Key lifecycle").

Each agency publishes its keys as a sequence of ``AgencyKeys`` statements numbered 1, 2, 3, ...
Statement 1 is signed by the agency's signing key and certified through its CA (the key
certificates it carries). Every later statement ``n`` must

- carry ``key_number = n`` and ``previous_keys_hash = sha256(payload of n-1)``;
- be signed by the agency's CA key, by the signing key of ``n-1`` (the key it replaces) and by
  its own signing key: a stolen signing key alone cannot rotate, and neither can a stolen CA key;
- not be dated before ``n-1``.

A *recovery statement* (it names a new CA) is the one exception: it is signed by the offline
recovery key the sequence pins (statement 1 names it), by the new CA and by its own signing key,
and from it on the new CA certifies the agency's keys (:mod:`exchange.statements.key_compromise`).
Only a recovery statement may change the recovery key.

A client pins the first statement it accepted and the latest it has seen (:class:`KeyPin`) and
replays every sequence the hub serves from that pin (:func:`replay`). It refuses a gap (a number
skipped), a fork (two different statements with one number, or a chain that does not link) and a
rollback (fewer statements than it has already seen). Because each statement is also a log entry,
a hub that shows two partners two different statements under one number leaves both in the log,
where :func:`find_forks` names them.

Everything here is pure: no files, no network, no clock but the ``now`` given.
"""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509

from exchange import pki
from exchange.crypto.dsse import Envelope
from exchange.crypto.keys import EncryptionKey, VerifyKey
from exchange.errors import ExchangeError, MalformedError, VerificationError
from exchange.statements.agency_keys import (
    AgencyKeys,
    parse_unverified,
    verify_ca_signature,
    verify_signed_by,
)
from exchange.statements.codec import sha256
from exchange.statements.key_compromise import (
    Compromise,
    earliest,
    verify_recovery_signature,
)
from exchange.v1.statements_pb2 import AgencyKeys as _Message

GAP = "KEY_SEQUENCE_GAP"
FORK = "KEY_SEQUENCE_FORK"
ROLLBACK = "KEY_SEQUENCE_ROLLBACK"
UNAUTHORIZED = "KEY_ROTATION_UNAUTHORIZED"
INVALID = "KEY_STATEMENT_INVALID"


class KeySequenceError(VerificationError):
    """A key sequence that must not be trusted: a gap, a fork, a rollback or a bad signature.

    ``reason`` is one of ``KEY_SEQUENCE_GAP``, ``KEY_SEQUENCE_FORK``, ``KEY_SEQUENCE_ROLLBACK``,
    ``KEY_ROTATION_UNAUTHORIZED`` and ``KEY_STATEMENT_INVALID``; ``key_number`` the statement.
    """

    def __init__(self, message: str, *, reason: str, key_number: int = 0) -> None:
        super().__init__(message, reason=reason)
        self.key_number = key_number


@dataclass(frozen=True)
class KeyPin:
    """What a client remembers of one agency's key sequence between runs."""

    agency_id: str
    first_number: int
    first_hash: bytes
    latest_number: int
    latest_hash: bytes

    def to_json(self) -> dict[str, object]:
        return {
            "agency_id": self.agency_id,
            "first_number": self.first_number,
            "first_hash": base64.b64encode(self.first_hash).decode("ascii"),
            "latest_number": self.latest_number,
            "latest_hash": base64.b64encode(self.latest_hash).decode("ascii"),
        }

    @classmethod
    def from_json(cls, document: object) -> KeyPin:
        """A pin as :meth:`to_json` wrote it; anything else raises :class:`MalformedError`."""
        try:
            if not isinstance(document, dict):
                raise TypeError("not an object")
            pin = cls(
                agency_id=str(document["agency_id"]),
                first_number=_positive(document["first_number"]),
                first_hash=base64.b64decode(document["first_hash"], validate=True),
                latest_number=_positive(document["latest_number"]),
                latest_hash=base64.b64decode(document["latest_hash"], validate=True),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise MalformedError(f"not a key pin: {e}") from e
        if pin.latest_number < pin.first_number:
            raise MalformedError("key pin's latest number is below its first")
        return pin


def _positive(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{value!r} is not a key number")
    return value


@dataclass(frozen=True)
class KeySequence:
    """An agency's verified key statements, from the pinned one to the latest, ascending."""

    agency_id: str
    statements: tuple[AgencyKeys, ...]
    ca_certificate: x509.Certificate | None = None
    """The CA in force after the latest statement (a recovery statement replaces it)."""
    recovery_key: VerifyKey | None = None
    """The offline recovery key in force, if the sequence names one."""

    def compromised(self) -> dict[str, Compromise]:
        """Every key the sequence marks compromised, by key id, from the earliest time stated."""
        return earliest(c for s in self.statements for c in s.compromised)

    @property
    def latest(self) -> AgencyKeys:
        return self.statements[-1]

    @property
    def first(self) -> AgencyKeys:
        return self.statements[0]

    def pin(self) -> KeyPin:
        """The pin to keep after accepting this sequence."""
        return KeyPin(
            agency_id=self.agency_id,
            first_number=self.first.key_number,
            first_hash=self.first.hash,
            latest_number=self.latest.key_number,
            latest_hash=self.latest.hash,
        )

    def verify_keys(self) -> dict[str, VerifyKey]:
        """Every signing key of the sequence by key id: old statements stay verifiable."""
        return {s.verify_key.key_id: s.verify_key for s in self.statements}

    def encryption_keys(self) -> dict[str, EncryptionKey]:
        """Every encryption key of the sequence by key id (the latest is the one to encrypt to)."""
        return {s.encryption_key.key_id: s.encryption_key for s in self.statements}

    def statement_for_signing_key(self, key_id: str) -> AgencyKeys | None:
        """The statement that introduced signing key ``key_id``, if any."""
        for statement in self.statements:
            if statement.verify_key.key_id == key_id:
                return statement
        return None


def verify_first(envelope: Envelope, ca: x509.Certificate, *, now: datetime) -> AgencyKeys:
    """Check a statement accepted without a predecessor: statement 1, or the one a client pins.

    Its certificates must be issued by ``ca`` and valid at ``now``; a statement after the first
    must also carry the CA's signature.
    """
    keys = _verify_statement(envelope, ca, now=now)
    if keys.key_number == 1 and keys.previous_keys_hash:
        raise KeySequenceError(
            "key statement 1 names a previous statement", reason=FORK, key_number=1
        )
    if keys.key_number > 1:
        _require_ca_signature(keys, ca)
    return keys


def verify_successor(
    previous: AgencyKeys,
    envelope: Envelope,
    ca: x509.Certificate,
    *,
    now: datetime,
    recovery_key: VerifyKey | None = None,
) -> AgencyKeys:
    """Check ``envelope`` as the statement that follows ``previous``; return it verified.

    ``ca`` is the CA in force after ``previous`` and ``recovery_key`` the recovery key in force
    (needed only to accept a recovery statement). Raises :class:`KeySequenceError` naming the
    rule broken.
    """
    number = previous.key_number + 1
    message = _parse(envelope)
    if message.agency_id != previous.agency_id:
        raise KeySequenceError(
            f"key statement {message.key_number} names agency {message.agency_id!r}, "
            f"the sequence is {previous.agency_id!r}'s",
            reason=INVALID,
            key_number=message.key_number,
        )
    if message.key_number > number:
        raise KeySequenceError(
            f"{previous.agency_id!r}: key statement {message.key_number} follows statement "
            f"{previous.key_number}: statement {number} is missing",
            reason=GAP,
            key_number=number,
        )
    if message.key_number < number:
        raise KeySequenceError(
            f"{previous.agency_id!r}: key statement {message.key_number} after statement "
            f"{previous.key_number}: numbers must rise by one",
            reason=ROLLBACK,
            key_number=message.key_number,
        )
    if message.previous_keys_hash != previous.hash:
        raise KeySequenceError(
            f"{previous.agency_id!r}: key statement {number} does not name statement "
            f"{previous.key_number} as its predecessor: the sequence forks",
            reason=FORK,
            key_number=number,
        )
    if message.ca_certificate:
        return _verify_recovery(previous, envelope, message, recovery_key, now=now)
    keys = _verify_statement(envelope, ca, now=now)
    if keys.created_at < previous.created_at:
        raise KeySequenceError(
            f"{previous.agency_id!r}: key statement {number} is dated before statement "
            f"{previous.key_number}",
            reason=ROLLBACK,
            key_number=number,
        )
    _require_ca_signature(keys, ca)
    named = keys.recovery_key
    if recovery_key is not None and named is not None and named != recovery_key:
        raise KeySequenceError(
            f"{previous.agency_id!r}: key statement {number} names another recovery key: only a "
            "recovery statement, signed by the recovery key in force, may replace it",
            reason=UNAUTHORIZED,
            key_number=number,
        )
    try:
        verify_signed_by(envelope, previous.verify_key)
    except ExchangeError as e:
        raise KeySequenceError(
            f"{previous.agency_id!r}: key statement {number} is not signed by the signing key "
            f"it replaces ({previous.verify_key.fingerprint}, statement {previous.key_number}): "
            f"{e.message}",
            reason=UNAUTHORIZED,
            key_number=number,
        ) from e
    return keys


def replay(
    envelopes: Sequence[Envelope],
    ca: x509.Certificate,
    *,
    now: datetime,
    pin: KeyPin | None = None,
) -> KeySequence:
    """Verify an agency's key statements as served (ascending) from ``pin`` on.

    Without a pin the sequence must start at statement 1. With one, the statement pinned first
    must be served unchanged, statements before it are ignored (trust starts at the pin), and the
    latest statement seen must still be there unchanged with nothing after it missing.
    Superseded statements are checked at their own date (a certificate that has since expired
    does not break the chain); the latest at ``now``.

    Raises :class:`KeySequenceError` for a gap, fork or rollback, naming the statement.
    """
    if not envelopes:
        raise KeySequenceError("no key statement is served", reason=ROLLBACK)
    messages = [(_parse(envelope), envelope) for envelope in envelopes]
    agency_id = messages[0][0].agency_id
    by_number: dict[int, Envelope] = {}
    for message, envelope in messages:
        if message.agency_id != agency_id:
            raise KeySequenceError(
                f"the key statements served name both {agency_id!r} and {message.agency_id!r}",
                reason=FORK,
                key_number=message.key_number,
            )
        known = by_number.get(message.key_number)
        if known is not None and known.payload != envelope.payload:
            raise KeySequenceError(
                f"{agency_id!r}: two different key statements number {message.key_number}",
                reason=FORK,
                key_number=message.key_number,
            )
        by_number[message.key_number] = envelope
    numbers = sorted(by_number)
    for lower, upper in itertools.pairwise(numbers):
        if upper != lower + 1:
            raise KeySequenceError(
                f"{agency_id!r}: key statements jump from {lower} to {upper}: "
                f"statement {lower + 1} is missing",
                reason=GAP,
                key_number=lower + 1,
            )
    if pin is not None and pin.agency_id != agency_id:
        raise KeySequenceError(
            f"a pin for {pin.agency_id!r} cannot check {agency_id!r}'s keys", reason=INVALID
        )
    start = pin.first_number if pin is not None else _anchored_start(by_number, ca)
    if start not in by_number:
        if numbers[0] > start:
            raise KeySequenceError(
                f"{agency_id!r}: key statement {start} is not served (served from {numbers[0]})",
                reason=GAP,
                key_number=start,
            )
        raise KeySequenceError(
            f"{agency_id!r}: key statement {start} is not served (latest served {numbers[-1]})",
            reason=ROLLBACK,
            key_number=start,
        )
    if pin is not None:
        if sha256(by_number[pin.first_number].payload) != pin.first_hash:
            raise KeySequenceError(
                f"{agency_id!r}: key statement {pin.first_number} differs from the one pinned",
                reason=FORK,
                key_number=pin.first_number,
            )
        if numbers[-1] < pin.latest_number:
            raise KeySequenceError(
                f"{agency_id!r}: the hub serves key statements up to {numbers[-1]}, "
                f"statement {pin.latest_number} was seen before: a rollback",
                reason=ROLLBACK,
                key_number=pin.latest_number,
            )
        if sha256(by_number[pin.latest_number].payload) != pin.latest_hash:
            raise KeySequenceError(
                f"{agency_id!r}: key statement {pin.latest_number} differs from the one seen "
                "before: the sequence forks",
                reason=FORK,
                key_number=pin.latest_number,
            )
    if pin is not None:
        # An anchor CA given out of band after a recovery (the agency's own profile, or a partner
        # that took the new CA) starts trust at the recovery statement that introduced it.
        start = max(start, _anchored_start(by_number, ca))
    chain = [n for n in numbers if n >= start]
    last = chain[-1]
    first_moment = now if start == last else _created_at(by_number, start)
    statements = [verify_first(by_number[start], ca, now=first_moment)]
    current_ca, recovery = ca, statements[0].recovery_key
    for number in chain[1:]:
        moment = now if number == last else _created_at(by_number, number)
        keys = verify_successor(
            statements[-1], by_number[number], current_ca, now=moment, recovery_key=recovery
        )
        statements.append(keys)
        current_ca = keys.new_ca_certificate or current_ca
        recovery = keys.recovery_key or recovery
    return KeySequence(
        agency_id=agency_id,
        statements=tuple(statements),
        ca_certificate=current_ca,
        recovery_key=recovery,
    )


def verify_next(sequence: KeySequence, envelope: Envelope, *, now: datetime) -> AgencyKeys:
    """Check ``envelope`` as the statement after ``sequence``'s latest, under the CA and the
    recovery key in force (as :func:`replay` would)."""
    ca = sequence.ca_certificate
    if ca is None:
        raise KeySequenceError("the sequence has no CA in force", reason=INVALID)
    return verify_successor(
        sequence.latest, envelope, ca, now=now, recovery_key=sequence.recovery_key
    )


def find_forks(statements: Iterable[Envelope]) -> dict[tuple[str, int], set[bytes]]:
    """Every (agency, key number) under which different statements exist, with their hashes.

    Fed with the key statements of the audit log (each one a log entry), this shows a hub that
    served two partners two different statements under one number.
    """
    seen: dict[tuple[str, int], set[bytes]] = {}
    for envelope in statements:
        message = _parse(envelope)
        seen.setdefault((message.agency_id, message.key_number), set()).add(
            sha256(envelope.payload)
        )
    return {key: hashes for key, hashes in seen.items() if len(hashes) > 1}


def changes(before: Mapping[str, KeyPin], after: Mapping[str, KeySequence]) -> list[str]:
    """Notices for people: which agencies rotated since ``before`` was pinned."""
    notices = []
    for agency_id in sorted(after):
        sequence = after[agency_id]
        old = before.get(agency_id)
        if old is not None and sequence.latest.key_number > old.latest_number:
            latest = sequence.latest
            notices.append(
                f"{agency_id} rotated its keys: statement {old.latest_number} -> "
                f"{latest.key_number} (signing {latest.verify_key.fingerprint}, "
                f"encryption {latest.encryption_key.fingerprint})"
            )
    return notices


def dump_pins(pins: Mapping[str, KeyPin]) -> bytes:
    """Pins as the JSON a client keeps in its state directory."""
    return json.dumps(
        {agency: pins[agency].to_json() for agency in sorted(pins)}, indent=1
    ).encode("utf-8")


def load_pins(data: bytes) -> dict[str, KeyPin]:
    """Pins from :func:`dump_pins`'s JSON; raises :class:`MalformedError` on anything else."""
    try:
        document = json.loads(data)
    except ValueError as e:
        raise MalformedError("the key pins file is not JSON") from e
    if not isinstance(document, dict):
        raise MalformedError("the key pins file is not a JSON object")
    pins = {str(agency): KeyPin.from_json(value) for agency, value in document.items()}
    for agency, pin in pins.items():
        if pin.agency_id != agency:
            raise MalformedError(f"the key pin filed under {agency!r} is for {pin.agency_id!r}")
    return pins


# --- internals ---------------------------------------------------------------------------------


def _parse(envelope: Envelope) -> _Message:
    try:
        return parse_unverified(envelope)
    except MalformedError as e:
        raise KeySequenceError(
            f"a key statement does not parse: {e.message}", reason=INVALID
        ) from e


def _anchored_start(by_number: Mapping[int, Envelope], ca: x509.Certificate) -> int:
    """Where a replay without a pin starts: the latest recovery statement that introduced
    ``ca`` (its earlier statements are under a CA no longer in force), else statement 1."""
    ca_der = pki.certificate_to_der(ca)
    for number in sorted(by_number, reverse=True):
        if bytes(_parse(by_number[number]).ca_certificate) == ca_der:
            return number
    return 1


def _verify_recovery(
    previous: AgencyKeys,
    envelope: Envelope,
    message: _Message,
    recovery_key: VerifyKey | None,
    *,
    now: datetime,
) -> AgencyKeys:
    """A recovery statement after ``previous``: keys under the new CA it names, signed by that
    CA and by the recovery key in force."""
    number = message.key_number
    agency = previous.agency_id
    if recovery_key is None:
        raise KeySequenceError(
            f"{agency!r}: key statement {number} replaces the CA, but the sequence pins no "
            "recovery key",
            reason=UNAUTHORIZED,
            key_number=number,
        )
    try:
        new_ca = x509.load_der_x509_certificate(bytes(message.ca_certificate))
    except ValueError as e:
        raise KeySequenceError(
            f"{agency!r}: key statement {number}'s new CA is not a DER X.509 certificate",
            reason=INVALID,
            key_number=number,
        ) from e
    try:
        verify_recovery_signature(envelope, recovery_key)
    except ExchangeError as e:
        raise KeySequenceError(
            f"{agency!r}: key statement {number} replaces the CA but is not signed by the "
            f"recovery key pinned ({recovery_key.fingerprint}): {e.message}",
            reason=UNAUTHORIZED,
            key_number=number,
        ) from e
    keys = _verify_statement(envelope, new_ca, now=now)
    if keys.created_at < previous.created_at:
        raise KeySequenceError(
            f"{agency!r}: key statement {number} is dated before statement {previous.key_number}",
            reason=ROLLBACK,
            key_number=number,
        )
    _require_ca_signature(keys, new_ca)
    return keys


def _created_at(by_number: Mapping[int, Envelope], number: int) -> datetime:
    return _parse(by_number[number]).created_at.ToDatetime(tzinfo=UTC)


def _verify_statement(envelope: Envelope, ca: x509.Certificate, *, now: datetime) -> AgencyKeys:
    try:
        return AgencyKeys.verify(envelope, ca, now=now)
    except ExchangeError as e:
        number = _parse(envelope).key_number
        raise KeySequenceError(
            f"key statement {number} does not verify: {e.message}",
            reason=INVALID,
            key_number=number,
        ) from e


def _require_ca_signature(keys: AgencyKeys, ca: x509.Certificate) -> None:
    try:
        verify_ca_signature(keys.envelope, ca)
    except ExchangeError as e:
        raise KeySequenceError(
            f"{keys.agency_id!r}: key statement {keys.key_number} is not signed by the agency's "
            f"CA: {e.message}",
            reason=UNAUTHORIZED,
            key_number=keys.key_number,
        ) from e

