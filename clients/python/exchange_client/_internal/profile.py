"""``Profile``: who this client acts as, and what it trusts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import MappingProxyType

from cryptography import x509

from exchange.config.profile import DEFAULT_MAX_COSIGNATURE_AGE_SECONDS, ProfileData, load_profile
from exchange.crypto.dsse import Envelope
from exchange.crypto.keys import DecryptionKey, SigningKey


@dataclass(frozen=True)
class Profile:
    """An agency's identity, keys and trust anchors, as the client needs them.

    Load one from the directory ``exchange-hub init`` wrote with :meth:`load`.  ``partner_cas``
    maps every agency id this agency trusts (its own included) to that agency's CA certificate,
    exchanged out of band: partners' keys are checked against these, never against the copies the
    hub serves.  ``state_dir`` holds what the client keeps between runs (feed cursor, outbox,
    published manifest hashes, the last verified checkpoint).  ``require_cosigners`` names
    the agencies whose cosignature, at most ``max_cosignature_age_seconds`` old, a checkpoint
    must carry before the client acts on a statement it proves (``[audit]`` in profile.toml).
    """

    agency_id: str
    hub_address: str
    hub_ca_certificate_pem: bytes = field(repr=False)
    tls_certificate_pem: bytes = field(repr=False)
    tls_key_pem: bytes = field(repr=False)
    signing_key: SigningKey
    decryption_key: DecryptionKey
    partner_cas: Mapping[str, x509.Certificate] = field(repr=False)
    state_dir: Path
    witness_key: SigningKey | None = None
    checkpoint_verifier_key: str = ""
    directory: Path | None = None
    require_cosigners: tuple[str, ...] = ()
    max_cosignature_age_seconds: int = DEFAULT_MAX_COSIGNATURE_AGE_SECONDS
    keys_envelope: Envelope | None = field(default=None, repr=False)
    """This agency's own ``AgencyKeys`` statement (``keys.dsse``): it travels with what the
    agency signs for partners to check offline (a signed cooperation summary)."""
    retired_decryption_keys: Mapping[str, DecryptionKey] = field(
        default_factory=lambda: MappingProxyType({}), repr=False
    )
    """Encryption keys ``exchange keys rotate`` replaced, by key id (``retired-keys/``): items
    wrapped to them before the rotation stay readable."""

    def decryption_key_for(self, *key_ids: str) -> DecryptionKey:
        """The key that opens what was wrapped to the first of ``key_ids`` this agency holds:
        the current encryption key or a retired one (else the current, which then fails)."""
        for key_id in key_ids:
            if key_id == self.decryption_key.public_key.key_id:
                return self.decryption_key
            retired = self.retired_decryption_keys.get(key_id)
            if retired is not None:
                return retired
        return self.decryption_key

    @classmethod
    def load(cls, directory: str | Path, *, now: datetime | None = None) -> Profile:
        """Read and check the profile in ``directory`` (or its ``profile.toml``).

        Raises :class:`ConfigurationError` naming the file and what to do when anything is
        missing, unreadable, badly protected or not issued by the agency's own CA.
        """
        return cls.from_data(load_profile(Path(directory), now=now))

    @classmethod
    def from_data(cls, data: ProfileData) -> Profile:
        """Wrap a profile already read by :func:`exchange.config.profile.load_profile`."""
        return cls(
            agency_id=data.agency_id,
            hub_address=data.hub_address,
            hub_ca_certificate_pem=data.hub_ca_certificate_pem,
            tls_certificate_pem=data.tls_certificate_pem,
            tls_key_pem=data.tls_key_pem,
            signing_key=data.signing_key,
            decryption_key=data.encryption_key,
            partner_cas=MappingProxyType(dict(data.partner_cas)),
            state_dir=data.state_dir,
            witness_key=data.witness_key,
            checkpoint_verifier_key=data.checkpoint_verifier_key,
            directory=data.config.directory,
            require_cosigners=data.config.require_cosigners,
            max_cosignature_age_seconds=data.config.max_cosignature_age_seconds,
            keys_envelope=data.keys_envelope,
            retired_decryption_keys=data.retired_encryption_keys,
        )
