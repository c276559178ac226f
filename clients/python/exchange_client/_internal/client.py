"""``Client``: one agency talking to the hub over mutual TLS — a thin façade.

Each concern has its own module, and ``Client`` only wires them together and delegates:

* :mod:`~exchange_client._internal.transport`: the channel, the stubs, every call (the one place
  where a ``grpc.RpcError`` becomes a domain error);
* :mod:`~exchange_client._internal.partners`: partner keys, verified against this profile's CAs;
* :mod:`~exchange_client._internal.publishing`: seal, outbox, send, receipt;
* :mod:`~exchange_client._internal.opening`: the inbox, and opening an alert;
* :mod:`~exchange_client._internal.events`: polling and subscribing to the feed;
* :mod:`~exchange_client._internal.release`: requests, decisions, revocations, retractions;
* :mod:`~exchange_client._internal.receipts`: receipts, purge acknowledgements, feedback;
* :mod:`~exchange_client._internal.audit`: checkpoints, proofs and cosignatures;
* :mod:`~exchange_client._internal.matching`: private hit/no-hit matching and its local index.

Sealing, verification and decryption are the pure functions of :mod:`exchange.statements`, and
each concern module keeps its own rules in pure functions apart from the calls, so that another
client (an asynchronous one) can share them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

from exchange.alerts.draft import Draft
from exchange.audit.cooperation import CooperationReport
from exchange.crypto.keys import SigningKey
from exchange.errors import NotFoundError, VerificationError
from exchange_client._internal.audit import Progress
from exchange_client._internal.calls import run_blocking
from exchange_client._internal.cases import JointCases
from exchange_client._internal.concerns import Concerns
from exchange_client._internal.context import wire
from exchange_client._internal.events import FeedReader
from exchange_client._internal.feed import FeedSubscription, Reconnecting
from exchange_client._internal.key_lifecycle import KeyStatementInfo, describe_sequence
from exchange_client._internal.key_recovery import KeyRecovery, KeyStatementPublished
from exchange_client._internal.matching import Matcher
from exchange_client._internal.models import (
    AgencyInfo,
    DeliveryRecord,
    FeedEvent,
    InboxEntry,
    OpenedAlert,
    Receipt,
    ReleaseRequest,
    StatementResult,
)
from exchange_client._internal.partners import agency_info
from exchange_client._internal.profile import Profile
from exchange_client._internal.publishing import PUBLISH_RETRY_SECONDS, Retrying
from exchange_client._internal.report import CooperationReporter, sign_report
from exchange_client._internal.state import ClientState
from exchange_client._internal.transport import Transport


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Client:
    """A connection to the hub acting as the agency of ``profile``.

    ``hub`` (``HOST:PORT``) overrides the profile's hub address; ``clock`` returns the current
    time as an aware datetime (tests freeze it; it decides embargo and expiry on open and the
    validity of certificates); ``timeout`` bounds each unary call in seconds;
    ``retry_seconds`` is how long :meth:`publish` and :meth:`flush_outbox` keep resending
    while the hub is unreachable (0: one attempt), unless a call says otherwise, and
    ``on_retry(seconds, error)`` is told of each wait before such a resend.  Use it as a
    context manager, or call :meth:`close`, to close the channel.

    Safe to share between threads (see the package documentation for what is guaranteed); each
    process needs its own: one used after :meth:`close` raises :class:`ClientClosedError`, one
    used in a forked child :class:`ClientForkedError`, before anything is sent or written.
    """

    def __init__(
        self,
        profile: Profile,
        *,
        hub: str | None = None,
        clock: Callable[[], datetime] | None = None,
        timeout: float = 10.0,
        retry_seconds: float = PUBLISH_RETRY_SECONDS,
        on_retry: Retrying | None = None,
    ) -> None:
        self.profile = profile
        self.target = hub or profile.hub_address
        self._clock = clock or _utc_now
        self._timeout = timeout
        self._sleep: Callable[[float], None] = time.sleep
        self._monotonic: Callable[[], float] = time.monotonic
        self._transport = Transport.secure(profile, target=self.target, timeout=timeout)
        self._state = ClientState(profile.state_dir)
        context = wire(self._transport, profile, clock=self._clock)
        self._partners = context.partners
        # The audit log: checkpoints, inclusion proofs, cosignatures (see _internal/audit/).
        self.auditor = context.auditor
        concerns = Concerns.wire(
            context,
            state=self._state,
            sleep=lambda seconds: self._sleep(seconds),
            monotonic=lambda: self._monotonic(),
            retry_seconds=retry_seconds,
            on_retry=on_retry,
        )
        self._release = concerns.release
        self.matching = Matcher(context)
        """Private hit/no-hit matching: this agency's index, its queries, the hits on it."""
        self._deliveries = concerns.deliveries
        self._opener = concerns.opener
        self._publisher = concerns.publisher
        self._reporter = CooperationReporter(context)
        self._cases = JointCases(
            context,
            open_alert=lambda alert_id, originator, version: self.open(
                alert_id, originator=originator or None, version=version or None
            ),
            publish=self.publish,
        )
        self._feed = FeedReader(
            self._transport,
            state=self._state,
            auditor=self.auditor,
            sleep=lambda seconds: self._sleep(seconds),
            monotonic=lambda: self._monotonic(),
        )

    # --- lifetime ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the channel (open feed subscriptions end with it) and fold this process's
        state journal into the profile's state files.

        Idempotent; any later call raises :class:`ClientClosedError`.
        """
        self._transport.close()
        self._state.close()

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

    @property
    def key_notices(self) -> list[str]:
        """A line for each partner key rotation this client has followed (on any call that
        fetched keys), for the operator to read."""
        return list(self._partners.notices)

    def key_statements(self, agency_id: str | None = None) -> list[KeyStatementInfo]:
        """The numbered key statements of ``agency_id`` (default: this agency), as this profile
        verifies them: replayed from its pin against the agency's CA in the profile.

        Raises :class:`VerificationError` naming the broken rule when the sequence is refused.
        """
        wanted = agency_id or self.profile.agency_id
        partner = self._partners.load(refresh=True).get(wanted)
        if partner is None:
            raise NotFoundError(f"no agency {wanted!r} on the hub")
        if not partner.statements:
            raise VerificationError(
                f"the key statements of {wanted!r} are refused: {partner.problem}",
                reason="KEY_SEQUENCE_REFUSED",
            )
        return describe_sequence(partner.statements, self.profile.partner_cas[wanted])

    def revoke_compromised_keys(
        self, kinds: Sequence[str], *, since: datetime
    ) -> KeyStatementPublished:
        """Publish this agency's next key statement marking its current ``kinds`` of key
        (``signing``, ``encryption``, ``witness``) compromised from ``since``, each replaced by
        a new key certified by the profile's CA, and move the profile to the new keys.

        Partners then flag what the old keys signed from ``since`` on as untrusted, and the hub
        refuses grants to a compromised encryption key. This client keeps the keys it was made
        with: load the profile again to act with the new ones.
        """
        return self._key_recovery().revoke_compromised(kinds, since=since)

    def recover_ca(
        self,
        recovery_key: SigningKey,
        *,
        since: datetime | None = None,
        keys_compromised: bool = False,
        next_recovery_key: SigningKey | None = None,
    ) -> KeyStatementPublished:
        """Replace this agency's lost or stolen CA: a new CA and every key it certifies, in a
        statement signed by the offline ``recovery_key`` that statement 1 pinned.

        The old CA is marked compromised from ``since`` (default: now); ``keys_compromised``
        marks the old signing, encryption and witness keys too. Raises
        :class:`VerificationError` (``RECOVERY_KEY_MISMATCH``) for any other recovery key.
        Load the profile again afterwards: its TLS certificate is new too.
        """
        return self._key_recovery().recover(
            recovery_key,
            since=since,
            keys_compromised=keys_compromised,
            next_recovery_key=next_recovery_key,
        )

    def _key_recovery(self) -> KeyRecovery:
        return KeyRecovery(
            self.profile,
            self._partners,
            clock=self._clock,
            run=lambda steps: run_blocking(steps, self._transport),
        )

    def agencies(self) -> list[AgencyInfo]:
        """Every agency on the hub, each one's keys verified against the CA in this profile.

        The hub's copy of a CA certificate is never trusted: an agency the profile holds no CA
        for, or whose key statements do not verify against it, is listed unverified with the
        reason, and is never encrypted to.
        """
        return [agency_info(p) for p in self._partners.load(refresh=True).values()]

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
        (default: the client's, 30 s) with capped exponential backoff and jitter (partner keys
        are asked for within the same budget); the hub answers a resend with the first
        receipt, so a publish is never stored twice.  If every attempt fails the
        request stays in the outbox for :meth:`flush_outbox`.  The manifest hash the hub
        acknowledged is recorded for a later ``supersedes``; when that record is behind the hub
        (lost in a crash: it is not flushed to disk), the version to supersede is taken from the
        hub instead.

        Items are encrypted to partner keys verified in the last ``PARTNER_KEYS_MAX_AGE``
        seconds; if the hub refuses the audience or a grant's key (a partner revoked or re-keyed
        since), the directory is fetched again and the alert sealed again, once.
        """
        return self._publisher.publish(draft, supersedes=supersedes, retry_seconds=retry_seconds)

    def flush_outbox(self, *, retry_seconds: float | None = None) -> list[Receipt]:
        """Send again every sealed request an interrupted publish left in the outbox.

        Each is sent with its saved bytes, so the hub returns the receipt of the first delivery
        if that one had in fact arrived; each is resent for up to ``retry_seconds`` (default:
        the client's) while the hub is unreachable.
        """
        return self._publisher.flush_outbox(retry_seconds=retry_seconds)

    # --- reading --------------------------------------------------------------------------------

    def inbox(self, *, limit: int = 100) -> list[InboxEntry]:
        """Alert versions addressed to this agency, newest as the hub lists them.

        Each entry's title and kind come from its encrypted summary, opened and verified here;
        when that fails (tampering, a missing partner CA) the entry says why in ``problem``.
        """
        return self._opener.inbox(limit=limit)

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
        return self._opener.open(alert_id, originator=originator, version=version)

    # --- the feed -------------------------------------------------------------------------------

    def events(self, after: int | None = None, *, limit: int = 100) -> list[FeedEvent]:
        """Poll the feed: events after ``after`` (default: the saved cursor), at most ``limit``.

        Polling does not move the saved cursor: call :meth:`commit_cursor` with the sequence of
        the last event processed.  Raises :class:`FeedGapError` if the hub skips a sequence, or
        returns nothing while stating that the feed is further on.
        """
        return self._feed.events(after, limit=limit)

    def commit_cursor(self, sequence: int) -> None:
        """Save ``sequence`` as processed, for :meth:`events` and :meth:`subscribe` to resume from.

        The cursor never moves back; raises if another process holds the profile's feed.
        """
        self._transport.check_usable()
        self._feed.commit_cursor(sequence)

    def cursor(self) -> int:
        """The saved feed cursor: the sequence of the last event processed (0: none)."""
        return self._feed.cursor()

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
        return self._feed.subscribe(
            after, heartbeats=heartbeats, give_up_after=give_up_after, on_reconnect=on_reconnect
        )

    # --- release controls -------------------------------------------------------------------

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
        that does not exist.  An onward request also asks for the summary item (title and kind)
        for ``for_agency``, unless the summary is addressed to it already, so that the item
        arrives with its alert's summary; the originator's :meth:`approve` or :meth:`deny`
        decides both.
        """
        return self._release.request_release(
            alert_id,
            item_id,
            reason=reason,
            for_agency=for_agency,
            originator=originator,
            version=version,
        )

    def release_requests(
        self, *, mine: bool = False, include_decided: bool = False
    ) -> list[ReleaseRequest]:
        """Requests made of this agency's alerts (pending ones by default), or with ``mine`` the
        requests this agency made.  Every request and decision is verified against its signer."""
        return self._release.release_requests(mine=mine, include_decided=include_decided)

    def approve(self, request_id: str) -> StatementResult:
        """Release the requested item: recover its key from our own grant, wrap it for the
        request's target (checked against that agency's CA), sign the decision and send both.

        Pending requests for the summary item to the same agency and version, which go with an
        onward request, are approved with it (:meth:`deny` denies them with it)."""
        return self._release.approve(request_id)

    def deny(self, request_id: str, *, reason: str) -> StatementResult:
        """Refuse a request, with a reason the requester will see."""
        return self._release.deny(request_id, reason=reason)

    def revoke(
        self, alert_id: str, item_id: str, *, from_agency: str | None = None, reason: str = ""
    ) -> StatementResult:
        """Stop delivering an item of our latest version to one agency (default: everyone).

        The hub deletes the grants and tells the holders, whose clients purge the item and
        acknowledge (see :meth:`receipts`).
        """
        return self._release.revoke(alert_id, item_id, from_agency=from_agency, reason=reason)

    def retract(self, alert_id: str, *, reason: str) -> StatementResult:
        """Withdraw one of our alerts (every version), with a reason every recipient sees."""
        return self._release.retract(alert_id, reason=reason)

    # --- receipts and feedback ------------------------------------------------------------------

    def feedback(
        self, alert_id: str, outcome: str, *, note: str = "", originator: str | None = None
    ) -> StatementResult:
        """Tell the originator what came of an alert (``SEIZED``, ``NOTHING_FOUND``,
        ``INVESTIGATING``, ``FALSE_POSITIVE``), encrypted to it and signed."""
        return self._deliveries.feedback(alert_id, outcome, note=note, originator=originator)

    def acknowledge_purge(
        self, alert_id: str, item_id: str, *, originator: str, version: int
    ) -> StatementResult:
        """Sign that a revoked item is purged here and send it (once per item).

        The client keeps no plaintext or item keys between calls, so there is nothing on disk to
        delete; the acknowledgement records that, signed, for the originator.
        """
        return self._deliveries.acknowledge_purge(
            alert_id, item_id, originator=originator, version=version
        )

    def receipts(self, alert_id: str) -> list[DeliveryRecord]:
        """Receipts, purge acknowledgements and feedback on one of our alerts, each verified
        against its signer's keys and (feedback) decrypted; item ids resolved from our copy."""
        return self._deliveries.receipts(alert_id)

    # --- joint cases and the cooperation report ------------------------------------------------

    @property
    def cases(self) -> JointCases:
        """Joint cases with partner agencies (``exchange case``): each is an alert of kind
        ``CASE``, and every link, note or closing a member's alert of kind ``CASE_ENTRY``."""
        return self._cases

    def cooperation_report(
        self,
        *,
        partners: Sequence[str] = (),
        since: datetime | None = None,
        until: datetime | None = None,
        progress: Progress | None = None,
    ) -> CooperationReport:
        """Verify the whole log, then compute the cooperation figures with ``partners`` (default:
        every partner in the profile) over ``[since, until)``; see
        :mod:`exchange_client._internal.report`.  A log that fails verification raises
        :class:`VerificationError` naming the first bad entry, and no figure is computed."""
        return self._reporter.report(partners=partners, since=since, until=until, progress=progress)

    def sign_cooperation_report(self, report: CooperationReport) -> bytes:
        """The signed summary of ``report``, as the bundle file partners verify offline."""
        return sign_report(
            report,
            signing_key=self.profile.signing_key,
            keys_envelope=self.profile.keys_envelope,
            created_at=self._clock(),
        )
