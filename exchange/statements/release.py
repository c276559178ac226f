"""Release statements (DESIGN §4): requests, decisions, revocations, retractions, receipts,
purge acknowledgements and feedback, as domain classes around the signed protobufs.

Each class is built with ``sign`` (or a named constructor that signs) and received with
``verify``: the envelope's signature is checked over the exact payload bytes under the keys
trusted for the statement's signer, then those same bytes are parsed canonically (unknown fields
rejected) and the statement's own invariants are checked.  ``verify`` raises; it never returns
``False``.

Every statement names the manifest hash of the alert version it is about, so a statement about
one version can never be replayed against another.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Generic, Self, TypeVar

from google.protobuf.message import Message

from exchange.crypto.dsse import Envelope, sign_envelope, verify_envelope
from exchange.crypto.grants import unwrap_item_key
from exchange.crypto.items import (
    ItemContext,
    check_key_commitment,
    key_commitment,
    new_item_key,
    open_item,
    seal_item,
)
from exchange.crypto.keys import DecryptionKey, EncryptionKey, SigningKey, VerifyKey
from exchange.errors import (
    FieldViolation,
    InvalidInputError,
    MalformedError,
    NotPermittedError,
)
from exchange.limits import over_limit
from exchange.statements.alert import AlertManifest, KeyGrant
from exchange.statements.codec import PAYLOAD_TYPES, encode, parse_canonical, sha256
from exchange.v1 import statements_pb2

MANIFEST_HASH_BYTES = 32
NONCE_BYTES = 16
MAX_REASON_CHARS = 2000
MAX_NOTE_CHARS = 8000
MAX_FEEDBACK_CIPHERTEXT_BYTES = 64 * 1024

FEEDBACK_ITEM_PREFIX = "_feedback/"
"""Feedback is sealed like an item whose id is this prefix and the sender's agency id."""

Outcome = statements_pb2.ReleaseDecision.Outcome
FeedbackOutcome = statements_pb2.Feedback.Outcome

M = TypeVar("M", bound=Message)


def _require(condition: bool, what: str, problem: str) -> None:
    if not condition:
        raise MalformedError(f"{what}: {problem}")


_Referencing = (
    statements_pb2.ReleaseRequest
    | statements_pb2.Revocation
    | statements_pb2.Retraction
    | statements_pb2.Receipt
    | statements_pb2.PurgeAck
    | statements_pb2.Feedback
)


def _check_reference(what: str, message: _Referencing) -> None:
    """Invariants shared by statements that name an alert version by its manifest hash."""
    _require(bool(message.originator), what, "names no originator")
    _require(bool(message.alert_id), what, "names no alert id")
    _require(message.version >= 1, what, "names no version")
    _require(
        len(message.manifest_hash) == MANIFEST_HASH_BYTES,
        what,
        "needs a 32-byte manifest hash",
    )
    _require(message.HasField("created_at"), what, "has no creation time")


def _check_text(what: str, field: str, text: str, limit: int) -> None:
    _require(len(text) <= limit, what, over_limit(len(text), limit, "characters", what=field))
    _require(
        all(ch.isprintable() or ch in "\n\t" for ch in text),
        what,
        f"{field} holds control characters",
    )


