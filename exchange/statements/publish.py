"""The hub's checks on a publish request: pure rules over the request and the registry.

The hub cannot read an alert, but it can and must check everything that is not secret: the
originator's signature, that every header is the committed one, that every ciphertext is the
one its header names, and that grants go only where the signed policy says.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from exchange.crypto.encoding import lp
from exchange.crypto.keys import VerifyKey
from exchange.errors import (
    FieldViolation,
    InvalidInputError,
    NotPermittedError,
    TooLargeError,
)
from exchange.limits import over_limit
from exchange.statements.alert import AlertManifest, ItemHeader
from exchange.statements.codec import encode, envelope_from_proto
from exchange.v1 import alerts_pb2, statements_pb2

Policy = statements_pb2.ReleasePolicy

KNOWN_LOG_SIZE_METADATA = "exchange-known-log-size"
"""Call metadata in which a publisher names the log size it trusts; the receipt then proves its
checkpoint consistent with that size (``AlertService.Publish``)."""


@dataclass(frozen=True)
class PublishLimits:
    """Application limits, kept below the transport's so the hub answers with details."""

    max_items: int = 64
    max_ciphertext_bytes: int = 8 * 1024 * 1024
    max_request_bytes: int = 32 * 1024 * 1024


@dataclass(frozen=True)
class CheckedItem:
    header: ItemHeader
    ciphertext: bytes
    audience: tuple[str, ...]
    grants: tuple[statements_pb2.Grant, ...]

    @property
    def embargo_until(self) -> datetime | None:
        policy = self.header.policy
        if policy.release != Policy.EMBARGO:
            return None
        return policy.embargo_until.ToDatetime(tzinfo=UTC)

    @property
    def expires_at(self) -> datetime | None:
        policy = self.header.policy
        if not policy.HasField("expires_at"):
            return None
        return policy.expires_at.ToDatetime(tzinfo=UTC)

    @property
    def release_name(self) -> str:
        return Policy.Release.Name(self.header.policy.release)


@dataclass(frozen=True)
class CheckedPublish:
    """A publish request that passed every check the hub can make."""

    manifest: AlertManifest
    items: tuple[CheckedItem, ...]
    digest: bytes
    manifest_envelope: bytes
    """The manifest's envelope as the hub received it, unknown fields dropped: the bytes the
    store keeps and logs, so that what is logged is what every verifier reads."""

    @functools.cached_property
    def recipients(self) -> tuple[str, ...]:
        """Every agency in any item's audience, the originator excluded (worked out once: the
        writer asks for it several times per publish)."""
        agencies = {a for item in self.items for a in item.audience}
        agencies.discard(self.manifest.originator)
        return tuple(sorted(agencies))


def request_digest(
    request: alerts_pb2.PublishRequest, ciphertext_hashes: Sequence[bytes] | None = None
) -> bytes:
    """A digest of everything in a publish request, to recognize a retry of the same bytes.

    ``ciphertext_hashes``, when given, are the sha256 of each item's ciphertext in order (as
    :meth:`ItemHeader.check_ciphertext` returns them), so that no ciphertext is hashed twice.
    """
    if ciphertext_hashes is None:
        ciphertext_hashes = [hashlib.sha256(item.ciphertext).digest() for item in request.items]
    parts: list[bytes] = [encode(request.manifest)]
    for item, ciphertext_hash in zip(request.items, ciphertext_hashes, strict=True):
        parts += [bytes(item.header), ciphertext_hash]
    parts += [encode(g) for g in request.grants]
    return hashlib.sha256(lp(b"exchange/publish/v1", *parts)).digest()


