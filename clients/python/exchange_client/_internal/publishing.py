"""Publishing (DESIGN §4, "Retries"): draft → seal → outbox → send → receipt, proven in the log.

The rules are pure functions: the items and watchlist flags of a draft (:func:`plain_items`,
:func:`draft_flags`), what an outbox entry holds (:func:`outbox_manifest_hash`) and whether the
hub's answer acknowledges what was sent (:func:`receipt_from`). :class:`Publisher` does the I/O
around them: the outbox on disk, the sends with backoff (:mod:`~exchange_client._internal.retry`:
for up to ``retry_seconds``, partner keys asked for within the same budget), the supersede
bookkeeping.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from exchange.alerts.draft import Draft
from exchange.alerts.watchlist import Watchlist
from exchange.errors import (
    ConfigurationError,
    ConflictError,
    ExchangeError,
    InvalidInputError,
    MalformedError,
    NotAuthenticatedError,
    NotFoundError,
    NotPermittedError,
    TooLargeError,
    UnavailableError,
    VerificationError,
)
from exchange.statements.alert import AlertManifest
from exchange.statements.codec import encode, envelope_from_proto, parse_canonical, sha256
from exchange.statements.publish import KNOWN_LOG_SIZE_METADATA
from exchange.statements.sealing import PlainItem, seal_alert, summary_item
from exchange.v1 import alerts_pb2, statements_pb2
from exchange_client._internal.audit import logged_manifest
from exchange_client._internal.calls import Steps, publish_bytes, run_blocking, sleep
from exchange_client._internal.context import ClientContext, Concern
from exchange_client._internal.manifests import check_alert_id
from exchange_client._internal.models import Receipt, timestamp_or_none
from exchange_client._internal.opening import flag_messages
from exchange_client._internal.retry import Backoff, RetrySchedule
from exchange_client._internal.state import ClientState, OutboxEntry

PUBLISH_RETRY_SECONDS = 30.0
"""How long a publish keeps resending one sealed request while the hub is unreachable."""

PUBLISH_BACKOFF = Backoff(first_delay=0.5, max_delay=5.0)
"""The waits between those resends (the request stays in the outbox if all fail)."""

Retrying = Callable[[float, ExchangeError], None]
"""Told the wait in seconds and the failure, before each wait to resend."""

PARTNER_KEYS_MAX_AGE = 60.0
"""Publishing encrypts to partner keys verified at most this many seconds ago; a hub refusal of
the audience or of a grant's key fetches them again at once (see :meth:`Publisher.publish`)."""


# --- the rules ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Unsealed:
    """One alert version to seal: its items (summary first), id, number, the previous
    version's manifest hash (empty for version 1) and the watchlist's flags on the draft."""

    items: Sequence[PlainItem]
    alert_id: str
    version: int
    previous_hash: bytes
    flags: Sequence[str]
    retry: RetrySchedule


def plain_items(draft: Draft) -> list[PlainItem]:
    """The draft's items to seal, the encrypted summary first."""
    items = [
        PlainItem(item_id=item.id, policy=item.policy, payload=item.payload) for item in draft.items
    ]
    return [summary_item(draft.summary(), items), *items]


def draft_flags(watchlist: Watchlist, draft: Draft) -> tuple[str, ...]:
    """The watchlist's flags on the draft's items, named by their place in the draft."""
    return tuple(
        message
        for index, item in enumerate(draft.items)
        for message in flag_messages(watchlist, item.payload, f"items[{index}]")
    )


def outbox_manifest_hash(entry: OutboxEntry, request: bytes) -> bytes:
    """The manifest hash of the sealed request saved in ``entry``; raises if the file holds
    anything but that alert version's canonical request."""
    message = parse_canonical(alerts_pb2.PublishRequest, request, what=f"outbox entry {entry.path}")
    manifest = parse_canonical(
        statements_pb2.AlertManifest,
        bytes(message.manifest.payload),
        what=f"manifest in {entry.path}",
    )
    if (manifest.alert_id, manifest.version) != (entry.alert_id, entry.version):
        raise MalformedError(f"{entry.path}: holds a different alert version")
    return sha256(bytes(message.manifest.payload))


