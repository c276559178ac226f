"""``Client``: one agency talking to the hub over mutual TLS.

The client is thin: sealing, verification and decryption are the pure functions of
:mod:`exchange.statements`; this module does the I/O around them (gRPC, the profile's state
directory, the clock) and turns what comes back into the domain objects of
:mod:`exchange_client._internal.models`.  Every gRPC failure passes through
:func:`~exchange_client._internal.status.hub_errors`, so no ``grpc.RpcError`` escapes.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self, TypeVar

import grpc

from exchange import pki
from exchange.alerts.draft import Draft
from exchange.alerts.validate import validate_payload
from exchange.alerts.watchlist import Watchlist, WatchlistUpdate
from exchange.crypto.keys import EncryptionKey, VerifyKey
from exchange.errors import (
    ConflictError,
    ExchangeError,
    InvalidInputError,
    MalformedError,
    NotFoundError,
    UnavailableError,
    UnknownKeyError,
    VerificationError,
)
from exchange.statements import release
from exchange.statements.agency_keys import AgencyKeys
from exchange.statements.alert import AlertManifest, ItemHeader, KeyGrant
from exchange.statements.codec import (
    encode,
    envelope_from_proto,
    envelope_to_proto,
    parse_canonical,
    sha256,
)
from exchange.statements.publish import KNOWN_LOG_SIZE_METADATA
from exchange.statements.sealing import (
    INVALID,
    REVOKED,
    VISIBLE,
    WITHHELD,
    OpenedVersion,
    PlainItem,
    open_version,
    seal_alert,
    summary_item,
)
from exchange.statements.sealing import (
    OpenedItem as SealedOpenedItem,
)
from exchange.v1 import (
    alerts_pb2,
    alerts_pb2_grpc,
    directory_pb2,
    directory_pb2_grpc,
    payloads_pb2,
    release_pb2,
    release_pb2_grpc,
    statements_pb2,
)
from exchange_client._internal.audit import Auditor, logged_envelope, logged_manifest
from exchange_client._internal.feed import (
    FeedSubscription,
    Reconnecting,
    check_heartbeat,
    check_sequence,
)
from exchange_client._internal.models import (
    AgencyInfo,
    DeliveryRecord,
    FeedEvent,
    InboxEntry,
    ItemPolicy,
    OpenedAlert,
    OpenedItem,
    Receipt,
    ReleaseRequest,
    StatementResult,
    grading_label,
    timestamp_or_none,
)
from exchange_client._internal.profile import Profile
from exchange_client._internal.retry import Backoff, RetrySchedule
from exchange_client._internal.state import ClientState, OutboxEntry, SentStatements
from exchange_client._internal.status import hub_errors
from exchange_client._internal.watchlist_updates import WatchlistUpdates

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""gRPC transport limit each way; above the hub's own limits, so the hub answers with details."""

PUBLISH_RETRY_SECONDS = 30.0
"""How long a publish keeps resending one sealed request while the hub is unreachable."""

PUBLISH_BACKOFF = Backoff(first_delay=0.5, max_delay=5.0)
"""The waits between those resends (the request stays in the outbox if all fail)."""

# Publishing encrypts to partner keys verified at most this many seconds ago; a hub refusal of
# the audience or of a grant's key fetches them again at once (see Client.publish).
PARTNER_KEYS_MAX_AGE = 60.0

_PUBLISH_METHOD = "/exchange.v1.AlertService/Publish"

FEEDBACK_OUTCOMES = ("SEIZED", "NOTHING_FOUND", "INVESTIGATING", "FALSE_POSITIVE")
"""The outcomes a recipient can report with :meth:`Client.feedback`."""

_Statement = TypeVar("_Statement", bound="release.SignedStatement[Any]")

_CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    # After a hub restart the channel reconnects within a few seconds, not grpc's default of
    # up to two minutes, so that the client's own retries find the hub back soon.
    ("grpc.initial_reconnect_backoff_ms", 500),
    ("grpc.max_reconnect_backoff_ms", 5000),
]


@dataclass(frozen=True)
class _PartnerKeys:
    """One agency's directory record as checked against the CA in our profile."""

    agency_id: str
    revoked: bool
    latest: AgencyKeys | None
    verify_keys: Mapping[str, VerifyKey] = field(default_factory=dict)
    problem: str = ""
    ca_fingerprint: str = ""

    @property
    def verified(self) -> bool:
        return self.latest is not None


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _check_alert_id(alert_id: str) -> str:
    try:
        return str(uuid.UUID(alert_id))
    except ValueError as e:
        raise InvalidInputError(
            f"{alert_id!r} is not an alert id (a UUID such as "
            "0b0e3c1e-8f5d-4d5e-9a57-3f0d0f6f2a10)",
            reason="INVALID_ALERT_ID",
        ) from e


def _flag_messages(
    watchlist: Watchlist, payload: payloads_pb2.ItemPayload, path: str
) -> tuple[str, ...]:
    return tuple(flag.message for flag in watchlist.match_payload(payload, path))


def _payload_problems(payload: payloads_pb2.ItemPayload, path: str) -> list[str]:
    return [str(violation) for violation in validate_payload(payload, path)]


