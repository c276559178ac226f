"""The registry of agencies the hub knows: CA certificates and verified key statements."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import Connection, insert, select, update

from exchange.audit import leaves
from exchange.crypto.dsse import Envelope
from exchange.errors import ConflictError, NotFoundError, NotPermittedError
from exchange.statements import key_sequence
from exchange.statements.agency_keys import AgencyKeys, parse_unverified
from exchange.statements.codec import encode, envelope_from_proto, envelope_to_proto
from exchange.statements.key_compromise import compromises_of
from exchange.store.log import append_entry
from exchange.store.schema import agencies, agency_keys
from exchange.v1 import statements_pb2


@dataclass(frozen=True)
class AgencyRow:
    """One registered agency, as the hub holds it."""

    agency_id: str
    ca_certificate_der: bytes
    revoked_at: datetime | None
    keys: tuple[bytes, ...]  # serialized Envelope protos, ascending key number

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


def register_agency(
    connection: Connection,
    *,
    ca_certificate: x509.Certificate,
    keys: AgencyKeys,
    now: datetime,
) -> bool:
    """Add an agency, or add a newer key statement to a known one; returns whether anything changed.

    Re-importing the same material is a no-op; a different CA for a known agency id is refused.
    """
    ca_der = ca_certificate.public_bytes(Encoding.DER)
    agency_id = keys.agency_id
    existing = connection.execute(
        select(agencies.c.ca_certificate).where(agencies.c.agency_id == agency_id)
    ).scalar_one_or_none()
    changed = False
    if existing is None:
        connection.execute(
            insert(agencies).values(agency_id=agency_id, ca_certificate=ca_der, added_at=now)
        )
        changed = True
    elif bytes(existing) != ca_der:
        if _replaced_by_recovery(connection, keys):
            return False  # the bundle on disk predates a recovery statement the log holds
        raise ConflictError(
            f"agency {agency_id!r} is registered with another CA certificate; "
            "a CA change needs the agency revoked and re-added under a new id"
        )
    known = connection.execute(
        select(agency_keys.c.envelope).where(
            agency_keys.c.agency_id == agency_id, agency_keys.c.key_number == keys.key_number
        )
    ).scalar_one_or_none()
    envelope_bytes = encode(envelope_to_proto(keys.envelope))
    if known is None:
        connection.execute(
            insert(agency_keys).values(
                agency_id=agency_id,
                key_number=keys.key_number,
                envelope=envelope_bytes,
                signing_key_id=keys.verify_key.key_id,
                encryption_key_id=keys.encryption_key.key_id,
                signing_public_key=keys.verify_key.raw,
                encryption_public_key=keys.encryption_key.raw,
                added_at=now,
            )
        )
        changed = True
    elif bytes(known) != envelope_bytes:
        raise ConflictError(
            f"agency {agency_id!r} already has a different key statement number {keys.key_number}"
        )
    return changed


def _replaced_by_recovery(connection: Connection, keys: AgencyKeys) -> bool:
    """Whether ``keys`` is already stored and a later stored statement replaced the CA."""
    stored = connection.execute(
        select(agency_keys.c.key_number, agency_keys.c.envelope).where(
            agency_keys.c.agency_id == keys.agency_id
        )
    ).all()
    by_number = {int(row.key_number): bytes(row.envelope) for row in stored}
    if by_number.get(keys.key_number) != encode(envelope_to_proto(keys.envelope)):
        return False
    return any(
        parse_unverified(envelope_of(raw)).ca_certificate
        for number, raw in by_number.items()
        if number > keys.key_number
    )


@dataclass(frozen=True)
class PublishedKeys:
    """The outcome of :func:`publish_keys`."""

    keys: AgencyKeys
    log_index: int | None
    """The statement's log entry; ``None`` for a retry of a statement already published."""