def receipt_from(
    response: alerts_pb2.PublishResponse,
    *,
    originator: str,
    entry: OutboxEntry,
    manifest_hash: bytes,
    flags: Sequence[str] = (),
) -> Receipt:
    """The receipt of a publish, once the hub's answer names exactly the version sent."""
    expected = (originator, entry.alert_id, entry.version, manifest_hash)
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
    return Receipt(
        originator=response.originator,
        alert_id=response.alert_id,
        version=response.version,
        manifest_hash=bytes(response.manifest_hash),
        log_index=response.log_index,
        accepted_at=timestamp_or_none(response, "accepted_at"),
        notified=tuple(response.notified),
        flags=tuple(flags),
    )


def known_log_size(trusted_size: int | None) -> tuple[tuple[str, str], ...]:
    """Call metadata naming the trusted checkpoint's size, for the hub to prove the receipt's
    checkpoint from (none before a checkpoint is trusted)."""
    if trusted_size is None:
        return ()
    return ((KNOWN_LOG_SIZE_METADATA, str(trusted_size)),)


def next_version(manifest: AlertManifest, *, alert_id: str, originator: str) -> tuple[int, bytes]:
    """The version after ``manifest`` (verified) and the hash a new version names."""
    if manifest.alert_id != alert_id or manifest.originator != originator:
        raise VerificationError(
            f"asked the hub for alert {alert_id}, it answered with another",
            reason="ALERT_MISMATCH",
        )
    return manifest.version + 1, manifest.hash


# --- the I/O --------------------------------------------------------------------------------------

T = TypeVar("T")


DEFINITE_REFUSALS: tuple[type[ExchangeError], ...] = (
    NotAuthenticatedError,
    NotPermittedError,
    NotFoundError,
    ConflictError,
    TooLargeError,
    InvalidInputError,
    VerificationError,
    ConfigurationError,
)
"""Answers that refuse the request itself: its outbox entry goes. Any other failure keeps it."""


