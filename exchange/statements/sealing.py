"""Seal a drafted alert for publishing, and open an alert version as a recipient sees it.

Both are pure: keys, the clock and the hub's answer come in as arguments.  The client library
does the I/O around them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from exchange.crypto.items import (
    ItemContext,
    key_commitment,
    new_item_key,
    open_item,
    seal_item,
)
from exchange.crypto.keys import DecryptionKey, EncryptionKey, SigningKey, VerifyKey
from exchange.errors import CommitmentError, InvalidInputError, MalformedError
from exchange.statements.alert import (
    SUMMARY_ITEM_ID,
    AlertManifest,
    ItemHeader,
    KeyGrant,
    manifest_message,
)
from exchange.statements.codec import (
    encode,
    envelope_from_proto,
    envelope_to_proto,
    parse_canonical,
)
from exchange.v1 import alerts_pb2, payloads_pb2, statements_pb2

Policy = statements_pb2.ReleasePolicy

# Validates a decrypted payload; returns readable problems ("path: what is wrong"), empty if none.
PayloadCheck = Callable[[payloads_pb2.ItemPayload, str], Sequence[str]]

# Item statuses as a recipient sees them (the CLI's `show` prints these names).
VISIBLE = "VISIBLE"
WITHHELD = "WITHHELD"
EMBARGOED = "EMBARGOED"
REVOKED = "REVOKED"
EXPIRED = "EXPIRED"
INVALID = "INVALID"


@dataclass(frozen=True)
class PlainItem:
    """One item before sealing."""

    item_id: str
    policy: statements_pb2.ReleasePolicy
    payload: payloads_pb2.ItemPayload
    summary: bool = False


@dataclass(frozen=True)
class SealedAlert:
    """A publish request ready to send, with the item keys the originator keeps."""

    manifest: AlertManifest
    request: alerts_pb2.PublishRequest
    item_keys: Mapping[str, bytes]


def summary_item(summary: payloads_pb2.Summary, items: Sequence[PlainItem]) -> PlainItem:
    """The encrypted summary item, released at once to every agency in any item's audience."""
    audience = sorted({agency for item in items for agency in item.policy.audience})
    policy = Policy(audience=audience, release=Policy.IMMEDIATE, tlp=_strictest_tlp(items))
    return PlainItem(
        item_id=SUMMARY_ITEM_ID,
        policy=policy,
        payload=payloads_pb2.ItemPayload(summary=summary),
        summary=True,
    )


def _strictest_tlp(items: Sequence[PlainItem]) -> statements_pb2.ReleasePolicy.Tlp.ValueType:
    levels = [item.policy.tlp for item in items if item.policy.tlp != Policy.TLP_UNSPECIFIED]
    return max(levels, default=Policy.TLP_AMBER)


def grant_recipients(policy: statements_pb2.ReleasePolicy) -> list[str]:
    """Who gets a grant at publish: the audience of IMMEDIATE and EMBARGO items, nobody else."""
    if policy.release in (Policy.IMMEDIATE, Policy.EMBARGO):
        return list(policy.audience)
    return []


def seal_alert(
    *,
    originator: str,
    alert_id: str,
    version: int,
    items: Sequence[PlainItem],
    signing_key: SigningKey,
    own_key: EncryptionKey,
    recipient_keys: Mapping[str, EncryptionKey],
    created_at: datetime,
    previous_manifest_hash: bytes = b"",
) -> SealedAlert:
    """Encrypt every item under a fresh key, sign the manifest and wrap the grants.

    The originator always gets a grant of its own for every item, so that it can release the
    item later (approve a request, share onward) without keeping keys anywhere but the hub.
    """
    keys: dict[str, bytes] = {}
    headers: list[ItemHeader] = []
    ciphertexts: list[bytes] = []
    for item in items:
        key = new_item_key()
        keys[item.item_id] = key
        context = ItemContext(
            originator=originator, alert_id=alert_id, version=version, item_id=item.item_id
        )
        sealed = seal_item(key, encode(item.payload), context)
        headers.append(
            ItemHeader.build(
                item_id=item.item_id,
                policy=item.policy,
                sealed=sealed,
                key_commitment=key_commitment(key, context),
                summary=item.summary,
            )
        )
        ciphertexts.append(sealed.ciphertext)
    manifest = AlertManifest.sign(
        manifest_message(
            originator=originator,
            alert_id=alert_id,
            version=version,
            previous_manifest_hash=previous_manifest_hash,
            created_at=created_at,
            headers=headers,
        ),
        signing_key,
    )
    grants: list[statements_pb2.Grant] = []
    for item in items:
        recipients = [originator, *(a for a in grant_recipients(item.policy) if a != originator)]
        for recipient in recipients:
            recipient_key = own_key if recipient == originator else recipient_keys.get(recipient)
            if recipient_key is None:
                raise InvalidInputError(
                    f"item {item.item_id!r}: no verified encryption key for {recipient!r}",
                    reason="UNKNOWN_RECIPIENT",
                )
            grant = KeyGrant.make(
                manifest,
                item_id=item.item_id,
                item_key=keys[item.item_id],
                recipient=recipient,
                recipient_key=recipient_key,
            )
            grants.append(grant.message)
    request = alerts_pb2.PublishRequest(
        manifest=envelope_to_proto(manifest.envelope),
        items=[
            alerts_pb2.PublishedItem(header=h.raw, ciphertext=c)
            for h, c in zip(headers, ciphertexts, strict=True)
        ],
        grants=grants,
    )
    return SealedAlert(manifest=manifest, request=request, item_keys=keys)


