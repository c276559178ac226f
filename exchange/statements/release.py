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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar

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


class NamesAlertVersion(Protocol):
    """Anything naming one alert version: a manifest, or a statement message about one."""

    @property
    def originator(self) -> str: ...
    @property
    def alert_id(self) -> str: ...
    @property
    def version(self) -> int: ...


class NamesManifest(NamesAlertVersion, Protocol):
    """A statement message that names one alert version and its manifest hash."""

    @property
    def manifest_hash(self) -> bytes: ...


@dataclass(frozen=True)
class Required:
    """A field a statement must fill, and what its absence is called."""

    field: str
    problem: str
    strip: bool = False
    """Whether white space alone counts as empty."""


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

    # The declaration of a kind of statement, in its class body: payload type and message, how
    # errors name it, the field naming its signer, whether it names one alert version (and so
    # carries the manifest reference), the fields it must fill and its texts' limits.
    KIND: ClassVar[str]
    MESSAGE: ClassVar[type[Message]]
    WHAT: ClassVar[str]
    SIGNER: ClassVar[str] = "originator"
    ABOUT_VERSION: ClassVar[bool] = True
    REQUIRED: ClassVar[tuple[Required, ...]] = ()
    TEXTS: ClassVar[tuple[tuple[str, int], ...]] = ()

    envelope: Envelope
    message: M

    @classmethod
    def _about(
        cls, manifest: AlertManifest, *, created_at: datetime, key: SigningKey, **fields: object
    ) -> Self:
        """Sign a statement about ``manifest``'s alert version carrying ``fields``."""
        return cls._new(
            created_at=created_at,
            key=key,
            originator=manifest.originator,
            alert_id=manifest.alert_id,
            version=manifest.version,
            manifest_hash=manifest.hash,
            **fields,
        )

    @classmethod
    def _new(cls, *, created_at: datetime, key: SigningKey, **fields: object) -> Self:
        """Sign a new statement of this kind with ``fields``, made at ``created_at``."""
        build: Callable[..., Any] = cls.MESSAGE
        message = build(**fields)
        message.created_at.FromDatetime(created_at)
        return cls.sign(message, key)

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
        return cls.SIGNER

    @classmethod
    def _check(cls, message: M) -> None:
        """The declared invariants, then the kind's own (:meth:`_check_more`), then the texts."""
        if cls.ABOUT_VERSION:
            _check_reference(cls.WHAT, message)  # type: ignore[arg-type]
        for required in cls.REQUIRED:
            value = getattr(message, required.field)
            _require(bool(value.strip() if required.strip else value), cls.WHAT, required.problem)
        cls._check_more(message)
        for field, limit in cls.TEXTS:
            _check_text(cls.WHAT, field, getattr(message, field), limit)

    @classmethod
    def _check_more(cls, message: M) -> None:
        """Invariants of one kind beyond its declaration."""

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
    WHAT = "release request"
    SIGNER = "requester"
    REQUIRED = (
        Required("requester", "names no requester"),
        Required("item_id", "names no item"),
        Required("reason", "gives no reason", strip=True),
    )
    TEXTS = (("reason", MAX_REASON_CHARS),)

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
        return cls._about(
            manifest,
            created_at=created_at,
            key=key,
            requester=requester,
            item_id=item_id,
            release_to="" if release_to == requester else release_to,
            reason=reason,
            nonce=os.urandom(NONCE_BYTES),
        )

    @classmethod
    def _check_more(cls, message: statements_pb2.ReleaseRequest) -> None:
        what = cls.WHAT
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
    WHAT = "release decision"
    ABOUT_VERSION = False

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
        return cls._new(
            created_at=created_at,
            key=key,
            originator=request.message.originator,
            request_hash=request.hash,
            outcome=Outcome.APPROVED,
            grant_hash=grant.hash,
        )

    @classmethod
    def deny(
        cls, request: ReleaseRequest, *, reason: str, created_at: datetime, key: SigningKey
    ) -> ReleaseDecision:
        """Deny ``request``, saying why."""
        return cls._new(
            created_at=created_at,
            key=key,
            originator=request.message.originator,
            request_hash=request.hash,
            outcome=Outcome.DENIED,
            reason=reason,
        )

    @classmethod
    def _check(cls, message: statements_pb2.ReleaseDecision) -> None:
        what = cls.WHAT
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
    WHAT = "revocation"
    REQUIRED = (Required("item_id", "names no item"),)
    TEXTS = (("reason", MAX_REASON_CHARS),)

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
        return cls._about(
            manifest, created_at=created_at, key=key, item_id=item_id, agency=agency, reason=reason
        )

    @classmethod
    def _check_more(cls, message: statements_pb2.Revocation) -> None:
        _require(
            message.agency != message.originator, cls.WHAT, "the originator cannot lose its item"
        )


class Retraction(SignedStatement[statements_pb2.Retraction]):
    """The originator withdraws an alert (every version of it)."""

    KIND = "retraction"
    MESSAGE = statements_pb2.Retraction
    WHAT = "retraction"
    REQUIRED = (Required("reason", "gives no reason", strip=True),)
    TEXTS = (("reason", MAX_REASON_CHARS),)

    @classmethod
    def build(
        cls, manifest: AlertManifest, *, reason: str, created_at: datetime, key: SigningKey
    ) -> Retraction:
        """A signed retraction naming the latest version's manifest."""
        return cls._about(manifest, created_at=created_at, key=key, reason=reason)


