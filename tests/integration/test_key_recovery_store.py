"""The registry after a CA recovery (SQLite and PostgreSQL): the agency moves to the new CA, and
the registry bundle on disk, which still holds the old one, imports at the next start without a
conflict."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from exchange import pki
from exchange.crypto.keys import DecryptionKey, SigningKey
from exchange.hub.app import import_registry
from exchange.hub.init import init_exchange, recovery_key_path
from exchange.statements import key_sequence
from exchange.statements.agency_keys import AgencyKeys, ca_key_id
from exchange.statements.key_compromise import Compromise
from exchange.store import registry
from exchange.store.db import Database


def test_a_recovery_moves_the_registered_ca_and_the_old_bundle_still_imports(
    tmp_path: Path, database_url: str
) -> None:
    made = datetime.now(UTC).replace(microsecond=0)
    result = init_exchange(tmp_path / "exchange", ["agency-a"], listen="127.0.0.1:7443", now=made)
    recovery_key = SigningKey.from_pem(recovery_key_path(result.directory, "agency-a").read_bytes())
    db = Database.from_url(database_url)
    db.migrate()
    try:
        now = made + timedelta(seconds=1)
        assert import_registry(db, result.registry_dir, now=now).added == ("agency-a",)
        with db.read() as connection:
            (row,) = registry.list_agencies(connection)
        old_ca = pki.load_certificate_der(row.ca_certificate_der)
        latest = key_sequence.replay(
            [registry.envelope_of(raw) for raw in row.keys], old_ca, now=now
        ).latest
        assert latest.recovery_key == recovery_key.public_key

        new_ca_key, new_ca = pki.make_agency_ca("agency-a", now=made)
        signing_key = SigningKey.generate()

        def certify(key: SigningKey | DecryptionKey, purpose: pki.KeyPurpose) -> object:
            return pki.issue_key_certificate(
                new_ca_key, new_ca, "agency-a", key.public_key.native, purpose, now=made
            )

        envelope = AgencyKeys.create_recovery(
            latest,
            recovery_key=recovery_key,
            signing_key=signing_key,
            new_ca_key=new_ca_key,
            new_ca_certificate=new_ca,
            signing_certificate=certify(signing_key, "signing"),  # type: ignore[arg-type]
            encryption_certificate=certify(DecryptionKey.generate(), "encryption"),  # type: ignore[arg-type]
            witness_certificate=None,
            compromised=[Compromise("agency-a", "ca", ca_key_id(old_ca), now, 2)],
            created_at=now,
        )
        with db.write() as connection:
            published = registry.publish_keys(connection, envelope, caller="agency-a", now=now)
        assert published.keys.key_number == 2 and published.log_index is not None
        with db.read() as connection:
            (row,) = registry.list_agencies(connection)
        assert row.ca_certificate_der == pki.certificate_to_der(new_ca)

        # Later statements follow under the new CA: here one marking the new encryption key
        # compromised, which the hub then refuses grants to.
        recovered = published.keys
        replacement = DecryptionKey.generate()
        later = AgencyKeys.create_rotation(
            recovered,
            previous_signing_key=signing_key,
            signing_key=signing_key,
            ca_key=new_ca_key,
            ca_certificate=new_ca,
            signing_certificate=recovered.signing_certificate,
            encryption_certificate=certify(replacement, "encryption"),  # type: ignore[arg-type]
            witness_certificate=None,
            compromised=[
                Compromise("agency-a", "encryption", recovered.encryption_key.key_id, now, 3)
            ],
            created_at=now,
        )
        with db.write() as connection:
            assert registry.publish_keys(
                connection, later, caller="agency-a", now=now
            ).keys.key_number == 3
            compromised = registry.compromised_encryption_keys(connection)
        assert compromised == {"agency-a": {recovered.encryption_key.key_id: now}}

        # The next start imports DIR/registry/agency-a/ (the old CA) as unchanged.
        assert import_registry(db, result.registry_dir, now=now).unchanged == ("agency-a",)
    finally:
        db.dispose()