class Client:
    """A connection to the hub acting as the agency of ``profile``.

    ``hub`` (``HOST:PORT``) overrides the profile's hub address; ``clock`` returns the current
    time as an aware datetime (tests freeze it; it decides embargo and expiry on open and the
    validity of certificates); ``timeout`` bounds each unary call in seconds;
    ``retry_seconds`` is how long :meth:`publish` and :meth:`flush_outbox` keep resending
    while the hub is unreachable (0: one attempt), unless a call says otherwise, and
    ``on_retry(seconds, error)`` is told of each wait before such a resend.  Use it as a
    context manager, or call :meth:`close`, to close the channel.
    """

    def __init__(
        self,
        profile: Profile,
        *,
        hub: str | None = None,
        clock: Callable[[], datetime] | None = None,
        timeout: float = 10.0,
        retry_seconds: float = PUBLISH_RETRY_SECONDS,
        on_retry: Reconnecting | None = None,
    ) -> None:
        if retry_seconds < 0:
            raise InvalidInputError("retry_seconds must be zero or more")
        self.profile = profile
        self.target = hub or profile.hub_address
        self._clock = clock or _utc_now
        self._timeout = timeout
        self._retry_seconds = retry_seconds
        self._on_retry = on_retry
        self._sleep: Callable[[float], None] = time.sleep
        self._monotonic: Callable[[], float] = time.monotonic
        self._state = ClientState(profile.state_dir)
        credentials = grpc.ssl_channel_credentials(
            root_certificates=profile.hub_ca_certificate_pem,
            private_key=profile.tls_key_pem,
            certificate_chain=profile.tls_certificate_pem,
        )
        self._channel = grpc.secure_channel(self.target, credentials, options=_CHANNEL_OPTIONS)
        self._directory_stub = directory_pb2_grpc.DirectoryServiceStub(self._channel)
        self._alerts_stub = alerts_pb2_grpc.AlertServiceStub(self._channel)
        self._release_stub = release_pb2_grpc.ReleaseServiceStub(self._channel)
        self._sent = SentStatements(profile.state_dir)
        # Publish sends bytes exactly as sealed and saved: no re-serialization between retries.
        self._publish_bytes = self._channel.unary_unary(
            _PUBLISH_METHOD,
            request_serializer=None,
            response_deserializer=alerts_pb2.PublishResponse.FromString,
        )
        self._partners: dict[str, _PartnerKeys] | None = None
        self._partners_fetched_at = 0.0  # time.monotonic() of the last ListAgencies
        # The shipped watchlist merged with the WATCHLIST alerts this agency has verified.
        self._watchlist_updates = WatchlistUpdates(profile.state_dir)
        self._watchlist = self._watchlist_updates.merged()
        # The audit log: checkpoints, inclusion proofs, cosignatures (see _internal/audit.py).
        self.auditor = Auditor(
            self._channel,
            agency_id=profile.agency_id,
            state_dir=profile.state_dir,
            checkpoint_verifier_key=profile.checkpoint_verifier_key,
            witness_key=profile.witness_key,
            target=self.target,
            timeout=timeout,
            clock=self._clock,
            partner_keys=lambda: {
                p.agency_id: p.latest for p in self._load_partners().values() if p.latest
            },
            signing_keys=lambda: {
                p.agency_id: list(p.verify_keys.values()) for p in self._load_partners().values()
            },
            require_cosigners=profile.require_cosigners,
            max_cosignature_age_seconds=profile.max_cosignature_age_seconds,
        )

    # --- lifetime ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the channel; open feed subscriptions end with it."""
        self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # --- directory ----------------------------------------------------------------------------

    def agencies(self) -> list[AgencyInfo]:
        """Every agency on the hub, each one's keys verified against the CA in this profile.

        The hub's copy of a CA certificate is never trusted: an agency the profile holds no CA
        for, or whose key statements do not verify against it, is listed unverified with the
        reason, and is never encrypted to.
        """
        partners = self._load_partners(refresh=True)
        return [self._agency_info(partner) for partner in partners.values()]

    def _agency_info(self, partner: _PartnerKeys) -> AgencyInfo:
        latest = partner.latest
        return AgencyInfo(
            agency_id=partner.agency_id,
            key_number=latest.key_number if latest else 0,
            signing_key_fingerprint=latest.verify_key.fingerprint if latest else "",
            encryption_key_fingerprint=latest.encryption_key.fingerprint if latest else "",
            revoked=partner.revoked,
            verified=partner.verified,
            problem=partner.problem,
            ca_fingerprint=partner.ca_fingerprint,
        )

    def _load_partners(
        self, *, refresh: bool = False, max_age: float | None = None
    ) -> dict[str, _PartnerKeys]:
        """The hub's agencies with their key statements verified against this profile's CAs.

        Fetched again when ``refresh`` is set or the copy held is older than ``max_age`` seconds.
        """
        stale = max_age is not None and time.monotonic() - self._partners_fetched_at > max_age
        if self._partners is None or refresh or stale:
            with hub_errors(self.target):
                response = self._directory_stub.ListAgencies(
                    directory_pb2.ListAgenciesRequest(), timeout=self._timeout
                )
            now = self._clock()
            self._partners = {
                record.agency_id: self._check_record(record, now)
                for record in sorted(response.agencies, key=lambda r: r.agency_id)
            }
            self._partners_fetched_at = time.monotonic()
        return self._partners

    def _check_record(self, record: directory_pb2.AgencyRecord, now: datetime) -> _PartnerKeys:
        ca = self.profile.partner_cas.get(record.agency_id)
        if ca is None:
            return _PartnerKeys(
                agency_id=record.agency_id,
                revoked=record.revoked,
                latest=None,
                problem=(
                    f"this profile holds no CA certificate for {record.agency_id!r}: obtain it "
                    "out of band and add it under [partners] in profile.toml"
                ),
            )
        problems: list[str] = []
        if bytes(record.ca_certificate) != pki.certificate_to_der(ca):
            problems.append("the hub serves a CA certificate that differs from this profile's")
        verified: list[AgencyKeys] = []
        newest_verified = False
        for envelope in record.keys:
            newest_verified = False
            try:
                keys = AgencyKeys.verify(envelope_from_proto(envelope), ca, now=now)
            except ExchangeError as e:
                problems.append(f"a key statement does not verify against its CA: {e.message}")
                continue
            if keys.agency_id != record.agency_id:
                problems.append(f"a key statement names {keys.agency_id!r}")
                continue
            verified.append(keys)
            newest_verified = True
        # Only the newest statement may be encrypted to: falling back to an older key when the
        # newest fails would hide the failure (and could be a rotated-out, compromised key).
        latest = verified[-1] if newest_verified else None
        if latest is None and not problems:
            problems.append("the hub lists no key statement for it")
        return _PartnerKeys(
            agency_id=record.agency_id,
            revoked=record.revoked,
            latest=latest,
            verify_keys={k.verify_key.key_id: k.verify_key for k in verified},
            problem="; ".join(problems),
            ca_fingerprint=pki.fingerprint(ca),
        )

    def _verify_keys_of(self, originator: str) -> dict[str, VerifyKey]:
        partners = self._load_partners()
        if originator not in partners:
            partners = self._load_partners(refresh=True)
        partner = partners.get(originator)
        keys: dict[str, VerifyKey] = dict(partner.verify_keys) if partner else {}
        if originator == self.profile.agency_id:
            own = self.profile.signing_key.public_key
            keys[own.key_id] = own
        if not keys:
            why = partner.problem if partner else "the hub lists no such agency"
            raise UnknownKeyError(f"cannot verify statements of {originator!r}: {why}")
        return keys

    def _recipient_keys(
        self, recipients: Iterable[str], *, max_age: float | None = None
    ) -> dict[str, EncryptionKey]:
        """The verified current encryption key of each recipient other than this agency.

        Fresh from the hub unless ``max_age`` allows a copy that recent, so that a rotated or
        revoked key shows at once; always verified against this profile's CAs.
        """
        others = sorted(set(recipients) - {self.profile.agency_id})
        if not others:
            return {}
        partners = self._load_partners(refresh=max_age is None, max_age=max_age)
        keys: dict[str, EncryptionKey] = {}
        for recipient in others:
            partner = partners.get(recipient)
            if partner is None:
                raise InvalidInputError(
                    f"no agency {recipient!r} on the hub: check the item audiences "
                    "(`exchange agencies` lists the agencies)",
                    reason="UNKNOWN_RECIPIENT",
                )
            if partner.revoked:
                raise InvalidInputError(
                    f"agency {recipient!r} is revoked: remove it from the item audiences",
                    reason="RECIPIENT_REVOKED",
                )
            if partner.latest is None:
                raise VerificationError(
                    f"will not encrypt to {recipient!r}: {partner.problem}",
                    reason="RECIPIENT_KEYS_UNVERIFIED",
                )
            keys[recipient] = partner.latest.encryption_key
        return keys

    # --- publishing -----------------------------------------------------------------------------

    def publish(
        self,
        draft: Draft,
        *,
        supersedes: str | None = None,
        retry_seconds: float | None = None,
    ) -> Receipt:
        """Seal, sign and publish ``draft``; with ``supersedes``, as the next version of that alert.

        The sealed request is saved in the profile's ``state/outbox/`` before it is first sent and
        resent with the same bytes while the hub is unreachable, for up to ``retry_seconds``
        (default: the client's, 30 s) with capped exponential backoff; the hub answers a resend
        with the first receipt, so a publish is never stored twice.  If every attempt fails the
        request stays in the outbox for :meth:`flush_outbox`.  The manifest hash the hub
        acknowledged is recorded for a later ``supersedes``; when that record is behind the hub
        (lost in a crash: it is not flushed to disk), the version to supersede is taken from the
        hub instead.

        Items are encrypted to partner keys verified in the last ``PARTNER_KEYS_MAX_AGE``
        seconds; if the hub refuses the audience or a grant's key (a partner revoked or re-keyed
        since), the directory is fetched again and the alert sealed again, once.
        """
        items = [
            PlainItem(item_id=item.id, policy=item.policy, payload=item.payload)
            for item in draft.items
        ]
        flags = tuple(
            message
            for index, item in enumerate(draft.items)
            for message in _flag_messages(self._watchlist, item.payload, f"items[{index}]")
        )
        plain = [summary_item(draft.summary(), items), *items]
        retry = self._retry_schedule(retry_seconds)
        if supersedes is None:
            return self._publish_version(plain, str(uuid.uuid4()), 1, b"", flags, retry)
        alert_id = _check_alert_id(supersedes)
        known = self._state.latest_published(alert_id)
        if known is not None:
            try:
                return self._publish_version(
                    plain, alert_id, known.version + 1, known.manifest_hash, flags, retry
                )
            except ConflictError:
                # The hub holds that version already. If this profile recorded it meanwhile,
                # another process of the profile superseded first: say so. Otherwise the record
                # of a later version was lost (it is not flushed to disk): ask the hub.
                newest = self._state.latest_published(alert_id)
                if newest is not None and newest.version > known.version:
                    raise
        version, previous_hash = self._next_version_from_hub(alert_id)
        return self._publish_version(plain, alert_id, version, previous_hash, flags, retry)

    def _retry_schedule(self, retry_seconds: float | None) -> RetrySchedule:
        """One publish's waits between attempts, over ``retry_seconds`` (default: the client's)."""
        if retry_seconds is None:
            retry_seconds = self._retry_seconds
        if retry_seconds < 0:
            raise InvalidInputError("retry_seconds must be zero or more")
        return RetrySchedule(
            PUBLISH_BACKOFF, give_up_after=retry_seconds, sleep=self._sleep, clock=self._monotonic
        )

    def _publish_version(
        self,
        plain: Sequence[PlainItem],
        alert_id: str,
        version: int,
        previous_hash: bytes,
        flags: Sequence[str],
        retry: RetrySchedule,
    ) -> Receipt:
        fetched_at = self._partners_fetched_at
        try:
            return self._seal_and_send(
                plain,
                alert_id,
                version,
                previous_hash,
                flags,
                max_age=PARTNER_KEYS_MAX_AGE,
                retry=retry,
            )
        except InvalidInputError as e:
            # Sealed to partner keys held from before this call: the hub's refusal of the
            # audience or of a grant's key may only mean a partner was revoked or re-keyed
            # since. Nothing was stored; seal again to the hub's current directory, once.
            if e.reason != "POLICY_INVALID" or self._partners_fetched_at != fetched_at:
                raise
        return self._seal_and_send(
            plain, alert_id, version, previous_hash, flags, max_age=None, retry=retry
        )

    def _seal_and_send(
        self,
        plain: Sequence[PlainItem],
        alert_id: str,
        version: int,
        previous_hash: bytes,
        flags: Sequence[str],
        *,
        max_age: float | None,
        retry: RetrySchedule,
    ) -> Receipt:
        audience = {a for item in plain for a in item.policy.audience}
        while True:  # the hub may be restarting: its directory is asked within the same budget
            try:
                recipient_keys = self._recipient_keys(audience, max_age=max_age)
                break
            except UnavailableError as e:
                if not retry.wait(functools.partial(self._announce_retry, e)):
                    raise
        sealed = seal_alert(
            originator=self.profile.agency_id,
            alert_id=alert_id,
            version=version,
            items=plain,
            signing_key=self.profile.signing_key,
            own_key=self.profile.decryption_key.public_key,
            recipient_keys=recipient_keys,
            created_at=self._clock(),
            previous_manifest_hash=previous_hash,
        )
        request = encode(sealed.request)
        entry = self._state.save_outbox(alert_id, version, request)
        return self._send_outbox_entry(
            entry, request, sealed.manifest.hash, flags=flags, retry=retry
        )

    def flush_outbox(self, *, retry_seconds: float | None = None) -> list[Receipt]:
        """Send again every sealed request an interrupted publish left in the outbox.

        Each is sent with its saved bytes, so the hub returns the receipt of the first delivery
        if that one had in fact arrived; each is resent for up to ``retry_seconds`` (default:
        the client's) while the hub is unreachable.
        """
        self._retry_schedule(retry_seconds)  # refuses a negative budget before anything is sent
        receipts = []
        for entry in self._state.outbox():
            request = entry.read()
            message = parse_canonical(
                alerts_pb2.PublishRequest, request, what=f"outbox entry {entry.path}"
            )
            manifest = parse_canonical(
                statements_pb2.AlertManifest,
                bytes(message.manifest.payload),
                what=f"manifest in {entry.path}",
            )
            if (manifest.alert_id, manifest.version) != (entry.alert_id, entry.version):
                raise MalformedError(f"{entry.path}: holds a different alert version")
            receipts.append(
                self._send_outbox_entry(
                    entry,
                    request,
                    sha256(bytes(message.manifest.payload)),
                    retry=self._retry_schedule(retry_seconds),
                )
            )
        return receipts

    def _next_version_from_hub(self, alert_id: str) -> tuple[int, bytes]:
        """The version after the hub's latest of this agency's ``alert_id``, and its manifest
        hash (verified)."""
        request = alerts_pb2.GetAlertRequest(alert_id=alert_id, originator=self.profile.agency_id)
        try:
            with hub_errors(self.target):
                view = self._alerts_stub.GetAlert(request, timeout=self._timeout)
        except NotFoundError as e:
            raise NotFoundError(
                f"no alert {alert_id} published by {self.profile.agency_id} to supersede",
                reason=e.reason,
            ) from e
        manifest = AlertManifest.verify(
            envelope_from_proto(view.manifest), self._verify_keys_of(self.profile.agency_id)
        )
        if manifest.alert_id != alert_id or manifest.originator != self.profile.agency_id:
            raise VerificationError(
                f"asked the hub for alert {alert_id}, it answered with another",
                reason="ALERT_MISMATCH",
            )
        return manifest.version + 1, manifest.hash

    def _send_outbox_entry(
        self,
        entry: OutboxEntry,
        request: bytes,
        manifest_hash: bytes,
        *,
        flags: Sequence[str] = (),
        retry: RetrySchedule,
    ) -> Receipt:
        try:
            response = self._send_publish(entry, request, retry)
        except UnavailableError:
            raise
        except ExchangeError:
            # A definite refusal: the same bytes would be refused again.
            self._state.remove_outbox(entry)
            raise
        expected = (self.profile.agency_id, entry.alert_id, entry.version, manifest_hash)
        acknowledged = (
            response.originator,
            response.alert_id,
            response.version,
            bytes(response.manifest_hash),
        )
        if acknowledged != expected:
            raise VerificationError(
                f"the hub acknowledged {response.alert_id} version {response.version} with a "
                f"different manifest than the one sent (kept in {entry.path})",
                reason="RECEIPT_MISMATCH",
            )
        receipt = Receipt(
            originator=response.originator,
            alert_id=response.alert_id,
            version=response.version,
            manifest_hash=bytes(response.manifest_hash),
            log_index=response.log_index,
            accepted_at=timestamp_or_none(response, "accepted_at"),
            notified=tuple(response.notified),
            flags=tuple(flags),
        )
        self._state.record_published(
            alert_id=receipt.alert_id,
            version=receipt.version,
            manifest_hash=receipt.manifest_hash,
            log_index=receipt.log_index,
            accepted_at=receipt.accepted_at,
        )
        self._state.remove_outbox(entry)
        # The audit log: the published manifest must be in the verified log.
        self.auditor.prove_statement(
            logged_manifest(request),
            receipt.log_index,
            proof=response.inclusion_proof if response.HasField("inclusion_proof") else None,
            note=response.checkpoint,
            consistency=response.consistency if response.HasField("consistency") else None,
            leaf=bytes(response.leaf),
        )
        return receipt

    def _known_log_size(self) -> tuple[tuple[str, str], ...]:
        """The trusted checkpoint's size, for the hub to prove the receipt's checkpoint from."""
        trusted = self.auditor.trusted
        if trusted is None:
            return ()
        return ((KNOWN_LOG_SIZE_METADATA, str(trusted.checkpoint.size)),)

    def _send_publish(
        self, entry: OutboxEntry, request: bytes, schedule: RetrySchedule
    ) -> alerts_pb2.PublishResponse:
        while True:
            try:
                with hub_errors(self.target):
                    response: alerts_pb2.PublishResponse = self._publish_bytes(
                        request, timeout=self._timeout, metadata=self._known_log_size()
                    )
                return response
            except UnavailableError as e:
                if not schedule.wait(functools.partial(self._announce_retry, e)):
                    tries = schedule.failures
                    raise UnavailableError(
                        f"{e.message}. Tried {tries} time{'s' if tries != 1 else ''} in "
                        f"{schedule.budget:g} s; the sealed alert is kept in {entry.path}: "
                        "`exchange resend` sends it again with the same bytes",
                        reason=e.reason,
                    ) from e

    def _announce_retry(self, error: ExchangeError, seconds: float) -> None:
        if self._on_retry is not None:
            self._on_retry(seconds, error)

    # --- reading --------------------------------------------------------------------------------

    def inbox(self, *, limit: int = 100) -> list[InboxEntry]:
        """Alert versions addressed to this agency, newest as the hub lists them.

        Each entry's title and kind come from its encrypted summary, opened and verified here;
        when that fails (tampering, a missing partner CA) the entry says why in ``problem``.
        """
        with hub_errors(self.target):
            response = self._alerts_stub.ListAlerts(
                alerts_pb2.ListAlertsRequest(include_own=False, limit=limit),
                timeout=self._timeout,
            )
        entries = []
        for summary in response.alerts:
            title: str | None = None
            kind: str | None = None
            problem = ""
            try:
                opened = self.open(
                    summary.alert_id, originator=summary.originator, version=summary.version
                )
                title, kind = opened.title, opened.kind
            except ExchangeError as e:
                problem = f"{type(e).__name__}: {e.message}"
            entries.append(
                InboxEntry(
                    originator=summary.originator,
                    alert_id=summary.alert_id,
                    version=summary.version,
                    manifest_hash=bytes(summary.manifest_hash),
                    published_at=timestamp_or_none(summary, "published_at"),
                    items_visible=summary.items_visible,
                    items_granted=summary.items_granted,
                    items_total=summary.items_total,
                    retracted=summary.retracted,
                    title=title,
                    kind=kind,
                    problem=problem,
                )
            )
        return entries

    def open(
        self, alert_id: str, *, originator: str | None = None, version: int | None = None
    ) -> OpenedAlert:
        """Fetch, verify and decrypt one alert version (the latest we may see by default).

        The manifest must verify under the originator's keys as certified by its CA in this
        profile, every header must match the manifest and every ciphertext its header, every key
        its commitment: any failure raises :class:`VerificationError`.  Decrypted payloads are
        validated again (a failure shows as status ``INVALID``) and matched against the
        watchlist (``flags``).
        """
        request = alerts_pb2.GetAlertRequest(
            alert_id=alert_id, originator=originator or "", version=version or 0
        )
        with hub_errors(self.target):
            view = self._alerts_stub.GetAlert(request, timeout=self._timeout)
        claimed = parse_canonical(
            statements_pb2.AlertManifest, bytes(view.manifest.payload), what="alert manifest"
        )
        opened = open_version(
            view,
            recipient=self.profile.agency_id,
            decryption_key=self.profile.decryption_key,
            originator_keys=self._verify_keys_of(claimed.originator),
            now=self._clock(),
        )
        manifest = opened.manifest
        if (
            manifest.alert_id != alert_id
            or (originator is not None and manifest.originator != originator)
            or (version is not None and manifest.version != version)
        ):
            raise VerificationError(
                f"asked the hub for alert {alert_id} (originator {originator or 'any'}, version "
                f"{version or 'latest'}), it answered with {manifest.originator}/"
                f"{manifest.alert_id} version {manifest.version}",
                reason="ALERT_MISMATCH",
            )
        # The audit log: act on no manifest that the verified log does not hold.
        self.auditor.prove_statement(logged_envelope(view.manifest), view.log_index, acting=True)
        self._after_open(opened)
        self._record_watchlist_update(opened)
        return _opened_alert(opened, self._watchlist, self._withheld_details(opened))

    def _record_watchlist_update(self, opened: OpenedVersion) -> None:
        """Keep the visible entries of a verified WATCHLIST alert, and use them from now on."""
        if opened.summary is None or opened.summary.kind != payloads_pb2.Summary.WATCHLIST:
            return
        entries = tuple(
            item.payload.watchlist_entry
            for item in opened.items
            if item.status == VISIBLE
            and item.payload is not None
            and item.payload.WhichOneof("body") == "watchlist_entry"
        )
        manifest = opened.manifest
        published = opened.published_at or self._clock()
        self._watchlist_updates.record(
            WatchlistUpdate(
                agency_id=manifest.originator,
                sequence=int(published.timestamp() * 1_000_000),
                entries=entries,
                reference=f"{manifest.originator}/{manifest.alert_id} version {manifest.version}",
            )
        )
        self._watchlist = self._watchlist_updates.merged()

    def _withheld_details(self, opened: OpenedVersion) -> dict[str, str]:
        """What became of our requests for the items still withheld from us."""
        if opened.manifest.originator == self.profile.agency_id or not any(
            item.status == WITHHELD for item in opened.items
        ):
            return {}
        details = {}
        for item_id, request in self._request_outcomes(opened.manifest).items():
            if request.status == "DENIED":
                details[item_id] = f"request denied by {request.originator}: {request.decision_reason}"
            elif request.status == "PENDING":
                details[item_id] = f"requested; waiting for {request.originator}"
        return details

    # --- the feed -------------------------------------------------------------------------------

    def events(self, after: int | None = None, *, limit: int = 100) -> list[FeedEvent]:
        """Poll the feed: events after ``after`` (default: the saved cursor), at most ``limit``.

        Polling does not move the saved cursor: call :meth:`commit_cursor` with the sequence of
        the last event processed.  Raises :class:`FeedGapError` if the hub skips a sequence, or
        returns nothing while stating that the feed is further on.
        """
        start = self._state.read_cursor() if after is None else after
        with hub_errors(self.target):
            response = self._alerts_stub.ListEvents(
                alerts_pb2.ListEventsRequest(after=start, limit=limit), timeout=self._timeout
            )
        received = start
        events = []
        for event in response.events:
            if event.sequence <= received:
                continue
            check_sequence(received, event.sequence)
            received = event.sequence
            events.append(FeedEvent.from_proto(event))
        if not events:
            check_heartbeat(received, response.latest_sequence)
            return events
        # The audit log: every polled event is proven under the checkpoint that came with it.
        if not response.checkpoint:
            raise VerificationError(
                "the hub returned feed events without a checkpoint to prove them in the log",
                reason="NOT_YET_CHECKPOINTED",
            )
        signed = self.auditor.accept(response.checkpoint)
        for event in response.events:
            if event.sequence > start:
                self.auditor.await_proof(event)
        self.auditor.prove_awaiting(signed.checkpoint)
        return events

    def commit_cursor(self, sequence: int) -> None:
        """Save ``sequence`` as processed, for :meth:`events` and :meth:`subscribe` to resume from.

        The cursor never moves back; raises if another process holds the profile's feed.
        """
        with self._state.lock_cursor() as lock:
            lock.commit(sequence)

    def cursor(self) -> int:
        """The saved feed cursor: the sequence of the last event processed (0: none)."""
        return self._state.read_cursor()

    def subscribe(
        self,
        after: int | None = None,
        *,
        heartbeats: bool = False,
        give_up_after: float | None = None,
        on_reconnect: Reconnecting | None = None,
    ) -> FeedSubscription:
        """Stream the feed from ``after`` (default: the saved cursor): catch-up, then live.

        When the stream fails (the hub restarts, the network drops) it is reopened from the last
        event received, with capped exponential backoff and jitter, until the subscription is
        closed; ``on_reconnect(seconds, error)`` is told of each wait.  With ``give_up_after``,
        :class:`UnavailableError` is raised once the hub has not answered for that many seconds.

        The returned iterator takes the profile's cursor lock at once (a second reader on the
        same profile gets an error, not a wait) and saves the cursor for each event when the
        consumer asks for the next one or closes the subscription cleanly; see
        :class:`~exchange_client._internal.feed.FeedSubscription`.  Raises
        :class:`FeedGapError` when an event is missing.  With ``heartbeats`` the hub's heartbeats
        are yielded too, as events of kind ``HEARTBEAT``.
        """
        lock = self._state.lock_cursor()
        try:
            start = self._state.read_cursor() if after is None else after
        except BaseException:
            lock.release()
            raise

        def open_stream(after_sequence: int) -> grpc.CallIterator[alerts_pb2.SubscribeResponse]:
            # The audit log: heartbeats' checkpoints and the events are verified as they pass.
            return self.auditor.audited_stream(
                self._alerts_stub.Subscribe(alerts_pb2.SubscribeRequest(after=after_sequence))
            )

        return FeedSubscription(
            open_stream=open_stream,
            target=self.target,
            lock=lock,
            after=start,
            heartbeats=heartbeats,
            sleep=self._sleep,
            clock=self._monotonic,
            give_up_after=give_up_after,
            on_reconnect=on_reconnect,
        )

    # --- release controls -------------------------------------------------------------------

    def _own_view(self, alert_id: str, version: int | None = None) -> alerts_pb2.AlertView:
        request = alerts_pb2.GetAlertRequest(
            alert_id=_check_alert_id(alert_id),
            originator=self.profile.agency_id,
            version=version or 0,
        )
        try:
            with hub_errors(self.target):
                view: alerts_pb2.AlertView = self._alerts_stub.GetAlert(
                    request, timeout=self._timeout
                )
        except NotFoundError as e:
            raise NotFoundError(
                f"no alert {alert_id} published by {self.profile.agency_id}", reason=e.reason
            ) from e
        return view

    def _verified_manifest(
        self,
        view: alerts_pb2.AlertView,
        *,
        alert_id: str,
        originator: str | None = None,
        version: int | None = None,
    ) -> AlertManifest:
        claimed = parse_canonical(
            statements_pb2.AlertManifest, bytes(view.manifest.payload), what="alert manifest"
        )
        manifest = AlertManifest.verify(
            envelope_from_proto(view.manifest), self._verify_keys_of(claimed.originator)
        )
        if (
            manifest.alert_id != alert_id
            or (originator is not None and manifest.originator != originator)
            or (version is not None and manifest.version != version)
        ):
            raise VerificationError(
                f"asked the hub for alert {alert_id}, it answered with {manifest.originator}/"
                f"{manifest.alert_id} version {manifest.version}",
                reason="ALERT_MISMATCH",
            )
        # The audit log: act on no manifest that the verified log does not hold.
        self.auditor.prove_statement(logged_envelope(view.manifest), view.log_index, acting=True)
        return manifest

    def _manifest_for(
        self, alert_id: str, *, originator: str | None = None, version: int | None = None
    ) -> AlertManifest:
        """The verified manifest of an alert version this agency may see (latest by default)."""
        request = alerts_pb2.GetAlertRequest(
            alert_id=_check_alert_id(alert_id), originator=originator or "", version=version or 0
        )
        with hub_errors(self.target):
            view = self._alerts_stub.GetAlert(request, timeout=self._timeout)
        return self._verified_manifest(
            view, alert_id=alert_id, originator=originator, version=version
        )

    def request_release(
        self,
        alert_id: str,
        item_id: str,
        *,
        reason: str,
        for_agency: str | None = None,
        originator: str | None = None,
        version: int | None = None,
    ) -> ReleaseRequest:
        """Ask the originator to release a withheld item to this agency, or onward to ``for_agency``.

        The signed request names the manifest hash of the version (the latest we may see by
        default).  An item outside this agency's audience is :class:`NotFoundError`, as is one
        that does not exist.
        """
        manifest = self._manifest_for(alert_id, originator=originator, version=version)
        statement = release.ReleaseRequest.build(
            requester=self.profile.agency_id,
            manifest=manifest,
            item_id=item_id,
            reason=reason,
            release_to=for_agency or "",
            created_at=self._clock(),
            key=self.profile.signing_key,
        )
        with hub_errors(self.target):
            response = self._release_stub.RequestRelease(
                release_pb2.RequestReleaseRequest(request=envelope_to_proto(statement.envelope)),
                timeout=self._timeout,
            )
        if response.request_id != statement.request_id:
            raise VerificationError(
                "the hub acknowledged another request than the one sent", reason="RECEIPT_MISMATCH"
            )
        return _release_request(statement, None, log_index=response.log_index)

    def release_requests(
        self, *, mine: bool = False, include_decided: bool = False
    ) -> list[ReleaseRequest]:
        """Requests made of this agency's alerts (pending ones by default), or with ``mine`` the
        requests this agency made.  Every request and decision is verified against its signer."""
        with hub_errors(self.target):
            response = self._release_stub.ListRequests(
                release_pb2.ListRequestsRequest(mine=mine, include_decided=include_decided),
                timeout=self._timeout,
            )
        return [self._verified_request(view)[1] for view in response.requests]

    def _verified_request(
        self, view: release_pb2.ReleaseRequestView
    ) -> tuple[release.ReleaseRequest, ReleaseRequest]:
        envelope = envelope_from_proto(view.request)
        requester = release.ReleaseRequest.peek_signer(envelope)
        statement = release.ReleaseRequest.verify(envelope, self._verify_keys_of(requester))
        decision: release.ReleaseDecision | None = None
        if view.HasField("decision"):
            decision = release.ReleaseDecision.verify(
                envelope_from_proto(view.decision),
                self._verify_keys_of(statement.message.originator),
            )
            if decision.request_id != statement.request_id or (
                decision.message.originator != statement.message.originator
            ):
                raise VerificationError(
                    f"the decision served with request {statement.request_id} is about another",
                    reason="DECISION_MISMATCH",
                )
        if statement.request_id != view.request_id:
            raise VerificationError(
                f"request {view.request_id} is served with another request's bytes",
                reason="REQUEST_MISMATCH",
            )
        return statement, _release_request(statement, decision)

    def _pending_request(self, request_id: str) -> release.ReleaseRequest:
        with hub_errors(self.target):
            response = self._release_stub.ListRequests(
                release_pb2.ListRequestsRequest(include_decided=True), timeout=self._timeout
            )
        for view in response.requests:
            if view.request_id == request_id:
                statement, listed = self._verified_request(view)
                if listed.status != "PENDING":
                    raise ConflictError(
                        f"request {request_id} was already {listed.status.lower()}",
                        reason="ALREADY_DECIDED",
                    )
                return statement
        raise NotFoundError(f"no release request {request_id} made of {self.profile.agency_id}")

    def approve(self, request_id: str) -> StatementResult:
        """Release the requested item: recover its key from our own grant, wrap it for the
        request's target (checked against that agency's CA), sign the decision and send both."""
        request = self._pending_request(request_id)
        message = request.message
        view = self._own_view(message.alert_id, message.version)
        manifest = self._verified_manifest(
            view, alert_id=message.alert_id, originator=self.profile.agency_id
        )
        if manifest.hash != bytes(message.manifest_hash):
            raise VerificationError(
                f"request {request_id} names another manifest than the hub's version "
                f"{message.version}",
                reason="MANIFEST_MISMATCH",
            )
        item_key = self._own_item_key(manifest, view, message.item_id)
        target_key = self._recipient_keys([request.target])[request.target]
        grant = KeyGrant.make(
            manifest,
            item_id=message.item_id,
            item_key=item_key,
            recipient=request.target,
            recipient_key=target_key,
        )
        decision = release.ReleaseDecision.approve(
            request, grant, created_at=self._clock(), key=self.profile.signing_key
        )
        return self._send_decision(request, decision, grant)

    def deny(self, request_id: str, *, reason: str) -> StatementResult:
        """Refuse a request, with a reason the requester will see."""
        request = self._pending_request(request_id)
        decision = release.ReleaseDecision.deny(
            request, reason=reason, created_at=self._clock(), key=self.profile.signing_key
        )
        return self._send_decision(request, decision, None)

    def _own_item_key(
        self, manifest: AlertManifest, view: alerts_pb2.AlertView, item_id: str
    ) -> bytes:
        for item_view in view.items:
            header = ItemHeader.parse(bytes(item_view.header))
            if header.item_id != item_id:
                continue
            if not manifest.commits_to(header):
                raise VerificationError(
                    f"item {item_id!r} is not committed to by the manifest",
                    reason="COMMITMENT_MISMATCH",
                )
            if not item_view.HasField("grant"):
                raise ExchangeError(
                    f"the hub holds no key of ours for item {item_id!r} (expired or purged)",
                    reason="ITEM_EXPIRED",
                )
            return KeyGrant(item_view.grant).open(
                manifest, header, recipient=self.profile.agency_id, key=self.profile.decryption_key
            )
        raise NotFoundError(f"alert {manifest.alert_id} has no item {item_id!r}")

    def _send_decision(
        self,
        request: release.ReleaseRequest,
        decision: release.ReleaseDecision,
        grant: KeyGrant | None,
    ) -> StatementResult:
        call = release_pb2.DecideReleaseRequest(decision=envelope_to_proto(decision.envelope))
        if grant is not None:
            call.grant.CopyFrom(grant.message)
        with hub_errors(self.target):
            response = self._release_stub.DecideRelease(call, timeout=self._timeout)
        message = request.message
        return StatementResult(
            kind="DECISION",
            originator=message.originator,
            alert_id=message.alert_id,
            version=message.version,
            item_id=message.item_id,
            request_id=request.request_id,
            agency=request.target,
            outcome="APPROVED" if decision.approved else "DENIED",
            log_index=response.log_index,
        )

    def revoke(
        self, alert_id: str, item_id: str, *, from_agency: str | None = None, reason: str = ""
    ) -> StatementResult:
        """Stop delivering an item of our latest version to one agency (default: everyone).

        The hub deletes the grants and tells the holders, whose clients purge the item and
        acknowledge (see :meth:`receipts`).
        """
        manifest = self._verified_manifest(
            self._own_view(alert_id), alert_id=alert_id, originator=self.profile.agency_id
        )
        revocation = release.Revocation.build(
            manifest,
            item_id=item_id,
            agency=from_agency or "",
            reason=reason,
            created_at=self._clock(),
            key=self.profile.signing_key,
        )
        with hub_errors(self.target):
            response = self._release_stub.Revoke(
                release_pb2.RevokeRequest(revocation=envelope_to_proto(revocation.envelope)),
                timeout=self._timeout,
            )
        return StatementResult(
            kind="REVOCATION",
            originator=manifest.originator,
            alert_id=manifest.alert_id,
            version=manifest.version,
            item_id=item_id,
            agency=from_agency or "",
            grants_deleted=response.grants_deleted,
            log_index=response.log_index,
        )

    def retract(self, alert_id: str, *, reason: str) -> StatementResult:
        """Withdraw one of our alerts (every version), with a reason every recipient sees."""
        manifest = self._verified_manifest(
            self._own_view(alert_id), alert_id=alert_id, originator=self.profile.agency_id
        )
        retraction = release.Retraction.build(
            manifest, reason=reason, created_at=self._clock(), key=self.profile.signing_key
        )
        with hub_errors(self.target):
            response = self._release_stub.Retract(
                release_pb2.RetractRequest(retraction=envelope_to_proto(retraction.envelope)),
                timeout=self._timeout,
            )
        return StatementResult(
            kind="RETRACTION",
            originator=manifest.originator,
            alert_id=manifest.alert_id,
            version=manifest.version,
            log_index=response.log_index,
        )

    def feedback(
        self, alert_id: str, outcome: str, *, note: str = "", originator: str | None = None
    ) -> StatementResult:
        """Tell the originator what came of an alert (``SEIZED``, ``NOTHING_FOUND``,
        ``INVESTIGATING``, ``FALSE_POSITIVE``), encrypted to it and signed."""
        try:
            value = release.FeedbackOutcome.Value(outcome.upper())
        except ValueError as e:
            raise InvalidInputError(
                f"unknown outcome {outcome!r}: one of {', '.join(FEEDBACK_OUTCOMES)}",
                reason="INVALID_OUTCOME",
            ) from e
        if value == release.FeedbackOutcome.OUTCOME_UNSPECIFIED:
            raise InvalidInputError(f"outcome is one of {', '.join(FEEDBACK_OUTCOMES)}")
        manifest = self._manifest_for(alert_id, originator=originator)
        originator_key = self._recipient_keys([manifest.originator])[manifest.originator]
        statement = release.Feedback.seal(
            manifest,
            recipient=self.profile.agency_id,
            outcome=value,
            note=note,
            originator_key=originator_key,
            created_at=self._clock(),
            key=self.profile.signing_key,
        )
        with hub_errors(self.target):
            response = self._release_stub.SubmitFeedback(
                release_pb2.SubmitFeedbackRequest(feedback=envelope_to_proto(statement.envelope)),
                timeout=self._timeout,
            )
        return StatementResult(
            kind="FEEDBACK",
            originator=manifest.originator,
            alert_id=manifest.alert_id,
            version=manifest.version,
            outcome=outcome.upper(),
            log_index=response.log_index,
        )

    def acknowledge_purge(
        self, alert_id: str, item_id: str, *, originator: str, version: int
    ) -> StatementResult:
        """Sign that a revoked item is purged here and send it (once per item).

        The client keeps no plaintext or item keys between calls, so there is nothing on disk to
        delete; the acknowledgement records that, signed, for the originator.
        """
        manifest = self._manifest_for(alert_id, originator=originator, version=version)
        ack = release.PurgeAck.build(
            manifest,
            recipient=self.profile.agency_id,
            item_id=item_id,
            created_at=self._clock(),
            key=self.profile.signing_key,
        )
        with hub_errors(self.target):
            response = self._release_stub.AcknowledgePurge(
                release_pb2.AcknowledgePurgeRequest(purge_ack=envelope_to_proto(ack.envelope)),
                timeout=self._timeout,
            )
        self._sent.record_purge_ack(originator, alert_id, version, item_id)
        return StatementResult(
            kind="PURGE_ACK",
            originator=originator,
            alert_id=alert_id,
            version=version,
            item_id=item_id,
            log_index=response.log_index,
        )

    def receipts(self, alert_id: str) -> list[DeliveryRecord]:
        """Receipts, purge acknowledgements and feedback on one of our alerts, each verified
        against its signer's keys and (feedback) decrypted; item ids resolved from our copy."""
        with hub_errors(self.target):
            response = self._release_stub.ListReceipts(
                release_pb2.ListReceiptsRequest(alert_id=_check_alert_id(alert_id)),
                timeout=self._timeout,
            )
        versions: dict[int, tuple[AlertManifest, dict[bytes, str]]] = {}

        def version_of(version: int, manifest_hash: bytes) -> tuple[AlertManifest, dict[bytes, str]]:
            if version not in versions:
                view = self._own_view(alert_id, version)
                manifest = self._verified_manifest(
                    view, alert_id=alert_id, originator=self.profile.agency_id, version=version
                )
                names = {}
                for item_view in view.items:
                    header = ItemHeader.parse(bytes(item_view.header))
                    names[header.hash] = header.item_id
                versions[version] = (manifest, names)
            manifest, names = versions[version]
            if manifest.hash != manifest_hash:
                raise VerificationError(
                    f"a statement names version {version} with another manifest hash",
                    reason="MANIFEST_MISMATCH",
                )
            return manifest, names

        records: list[DeliveryRecord] = []
        for envelope in response.receipts:
            receipt = self._verified_about_own(release.Receipt, envelope, alert_id)
            _, names = version_of(receipt.message.version, bytes(receipt.message.manifest_hash))
            records.append(
                DeliveryRecord(
                    kind="RECEIPT",
                    agency=receipt.signer,
                    alert_id=alert_id,
                    version=receipt.message.version,
                    created_at=timestamp_or_none(receipt.message, "created_at"),
                    opened=tuple(names.get(h, h.hex()) for h in receipt.message.opened_header_hashes),
                    withheld=tuple(
                        names.get(h, h.hex()) for h in receipt.message.withheld_header_hashes
                    ),
                )
            )
        for envelope in response.purge_acks:
            ack = self._verified_about_own(release.PurgeAck, envelope, alert_id)
            records.append(
                DeliveryRecord(
                    kind="PURGE_ACK",
                    agency=ack.signer,
                    alert_id=alert_id,
                    version=ack.message.version,
                    created_at=timestamp_or_none(ack.message, "created_at"),
                    item_id=ack.message.item_id,
                )
            )
        for envelope in response.feedback:
            statement = self._verified_about_own(release.Feedback, envelope, alert_id)
            manifest, _ = version_of(
                statement.message.version, bytes(statement.message.manifest_hash)
            )
            body = statement.open(manifest, self.profile.decryption_key)
            records.append(
                DeliveryRecord(
                    kind="FEEDBACK",
                    agency=statement.signer,
                    alert_id=alert_id,
                    version=statement.message.version,
                    created_at=timestamp_or_none(statement.message, "created_at"),
                    outcome=release.FeedbackOutcome.Name(body.outcome),
                    note=body.note,
                )
            )
        return records

    def _verified_about_own(
        self, kind: type[_Statement], envelope: statements_pb2.Envelope, alert_id: str
    ) -> _Statement:
        unverified = envelope_from_proto(envelope)
        statement = kind.verify(unverified, self._verify_keys_of(kind.peek_signer(unverified)))
        about = (statement.message.originator, statement.message.alert_id)
        if about != (self.profile.agency_id, alert_id):
            raise VerificationError(
                f"the hub listed a statement about {about[0]}/{about[1]} for alert {alert_id}",
                reason="STATEMENT_MISMATCH",
            )
        return statement

    def _after_open(self, opened: OpenedVersion) -> None:
        """Send a receipt when a version first opens (or more of it opens), and acknowledge
        the purge of every revoked item once."""
        manifest = opened.manifest
        if manifest.originator == self.profile.agency_id:
            return
        key = (manifest.originator, manifest.alert_id, manifest.version)
        for item in opened.items:
            if item.status == REVOKED and not self._sent.purge_acknowledged(*key, item.item_id):
                self.acknowledge_purge(
                    manifest.alert_id,
                    item.item_id,
                    originator=manifest.originator,
                    version=manifest.version,
                )
        opened_hashes = {i.header_hash for i in opened.items if i.status in (VISIBLE, INVALID)}
        withheld = [i.header_hash for i in opened.items if i.status == WITHHELD]
        previous = self._sent.receipt_opened(*key)
        if previous is not None and opened_hashes <= previous:
            return
        receipt = release.Receipt.build(
            manifest,
            recipient=self.profile.agency_id,
            opened=sorted(opened_hashes),
            withheld=withheld,
            created_at=self._clock(),
            key=self.profile.signing_key,
        )
        with hub_errors(self.target):
            self._release_stub.SubmitReceipt(
                release_pb2.SubmitReceiptRequest(receipt=envelope_to_proto(receipt.envelope)),
                timeout=self._timeout,
            )
        self._sent.record_receipt(*key, opened_hashes)

    def _request_outcomes(self, manifest: AlertManifest) -> dict[str, ReleaseRequest]:
        """Our latest request per item of this version, for ``show`` to say pending or denied."""
        latest: dict[str, ReleaseRequest] = {}
        for request in self.release_requests(mine=True, include_decided=True):
            if (request.originator, request.alert_id, request.version) == (
                manifest.originator,
                manifest.alert_id,
                manifest.version,
            ) and request.target == self.profile.agency_id:
                latest[request.item_id] = request
        return latest