@dataclass(frozen=True)
class SignedStatement(Generic[M]):
    """A statement as its signer signed it: the envelope and the message parsed from its bytes."""

    KIND: ClassVar[str]
    MESSAGE: ClassVar[type[Message]]

    envelope: Envelope
    message: M

    @classmethod
    def sign(cls, message: M, key: SigningKey) -> Self:
        """Check ``message``'s invariants, then sign its canonical encoding with ``key``."""
        cls._check(message)
        envelope = sign_envelope(PAYLOAD_TYPES[cls.KIND], encode(message), key)
        return cls(envelope=envelope, message=message)

    @classmethod
    def verify(cls, envelope: Envelope, keys: Mapping[str, VerifyKey]) -> Self:
        """Verify the envelope under ``keys`` (the signer's), then parse the signed bytes."""
        payload = verify_envelope(envelope, expected_type=PAYLOAD_TYPES[cls.KIND], keys=keys)
        return cls.parse_verified(envelope, payload)

    @classmethod
    def parse_verified(cls, envelope: Envelope, payload: bytes) -> Self:
        """Parse ``payload`` (already verified by the caller) and check its invariants."""
        message = parse_canonical(cls.MESSAGE, payload, what=cls.KIND.replace("_", " "))
        cls._check(message)  # type: ignore[arg-type]
        return cls(envelope=envelope, message=message)  # type: ignore[arg-type]

    @classmethod
    def peek_signer(cls, envelope: Envelope) -> str:
        """The agency the unverified payload claims as signer, to look its keys up by.

        Nothing is trusted from this: :meth:`verify` must still succeed under that agency's keys.
        """
        if envelope.payload_type != PAYLOAD_TYPES[cls.KIND]:
            raise MalformedError(
                f"payload type {envelope.payload_type!r}, expected {PAYLOAD_TYPES[cls.KIND]!r}",
                reason="PAYLOAD_TYPE_MISMATCH",
            )
        message = parse_canonical(cls.MESSAGE, envelope.payload, what=cls.KIND.replace("_", " "))
        return str(getattr(message, cls.signer_field()))

    @classmethod
    def signer_field(cls) -> str:
        """The field naming the agency that must have signed."""
        return "originator"

    @classmethod
    def _check(cls, message: M) -> None:
        raise NotImplementedError

    @property
    def hash(self) -> bytes:
        """sha256 of the signed payload."""
        return sha256(self.envelope.payload)

    @property
    def signer(self) -> str:
        """The agency that signed this statement (already checked by :meth:`verify`'s keys)."""
        return str(getattr(self.message, self.signer_field()))


class ReleaseRequest(SignedStatement[statements_pb2.ReleaseRequest]):
    """A recipient asks the originator to release item I of manifest H, to itself or onward."""

    KIND = "release_request"
    MESSAGE = statements_pb2.ReleaseRequest

    @classmethod
    def build(
        cls,
        *,
        requester: str,
        manifest: AlertManifest,
        item_id: str,
        reason: str,
        release_to: str = "",
        created_at: datetime,
        key: SigningKey,
    ) -> ReleaseRequest:
        """A signed request naming ``manifest``; a fresh nonce makes every request distinct."""
        message = statements_pb2.ReleaseRequest(
            requester=requester,
            originator=manifest.originator,
            alert_id=manifest.alert_id,
            version=manifest.version,
            manifest_hash=manifest.hash,
            item_id=item_id,
            release_to="" if release_to == requester else release_to,
            reason=reason,
            nonce=os.urandom(NONCE_BYTES),
        )
        message.created_at.FromDatetime(created_at)
        return cls.sign(message, key)

    @classmethod
    def signer_field(cls) -> str:
        return "requester"

    @classmethod
    def _check(cls, message: statements_pb2.ReleaseRequest) -> None:
        what = "release request"
        _check_reference(what, message)
        _require(bool(message.requester), what, "names no requester")
        _require(bool(message.item_id), what, "names no item")
        _require(bool(message.reason.strip()), what, "gives no reason")
        _check_text(what, "reason", message.reason, MAX_REASON_CHARS)
        _require(len(message.nonce) == NONCE_BYTES, what, f"needs a {NONCE_BYTES}-byte nonce")
        _require(message.requester != message.originator, what, "the originator needs no request")
        _require(message.release_to != message.requester, what, "release_to names the requester")
        _require(message.release_to != message.originator, what, "release_to names the originator")

    @property
    def request_id(self) -> str:
        """Hex sha256 of the request payload: how decisions and operators name the request."""
        return self.hash.hex()

    @property
    def target(self) -> str:
        """The agency the item would be released to: ``release_to``, or else the requester."""
        return self.message.release_to or self.message.requester