def check_publish(
    request: alerts_pb2.PublishRequest,
    *,
    caller: str,
    caller_keys: Mapping[str, VerifyKey],
    encryption_key_ids: Mapping[str, str],
    limits: PublishLimits,
) -> CheckedPublish:
    """Verify a publish request from ``caller``.

    ``caller_keys`` are the caller's registered signing keys; ``encryption_key_ids`` maps every
    registered, unrevoked agency to its current encryption key id.  Raises
    :class:`SignatureError`/:class:`UnknownKeyError` for the signature, ``NotPermittedError``
    when the manifest names another originator, :class:`CommitmentError` for headers and
    ciphertexts, :class:`InvalidInputError` with field violations for policies and grants, and
    :class:`TooLargeError` past the limits.
    """
    if not request.HasField("manifest"):
        raise InvalidInputError(
            "publish request has no manifest",
            violations=[FieldViolation("manifest", "required")],
        )
    size = request.ByteSize()
    if size > limits.max_request_bytes:
        raise TooLargeError(
            over_limit(size, limits.max_request_bytes, "bytes", what="the publish request")
        )
    if len(request.items) > limits.max_items:
        raise TooLargeError(
            over_limit(len(request.items), limits.max_items, "items", what="the alert", verb="has")
        )
    manifest = AlertManifest.verify(envelope_from_proto(request.manifest), caller_keys)
    if manifest.originator != caller:
        raise NotPermittedError(
            f"manifest names originator {manifest.originator!r}; you are {caller!r}",
            reason="ORIGINATOR_MISMATCH",
        )
    headers = [ItemHeader.parse(bytes(item.header)) for item in request.items]
    manifest.check_headers(headers)
    violations: list[FieldViolation] = []
    grants_by_item: dict[str, list[statements_pb2.Grant]] = {h.item_id: [] for h in headers}
    for index, grant in enumerate(request.grants):
        where = f"grants[{index}]"
        if grant.item_id not in grants_by_item:
            violations.append(FieldViolation(f"{where}.item_id", f"no item {grant.item_id!r}"))
            continue
        if any(g.recipient == grant.recipient for g in grants_by_item[grant.item_id]):
            violations.append(FieldViolation(f"{where}.recipient", "second grant for one recipient"))
            continue
        grants_by_item[grant.item_id].append(grant)
    checked: list[CheckedItem] = []
    ciphertext_hashes: list[bytes] = []
    for index, (header, item) in enumerate(zip(headers, request.items, strict=True)):
        ciphertext = bytes(item.ciphertext)
        if len(ciphertext) > limits.max_ciphertext_bytes:
            raise TooLargeError(
                over_limit(
                    len(ciphertext),
                    limits.max_ciphertext_bytes,
                    "bytes",
                    what=f"item {header.item_id!r}",
                )
            )
        ciphertext_hashes.append(header.check_ciphertext(ciphertext))
        violations += _check_policy(header, f"items[{index}].header.policy", encryption_key_ids)
        grants = grants_by_item[header.item_id]
        violations += _check_grants(header, grants, caller, encryption_key_ids, index)
        checked.append(
            CheckedItem(
                header=header,
                ciphertext=ciphertext,
                audience=tuple(header.policy.audience),
                grants=tuple(grants),
            )
        )
    if violations:
        raise InvalidInputError(
            "publish request breaks its own release policies",
            violations=violations,
            reason="POLICY_INVALID",
        )
    return CheckedPublish(
        manifest=manifest,
        items=tuple(checked),
        digest=request_digest(request, ciphertext_hashes),
        manifest_envelope=_received_envelope(request.manifest),
    )


def _received_envelope(envelope: statements_pb2.Envelope) -> bytes:
    """The canonical bytes of a received envelope without the fields this version cannot read."""
    received = statements_pb2.Envelope()
    received.CopyFrom(envelope)
    received.DiscardUnknownFields()
    return encode(received)


def _check_policy(
    header: ItemHeader, where: str, encryption_key_ids: Mapping[str, str]
) -> list[FieldViolation]:
    policy = header.policy
    problems: list[FieldViolation] = []
    if policy.release == Policy.RELEASE_UNSPECIFIED:
        problems.append(FieldViolation(f"{where}.release", "required"))
    if policy.tlp == Policy.TLP_UNSPECIFIED:
        problems.append(FieldViolation(f"{where}.tlp", "required"))
    if policy.release == Policy.EMBARGO and not policy.HasField("embargo_until"):
        problems.append(FieldViolation(f"{where}.embargo_until", "required with EMBARGO"))
    if len(set(policy.audience)) != len(policy.audience):
        problems.append(FieldViolation(f"{where}.audience", "names an agency twice"))
    for agency in policy.audience:
        if agency not in encryption_key_ids:
            problems.append(FieldViolation(f"{where}.audience", f"no registered agency {agency!r}"))
    return problems


def _check_grants(
    header: ItemHeader,
    grants: list[statements_pb2.Grant],
    originator: str,
    encryption_key_ids: Mapping[str, str],
    index: int,
) -> list[FieldViolation]:
    policy = header.policy
    allowed = {originator}
    if policy.release in (Policy.IMMEDIATE, Policy.EMBARGO):
        allowed |= set(policy.audience)
    where = f"items[{index}] ({header.item_id})"
    problems: list[FieldViolation] = []
    for grant in grants:
        if grant.recipient not in allowed:
            problems.append(
                FieldViolation(
                    f"{where}.grants",
                    f"grant for {grant.recipient!r}, which its policy does not release to",
                )
            )
        elif grant.recipient_key_id != encryption_key_ids.get(grant.recipient):
            problems.append(
                FieldViolation(
                    f"{where}.grants",
                    f"grant for {grant.recipient!r} is wrapped for a key that is not its current one",
                )
            )
        if not grant.wrapped_key:
            problems.append(FieldViolation(f"{where}.grants", "empty wrapped key"))
    recipients = {g.recipient for g in grants}
    missing = sorted(allowed - recipients - {originator}) if policy.release in (
        Policy.IMMEDIATE,
        Policy.EMBARGO,
    ) else []
    if missing:
        problems.append(
            FieldViolation(f"{where}.grants", f"no grant for audience member(s) {', '.join(missing)}")
        )
    return problems
