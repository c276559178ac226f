"""An agency's numbered key statements as people read them (``exchange keys show``).

The rules live in :mod:`exchange.statements.key_sequence`; this module only describes a sequence
already verified: each statement's number, date, key fingerprints, certificate expiry and who
signed it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

from exchange.statements.agency_keys import AgencyKeys, ca_key_id
from exchange.statements.key_compromise import RECOVERY_KEY_ID_PREFIX
from exchange_client._internal.models import JsonObject, rfc3339


@dataclass(frozen=True)
class KeyStatementInfo:
    """One ``AgencyKeys`` statement of a verified sequence."""

    agency_id: str
    key_number: int
    created_at: datetime
    signing_key_fingerprint: str
    encryption_key_fingerprint: str
    witness_key_fingerprint: str
    expires_at: datetime
    """The earliest end of validity among the statement's key certificates."""
    signed_by: tuple[str, ...]
    """``CA``, ``new CA`` and ``recovery key`` (a recovery statement), ``own signing key``,
    ``signing key of statement n-1``, or a key id not known."""
    current: bool

    def to_json(self) -> JsonObject:
        """The statement for scripts (``keys show --json`` prints a list of these)."""
        return {
            "agency_id": self.agency_id,
            "key_number": self.key_number,
            "created_at": rfc3339(self.created_at),
            "signing_key_fingerprint": self.signing_key_fingerprint,
            "encryption_key_fingerprint": self.encryption_key_fingerprint,
            "witness_key_fingerprint": self.witness_key_fingerprint,
            "expires_at": rfc3339(self.expires_at),
            "signed_by": list(self.signed_by),
            "current": self.current,
        }


def describe_sequence(
    statements: Sequence[AgencyKeys], ca: x509.Certificate
) -> list[KeyStatementInfo]:
    """Each statement of ``statements`` (verified, ascending) with its signers named."""
    described: list[KeyStatementInfo] = []
    ca_id = ca_key_id(ca)
    for index, statement in enumerate(statements):
        previous = statements[index - 1] if index else None
        new_ca = statement.new_ca_certificate
        names = []
        for key_id in statement.signer_key_ids:
            if new_ca is not None and key_id == ca_key_id(new_ca):
                names.append("new CA")
            elif key_id.startswith(RECOVERY_KEY_ID_PREFIX):
                names.append("recovery key")
            elif key_id == ca_id:
                names.append("CA")
            elif key_id == statement.verify_key.key_id:
                names.append("own signing key")
            elif previous is not None and key_id == previous.verify_key.key_id:
                names.append(f"signing key of statement {previous.key_number}")
            else:
                names.append(f"key {key_id}")
        certificates = [statement.signing_certificate, statement.encryption_certificate]
        witness = statement.witness_certificate
        if witness is not None:
            certificates.append(witness)
        described.append(
            KeyStatementInfo(
                agency_id=statement.agency_id,
                key_number=statement.key_number,
                created_at=statement.created_at,
                signing_key_fingerprint=statement.verify_key.fingerprint,
                encryption_key_fingerprint=statement.encryption_key.fingerprint,
                witness_key_fingerprint=(
                    statement.witness_key.fingerprint if statement.witness_key else ""
                ),
                expires_at=min(c.not_valid_after_utc for c in certificates),
                signed_by=tuple(names),
                current=index == len(statements) - 1,
            )
        )
        if new_ca is not None:
            ca_id = ca_key_id(new_ca)  # the CA in force from this statement on
    return described


DEFAULT_WARNING_DAYS = 30
"""``exchange keys status`` warns of certificates that expire within this many days."""


@dataclass(frozen=True)
class CertificateExpiry:
    """When one of the profile's certificates stops being valid, and what to do about it."""

    kind: str
    """``ca``, ``tls``, ``signing``, ``encryption`` or ``witness``."""
    path: str
    not_after: datetime
    days_left: int
    state: str
    """``ok``, ``expiring`` (within the warning period) or ``expired``."""

    @property
    def needs_action(self) -> bool:
        return self.state != "ok"

    def to_json(self) -> JsonObject:
        """The certificate for scripts (``keys status --json`` prints a list of these)."""
        return {
            "kind": self.kind,
            "path": self.path,
            "not_after": rfc3339(self.not_after),
            "days_left": self.days_left,
            "state": self.state,
        }


def expiry_report(
    certificates: Sequence[tuple[str, str, x509.Certificate]],
    *,
    now: datetime,
    warning_days: int = DEFAULT_WARNING_DAYS,
) -> list[CertificateExpiry]:
    """Each ``(kind, path, certificate)`` with its end of validity measured against ``now``."""
    report = []
    for kind, path, certificate in certificates:
        not_after = certificate.not_valid_after_utc
        left = not_after - now
        if left.total_seconds() <= 0:
            state = "expired"
        elif left.total_seconds() <= warning_days * 86_400:
            state = "expiring"
        else:
            state = "ok"
        report.append(
            CertificateExpiry(
                kind=kind, path=path, not_after=not_after, days_left=left.days, state=state
            )
        )
    return report
