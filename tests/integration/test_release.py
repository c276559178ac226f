"""Release controls over real mTLS gRPC, on SQLite and PostgreSQL: requests and decisions,
onward sharing, embargo, revocation and purge acknowledgements, expiry, retraction, receipts and
feedback."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from sqlalchemy import select

from exchange.statements.alert import AlertManifest
from exchange.statements.codec import envelope_from_proto, envelope_to_proto
from exchange.statements.release import (
    Feedback,
    FeedbackOutcome,
    PurgeAck,
    Receipt,
    ReleaseRequest,
    Retraction,
)
from exchange.statements.sealing import (
    EMBARGOED,
    EXPIRED,
    REVOKED,
    VISIBLE,
    WITHHELD,
    PlainItem,
    summary_item,
)
from exchange.store.schema import grants, items
from exchange.v1 import alerts_pb2, payloads_pb2, release_pb2, statements_pb2
from tests.conftest import FrozenClock
from tests.integration.agency import TestAgency, note_item
from tests.integration.release_steps import (
    approve,
    deny,
    now,
    revoke,
    send_request,
    settled_row_counts,
    signed_request,
    view_of,
)
from tests.integration.test_exchange import row_counts

Policy = statements_pb2.ReleasePolicy
Kind = alerts_pb2.FeedEvent


@pytest.fixture
def agencies(hub: object, exchange_dir: Path) -> Iterator[dict[str, TestAgency]]:
    port = hub.port  # type: ignore[attr-defined]
    parties = {a: TestAgency(exchange_dir, a, port) for a in ("agency-a", "agency-b", "agency-c")}
    yield parties
    for party in parties.values():
        party.close()


def publish(a: TestAgency, plain: list[PlainItem], **kwargs: object) -> AlertManifest:
    summary = payloads_pb2.Summary(kind=payloads_pb2.Summary.SHIPMENT, title="Bank records")
    sealed = a.seal([summary_item(summary, plain), *plain], **kwargs)  # type: ignore[arg-type]
    a.alerts.Publish(sealed.request, timeout=10)
    return sealed.manifest


def held_alert(a: TestAgency) -> AlertManifest:
    return publish(
        a,
        [
            note_item("consignee", "Acme Trading", ["agency-b"]),
            note_item("bank", "IBAN DE89 3704 0044 0532 0130 00", ["agency-b"],
                      release=Policy.ON_REQUEST),
        ],
    )


def statuses(agency: TestAgency, alert_id: str, *, at: object = None) -> dict[str, str]:
    opened = agency.open(alert_id, "agency-a", now=at)  # type: ignore[arg-type]
    return {item.item_id: item.status for item in opened.items}


def kinds(agency: TestAgency, after: int = 0) -> list[str]:
    events = agency.alerts.ListEvents(alerts_pb2.ListEventsRequest(after=after), timeout=10).events
    return [Kind.Kind.Name(e.kind) for e in events]


def code_of(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as refused:
        call()  # type: ignore[operator]
    return refused.value.code()  # type: ignore[no-any-return]


def test_request_approve_then_readable(agencies: dict[str, TestAgency]) -> None:
    a, b = agencies["agency-a"], agencies["agency-b"]
    manifest = held_alert(a)
    assert statuses(b, manifest.alert_id) == {"consignee": VISIBLE, "bank": WITHHELD}

    request = signed_request(b, manifest, "bank", reason="hearing on Monday")
    answer = send_request(b, request)
    assert answer.request_id == request.request_id
    assert send_request(b, request).log_index == answer.log_index  # a retry is the same request

    pending = a.release.ListRequests(release_pb2.ListRequestsRequest(), timeout=10).requests
    assert [p.request_id for p in pending] == [request.request_id]
    listed = ReleaseRequest.verify(
        envelope_from_proto(pending[0].request), {b.profile.signing_key.public_key.key_id:
                                                  b.profile.signing_key.public_key}
    )
    assert listed.message.reason == "hearing on Monday"
    assert kinds(a)[-1] == "RELEASE_REQUESTED"

    approve(a, manifest, request)
    assert statuses(b, manifest.alert_id) == {"consignee": VISIBLE, "bank": VISIBLE}
    assert kinds(b)[-2:] == ["RELEASE_DECIDED", "ITEM_RELEASED"]
    assert list(a.release.ListRequests(release_pb2.ListRequestsRequest(), timeout=10).requests) == []
    mine = b.release.ListRequests(
        release_pb2.ListRequestsRequest(mine=True, include_decided=True), timeout=10
    ).requests
    assert len(mine) == 1 and mine[0].HasField("decision")


def test_a_denied_request_leaves_the_item_withheld_with_the_reason(
    agencies: dict[str, TestAgency],
) -> None:
    a, b = agencies["agency-a"], agencies["agency-b"]
    manifest = held_alert(a)
    request = signed_request(b, manifest, "bank")
    send_request(b, request)
    deny(a, request, "source protection")
    assert statuses(b, manifest.alert_id)["bank"] == WITHHELD
    (mine,) = b.release.ListRequests(
        release_pb2.ListRequestsRequest(mine=True, include_decided=True), timeout=10
    ).requests
    decision = statements_pb2.ReleaseDecision.FromString(mine.decision.payload)
    assert (decision.outcome, decision.reason) == (
        statements_pb2.ReleaseDecision.DENIED, "source protection"
    )
    assert code_of(lambda: approve(a, manifest, request)) == grpc.StatusCode.ALREADY_EXISTS


def test_onward_sharing_reaches_a_third_agency_only_with_the_originators_grant(
    hub: object, agencies: dict[str, TestAgency]
) -> None:
    a, b, c = agencies["agency-a"], agencies["agency-b"], agencies["agency-c"]
    manifest = held_alert(a)
    assert code_of(lambda: view_of(c, manifest.alert_id)) == grpc.StatusCode.NOT_FOUND

    request = signed_request(b, manifest, "consignee", release_to="agency-c")
    send_request(b, request)
    # agency-b holds the key, but the hub takes a grant from the originator alone.
    assert code_of(lambda: approve(a, manifest, request, signer=b)) == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    approve(a, manifest, request)
    opened = c.open(manifest.alert_id, "agency-a")
    assert {i.item_id: i.status for i in opened.items} == {"consignee": VISIBLE}
    assert kinds(c) == ["ITEM_RELEASED"]


def test_items_outside_the_audience_and_missing_items_are_both_not_found(
    hub: object, agencies: dict[str, TestAgency]
) -> None:
    a, b, c = agencies["agency-a"], agencies["agency-b"], agencies["agency-c"]
    manifest = held_alert(a)
    before = settled_row_counts(hub)
    messages = []
    for agency, item_id in ((c, "bank"), (b, "no-such-item"), (c, "no-such-item")):
        with pytest.raises(grpc.RpcError) as refused:
            send_request(agency, signed_request(agency, manifest, item_id))
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND
        messages.append(refused.value.details().replace(item_id, "ITEM"))
    assert len(set(messages)) == 1
    assert settled_row_counts(hub) == before


def test_embargo_is_held_until_its_time_then_released_with_a_feed_event(
    hub: object, clock: FrozenClock, agencies: dict[str, TestAgency]
) -> None:
    a, b = agencies["agency-a"], agencies["agency-b"]
    until = clock.now + timedelta(hours=2)
    embargoed = note_item("raid", "raid at dawn", ["agency-b"], release=Policy.EMBARGO)
    embargoed.policy.embargo_until.FromDatetime(until)
    manifest = publish(a, [embargoed])
    assert statuses(b, manifest.alert_id, at=clock.now) == {"raid": EMBARGOED}
    view = view_of(b, manifest.alert_id)
    assert not view.items[-1].HasField("grant") and not view.items[-1].ciphertext
    assert hub.release_sweeper.sweep_now() == (0, 0)  # type: ignore[attr-defined]

    clock.advance(hours=2)
    # The background thread may sweep first; either way the notice goes out exactly once.
    hub.release_sweeper.sweep_now()  # type: ignore[attr-defined]
    assert hub.release_sweeper.sweep_now() == (0, 0)  # type: ignore[attr-defined]
    assert kinds(b) == ["ALERT_PUBLISHED", "ITEM_RELEASED"]
    assert statuses(b, manifest.alert_id, at=clock.now) == {"raid": VISIBLE}


def test_a_read_after_the_embargo_lapses_releases_and_notifies_without_the_background_sweep(
    hub: object, clock: FrozenClock, agencies: dict[str, TestAgency]
) -> None:
    a, b = agencies["agency-a"], agencies["agency-b"]
    embargoed = note_item("raid", "raid at dawn", ["agency-b"], release=Policy.EMBARGO)
    embargoed.policy.embargo_until.FromDatetime(clock.now + timedelta(minutes=30))
    manifest = publish(a, [embargoed])
    assert kinds(b) == ["ALERT_PUBLISHED"]
    clock.advance(minutes=30)
    assert kinds(b) == ["ALERT_PUBLISHED", "ITEM_RELEASED"]  # the read swept first
    assert statuses(b, manifest.alert_id, at=clock.now) == {"raid": VISIBLE}
    assert hub.release_sweeper.sweep_now() == (0, 0)  # type: ignore[attr-defined]


def test_recipient_client_refuses_an_embargoed_key_early_even_if_delivered(
    clock: FrozenClock, agencies: dict[str, TestAgency]
) -> None:
    a, b = agencies["agency-a"], agencies["agency-b"]
    embargoed = note_item("raid", "raid at dawn", ["agency-b"], release=Policy.EMBARGO)
    embargoed.policy.embargo_until.FromDatetime(clock.now + timedelta(hours=2))
    manifest = publish(a, [embargoed])
    clock.advance(hours=3)  # the hub now serves the grant
    assert statuses(b, manifest.alert_id, at=clock.now - timedelta(hours=2)) == {"raid": EMBARGOED}


def test_revocation_deletes_grants_notifies_and_collects_purge_acknowledgements(
    hub: object, agencies: dict[str, TestAgency]
) -> None:
    a, b = agencies["agency-a"], agencies["agency-b"]
    manifest = held_alert(a)
    answer = revoke(a, manifest, "consignee", "agency-b")
    assert answer.grants_deleted == 1
    assert statuses(b, manifest.alert_id)["consignee"] == REVOKED
    view = view_of(b, manifest.alert_id)
    assert all(not item.ciphertext for item in view.items if item.state == item.REVOKED)
    assert kinds(b)[-1] == "ITEM_REVOKED"

    ack = PurgeAck.build(manifest, recipient="agency-b", item_id="consignee", created_at=now(),
                         key=b.profile.signing_key)
    b.release.AcknowledgePurge(
        release_pb2.AcknowledgePurgeRequest(purge_ack=envelope_to_proto(ack.envelope)), timeout=10
    )
    assert kinds(a)[-1] == "PURGE_ACKNOWLEDGED"
    listed = a.release.ListReceipts(
        release_pb2.ListReceiptsRequest(alert_id=manifest.alert_id), timeout=10
    )
    assert [PurgeAck.peek_signer(envelope_from_proto(e)) for e in listed.purge_acks] == ["agency-b"]
    # Only the originator lists acknowledgements; to anyone else the alert is not theirs.
    assert code_of(
        lambda: b.release.ListReceipts(
            release_pb2.ListReceiptsRequest(alert_id=manifest.alert_id), timeout=10
        )
    ) == grpc.StatusCode.NOT_FOUND
    # An item not revoked cannot be acknowledged as purged.
    unrevoked = PurgeAck.build(manifest, recipient="agency-b", item_id="bank", created_at=now(),
                               key=b.profile.signing_key)
    assert code_of(
        lambda: b.release.AcknowledgePurge(
            release_pb2.AcknowledgePurgeRequest(purge_ack=envelope_to_proto(unrevoked.envelope)),
            timeout=10,
        )
    ) == grpc.StatusCode.FAILED_PRECONDITION


def test_a_new_request_after_revocation_can_be_approved_again(
    agencies: dict[str, TestAgency],
) -> None:
    a, b = agencies["agency-a"], agencies["agency-b"]
    manifest = held_alert(a)
    revoke(a, manifest, "consignee")
    request = signed_request(b, manifest, "consignee")
    send_request(b, request)
    approve(a, manifest, request)
    assert statuses(b, manifest.alert_id)["consignee"] == VISIBLE


def test_expiry_purges_ciphertext_and_grants_but_keeps_headers_and_log(
    hub: object, clock: FrozenClock, agencies: dict[str, TestAgency]
) -> None:
    a, b = agencies["agency-a"], agencies["agency-b"]
    short = note_item("tip", "vessel name", ["agency-b"])
    short.policy.expires_at.FromDatetime(clock.now + timedelta(days=1))
    manifest = publish(a, [short])
    assert statuses(b, manifest.alert_id, at=clock.now) == {"tip": VISIBLE}
    log_before = row_counts(hub)["log_entries"]
    clock.advance(days=1)
    hub.release_sweeper.sweep_now()  # type: ignore[attr-defined]
    assert hub.release_sweeper.sweep_now() == (0, 0)  # type: ignore[attr-defined]
    with hub.db.read() as connection:  # type: ignore[attr-defined]
        (ciphertext,) = connection.execute(
            select(items.c.ciphertext).where(items.c.item_id == "tip")
        ).one()
    assert ciphertext is None
    assert row_counts(hub)["log_entries"] == log_before + 1
    assert statuses(b, manifest.alert_id, at=clock.now) == {"tip": EXPIRED}
    request = signed_request(b, manifest, "tip")
    assert code_of(lambda: send_request(b, request)) == grpc.StatusCode.FAILED_PRECONDITION


def test_a_read_after_expiry_purges_without_the_background_sweep(
    hub: object, clock: FrozenClock, agencies: dict[str, TestAgency]
) -> None:
    a, b = agencies["agency-a"], agencies["agency-b"]
    short = note_item("tip", "vessel name", ["agency-b"])
    short.policy.expires_at.FromDatetime(clock.now + timedelta(hours=1))
    manifest = publish(a, [short])
    clock.advance(hours=1)
    assert statuses(b, manifest.alert_id, at=clock.now) == {"tip": EXPIRED}
    with hub.db.read() as connection:  # type: ignore[attr-defined]
        stored = connection.execute(select(items.c.ciphertext).where(items.c.item_id == "tip"))
        assert stored.scalar_one() is None
        remaining = connection.execute(select(grants.c.id).where(grants.c.item_id == "tip")).all()
    assert remaining == []


def test_retraction_by_the_originator_reaches_every_recipient(
    agencies: dict[str, TestAgency],
) -> None:
    a, b = agencies["agency-a"], agencies["agency-b"]
    manifest = held_alert(a)
    forged = Retraction.build(manifest, reason="false lead", created_at=now(), key=b.profile.signing_key)
    assert code_of(
        lambda: b.release.Retract(
            release_pb2.RetractRequest(retraction=envelope_to_proto(forged.envelope)), timeout=10
        )
    ) == grpc.StatusCode.PERMISSION_DENIED
    retraction = Retraction.build(manifest, reason="false lead", created_at=now(),
                                  key=a.profile.signing_key)
    a.release.Retract(
        release_pb2.RetractRequest(retraction=envelope_to_proto(retraction.envelope)), timeout=10
    )
    assert view_of(b, manifest.alert_id).retracted
    assert kinds(b)[-1] == "ALERT_RETRACTED"


def test_versions_chain_and_only_the_originator_extends_it(
    agencies: dict[str, TestAgency],
) -> None:
    a, b = agencies["agency-a"], agencies["agency-b"]
    first = held_alert(a)
    second = publish(a, [note_item("consignee", "Acme Trading Ltd", ["agency-b"])],
                     alert_id=first.alert_id, version=2, previous_manifest_hash=first.hash)
    view = view_of(b, first.alert_id)
    assert list(view.versions) == [1, 2]
    assert statements_pb2.AlertManifest.FromString(view.manifest.payload).previous_manifest_hash == (
        first.hash
    )
    assert second.version == 2
    # agency-b cannot extend agency-a's chain: its version 2 is its own alert, not agency-a's.
    hijack = b.seal([note_item("x", "y", ["agency-c"])], alert_id=first.alert_id, version=2,
                    previous_manifest_hash=first.hash)
    assert code_of(lambda: b.alerts.Publish(hijack.request, timeout=10)) == (
        grpc.StatusCode.INVALID_ARGUMENT
    )
    assert list(view_of(b, first.alert_id, 0).versions) == [1, 2]


def test_receipts_and_encrypted_feedback_reach_the_originator(
    agencies: dict[str, TestAgency],
) -> None:
    a, b, c = agencies["agency-a"], agencies["agency-b"], agencies["agency-c"]
    manifest = held_alert(a)
    opened = b.open(manifest.alert_id, "agency-a")
    receipt = Receipt.build(
        manifest,
        recipient="agency-b",
        opened=[i.header_hash for i in opened.items if i.status == VISIBLE],
        withheld=[i.header_hash for i in opened.items if i.status == WITHHELD],
        created_at=now(),
        key=b.profile.signing_key,
    )
    submit = release_pb2.SubmitReceiptRequest(receipt=envelope_to_proto(receipt.envelope))
    first = b.release.SubmitReceipt(submit, timeout=10)
    assert b.release.SubmitReceipt(submit, timeout=10).log_index == first.log_index  # a retry
    originator_key = b.partner_keys()["agency-a"].encryption_key
    feedback = Feedback.seal(manifest, recipient="agency-b", outcome=FeedbackOutcome.SEIZED,
                             note="1.2 t seized at Manzanillo", originator_key=originator_key,
                             created_at=now(), key=b.profile.signing_key)
    b.release.SubmitFeedback(
        release_pb2.SubmitFeedbackRequest(feedback=envelope_to_proto(feedback.envelope)), timeout=10
    )
    assert kinds(a)[-2:] == ["RECEIPT_RECEIVED", "FEEDBACK_RECEIVED"]
    assert kinds(a).count("RECEIPT_RECEIVED") == 1  # the retry told the originator nothing new
    listed = a.release.ListReceipts(
        release_pb2.ListReceiptsRequest(alert_id=manifest.alert_id), timeout=10
    )
    (stored,) = listed.receipts
    assert len(Receipt.verify(envelope_from_proto(stored), {
        b.profile.signing_key.public_key.key_id: b.profile.signing_key.public_key
    }).message.withheld_header_hashes) == 1
    (sent,) = listed.feedback
    body = Feedback.verify(envelope_from_proto(sent), {
        b.profile.signing_key.public_key.key_id: b.profile.signing_key.public_key
    }).open(manifest, a.profile.encryption_key)
    assert body.note == "1.2 t seized at Manzanillo"
    # agency-c may not see the alert, so it can neither receipt it nor give feedback.
    outsider = Receipt.build(manifest, recipient="agency-c", opened=[], withheld=[],
                             created_at=now(), key=c.profile.signing_key)
    assert code_of(
        lambda: c.release.SubmitReceipt(
            release_pb2.SubmitReceiptRequest(receipt=envelope_to_proto(outsider.envelope)),
            timeout=10,
        )
    ) == grpc.StatusCode.NOT_FOUND


def test_no_grant_is_accepted_for_a_revoked_agency(
    hub: object, agencies: dict[str, TestAgency]
) -> None:
    from exchange.store import registry

    a, b = agencies["agency-a"], agencies["agency-b"]
    manifest = held_alert(a)
    request = signed_request(b, manifest, "bank", release_to="agency-c")
    send_request(b, request)
    with hub.db.write() as connection:  # type: ignore[attr-defined]
        registry.revoke_agency(connection, "agency-c", now=now())
    hub.directory.refresh()  # type: ignore[attr-defined]
    before = settled_row_counts(hub)
    assert code_of(lambda: approve(a, manifest, request)) == grpc.StatusCode.PERMISSION_DENIED
    assert settled_row_counts(hub) == before


def test_a_grant_that_is_not_the_one_the_decision_names_is_refused(
    hub: object, agencies: dict[str, TestAgency]
) -> None:
    from exchange.statements.release import ReleaseDecision
    from tests.integration.release_steps import grant_for, own_item_key

    a, b = agencies["agency-a"], agencies["agency-b"]
    manifest = held_alert(a)
    request = signed_request(b, manifest, "bank")
    send_request(b, request)
    key = own_item_key(a, manifest, "bank")
    named = grant_for(a, manifest, "bank", "agency-b", key)
    other = grant_for(a, manifest, "bank", "agency-b", key)  # a fresh HPKE wrap: other bytes
    decision = ReleaseDecision.approve(request, named, created_at=now(), key=a.profile.signing_key)
    before = settled_row_counts(hub)
    assert code_of(
        lambda: a.release.DecideRelease(
            release_pb2.DecideReleaseRequest(
                decision=envelope_to_proto(decision.envelope), grant=other.message
            ),
            timeout=10,
        )
    ) == grpc.StatusCode.INVALID_ARGUMENT
    assert settled_row_counts(hub) == before


def test_bad_statements_are_refused_with_a_reason_and_change_nothing(
    hub: object, agencies: dict[str, TestAgency]
) -> None:
    from exchange.crypto.dsse import sign_envelope
    from exchange.statements.codec import PAYLOAD_TYPES
    from tests.integration.test_bad_input import error_reason

    a, b = agencies["agency-a"], agencies["agency-b"]
    manifest = held_alert(a)
    request = signed_request(b, manifest, "bank")
    good = envelope_to_proto(request.envelope)

    def with_payload(payload: bytes, kind: str = "release_request") -> statements_pb2.Envelope:
        return envelope_to_proto(sign_envelope(PAYLOAD_TYPES[kind], payload, b.profile.signing_key))

    flipped = statements_pb2.Envelope()
    flipped.CopyFrom(good)
    flipped.signatures[0].sig = bytes([flipped.signatures[0].sig[0] ^ 1]) + flipped.signatures[0].sig[1:]
    cases = {
        "no envelope": (release_pb2.RequestReleaseRequest(), "INVALID_ARGUMENT"),
        "bad signature": (release_pb2.RequestReleaseRequest(request=flipped), "SIGNATURE_INVALID"),
        "signed as a receipt": (
            release_pb2.RequestReleaseRequest(
                request=with_payload(request.envelope.payload, "receipt")
            ),
            "PAYLOAD_TYPE_MISMATCH",
        ),
        "unknown field": (
            release_pb2.RequestReleaseRequest(
                request=with_payload(request.envelope.payload + b"\xa0\x06\x01")
            ),
            "NON_CANONICAL",
        ),
        "not protobuf": (
            release_pb2.RequestReleaseRequest(request=with_payload(b"\xff\xff\xff")),
            "MALFORMED",
        ),
        "signed by another agency's key": (
            release_pb2.RequestReleaseRequest(
                request=envelope_to_proto(
                    ReleaseRequest.sign(request.message, a.profile.signing_key).envelope
                )
            ),
            "UNKNOWN_SIGNING_KEY",
        ),
    }
    before = settled_row_counts(hub)
    for name, (call, reason) in cases.items():
        with pytest.raises(grpc.RpcError) as refused:
            b.release.RequestRelease(call, timeout=10)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, name
        assert error_reason(refused.value) == reason, name
    assert settled_row_counts(hub) == before