class ReleaseDecision(SignedStatement[statements_pb2.ReleaseDecision]):
    """The originator approves (naming the grant's hash) or denies (with a reason) a request."""

    KIND = "release_decision"
    MESSAGE = statements_pb2.ReleaseDecision

    @classmethod
    def approve(
        cls,
        request: ReleaseRequest,
        grant: KeyGrant,
        *,
        created_at: datetime,
        key: SigningKey,
    ) -> ReleaseDecision:
        """Approve ``request`` with ``grant``, the item key wrapped for the request's target."""
        message = statements_pb2.ReleaseDecision(
            originator=request.message.originator,
            request_hash=request.hash,
            outcome=Outcome.APPROVED,
            grant_hash=grant.hash,
        )
        message.created_at.FromDatetime(created_at)
        return cls.sign(message, key)

    @classmethod
    def deny(
        cls, request: ReleaseRequest, *, reason: str, created_at: datetime, key: SigningKey
    ) -> ReleaseDecision:
        """Deny ``request``, saying why."""
        message = statements_pb2.ReleaseDecision(
            originator=request.message.originator,
            request_hash=request.hash,
            outcome=Outcome.DENIED,
            reason=reason,
        )
        message.created_at.FromDatetime(created_at)
        return cls.sign(message, key)

    @classmethod
    def _check(cls, message: statements_pb2.ReleaseDecision) -> None:
        what = "release decision"
        _require(bool(message.originator), what, "names no originator")
        _require(len(message.request_hash) == MANIFEST_HASH_BYTES, what, "needs a request hash")
        _require(message.HasField("created_at"), what, "has no creation time")
        _check_text(what, "reason", message.reason, MAX_REASON_CHARS)
        if message.outcome == Outcome.APPROVED:
            _require(len(message.grant_hash) == 32, what, "an approval names its grant's hash")
        elif message.outcome == Outcome.DENIED:
            _require(not message.grant_hash, what, "a denial names no grant")
            _require(bool(message.reason.strip()), what, "a denial gives a reason")
        else:
            raise MalformedError(f"{what}: outcome must be APPROVED or DENIED")

    @property
    def request_id(self) -> str:
        return self.message.request_hash.hex()

    @property
    def approved(self) -> bool:
        return self.message.outcome == Outcome.APPROVED

    def check_grant(
        self,
        grant: statements_pb2.Grant | None,
        *,
        item_id: str,
        target: str,
        target_key_id: str | None,
    ) -> None:
        """Raise unless ``grant`` is the one this approval names, for the request's item and target.

        ``target_key_id`` is the target's current encryption key id, ``None`` when the target is
        revoked or unknown: no grant is accepted for it (:class:`NotPermittedError`).  Anything
        else that does not fit is :class:`InvalidInputError` with the fields that do not.
        """
        if grant is None or not grant.wrapped_key:
            raise InvalidInputError(
                "an approval carries the grant it names",
                violations=[FieldViolation("grant", "required with an approval")],
            )
        if target_key_id is None:
            raise NotPermittedError(
                f"agency {target!r} is revoked or unknown: no grant is accepted for it",
                reason="RECIPIENT_REVOKED",
            )
        problems = []
        if grant.item_id != item_id:
            problems.append(FieldViolation("grant.item_id", f"the request is for item {item_id!r}"))
        if grant.recipient != target:
            problems.append(FieldViolation("grant.recipient", f"the request is for {target!r}"))
        if grant.recipient_key_id != target_key_id:
            problems.append(
                FieldViolation("grant.recipient_key_id", f"not {target}'s current encryption key")
            )
        if grant_hash(grant) != bytes(self.message.grant_hash):
            problems.append(FieldViolation("grant", "is not the grant the signed decision names"))
        if problems:
            raise InvalidInputError(
                "the grant does not fit the approved request",
                violations=problems,
                reason="GRANT_MISMATCH",
            )


class Revocation(SignedStatement[statements_pb2.Revocation]):
    """The originator stops delivering item I of manifest H to one agency, or to all."""

    KIND = "revocation"
    MESSAGE = statements_pb2.Revocation

    @classmethod
    def build(
        cls,
        manifest: AlertManifest,
        *,
        item_id: str,
        agency: str = "",
        reason: str = "",
        created_at: datetime,
        key: SigningKey,
    ) -> Revocation:
        """A signed revocation of ``item_id`` from ``agency`` (empty: every recipient)."""
        message = statements_pb2.Revocation(
            originator=manifest.originator,
            alert_id=manifest.alert_id,
            version=manifest.version,
            manifest_hash=manifest.hash,
            item_id=item_id,
            agency=agency,
            reason=reason,
        )
        message.created_at.FromDatetime(created_at)
        return cls.sign(message, key)

    @classmethod
    def _check(cls, message: statements_pb2.Revocation) -> None:
        what = "revocation"
        _check_reference(what, message)
        _require(bool(message.item_id), what, "names no item")
        _require(message.agency != message.originator, what, "the originator cannot lose its item")
        _check_text(what, "reason", message.reason, MAX_REASON_CHARS)