class Publisher(Concern):
    """Seals and sends this agency's alerts, keeping each sealed request until it is received."""

    def __init__(
        self,
        context: ClientContext,
        *,
        state: ClientState,
        watchlist: Callable[[], Watchlist],
        sleep: Callable[[float], None],
        monotonic: Callable[[], float],
        retry_seconds: float = PUBLISH_RETRY_SECONDS,
        on_retry: Retrying | None = None,
    ) -> None:
        super().__init__(context)
        if retry_seconds < 0:
            raise InvalidInputError("retry_seconds must be zero or more")
        self._state = state
        self._watchlist = watchlist
        self._sleep = sleep
        self._monotonic = monotonic
        self._retry_seconds = retry_seconds
        # The profile's keys are fixed for its lifetime: the public half is derived once, not
        # per publish.
        self._own_key = self._profile.decryption_key.public_key
        self._on_retry = on_retry

    def retry_schedule(self, retry_seconds: float | None = None) -> RetrySchedule:
        """One publish's waits between attempts, over ``retry_seconds`` (default: the client's)."""
        if retry_seconds is None:
            retry_seconds = self._retry_seconds
        if retry_seconds < 0:
            raise InvalidInputError("retry_seconds must be zero or more")
        return RetrySchedule(
            PUBLISH_BACKOFF, give_up_after=retry_seconds, sleep=self._sleep, clock=self._monotonic
        )

    def _run(self, steps: Steps[T]) -> T:
        """Run ``steps`` over the blocking transport, a retry's waits with the client's sleep."""
        return run_blocking(steps, self._transport, wait=self._sleep)

    def _wait(self, schedule: RetrySchedule, error: ExchangeError) -> Steps[bool]:
        """Count a failure and wait before the next attempt; ``False`` when the budget is spent."""
        delay = schedule.next_delay(functools.partial(self._announce_retry, error))
        if delay is None:
            return False
        yield from sleep(delay)
        return True

    def publish(
        self, draft: Draft, *, supersedes: str | None = None, retry_seconds: float | None = None
    ) -> Receipt:
        """See :meth:`exchange_client.Client.publish`."""
        return self._run(
            self.publish_steps(draft, supersedes=supersedes, retry_seconds=retry_seconds)
        )

    def publish_steps(
        self, draft: Draft, *, supersedes: str | None = None, retry_seconds: float | None = None
    ) -> Steps[Receipt]:
        """:meth:`publish` as steps."""
        self._transport.check_usable()  # before anything is sealed into the outbox
        flags = draft_flags(self._watchlist(), draft)
        plain = plain_items(draft)
        retry = self.retry_schedule(retry_seconds)

        def version(alert_id: str, number: int, previous_hash: bytes) -> Unsealed:
            return Unsealed(plain, alert_id, number, previous_hash, flags, retry)

        if supersedes is None:
            return (yield from self._publish_version(version(str(uuid.uuid4()), 1, b"")))
        alert_id = check_alert_id(supersedes)
        known = self._state.latest_published(alert_id)
        if known is not None:
            try:
                return (
                    yield from self._publish_version(
                        version(alert_id, known.version + 1, known.manifest_hash)
                    )
                )
            except ConflictError:
                # The hub holds that version already. If this profile recorded it meanwhile,
                # another process of the profile superseded first: say so. Otherwise the record
                # of a later version was lost (it is not flushed to disk): ask the hub.
                newest = self._state.latest_published(alert_id)
                if newest is not None and newest.version > known.version:
                    raise
        number, previous_hash = yield from self._next_version_from_hub(alert_id)
        return (yield from self._publish_version(version(alert_id, number, previous_hash)))

    def flush_outbox(self, *, retry_seconds: float | None = None) -> list[Receipt]:
        """See :meth:`exchange_client.Client.flush_outbox`."""
        return self._run(self.flush_outbox_steps(retry_seconds=retry_seconds))

    def flush_outbox_steps(self, *, retry_seconds: float | None = None) -> Steps[list[Receipt]]:
        """:meth:`flush_outbox` as steps."""
        self._transport.check_usable()
        self.retry_schedule(retry_seconds)  # refuses a negative budget before anything is sent
        receipts = []
        for entry in self._state.outbox():
            request = entry.read()
            receipts.append(
                (
                    yield from self._send(
                        entry,
                        request,
                        outbox_manifest_hash(entry, request),
                        retry=self.retry_schedule(retry_seconds),
                    )
                )
            )
        return receipts

    def _announce_retry(self, error: ExchangeError, seconds: float) -> None:
        if self._on_retry is not None:
            self._on_retry(seconds, error)

    def _publish_version(self, unsealed: Unsealed) -> Steps[Receipt]:
        fetched_at = self._partners.fetched_at
        try:
            return (yield from self._seal_and_send(unsealed, max_age=PARTNER_KEYS_MAX_AGE))
        except (InvalidInputError, NotPermittedError) as e:
            # Sealed to partner keys held from before this call: the hub's refusal of the
            # audience or of a grant's key may only mean a partner was revoked, re-keyed or
            # marked its key compromised since. Nothing was stored; seal again to the hub's
            # current directory, once.
            resealable = ("POLICY_INVALID", "RECIPIENT_KEY_COMPROMISED")
            if e.reason not in resealable or self._partners.fetched_at != fetched_at:
                raise
        return (yield from self._seal_and_send(unsealed, max_age=None))

    def _seal_and_send(self, unsealed: Unsealed, *, max_age: float | None) -> Steps[Receipt]:
        audience = {a for item in unsealed.items for a in item.policy.audience}
        while True:  # the hub may be restarting: its directory is asked within the same budget
            try:
                recipient_keys = yield from self._partners.recipient_keys_steps(
                    audience, max_age=max_age
                )
                break
            except UnavailableError as e:
                if not (yield from self._wait(unsealed.retry, e)):
                    raise
        sealed = seal_alert(
            originator=self._profile.agency_id,
            alert_id=unsealed.alert_id,
            version=unsealed.version,
            items=unsealed.items,
            signing_key=self._profile.signing_key,
            own_key=self._own_key,
            recipient_keys=recipient_keys,
            created_at=self._clock(),
            previous_manifest_hash=unsealed.previous_hash,
        )
        request = encode(sealed.request)
        entry = yield from self._state.save_outbox_steps(
            unsealed.alert_id, unsealed.version, request
        )
        return (
            yield from self._send(
                entry,
                request,
                sealed.manifest.hash,
                flags=unsealed.flags,
                retry=unsealed.retry,
                # The manifest in hand, not parsed back out of the request's bytes; sealing
                # built it from the signed envelope, so its encoding is already the logged
                # (canonical) form, without a round trip through the envelope.
                logged=encode(sealed.request.manifest),
            )
        )

    def _next_version_from_hub(self, alert_id: str) -> Steps[tuple[int, bytes]]:
        """The version after the hub's latest of this agency's ``alert_id``, and its manifest
        hash (verified)."""
        agency_id = self._profile.agency_id
        try:
            view = yield from self._manifests.view_steps(alert_id, originator=agency_id)
        except NotFoundError as e:
            raise NotFoundError(
                f"no alert {alert_id} published by {agency_id} to supersede", reason=e.reason
            ) from e
        keys = yield from self._partners.keys_of(agency_id)
        manifest = AlertManifest.verify(envelope_from_proto(view.manifest), keys)
        return next_version(manifest, alert_id=alert_id, originator=agency_id)

    def _send(
        self,
        entry: OutboxEntry,
        request: bytes,
        manifest_hash: bytes,
        *,
        flags: Sequence[str] = (),
        retry: RetrySchedule,
        logged: bytes | None = None,
    ) -> Steps[Receipt]:
        """Send ``request`` (saved as ``entry``) and prove its receipt; ``logged``, the bytes
        the hub logs for its manifest, if the caller has them (else read from ``request``)."""
        try:
            return (
                yield from self._send_and_prove(
                    entry, request, manifest_hash, flags=flags, retry=retry, logged=logged
                )
            )
        except BaseException:
            # Not received (nor refused: a refusal removed it): the journalled request becomes
            # the outbox file the error names, for a resend by this process or another.
            self._state.keep_outbox(entry)
            raise

    def _send_and_prove(
        self,
        entry: OutboxEntry,
        request: bytes,
        manifest_hash: bytes,
        *,
        flags: Sequence[str],
        retry: RetrySchedule,
        logged: bytes | None,
    ) -> Steps[Receipt]:
        try:
            response = yield from self._send_with_retries(entry, request, retry)
        except UnavailableError:
            raise  # the entry stays; the error names it
        except DEFINITE_REFUSALS:
            # The same bytes would be refused again.
            self._state.remove_outbox(entry)
            raise
        except ExchangeError as e:
            # The hub failed (its database, say) with the publish perhaps committed: only a
            # resend of the same bytes can tell, so the entry stays.
            raise ExchangeError(
                f"{e.message}. The sealed alert is kept in {entry.path}; "
                "`exchange resend` sends it again with the same bytes",
                reason=e.reason,
            ) from e
        receipt = receipt_from(
            response,
            originator=self._profile.agency_id,
            entry=entry,
            manifest_hash=manifest_hash,
            flags=flags,
        )
        self._state.record_published(
            alert_id=receipt.alert_id,
            version=receipt.version,
            manifest_hash=receipt.manifest_hash,
            log_index=receipt.log_index,
            accepted_at=receipt.accepted_at,
        )
        # The audit log: the published manifest must be in the verified log. Until it is proven
        # the entry stays in the outbox, so a resend (answered with the first receipt) proves it.
        try:
            yield from self._auditor.prove_statement_steps(
                logged_manifest(request) if logged is None else logged,
                receipt.log_index,
                proof=response.inclusion_proof if response.HasField("inclusion_proof") else None,
                note=response.checkpoint,
                consistency=response.consistency if response.HasField("consistency") else None,
                leaf=bytes(response.leaf),
            )
        except UnavailableError as e:
            raise UnavailableError(
                f"the hub accepted alert {receipt.alert_id} version {receipt.version}, but its "
                f"log entry could not be proven yet ({e.message}). The sealed alert is kept in "
                f"{entry.path}; `exchange resend` proves it",
                reason=e.reason,
            ) from e
        self._state.remove_outbox(entry)
        return receipt

    def _send_with_retries(
        self, entry: OutboxEntry, request: bytes, schedule: RetrySchedule
    ) -> Steps[alerts_pb2.PublishResponse]:
        while True:
            try:
                trusted = self._auditor.trusted
                response: alerts_pb2.PublishResponse = yield from publish_bytes(
                    request,
                    metadata=known_log_size(None if trusted is None else trusted.checkpoint.size),
                )
                return response
            except UnavailableError as e:
                if not (yield from self._wait(schedule, e)):
                    tries = schedule.failures
                    raise UnavailableError(
                        f"{e.message}. Tried {tries} time{'s' if tries != 1 else ''} in "
                        f"{schedule.budget:g} s; the sealed alert is kept in {entry.path}: "
                        "`exchange resend` sends it again with the same bytes",
                        reason=e.reason,
                    ) from e