def _release_request(
    statement: release.ReleaseRequest,
    decision: release.ReleaseDecision | None,
    *,
    log_index: int = 0,
) -> ReleaseRequest:
    message = statement.message
    status = "PENDING"
    if decision is not None:
        status = "APPROVED" if decision.approved else "DENIED"
    return ReleaseRequest(
        request_id=statement.request_id,
        originator=message.originator,
        alert_id=message.alert_id,
        version=message.version,
        item_id=message.item_id,
        requester=message.requester,
        reason=message.reason,
        release_to=message.release_to,
        created_at=timestamp_or_none(message, "created_at"),
        status=status,
        decision_reason=decision.message.reason if decision is not None else "",
        log_index=log_index,
    )


def _opened_item(
    item: SealedOpenedItem, path: str, watchlist: Watchlist, detail: str = ""
) -> OpenedItem:
    """The domain item, its decrypted payload validated again and matched against the watchlist.

    ``path`` is the item's place in the draft (``items[2]``), the summary not counted, so that
    a recipient's messages name fields as the originator's validation did.
    """
    status, detail = item.status, item.detail or detail
    flags: tuple[str, ...] = ()
    if item.payload is not None:
        problems = _payload_problems(item.payload, path)
        if problems:
            status, detail = INVALID, "; ".join(problems)
        flags = _flag_messages(watchlist, item.payload, path)
    return OpenedItem(
        id=item.item_id,
        status=status,
        policy=ItemPolicy.from_proto(item.policy),
        payload=item.payload,
        detail=detail,
        flags=flags,
        header_hash=item.header_hash,
    )