class Retraction(SignedStatement[statements_pb2.Retraction]):
    """The originator withdraws an alert (every version of it)."""

    KIND = "retraction"
    MESSAGE = statements_pb2.Retraction

    @classmethod
    def build(
        cls, manifest: AlertManifest, *, reason: str, created_at: datetime, key: SigningKey
    ) -> Retraction:
        """A signed retraction naming the latest version's manifest."""
        message = statements_pb2.Retraction(
            originator=manifest.originator,
            alert_id=manifest.alert_id,
            version=manifest.version,
            manifest_hash=manifest.hash,
            reason=reason,
        )
        message.created_at.FromDatetime(created_at)
        return cls.sign(message, key)

    @classmethod
    def _check(cls, message: statements_pb2.Retraction) -> None:
        what = "retraction"
        _check_reference(what, message)
        _require(bool(message.reason.strip()), what, "gives no reason")
        _check_text(what, "reason", message.reason, MAX_REASON_CHARS)


class Receipt(SignedStatement[statements_pb2.Receipt]):
    """A recipient's proof of receipt: which item commitments it could open, which were withheld."""

    KIND = "receipt"
    MESSAGE = statements_pb2.Receipt

    @classmethod
    def build(
        cls,
        manifest: AlertManifest,
        *,
        recipient: str,
        opened: Sequence[bytes],
        withheld: Sequence[bytes],
        created_at: datetime,
        key: SigningKey,
    ) -> Receipt:
        """A signed receipt for ``manifest`` listing header hashes opened and withheld."""
        message = statements_pb2.Receipt(
            recipient=recipient,
            originator=manifest.originator,
            alert_id=manifest.alert_id,
            version=manifest.version,
            manifest_hash=manifest.hash,
            opened_header_hashes=list(opened),
            withheld_header_hashes=list(withheld),
        )
        message.created_at.FromDatetime(created_at)
        return cls.sign(message, key)

    @classmethod
    def signer_field(cls) -> str:
        return "recipient"

    @classmethod
    def _check(cls, message: statements_pb2.Receipt) -> None:
        what = "receipt"
        _check_reference(what, message)
        _require(bool(message.recipient), what, "names no recipient")
        hashes = [*message.opened_header_hashes, *message.withheld_header_hashes]
        _require(all(len(h) == 32 for h in hashes), what, "header hashes are 32 bytes")
        _require(len(set(hashes)) == len(hashes), what, "names one header twice")


class PurgeAck(SignedStatement[statements_pb2.PurgeAck]):
    """A recipient's statement that it has deleted item I of manifest H."""

    KIND = "purge_ack"
    MESSAGE = statements_pb2.PurgeAck

    @classmethod
    def build(
        cls,
        manifest: AlertManifest,
        *,
        recipient: str,
        item_id: str,
        created_at: datetime,
        key: SigningKey,
    ) -> PurgeAck:
        """A signed acknowledgement that ``item_id`` of ``manifest`` is purged."""
        message = statements_pb2.PurgeAck(
            recipient=recipient,
            originator=manifest.originator,
            alert_id=manifest.alert_id,
            version=manifest.version,
            manifest_hash=manifest.hash,
            item_id=item_id,
        )
        message.created_at.FromDatetime(created_at)
        return cls.sign(message, key)

    @classmethod
    def signer_field(cls) -> str:
        return "recipient"

    @classmethod
    def _check(cls, message: statements_pb2.PurgeAck) -> None:
        what = "purge acknowledgement"
        _check_reference(what, message)
        _require(bool(message.recipient), what, "names no recipient")
        _require(bool(message.item_id), what, "names no item")


