"""Alert statements: exact bytes signed and verified, strict parsing, and a recipient's open
that names what was tampered with."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from exchange.crypto.dsse import sign_envelope
from exchange.crypto.keys import DecryptionKey, SigningKey, VerifyKey
from exchange.errors import (
    CommitmentError,
    DecryptionError,
    ExchangeError,
    GrantError,
    KeyCommitmentError,
    MalformedError,
    SignatureError,
    UnknownKeyError,
)
from exchange.statements.alert import AlertManifest, ItemHeader
from exchange.statements.codec import (
    PAYLOAD_TYPES,
    encode,
    envelope_to_proto,
    parse_canonical,
)
from exchange.statements.publish import PublishLimits, check_publish, request_digest
from exchange.statements.sealing import (
    EMBARGOED,
    EXPIRED,
    VISIBLE,
    WITHHELD,
    PlainItem,
    SealedAlert,
    open_version,
    seal_alert,
    summary_item,
)
from exchange.v1 import alerts_pb2, payloads_pb2, statements_pb2

Policy = statements_pb2.ReleasePolicy
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@dataclasses.dataclass
class Party:
    agency_id: str
    signing: SigningKey
    decryption: DecryptionKey

    @property
    def verify_keys(self) -> dict[str, VerifyKey]:
        return {self.signing.public_key.key_id: self.signing.public_key}


@pytest.fixture(scope="module")
def parties() -> dict[str, Party]:
    return {
        name: Party(name, SigningKey.generate(), DecryptionKey.generate())
        for name in ("agency-a", "agency-b", "agency-c")
    }


def note(item_id: str, text: str, audience: list[str], **policy: object) -> PlainItem:
    return PlainItem(
        item_id=item_id,
        policy=Policy(audience=audience, tlp=Policy.TLP_AMBER, **policy),  # type: ignore[arg-type]
        payload=payloads_pb2.ItemPayload(note=payloads_pb2.Note(text=text, language="en")),
    )


def seal(parties: dict[str, Party], items: list[PlainItem]) -> SealedAlert:
    a = parties["agency-a"]
    summary = payloads_pb2.Summary(kind=payloads_pb2.Summary.SHIPMENT, title="t")
    return seal_alert(
        originator="agency-a",
        alert_id="3f1d6c0e-6b55-4d0e-8d43-2a5f3c1b9e70",
        version=1,
        items=[summary_item(summary, items), *items],
        signing_key=a.signing,
        own_key=a.decryption.public_key,
        recipient_keys={p.agency_id: p.decryption.public_key for p in parties.values()},
        created_at=NOW,
    )


def view_for(sealed: SealedAlert, recipient: str) -> alerts_pb2.AlertView:
    """What an honest hub returns to ``recipient``."""
    view = alerts_pb2.AlertView(manifest=sealed.request.manifest)
    grants = {(g.item_id, g.recipient): g for g in sealed.request.grants}
    for item in sealed.request.items:
        header = ItemHeader.parse(item.header)
        if recipient not in header.policy.audience:
            continue
        grant = grants.get((header.item_id, recipient))
        item_view = alerts_pb2.ItemView(header=item.header, state=alerts_pb2.ItemView.WITHHELD)
        if grant is not None:
            item_view.state = alerts_pb2.ItemView.GRANTED
            item_view.ciphertext = item.ciphertext
            item_view.grant.CopyFrom(grant)
        view.items.append(item_view)
    return view


def open_as(parties: dict[str, Party], view: alerts_pb2.AlertView, recipient: str, now: datetime = NOW):  # type: ignore[no-untyped-def]
    return open_version(
        view,
        recipient=recipient,
        decryption_key=parties[recipient].decryption,
        originator_keys=parties["agency-a"].verify_keys,
        now=now,
    )


def test_recipient_opens_what_is_released_to_it(parties: dict[str, Party]) -> None:
    sealed = seal(parties, [
        note("n1", "released", ["agency-b"], release=Policy.IMMEDIATE),
        note("n2", "held", ["agency-b"], release=Policy.ON_REQUEST),
        note("n3", "not for b", ["agency-c"], release=Policy.IMMEDIATE),
    ])
    opened = open_as(parties, view_for(sealed, "agency-b"), "agency-b")
    assert opened.summary is not None and opened.summary.title == "t"
    assert [(i.item_id, i.status) for i in opened.items] == [("n1", VISIBLE), ("n2", WITHHELD)]
    assert opened.items[0].payload is not None
    assert opened.items[0].payload.note.text == "released"


def test_grants_go_only_where_the_policy_says(parties: dict[str, Party]) -> None:
    sealed = seal(parties, [
        note("now", "x", ["agency-b"], release=Policy.IMMEDIATE),
        note("later", "y", ["agency-b"], release=Policy.ON_REQUEST),
    ])
    recipients = sorted((g.item_id, g.recipient) for g in sealed.request.grants)
    assert recipients == [
        ("_summary", "agency-a"), ("_summary", "agency-b"),
        ("later", "agency-a"),
        ("now", "agency-a"), ("now", "agency-b"),
    ]


def test_embargoed_and_expired_items_are_not_opened(parties: dict[str, Party]) -> None:
    embargo = Policy(audience=["agency-b"], release=Policy.EMBARGO, tlp=Policy.TLP_RED)
    embargo.embargo_until.FromDatetime(NOW + timedelta(hours=1))
    expiring = Policy(audience=["agency-b"], release=Policy.IMMEDIATE, tlp=Policy.TLP_RED)
    expiring.expires_at.FromDatetime(NOW + timedelta(minutes=5))
    payload = payloads_pb2.ItemPayload(note=payloads_pb2.Note(text="x"))
    sealed = seal(parties, [PlainItem("e", embargo, payload), PlainItem("x", expiring, payload)])
    view = view_for(sealed, "agency-b")
    before = open_as(parties, view, "agency-b")
    assert [(i.item_id, i.status) for i in before.items] == [("e", EMBARGOED), ("x", VISIBLE)]
    after = open_as(parties, view, "agency-b", now=NOW + timedelta(hours=2))
    assert [(i.item_id, i.status) for i in after.items] == [("e", VISIBLE), ("x", EXPIRED)]


def flip(data: bytes, index: int) -> bytes:
    changed = bytearray(data)
    changed[index] ^= 0x01
    return bytes(changed)


def tamper_manifest(view: alerts_pb2.AlertView) -> None:
    view.manifest.payload = flip(view.manifest.payload, 10)


def tamper_header(view: alerts_pb2.AlertView) -> None:
    view.items[1].header = flip(view.items[1].header, len(view.items[1].header) - 3)


def tamper_ciphertext(view: alerts_pb2.AlertView) -> None:
    view.items[1].ciphertext = flip(view.items[1].ciphertext, 30)


def tamper_grant(view: alerts_pb2.AlertView) -> None:
    view.items[1].grant.wrapped_key = flip(view.items[1].grant.wrapped_key, 40)


def swap_grant_for_another_items(view: alerts_pb2.AlertView) -> None:
    """The grant of item 0 presented, relabelled, as the grant of item 1."""
    grant = statements_pb2.Grant()
    grant.CopyFrom(view.items[0].grant)
    grant.item_id = view.items[1].grant.item_id
    view.items[1].grant.CopyFrom(grant)


def resign_with_unknown_key(view: alerts_pb2.AlertView) -> None:
    forged = sign_envelope(view.manifest.payload_type, view.manifest.payload, SigningKey.generate())
    view.manifest.CopyFrom(envelope_to_proto(forged))


TAMPERING: dict[str, tuple[Callable[[alerts_pb2.AlertView], None], type[ExchangeError]]] = {
    "manifest bit flipped": (tamper_manifest, SignatureError),
    "manifest signed by another key": (resign_with_unknown_key, UnknownKeyError),
    "header bit flipped": (tamper_header, CommitmentError),
    "ciphertext bit flipped": (tamper_ciphertext, CommitmentError),
    "grant bit flipped": (tamper_grant, GrantError),
    "grant of another item": (swap_grant_for_another_items, GrantError),
}


@pytest.mark.parametrize("case", list(TAMPERING))
def test_tampering_is_named(case: str, parties: dict[str, Party]) -> None:
    mutate, error = TAMPERING[case]
    sealed = seal(parties, [note("n1", "a", ["agency-b"], release=Policy.IMMEDIATE),
                            note("n2", "b", ["agency-b"], release=Policy.IMMEDIATE)])
    view = view_for(sealed, "agency-b")
    open_as(parties, view, "agency-b")  # the untampered view opens
    mutate(view)
    with pytest.raises(error):
        open_as(parties, view, "agency-b")


def test_grant_for_another_recipient_does_not_open(parties: dict[str, Party]) -> None:
    sealed = seal(parties, [note("n1", "a", ["agency-b", "agency-c"], release=Policy.IMMEDIATE)])
    view_b = view_for(sealed, "agency-b")
    view_c = view_for(sealed, "agency-c")
    view_b.items[1].grant.CopyFrom(view_c.items[1].grant)
    with pytest.raises((GrantError, MalformedError)):
        open_as(parties, view_b, "agency-b")


def test_key_failing_its_commitment_is_refused(parties: dict[str, Party]) -> None:
    """A grant that unwraps correctly but to another key than the one committed to."""
    from exchange.crypto.items import new_item_key
    from exchange.statements.alert import KeyGrant

    sealed = seal(parties, [note("n1", "a", ["agency-b"], release=Policy.IMMEDIATE)])
    manifest = sealed.manifest
    rogue = KeyGrant.make(manifest, item_id="n1", item_key=new_item_key(), recipient="agency-b",
                          recipient_key=parties["agency-b"].decryption.public_key)
    view = view_for(sealed, "agency-b")
    view.items[1].grant.CopyFrom(rogue.message)
    with pytest.raises(KeyCommitmentError):
        open_as(parties, view, "agency-b")


def test_wrong_decryption_key_fails(parties: dict[str, Party]) -> None:
    sealed = seal(parties, [note("n1", "a", ["agency-b"], release=Policy.IMMEDIATE)])
    view = view_for(sealed, "agency-b")
    with pytest.raises((GrantError, DecryptionError)):
        open_version(view, recipient="agency-b", decryption_key=DecryptionKey.generate(),
                     originator_keys=parties["agency-a"].verify_keys, now=NOW)


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("unknown field appended", "append"),
        ("unknown field nested in a timestamp", "nested"),
        ("fields out of order", "reorder"),
        ("not protobuf", "garbage"),
    ],
)
def test_parse_canonical_refuses_anything_but_canonical_bytes(name: str, data: str) -> None:
    message = statements_pb2.AlertManifest(originator="agency-a", alert_id="x", version=1)
    message.created_at.FromDatetime(NOW)
    good = encode(message)
    assert parse_canonical(statements_pb2.AlertManifest, good, what="m") == message
    if data == "append":
        bad = good + b"\xf8\x01\x01"
    elif data == "nested":
        created = encode(message.created_at) + b"\x18\x01"
        bad = encode(statements_pb2.AlertManifest(originator="agency-a", alert_id="x", version=1))
        bad += b"\x2a" + bytes([len(created)]) + created
    elif data == "reorder":
        bad = encode(statements_pb2.AlertManifest(version=1)) + encode(
            statements_pb2.AlertManifest(originator="agency-a", alert_id="x")
        )
    else:
        bad = b"\xff\xff\xff\xff"
    with pytest.raises(MalformedError):
        parse_canonical(statements_pb2.AlertManifest, bad, what="m")


def test_manifest_payload_type_is_allow_listed(parties: dict[str, Party]) -> None:
    sealed = seal(parties, [note("n1", "a", ["agency-b"], release=Policy.IMMEDIATE)])
    receipt_typed = sign_envelope(PAYLOAD_TYPES["receipt"], sealed.manifest.envelope.payload,
                                  parties["agency-a"].signing)
    with pytest.raises(MalformedError) as refused:
        AlertManifest.verify(receipt_typed, parties["agency-a"].verify_keys)
    assert refused.value.reason == "PAYLOAD_TYPE_MISMATCH"


def test_manifest_hash_is_over_the_exact_signed_bytes(parties: dict[str, Party]) -> None:
    import hashlib

    sealed = seal(parties, [note("n1", "a", ["agency-b"], release=Policy.IMMEDIATE)])
    assert sealed.manifest.hash == hashlib.sha256(sealed.request.manifest.payload).digest()
    verified = AlertManifest.verify(sealed.manifest.envelope, parties["agency-a"].verify_keys)
    assert verified.hash == sealed.manifest.hash
    assert list(verified.message.item_header_hashes) == [
        hashlib.sha256(i.header).digest() for i in sealed.request.items
    ]


def test_checked_publish_carries_the_received_manifest_envelope(parties: dict[str, Party]) -> None:
    """The store keeps the envelope the hub received, as its canonical bytes: a field this
    version cannot read is dropped, so the logged bytes are what every verifier reads."""
    sealed = seal(parties, [note("n1", "hello", ["agency-b"], release=Policy.IMMEDIATE)])
    request = alerts_pb2.PublishRequest()
    request.CopyFrom(sealed.request)
    request.manifest.MergeFromString(b"\xa2\x06\x03abc")  # field 100, length-delimited: unknown
    a = parties["agency-a"]
    checked = check_publish(
        request,
        caller="agency-a",
        caller_keys=a.verify_keys,
        encryption_key_ids={p.agency_id: p.decryption.public_key.key_id for p in parties.values()},
        limits=PublishLimits(),
    )
    assert checked.manifest_envelope == encode(sealed.request.manifest)
    assert checked.manifest_envelope != encode(request.manifest)
    assert checked.manifest_envelope == encode(envelope_to_proto(checked.manifest.envelope))


def test_the_checked_digest_is_the_request_digest_with_each_ciphertext_hashed_once(
    parties: dict[str, Party],
) -> None:
    """check_publish hands the ciphertext hashes it checked to the request digest; the digest
    is the one computed from the request alone, and changes with any ciphertext byte."""
    sealed = seal(parties, [note("n1", "hello", ["agency-b"], release=Policy.IMMEDIATE)])
    a = parties["agency-a"]
    key_ids = {p.agency_id: p.decryption.public_key.key_id for p in parties.values()}
    checked = check_publish(
        sealed.request,
        caller="agency-a",
        caller_keys=a.verify_keys,
        encryption_key_ids=key_ids,
        limits=PublishLimits(),
    )
    assert checked.digest == request_digest(sealed.request)
    hashes = [hashlib.sha256(item.ciphertext).digest() for item in sealed.request.items]
    assert request_digest(sealed.request, hashes) == checked.digest
    other = alerts_pb2.PublishRequest()
    other.CopyFrom(sealed.request)
    other.items[0].ciphertext = bytes([other.items[0].ciphertext[0] ^ 1]) + (
        other.items[0].ciphertext[1:]
    )
    assert request_digest(other) != checked.digest
    with pytest.raises(ValueError):  # one hash per item, no fewer
        request_digest(sealed.request, hashes[:-1])


def test_header_and_manifest_hashes_are_of_their_bytes(parties: dict[str, Party]) -> None:
    sealed = seal(parties, [note("n1", "hello", ["agency-b"], release=Policy.IMMEDIATE)])
    header = ItemHeader.parse(bytes(sealed.request.items[0].header))
    assert header.hash == hashlib.sha256(header.raw).digest()
    assert header.hash is header.hash  # computed once
    manifest = sealed.manifest
    assert manifest.hash == hashlib.sha256(manifest.envelope.payload).digest()
