"""The hub's cached view of the registry: who may call, with which CA, and their current keys.

Revocation is checked on every call, against a copy at most ``ttl`` seconds old, so a revoked
agency is refused within that time on every replica without a database read per call.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from cryptography import x509

from exchange import pki
from exchange.crypto.keys import VerifyKey
from exchange.errors import CertificateError, NotAuthenticatedError, NotPermittedError
from exchange.store import registry
from exchange.store.db import Database
from exchange.v1 import statements_pb2

_NO_KEYS: Mapping[str, VerifyKey] = MappingProxyType({})


@dataclass(frozen=True)
class _Snapshot:
    cas: dict[str, x509.Certificate]
    revoked: frozenset[str]
    keys: dict[str, registry.CurrentKeys]
    ca_bundle_pem: bytes
    loaded_at: float
    compromised: dict[str, dict[str, datetime]] = field(default_factory=dict)
    """By agency, encryption key id to the time from which no grant may be made to it."""
    signing: Mapping[str, Mapping[str, VerifyKey]] = field(default_factory=dict)
    """By agency, its current signing key by key id, loaded once per snapshot."""
    encryption_key_ids: Mapping[str, str] = field(default_factory=dict)
    """Current encryption key id of every registered, unrevoked agency."""


class AgencyDirectory:
    """Registry lookups for the hub's interceptor and servicers."""

    def __init__(self, db: Database, *, clock: Callable[[], datetime], ttl: float = 1.0) -> None:
        self._db = db
        self._clock = clock
        self._ttl = ttl
        self._lock = threading.Lock()
        self._snapshot: _Snapshot | None = None
        self._verified: dict[bytes, tuple[str, datetime]] = {}

    def refresh(self) -> _Snapshot:
        """Reload from the database now."""
        with self._db.read() as connection:
            rows = registry.list_agencies(connection)
            keys = registry.current_keys(connection)
            compromised = registry.compromised_encryption_keys(connection)
        cas = {row.agency_id: pki.load_certificate_der(row.ca_certificate_der) for row in rows}
        snapshot = _Snapshot(
            cas=cas,
            revoked=frozenset(row.agency_id for row in rows if row.revoked),
            keys=keys,
            ca_bundle_pem=b"".join(pki.certificate_to_pem(cas[a]) for a in sorted(cas)),
            loaded_at=time.monotonic(),
            compromised=compromised,
            signing={
                a: MappingProxyType({k.signing_key_id: VerifyKey.from_bytes(k.signing_public_key)})
                for a, k in keys.items()
            },
            encryption_key_ids=MappingProxyType(
                {a: k.encryption_key_id for a, k in keys.items()}
            ),
        )
        with self._lock:
            self._snapshot = snapshot
            self._verified.clear()
        return snapshot

    def snapshot(self) -> _Snapshot:
        current = self._snapshot
        if current is None or time.monotonic() - current.loaded_at > self._ttl:
            return self.refresh()
        return current

    @property
    def fresh(self) -> bool:
        """Whether :meth:`snapshot` answers without reading the database."""
        current = self._snapshot
        return current is not None and time.monotonic() - current.loaded_at <= self._ttl

    def ca_bundle_pem(self) -> bytes:
        """Every registered CA, for the TLS handshake; identity is then checked per agency."""
        return self.snapshot().ca_bundle_pem

    def authenticate(self, pem_certificate: bytes | None) -> str:
        """The agency id of a TLS client certificate, checked against that agency's own CA."""
        if not pem_certificate:
            raise NotAuthenticatedError("no client certificate")
        snapshot = self.snapshot()
        digest = hashlib.sha256(pem_certificate).digest()
        now = self._clock()
        cached = self._verified.get(digest)
        if cached is not None and cached[1] > now:
            agency_id = cached[0]
        else:
            try:
                cert = pki.load_certificate_pem(pem_certificate)
                agency_id = pki.agency_id_from_certificate(cert)
                ca = snapshot.cas.get(agency_id)
                if ca is None:
                    raise NotAuthenticatedError(f"agency {agency_id!r} is not registered")
                if now > cert.not_valid_after_utc:
                    raise NotAuthenticatedError(
                        f"the TLS client certificate of {agency_id!r} expired at "
                        f"{cert.not_valid_after_utc.isoformat()}: renew it with "
                        "`exchange keys rotate --tls`",
                        reason="CERTIFICATE_EXPIRED",
                    )
                pki.verify_issued_by(cert, ca, purpose="tls-client", now=now)
            except CertificateError as e:
                raise NotAuthenticatedError(
                    f"client certificate refused: {e.message}", reason="CERTIFICATE_INVALID"
                ) from e
            expires = cert.not_valid_after_utc
            with self._lock:
                self._verified[digest] = (agency_id, expires)
        if agency_id in snapshot.revoked:
            raise NotAuthenticatedError(f"agency {agency_id!r} is revoked", reason="AGENCY_REVOKED")
        return agency_id

    def signing_keys(self, agency_id: str) -> Mapping[str, VerifyKey]:
        """The agency's current signing key by key id (empty if unknown or revoked)."""
        return self.snapshot().signing.get(agency_id, _NO_KEYS)

    def refuse_compromised_grants(
        self, grants: Iterable[statements_pb2.Grant], *, now: datetime
    ) -> None:
        """Raise :class:`NotPermittedError` (``RECIPIENT_KEY_COMPROMISED``) for the first grant
        wrapped to an encryption key its agency has marked compromised by ``now``."""
        compromised = self.snapshot().compromised
        for grant in grants:
            since = compromised.get(grant.recipient, {}).get(grant.recipient_key_id)
            if since is not None and since <= now:
                raise NotPermittedError(
                    f"the grant of item {grant.item_id!r} is wrapped to {grant.recipient}'s "
                    f"encryption key {grant.recipient_key_id}, which {grant.recipient} marked "
                    f"compromised since {since.isoformat()}: fetch its current keys "
                    "(`exchange agencies`) and wrap to the key it now publishes",
                    reason="RECIPIENT_KEY_COMPROMISED",
                )

    def encryption_key_ids(self) -> Mapping[str, str]:
        """Current encryption key id of every registered, unrevoked agency (read only)."""
        return self.snapshot().encryption_key_ids