class Feedback(SignedStatement[statements_pb2.Feedback]):
    """A recipient's outcome for an alert version, encrypted to the originator.

    The body is sealed like an item (AES-256-GCM under a fresh key, bound to its context, with a
    key commitment) and the key is wrapped for the originator's encryption key like a grant, so
    the hub relays it without being able to read it.
    """

    KIND = "feedback"
    MESSAGE = statements_pb2.Feedback

    @classmethod
    def seal(
        cls,
        manifest: AlertManifest,
        *,
        recipient: str,
        outcome: FeedbackOutcome.ValueType,
        note: str,
        originator_key: EncryptionKey,
        created_at: datetime,
        key: SigningKey,
    ) -> Feedback:
        """Encrypt ``outcome`` and ``note`` to the originator and sign the result."""
        _require(
            outcome != FeedbackOutcome.OUTCOME_UNSPECIFIED, "feedback", "needs an outcome"
        )
        _check_text("feedback", "note", note, MAX_NOTE_CHARS)
        item_id = FEEDBACK_ITEM_PREFIX + recipient
        body_key = new_item_key()
        context = manifest.item_context(item_id)
        body = statements_pb2.FeedbackBody(outcome=outcome, note=note)
        sealed = seal_item(body_key, encode(body), context)
        grant = KeyGrant.make(
            manifest,
            item_id=item_id,
            item_key=body_key,
            recipient=manifest.originator,
            recipient_key=originator_key,
        )
        message = statements_pb2.Feedback(
            recipient=recipient,
            originator=manifest.originator,
            alert_id=manifest.alert_id,
            version=manifest.version,
            manifest_hash=manifest.hash,
            ciphertext=sealed.ciphertext,
            key_commitment=key_commitment(body_key, context),
            grant=grant.message,
        )
        message.created_at.FromDatetime(created_at)
        return cls.sign(message, key)

    @classmethod
    def signer_field(cls) -> str:
        return "recipient"

    @classmethod
    def _check(cls, message: statements_pb2.Feedback) -> None:
        what = "feedback"
        _check_reference(what, message)
        _require(bool(message.recipient), what, "names no recipient")
        _require(bool(message.ciphertext), what, "carries no ciphertext")
        _require(
            len(message.ciphertext) <= MAX_FEEDBACK_CIPHERTEXT_BYTES,
            what,
            over_limit(
                len(message.ciphertext),
                MAX_FEEDBACK_CIPHERTEXT_BYTES,
                "bytes",
                what="its ciphertext",
            ),
        )
        _require(len(message.key_commitment) == 32, what, "needs a 32-byte key commitment")
        _require(
            message.grant.item_id == FEEDBACK_ITEM_PREFIX + message.recipient
            and message.grant.recipient == message.originator
            and bool(message.grant.wrapped_key),
            what,
            "its grant must be for the originator and this feedback",
        )

    def open(self, manifest: AlertManifest, key: DecryptionKey) -> statements_pb2.FeedbackBody:
        """Decrypt the body as the originator: unwrap, check the key commitment, open, parse.

        Raises :class:`GrantError`, :class:`KeyCommitmentError` or :class:`DecryptionError` when
        anything was altered, and :class:`MalformedError` if ``manifest`` is another version's.
        """
        message = self.message
        if manifest.hash != message.manifest_hash:
            raise MalformedError("feedback is about another alert version than the one given")
        item_id = FEEDBACK_ITEM_PREFIX + message.recipient
        context = manifest.grant_context(item_id, manifest.originator, key.public_key.key_id)
        body_key = unwrap_item_key(bytes(message.grant.wrapped_key), key, context)
        item_context: ItemContext = manifest.item_context(item_id)
        check_key_commitment(body_key, item_context, bytes(message.key_commitment))
        plaintext = open_item(body_key, bytes(message.ciphertext), item_context)
        return parse_canonical(statements_pb2.FeedbackBody, plaintext, what="feedback body")


def grant_hash(grant: statements_pb2.Grant) -> bytes:
    """sha256 of a grant's canonical bytes, as an approval names it."""
    return sha256(encode(grant))