class Receipt(SignedStatement[statements_pb2.Receipt]):
    """A recipient's proof of receipt: which item commitments it could open, which were withheld."""

    KIND = "receipt"
    MESSAGE = statements_pb2.Receipt
    WHAT = "receipt"
    SIGNER = "recipient"
    REQUIRED = (Required("recipient", "names no recipient"),)

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
        return cls._about(
            manifest,
            created_at=created_at,
            key=key,
            recipient=recipient,
            opened_header_hashes=list(opened),
            withheld_header_hashes=list(withheld),
        )

    @classmethod
    def _check_more(cls, message: statements_pb2.Receipt) -> None:
        what = cls.WHAT
        hashes = [*message.opened_header_hashes, *message.withheld_header_hashes]
        _require(all(len(h) == 32 for h in hashes), what, "header hashes are 32 bytes")
        _require(len(set(hashes)) == len(hashes), what, "names one header twice")


class PurgeAck(SignedStatement[statements_pb2.PurgeAck]):
    """A recipient's statement that it has deleted item I of manifest H."""

    KIND = "purge_ack"
    MESSAGE = statements_pb2.PurgeAck
    WHAT = "purge acknowledgement"
    SIGNER = "recipient"
    REQUIRED = (Required("recipient", "names no recipient"), Required("item_id", "names no item"))

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
        return cls._about(
            manifest, created_at=created_at, key=key, recipient=recipient, item_id=item_id
        )


class Feedback(SignedStatement[statements_pb2.Feedback]):
    """A recipient's outcome for an alert version, encrypted to the originator.

    The body is sealed like an item (AES-256-GCM under a fresh key, bound to its context, with a
    key commitment) and the key is wrapped for the originator's encryption key like a grant, so
    the hub relays it without being able to read it.
    """

    KIND = "feedback"
    MESSAGE = statements_pb2.Feedback
    WHAT = "feedback"
    SIGNER = "recipient"
    REQUIRED = (
        Required("recipient", "names no recipient"),
        Required("ciphertext", "carries no ciphertext"),
    )

    @classmethod
    def seal(
        cls,
        manifest: AlertManifest,
        *,
        recipient: str,
        outcome: FeedbackOutcome.ValueType,
        note: str,
        originator_key: EncryptionKey,
        own_key: EncryptionKey | None = None,
        created_at: datetime,
        key: SigningKey,
    ) -> Feedback:
        """Encrypt ``outcome`` and ``note`` to the originator and sign the result.

        With ``own_key`` (the recipient's own encryption key) the body key is wrapped for the
        recipient too, so that it can read its feedback back from the log.
        """
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
        own: dict[str, object] = {}
        if own_key is not None:
            own["sender_grant"] = KeyGrant.make(
                manifest,
                item_id=item_id,
                item_key=body_key,
                recipient=recipient,
                recipient_key=own_key,
            ).message
        return cls._about(
            manifest,
            created_at=created_at,
            key=key,
            recipient=recipient,
            ciphertext=sealed.ciphertext,
            key_commitment=key_commitment(body_key, context),
            grant=grant.message,
            **own,
        )

    @classmethod
    def _check_more(cls, message: statements_pb2.Feedback) -> None:
        what = cls.WHAT
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
        if message.HasField("sender_grant"):
            _require(
                message.sender_grant.item_id == FEEDBACK_ITEM_PREFIX + message.recipient
                and message.sender_grant.recipient == message.recipient
                and bool(message.sender_grant.wrapped_key),
                what,
                "its sender's grant must be for the recipient and this feedback",
            )

    def open(self, manifest: AlertManifest, key: DecryptionKey) -> statements_pb2.FeedbackBody:
        """Decrypt the body as the originator, or as the recipient who sent it (with the grant
        it made for itself): unwrap, check the key commitment, open, parse.

        Raises :class:`GrantError`, :class:`KeyCommitmentError` or :class:`DecryptionError` when
        anything was altered or the key is not one it was wrapped for (a sender's feedback from
        before feedback carried a grant for its sender), and :class:`MalformedError` if
        ``manifest`` is another version's.
        """
        message = self.message
        if manifest.hash != message.manifest_hash:
            raise MalformedError("feedback is about another alert version than the one given")
        item_id = FEEDBACK_ITEM_PREFIX + message.recipient
        reader, grant = manifest.originator, message.grant
        own = message.sender_grant
        if message.HasField("sender_grant") and key.public_key.key_id == own.recipient_key_id:
            reader, grant = message.recipient, own
        context = manifest.grant_context(item_id, reader, key.public_key.key_id)
        body_key = unwrap_item_key(bytes(grant.wrapped_key), key, context)
        item_context: ItemContext = manifest.item_context(item_id)
        check_key_commitment(body_key, item_context, bytes(message.key_commitment))
        plaintext = open_item(body_key, bytes(message.ciphertext), item_context)
        return parse_canonical(statements_pb2.FeedbackBody, plaintext, what="feedback body")


def grant_hash(grant: statements_pb2.Grant) -> bytes:
    """sha256 of a grant's canonical bytes, as an approval names it."""
    return sha256(encode(grant))