def publish_keys(
    connection: Connection, envelope: Envelope, *, caller: str, now: datetime
) -> PublishedKeys:
    """Add the next ``AgencyKeys`` statement of ``caller`` (a key rotation) as a log entry.

    The statement must follow the agency's latest one by the rules of
    :mod:`exchange.statements.key_sequence` (next number, chained to the latest, signed by the
    agency's CA, by the signing key it replaces and by its own), checked against the CA
    registered for the agency. The same statement again is a no-op; another statement under a
    number already taken is refused (:class:`ConflictError`, ``KEY_SEQUENCE_FORK``), so the hub
    never holds two statements with one number.
    """
    message = parse_unverified(envelope)
    if message.agency_id != caller:
        raise NotPermittedError(
            f"{caller!r} cannot publish key statements of {message.agency_id!r}",
            reason="NOT_OWN_KEYS",
        )
    row = next((r for r in list_agencies(connection) if r.agency_id == caller), None)
    if row is None or not row.keys:
        raise NotFoundError(f"agency {caller!r} has no key statement to follow")
    if row.revoked:
        raise NotPermittedError(f"agency {caller!r} is revoked", reason="AGENCY_REVOKED")
    ca = x509.load_der_x509_certificate(row.ca_certificate_der)
    served = [envelope_of(raw) for raw in row.keys]
    latest_number = parse_unverified(served[-1]).key_number
    if message.key_number <= latest_number:
        for known in served:
            if parse_unverified(known).key_number == message.key_number:
                if known.payload == envelope.payload:
                    return PublishedKeys(keys=AgencyKeys.verify(known, ca, now=now), log_index=None)
                raise ConflictError(
                    f"{caller!r} already has key statement {message.key_number}: publish "
                    f"statement {latest_number + 1}, replacing {latest_number}",
                    reason=key_sequence.FORK,
                )
    # The statement replaced is checked at its own date: a rotation is how an agency renews
    # certificates that expired, so their expiry must not block it. The new one is checked now.
    latest_date = parse_unverified(served[-1]).created_at.ToDatetime(tzinfo=UTC)
    sequence = key_sequence.replay(served, ca, now=latest_date)
    keys = key_sequence.verify_next(sequence, envelope, now=now)
    body = encode(envelope_to_proto(envelope))
    log_index = append_entry(
        connection,
        entry_type=leaves.AGENCY_KEYS,
        body=body,
        references=[caller, str(keys.key_number)],
        entitled=[r.agency_id for r in list_agencies(connection)],
        now=now,
    )
    connection.execute(
        insert(agency_keys).values(
            agency_id=caller,
            key_number=keys.key_number,
            envelope=body,
            signing_key_id=keys.verify_key.key_id,
            encryption_key_id=keys.encryption_key.key_id,
            signing_public_key=keys.verify_key.raw,
            encryption_public_key=keys.encryption_key.raw,
            added_at=now,
        )
    )
    new_ca = keys.new_ca_certificate
    if new_ca is not None:
        # A recovery statement: from now on the agency's certificates (TLS included) are checked
        # against the CA it names, which the recovery key pinned by statement 1 vouched for.
        connection.execute(
            update(agencies)
            .where(agencies.c.agency_id == caller)
            .values(ca_certificate=new_ca.public_bytes(Encoding.DER))
        )
    return PublishedKeys(keys=keys, log_index=log_index)


def compromised_encryption_keys(connection: Connection) -> dict[str, dict[str, datetime]]:
    """By agency, each encryption key its statements mark compromised, with the time from which
    no grant may be made to it."""
    found: dict[str, dict[str, datetime]] = {}
    for row in list_agencies(connection):
        for raw in row.keys:
            message = parse_unverified(envelope_of(raw))
            for compromise in compromises_of(message):
                if compromise.key_type != "encryption":
                    continue
                keys = found.setdefault(row.agency_id, {})
                known = keys.get(compromise.key_id)
                if known is None or compromise.since < known:
                    keys[compromise.key_id] = compromise.since
    return found


def revoke_agency(connection: Connection, agency_id: str, *, now: datetime) -> None:
    """Mark an agency revoked: from now on its calls are refused and no grant is made for it."""
    result = connection.execute(
        update(agencies)
        .where(agencies.c.agency_id == agency_id, agencies.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    if result.rowcount == 0:
        exists = connection.execute(
            select(agencies.c.agency_id).where(agencies.c.agency_id == agency_id)
        ).first()
        if exists is None:
            raise NotFoundError(f"no agency {agency_id!r}")


def list_agencies(connection: Connection) -> list[AgencyRow]:
    """Every registered agency with its key statements."""
    keys: dict[str, list[bytes]] = {}
    for row in connection.execute(
        select(agency_keys.c.agency_id, agency_keys.c.envelope).order_by(
            agency_keys.c.agency_id, agency_keys.c.key_number
        )
    ):
        keys.setdefault(row.agency_id, []).append(bytes(row.envelope))
    return [
        AgencyRow(
            agency_id=row.agency_id,
            ca_certificate_der=bytes(row.ca_certificate),
            revoked_at=row.revoked_at,
            keys=tuple(keys.get(row.agency_id, ())),
        )
        for row in connection.execute(select(agencies).order_by(agencies.c.agency_id))
    ]


@dataclass(frozen=True)
class CurrentKeys:
    """An agency's current (highest-numbered) keys, as raw public keys and ids."""

    agency_id: str
    key_number: int
    signing_key_id: str
    signing_public_key: bytes
    encryption_key_id: str


def current_keys(connection: Connection) -> dict[str, CurrentKeys]:
    """The latest key statement of every unrevoked agency."""
    rows = connection.execute(
        select(agency_keys)
        .join(agencies, agencies.c.agency_id == agency_keys.c.agency_id)
        .where(agencies.c.revoked_at.is_(None))
        .order_by(agency_keys.c.agency_id, agency_keys.c.key_number)
    )
    latest: dict[str, CurrentKeys] = {}
    for row in rows:
        latest[row.agency_id] = CurrentKeys(
            agency_id=row.agency_id,
            key_number=int(row.key_number),
            signing_key_id=row.signing_key_id,
            signing_public_key=bytes(row.signing_public_key),
            encryption_key_id=row.encryption_key_id,
        )
    return latest


def envelope_of(row_envelope: bytes) -> Envelope:
    """A stored key envelope back as a DSSE envelope."""
    message = statements_pb2.Envelope()
    message.ParseFromString(row_envelope)
    return envelope_from_proto(message)


def verified_agency_keys(connection: Connection, agency_id: str, *, now: datetime) -> AgencyKeys:
    """The agency's latest key statement, verified again against its registered CA."""
    for row in list_agencies(connection):
        if row.agency_id == agency_id and row.keys:
            ca = x509.load_der_x509_certificate(row.ca_certificate_der)
            return AgencyKeys.verify(envelope_of(row.keys[-1]), ca, now=now)
    raise NotFoundError(f"agency {agency_id!r} has no key statement", reason="NO_WITNESS_KEY")