# --- opening -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenedItem:
    """One item of an opened alert: its policy and status, and its payload when visible."""

    item_id: str
    status: str
    policy: statements_pb2.ReleasePolicy
    header_hash: bytes
    payload: payloads_pb2.ItemPayload | None = None
    detail: str = ""


@dataclass(frozen=True)
class OpenedVersion:
    """An alert version verified and decrypted as far as the caller may."""

    manifest: AlertManifest
    summary: payloads_pb2.Summary | None
    items: tuple[OpenedItem, ...]
    published_at: datetime | None = None
    versions: tuple[int, ...] = field(default=())
    retracted: bool = False
    summary_audience: tuple[str, ...] = ()
    """The summary item's audience: every agency the alert is addressed to."""


_STATE_STATUS = {
    alerts_pb2.ItemView.WITHHELD: WITHHELD,
    alerts_pb2.ItemView.EMBARGOED: EMBARGOED,
    alerts_pb2.ItemView.REVOKED: REVOKED,
    alerts_pb2.ItemView.EXPIRED: EXPIRED,
}


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def open_version(
    view: alerts_pb2.AlertView,
    *,
    recipient: str,
    decryption_key: DecryptionKey,
    originator_keys: Mapping[str, VerifyKey],
    now: datetime,
    validate: PayloadCheck | None = None,
    retired_keys: Mapping[str, DecryptionKey] | None = None,
) -> OpenedVersion:
    """Verify the manifest and every header, then decrypt what the caller holds grants for.

    A grant wrapped to one of ``retired_keys`` (by key id: encryption keys the recipient has
    since rotated away from) is opened with that key, any other with ``decryption_key``.

    Tampering — a bad signature, a header or ciphertext that does not match its commitment, a
    grant that does not open or a key that fails its commitment — raises
    :class:`VerificationError`.  A payload that decrypts but fails validation is reported as
    ``INVALID``, never hidden.  Items under embargo or past expiry are not opened even if the
    hub sent a key.
    """
    manifest = AlertManifest.verify(envelope_from_proto(view.manifest), originator_keys)
    summary: payloads_pb2.Summary | None = None
    opened: list[OpenedItem] = []
    seen: set[str] = set()
    summary_audience: tuple[str, ...] = ()
    for index, item_view in enumerate(view.items):
        header = ItemHeader.parse(bytes(item_view.header))
        if not manifest.commits_to(header):
            raise CommitmentError(f"item {header.item_id!r} is not committed to by the manifest")
        if header.item_id in seen:
            raise MalformedError(f"item {header.item_id!r} delivered twice")
        seen.add(header.item_id)
        key = decryption_key
        if retired_keys and item_view.HasField("grant"):
            key = retired_keys.get(item_view.grant.recipient_key_id, decryption_key)
        item = _open_item(manifest, header, item_view, recipient, key, now)
        if item.payload is not None and validate is not None:
            problems = validate(item.payload, f"items[{index}]")
            if problems:
                item = OpenedItem(
                    item_id=item.item_id,
                    status=INVALID,
                    policy=item.policy,
                    header_hash=item.header_hash,
                    payload=item.payload,
                    detail="; ".join(problems),
                )
        if header.message.summary:
            summary_audience = tuple(header.policy.audience)
            if item.payload is not None and item.payload.WhichOneof("body") == "summary":
                summary = item.payload.summary
            continue
        opened.append(item)
    published_at = (
        view.published_at.ToDatetime(tzinfo=UTC) if view.HasField("published_at") else None
    )
    return OpenedVersion(
        manifest=manifest,
        summary=summary,
        items=tuple(opened),
        published_at=published_at,
        versions=tuple(view.versions),
        retracted=view.retracted,
        summary_audience=summary_audience,
    )


def _open_item(
    manifest: AlertManifest,
    header: ItemHeader,
    item_view: alerts_pb2.ItemView,
    recipient: str,
    key: DecryptionKey,
    now: datetime,
) -> OpenedItem:
    policy = header.policy

    def status(name: str, detail: str = "") -> OpenedItem:
        return OpenedItem(header.item_id, name, policy, header.hash, None, detail)

    if policy.HasField("expires_at") and _aware(policy.expires_at.ToDatetime()) <= now:
        return status(EXPIRED, f"expired at {policy.expires_at.ToJsonString()}")
    if item_view.state in _STATE_STATUS:
        return status(_STATE_STATUS[item_view.state])
    if not item_view.HasField("grant"):
        return status(WITHHELD)
    if policy.release == Policy.EMBARGO and _aware(policy.embargo_until.ToDatetime()) > now:
        return status(EMBARGOED, f"embargoed until {policy.embargo_until.ToJsonString()}")
    ciphertext = bytes(item_view.ciphertext)
    header.check_ciphertext(ciphertext)
    item_key = KeyGrant(item_view.grant).open(manifest, header, recipient=recipient, key=key)
    plaintext = open_item(item_key, ciphertext, manifest.item_context(header.item_id))
    payload = parse_canonical(payloads_pb2.ItemPayload, plaintext, what=f"item {header.item_id!r}")
    return OpenedItem(header.item_id, VISIBLE, policy, header.hash, payload)