def _opened_alert(
    opened: OpenedVersion, watchlist: Watchlist, details: Mapping[str, str] | None = None
) -> OpenedAlert:
    manifest = opened.manifest
    summary = opened.summary
    summary_detail = ""
    if summary is not None:
        problems = _payload_problems(payloads_pb2.ItemPayload(summary=summary), "")
        if problems:
            # Do not show a title or kind that fails validation (control characters can hide
            # or reorder what an operator reads); say why instead.
            summary, summary_detail = None, "; ".join(problems)
    kind: str | None = None
    if summary is not None and summary.kind != payloads_pb2.Summary.KIND_UNSPECIFIED:
        kind = payloads_pb2.Summary.Kind.Name(summary.kind)
    return OpenedAlert(
        alert_id=manifest.alert_id,
        originator=manifest.originator,
        version=manifest.version,
        kind=kind,
        title=summary.title if summary is not None else None,
        grading=grading_label(summary.grading) if summary is not None else None,
        operator=summary.operator if summary is not None else "",
        manifest_hash=manifest.hash,
        published_at=opened.published_at,
        created_at=timestamp_or_none(manifest.message, "created_at"),
        items=tuple(
            _opened_item(item, f"items[{index}]", watchlist, (details or {}).get(item.item_id, ""))
            for index, item in enumerate(opened.items)
        ),
        versions=opened.versions,
        retracted=opened.retracted,
        previous_manifest_hash=bytes(manifest.message.previous_manifest_hash),
        summary_detail=summary_detail,
    )
