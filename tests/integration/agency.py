"""A test-side agency speaking raw gRPC over real mTLS, with the core's sealing functions.

The client library is tested on its own; these tests drive the hub directly so that they can
build exactly the malformed, forged or tampered requests an attacker would send.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import grpc

from exchange.config.profile import ProfileData, load_profile
from exchange.crypto.keys import EncryptionKey, VerifyKey
from exchange.statements.agency_keys import AgencyKeys
from exchange.statements.codec import envelope_from_proto
from exchange.statements.sealing import PlainItem, SealedAlert, open_version, seal_alert
from exchange.v1 import (
    alerts_pb2,
    alerts_pb2_grpc,
    directory_pb2,
    directory_pb2_grpc,
    payloads_pb2,
    release_pb2_grpc,
    statements_pb2,
)

Policy = statements_pb2.ReleasePolicy


def channel_for(port: int, *, key: bytes | None, cert: bytes | None, root: bytes) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=root, private_key=key, certificate_chain=cert
    )
    return grpc.secure_channel(f"127.0.0.1:{port}", credentials)


class TestAgency:
    """One agency's view of the exchange in a test."""

    __test__ = False  # not a test class

    def __init__(self, exchange_dir: Path, agency_id: str, port: int) -> None:
        self.agency_id = agency_id
        self.profile: ProfileData = load_profile(exchange_dir / "agencies" / agency_id)
        self.channel = channel_for(
            port,
            key=self.profile.tls_key_pem,
            cert=self.profile.tls_certificate_pem,
            root=self.profile.hub_ca_certificate_pem,
        )
        self.alerts = alerts_pb2_grpc.AlertServiceStub(self.channel)
        self.directory = directory_pb2_grpc.DirectoryServiceStub(self.channel)
        self.release = release_pb2_grpc.ReleaseServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def partner_keys(self) -> dict[str, AgencyKeys]:
        """Every agency's keys, verified against the CA certificates in this agency's profile."""
        now = datetime.now(UTC)
        verified = {}
        response = self.directory.ListAgencies(directory_pb2.ListAgenciesRequest(), timeout=10)
        for record in response.agencies:
            ca = self.profile.partner_cas[record.agency_id]
            verified[record.agency_id] = AgencyKeys.verify(
                envelope_from_proto(record.keys[-1]), ca, now=now
            )
        return verified

    def seal(
        self,
        items: Sequence[PlainItem],
        *,
        alert_id: str | None = None,
        version: int = 1,
        previous_manifest_hash: bytes = b"",
        created_at: datetime | None = None,
    ) -> SealedAlert:
        keys = self.partner_keys()
        recipients: dict[str, EncryptionKey] = {a: k.encryption_key for a, k in keys.items()}
        return seal_alert(
            originator=self.agency_id,
            alert_id=alert_id or str(uuid.uuid4()),
            version=version,
            items=items,
            signing_key=self.profile.signing_key,
            own_key=self.profile.encryption_key.public_key,
            recipient_keys=recipients,
            created_at=created_at or datetime.now(UTC),
            previous_manifest_hash=previous_manifest_hash,
        )

    def open(self, alert_id: str, originator: str, *, now: datetime | None = None):  # type: ignore[no-untyped-def]
        view = self.alerts.GetAlert(alerts_pb2.GetAlertRequest(alert_id=alert_id), timeout=10)
        originator_keys = self.partner_keys()[originator]
        return open_version(
            view,
            recipient=self.agency_id,
            decryption_key=self.profile.encryption_key,
            originator_keys={originator_keys.verify_key.key_id: originator_keys.verify_key},
            now=now or datetime.now(UTC),
        )


def note_item(item_id: str, text: str, audience: Sequence[str], **policy: object) -> PlainItem:
    """A note item released at once to ``audience`` unless ``policy`` says otherwise."""
    return PlainItem(
        item_id=item_id,
        policy=Policy(
            audience=list(audience),
            release=policy.get("release", Policy.IMMEDIATE),  # type: ignore[arg-type]
            tlp=Policy.TLP_AMBER,
        ),
        payload=payloads_pb2.ItemPayload(note=payloads_pb2.Note(text=text, language="en")),
    )


def verify_key_map(key: VerifyKey) -> dict[str, VerifyKey]:
    return {key.key_id: key}
