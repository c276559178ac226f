"""Release-control steps as a test agency takes them over raw gRPC: sign a statement, send it.

Each step builds exactly what a well-behaved client would; tests spoil the pieces to play an
attacker.
"""

from __future__ import annotations

from datetime import UTC, datetime

from exchange.statements.alert import AlertManifest, ItemHeader, KeyGrant
from exchange.statements.codec import envelope_to_proto
from exchange.statements.release import (
    ReleaseDecision,
    ReleaseRequest,
    Revocation,
)
from exchange.v1 import alerts_pb2, release_pb2
from tests.integration.agency import TestAgency
from tests.integration.test_exchange import row_counts


def settled_row_counts(hub: object) -> dict[str, int]:
    """Row counts once the log's tree and checkpoint have caught up with every committed leaf.

    The checkpointer hashes and signs in the background; settling it first means a difference
    between two counts can only come from the call made between them.
    """
    hub.checkpoint_now()  # type: ignore[attr-defined]
    return row_counts(hub)


def now() -> datetime:
    return datetime.now(UTC)


def view_of(agency: TestAgency, alert_id: str, version: int = 0) -> alerts_pb2.AlertView:
    return agency.alerts.GetAlert(
        alerts_pb2.GetAlertRequest(alert_id=alert_id, version=version), timeout=10
    )


def signed_request(
    requester: TestAgency,
    manifest: AlertManifest,
    item_id: str,
    *,
    release_to: str = "",
    reason: str = "seizure planned",
    created_at: datetime | None = None,
) -> ReleaseRequest:
    return ReleaseRequest.build(
        requester=requester.agency_id,
        manifest=manifest,
        item_id=item_id,
        reason=reason,
        release_to=release_to,
        created_at=created_at or now(),
        key=requester.profile.signing_key,
    )


def send_request(agency: TestAgency, request: ReleaseRequest) -> release_pb2.RequestReleaseResponse:
    return agency.release.RequestRelease(
        release_pb2.RequestReleaseRequest(request=envelope_to_proto(request.envelope)), timeout=10
    )


def own_item_key(originator: TestAgency, manifest: AlertManifest, item_id: str) -> bytes:
    """The originator recovers an item key from its own grant, as its client does to approve."""
    view = view_of(originator, manifest.alert_id, manifest.version)
    for item in view.items:
        header = ItemHeader.parse(bytes(item.header))
        if header.item_id == item_id:
            return KeyGrant(item.grant).open(
                manifest, header, recipient=originator.agency_id, key=originator.profile.encryption_key
            )
    raise KeyError(item_id)


def grant_for(
    originator: TestAgency, manifest: AlertManifest, item_id: str, recipient: str, item_key: bytes
) -> KeyGrant:
    keys = originator.partner_keys()
    return KeyGrant.make(
        manifest,
        item_id=item_id,
        item_key=item_key,
        recipient=recipient,
        recipient_key=keys[recipient].encryption_key,
    )


def approve(
    originator: TestAgency,
    manifest: AlertManifest,
    request: ReleaseRequest,
    *,
    signer: TestAgency | None = None,
) -> release_pb2.DecideReleaseResponse:
    """``signer`` (default: the originator) approves with a grant wrapped from the real item key.

    Another signer's decision names the originator, as a forger's would, but is signed with the
    signer's own key.
    """
    acting = signer or originator
    key = own_item_key(originator, manifest, request.message.item_id)
    grant = grant_for(originator, manifest, request.message.item_id, request.target, key)
    decision = ReleaseDecision.approve(request, grant, created_at=now(), key=acting.profile.signing_key)
    return acting.release.DecideRelease(
        release_pb2.DecideReleaseRequest(
            decision=envelope_to_proto(decision.envelope), grant=grant.message
        ),
        timeout=10,
    )


def deny(
    agency: TestAgency, request: ReleaseRequest, reason: str = "ongoing operation"
) -> release_pb2.DecideReleaseResponse:
    decision = ReleaseDecision.deny(
        request, reason=reason, created_at=now(), key=agency.profile.signing_key
    )
    return agency.release.DecideRelease(
        release_pb2.DecideReleaseRequest(decision=envelope_to_proto(decision.envelope)), timeout=10
    )


def revoke(
    agency: TestAgency, manifest: AlertManifest, item_id: str, agency_id: str = ""
) -> release_pb2.RevokeResponse:
    """``agency`` signs a revocation of ``manifest``'s item (naming its originator) and sends it."""
    revocation = Revocation.build(
        manifest, item_id=item_id, agency=agency_id, created_at=now(), key=agency.profile.signing_key
    )
    return agency.release.Revoke(
        release_pb2.RevokeRequest(revocation=envelope_to_proto(revocation.envelope)), timeout=10
    )
