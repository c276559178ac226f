"""Release statements: signed and verified as exact bytes, typed, strictly parsed, and each
refusing the invariants its kind requires."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from exchange.crypto.dsse import Envelope, sign_envelope
from exchange.crypto.items import new_item_key
from exchange.crypto.keys import DecryptionKey, SigningKey, VerifyKey
from exchange.errors import (
    DecryptionError,
    ExchangeError,
    KeyCommitmentError,
    MalformedError,
    SignatureError,
    UnknownKeyError,
)
from exchange.statements.alert import AlertManifest, KeyGrant, manifest_message
from exchange.statements.codec import PAYLOAD_TYPES, encode, sha256
from exchange.statements.release import (
    Feedback,
    FeedbackOutcome,
    PurgeAck,
    Receipt,
    ReleaseDecision,
    ReleaseRequest,
    Retraction,
    Revocation,
    SignedStatement,
)
from exchange.v1 import statements_pb2

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
A_SIGNING = SigningKey.generate()
B_SIGNING = SigningKey.generate()
A_DECRYPTION = DecryptionKey.generate()


def keys_of(key: SigningKey) -> dict[str, VerifyKey]:
    return {key.public_key.key_id: key.public_key}


def manifest() -> AlertManifest:
    message = manifest_message(
        originator="agency-a",
        alert_id="0b0e3c1e-8f5d-4d5e-9a57-3f0d0f6f2a10",
        version=1,
        previous_manifest_hash=b"",
        created_at=NOW,
        headers=[],
    )
    return AlertManifest.sign(message, A_SIGNING)


def request(**overrides: str) -> ReleaseRequest:
    arguments = {"item_id": "bank-records", "reason": "seizure hearing on Monday", **overrides}
    return ReleaseRequest.build(
        requester="agency-b",
        manifest=manifest(),
        created_at=NOW,
        key=B_SIGNING,
        **arguments,  # type: ignore[arg-type]
    )


def grant_for_b() -> KeyGrant:
    return KeyGrant.make(
        manifest(),
        item_id="bank-records",
        item_key=new_item_key(),
        recipient="agency-b",
        recipient_key=DecryptionKey.generate().public_key,
    )


def every_statement() -> list[tuple[type[SignedStatement], SignedStatement, SigningKey]]:  # type: ignore[type-arg]
    m = manifest()
    req = request()
    return [
        (ReleaseRequest, req, B_SIGNING),
        (ReleaseDecision, ReleaseDecision.approve(req, grant_for_b(), created_at=NOW, key=A_SIGNING), A_SIGNING),
        (ReleaseDecision, ReleaseDecision.deny(req, reason="ongoing", created_at=NOW, key=A_SIGNING), A_SIGNING),
        (Revocation, Revocation.build(m, item_id="x", agency="agency-b", created_at=NOW, key=A_SIGNING), A_SIGNING),
        (Retraction, Retraction.build(m, reason="wrong container", created_at=NOW, key=A_SIGNING), A_SIGNING),
        (Receipt, Receipt.build(m, recipient="agency-b", opened=[sha256(b"1")], withheld=[sha256(b"2")],
                                created_at=NOW, key=B_SIGNING), B_SIGNING),
        (PurgeAck, PurgeAck.build(m, recipient="agency-b", item_id="x", created_at=NOW, key=B_SIGNING), B_SIGNING),
        (Feedback, Feedback.seal(m, recipient="agency-b", outcome=FeedbackOutcome.SEIZED, note="1.2 t",
                                 originator_key=A_DECRYPTION.public_key, created_at=NOW, key=B_SIGNING), B_SIGNING),
    ]


@pytest.mark.parametrize("index", range(8))
def test_each_statement_verifies_as_signed_and_not_under_another_key(index: int) -> None:
    kind, statement, signer = every_statement()[index]
    verified = kind.verify(statement.envelope, keys_of(signer))
    assert verified.message == statement.message
    assert verified.hash == sha256(statement.envelope.payload)
    assert kind.peek_signer(statement.envelope) == statement.signer
    with pytest.raises(UnknownKeyError):
        kind.verify(statement.envelope, keys_of(SigningKey.generate()))


@pytest.mark.parametrize("index", range(8))
def test_a_flipped_payload_bit_fails_the_signature(index: int) -> None:
    kind, statement, signer = every_statement()[index]
    payload = bytearray(statement.envelope.payload)
    payload[-1] ^= 1
    tampered = Envelope(bytes(payload), statement.envelope.payload_type, statement.envelope.signatures)
    with pytest.raises(SignatureError):
        kind.verify(tampered, keys_of(signer))


def test_a_statement_of_one_kind_is_never_accepted_as_another() -> None:
    receipt = every_statement()[5][1]
    with pytest.raises(MalformedError) as refused:
        PurgeAck.verify(receipt.envelope, keys_of(B_SIGNING))
    assert refused.value.reason == "PAYLOAD_TYPE_MISMATCH"


def test_unknown_fields_are_refused_even_when_validly_signed() -> None:
    payload = request().envelope.payload + b"\xa0\x06\x01"  # field 100, varint 1
    envelope = sign_envelope(PAYLOAD_TYPES["release_request"], payload, B_SIGNING)
    with pytest.raises(MalformedError) as refused:
        ReleaseRequest.verify(envelope, keys_of(B_SIGNING))
    assert refused.value.reason == "NON_CANONICAL"


def test_request_id_is_the_hex_sha256_of_the_payload_and_the_target_defaults_to_the_requester() -> None:
    req = request()
    assert req.request_id == sha256(req.envelope.payload).hex()
    assert req.target == "agency-b"
    assert request(release_to="agency-c").target == "agency-c"
    assert request().request_id != request().request_id  # a fresh nonce each time


BadRequest = Callable[[statements_pb2.ReleaseRequest], None]


@pytest.mark.parametrize(
    "spoil",
    [
        lambda m: setattr(m, "reason", "  "),
        lambda m: setattr(m, "reason", "x\x1b[2Jy"),
        lambda m: setattr(m, "item_id", ""),
        lambda m: setattr(m, "manifest_hash", b"short"),
        lambda m: setattr(m, "release_to", "agency-a"),
        lambda m: setattr(m, "requester", "agency-a"),
        lambda m: setattr(m, "nonce", b""),
        lambda m: m.ClearField("created_at"),
    ],
    ids=["blank reason", "control characters", "no item", "short hash", "to originator",
         "by originator", "no nonce", "no time"],
)
def test_malformed_requests_are_refused_when_signed_and_when_verified(spoil: BadRequest) -> None:
    message = statements_pb2.ReleaseRequest()
    message.CopyFrom(request().message)
    spoil(message)
    with pytest.raises(MalformedError):
        ReleaseRequest.sign(message, B_SIGNING)
    envelope = sign_envelope(PAYLOAD_TYPES["release_request"], encode(message), B_SIGNING)
    with pytest.raises(MalformedError):
        ReleaseRequest.verify(envelope, keys_of(B_SIGNING))


def test_decisions_approve_with_a_grant_hash_and_deny_with_a_reason() -> None:
    req = request()
    grant = grant_for_b()
    approval = ReleaseDecision.approve(req, grant, created_at=NOW, key=A_SIGNING)
    assert approval.approved and approval.message.grant_hash == grant.hash
    assert approval.request_id == req.request_id
    with pytest.raises(MalformedError):
        ReleaseDecision.deny(req, reason=" ", created_at=NOW, key=A_SIGNING)
    bad = statements_pb2.ReleaseDecision()
    bad.CopyFrom(approval.message)
    bad.outcome = statements_pb2.ReleaseDecision.OUTCOME_UNSPECIFIED
    with pytest.raises(MalformedError):
        ReleaseDecision.sign(bad, A_SIGNING)


def test_feedback_opens_for_the_originator_only_and_detects_tampering() -> None:
    m = manifest()
    feedback = Feedback.seal(m, recipient="agency-b", outcome=FeedbackOutcome.SEIZED, note="1.2 t seized",
                             originator_key=A_DECRYPTION.public_key, created_at=NOW, key=B_SIGNING)
    body = feedback.open(m, A_DECRYPTION)
    assert (body.outcome, body.note) == (FeedbackOutcome.SEIZED, "1.2 t seized")
    assert b"1.2 t seized" not in feedback.envelope.payload
    with pytest.raises(ExchangeError):
        feedback.open(m, DecryptionKey.generate())
    altered = statements_pb2.Feedback()
    altered.CopyFrom(feedback.message)
    altered.ciphertext = altered.ciphertext[:-1] + bytes([altered.ciphertext[-1] ^ 1])
    with pytest.raises(DecryptionError):
        Feedback(feedback.envelope, altered).open(m, A_DECRYPTION)
    altered.CopyFrom(feedback.message)
    altered.key_commitment = sha256(b"other key")
    with pytest.raises(KeyCommitmentError):
        Feedback(feedback.envelope, altered).open(m, A_DECRYPTION)


def test_feedback_with_a_sender_grant_opens_for_its_sender_too_and_for_nobody_else() -> None:
    m = manifest()
    b_decryption = DecryptionKey.generate()
    feedback = Feedback.seal(m, recipient="agency-b", outcome=FeedbackOutcome.NOTHING_FOUND, note="",
                             originator_key=A_DECRYPTION.public_key, own_key=b_decryption.public_key,
                             created_at=NOW, key=B_SIGNING)
    verified = Feedback.verify(feedback.envelope, keys_of(B_SIGNING))
    assert verified.open(m, A_DECRYPTION).outcome == FeedbackOutcome.NOTHING_FOUND
    assert verified.open(m, b_decryption).outcome == FeedbackOutcome.NOTHING_FOUND
    with pytest.raises(ExchangeError):
        verified.open(m, DecryptionKey.generate())
    without = Feedback.seal(m, recipient="agency-b", outcome=FeedbackOutcome.SEIZED, note="",
                            originator_key=A_DECRYPTION.public_key, created_at=NOW, key=B_SIGNING)
    with pytest.raises(ExchangeError):
        without.open(m, b_decryption)
    stolen = statements_pb2.Feedback()
    stolen.CopyFrom(feedback.message)
    stolen.sender_grant.recipient = "agency-c"
    with pytest.raises(MalformedError):
        Feedback.sign(stolen, B_SIGNING)


def test_an_approval_accepts_only_the_grant_it_names_for_the_requests_item_and_target() -> None:
    from exchange.errors import InvalidInputError, NotPermittedError

    req = request()
    grant = grant_for_b()
    approval = ReleaseDecision.approve(req, grant, created_at=NOW, key=A_SIGNING)
    key_id = grant.message.recipient_key_id
    approval.check_grant(grant.message, item_id="bank-records", target="agency-b", target_key_id=key_id)
    with pytest.raises(NotPermittedError) as revoked:
        approval.check_grant(grant.message, item_id="bank-records", target="agency-b", target_key_id=None)
    assert revoked.value.reason == "RECIPIENT_REVOKED"
    cases = {
        "grant.item_id": {"item_id": "other", "target": "agency-b", "target_key_id": key_id},
        "grant.recipient": {"item_id": "bank-records", "target": "agency-c", "target_key_id": key_id},
        "grant.recipient_key_id": {
            "item_id": "bank-records", "target": "agency-b", "target_key_id": "0" * 64
        },
    }
    for field, arguments in cases.items():
        with pytest.raises(InvalidInputError) as refused:
            approval.check_grant(grant.message, **arguments)  # type: ignore[arg-type]
        assert field in {v.field for v in refused.value.violations}
    other = grant_for_b().message  # fits the request, but is not the grant the approval names
    with pytest.raises(InvalidInputError) as swapped:
        approval.check_grant(other, item_id="bank-records", target="agency-b",
                             target_key_id=other.recipient_key_id)
    assert [v.field for v in swapped.value.violations] == ["grant"]
    with pytest.raises(InvalidInputError):
        approval.check_grant(None, item_id="bank-records", target="agency-b", target_key_id=key_id)
