"""``AsyncClient``: the agency's client for services written with asyncio, on ``grpc.aio``.

It is not a second implementation: it wires the same concern modules as
:class:`~exchange_client._internal.client.Client` (:func:`~exchange_client._internal.context.wire`)
over an :class:`~exchange_client._internal.transport.AsyncTransport`, and each coroutine awaits
the same operation — written once as steps (:mod:`~exchange_client._internal.calls`) — that the
blocking client runs with :func:`~exchange_client._internal.calls.run`. Verification, the audit
log's rules, the partner keys and the state files (``checkpoint.json`` and the rest under the
profile's ``state/``) are therefore shared, rule for rule, with ``Client``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Self, TypeVar

from exchange.alerts.draft import Draft
from exchange.audit.verify import VerificationReport
from exchange_client._internal.audit import Auditor, Progress
from exchange_client._internal.audit.results import CheckpointSummary, Comparison, HistoryEntry
from exchange_client._internal.calls import Steps, run_async
from exchange_client._internal.concerns import Concerns
from exchange_client._internal.context import wire
from exchange_client._internal.events import FeedReader
from exchange_client._internal.feed import AsyncFeedSubscription, Reconnecting
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
from exchange_client._internal.state import ClientState
from exchange_client._internal.transport import AsyncTransport

T = TypeVar("T")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _no_blocking_sleep(seconds: float) -> None:
    raise AssertionError("an AsyncClient awaits its waits as steps; it never sleeps blocking")


class AsyncAuditor:
    """The audit calls of an :class:`AsyncClient` (``client.auditor``), as coroutines: the same
    operations as :class:`~exchange_client._internal.audit.Auditor`'s, on the same trusted
    checkpoint (``state/checkpoint.json``)."""

    def __init__(self, auditor: Auditor, transport: AsyncTransport) -> None:
        self._auditor = auditor
        self._transport = transport

    async def _run(self, steps: Steps[T]) -> T:
        return await run_async(steps, self._transport)

    async def summary(self) -> CheckpointSummary:
        """See :meth:`Auditor.summary <exchange_client._internal.audit.Auditor.summary>`."""
        return await self._run(self._auditor.summary_steps())

    async def verify(self, *, progress: Progress | None = None) -> VerificationReport:
        """See :meth:`Auditor.verify <exchange_client._internal.audit.Auditor.verify>`."""
        return await self._run(self._auditor.verify_steps(progress=progress))

    async def history(self, alert_id: str) -> list[HistoryEntry]:
        """See :meth:`Auditor.history <exchange_client._internal.audit.Auditor.history>`."""
        return await self._run(self._auditor.history_steps(alert_id))

    async def compare(self, partner_note: str) -> Comparison:
        """See :meth:`Auditor.compare <exchange_client._internal.audit.Auditor.compare>`."""
        return await self._run(self._auditor.compare_steps(partner_note))


class AsyncClient:
    """A ``grpc.aio`` connection to the hub acting as the agency of ``profile``.

    ``hub``, ``clock``, ``timeout``, ``retry_seconds`` and ``on_retry`` as for
    :class:`~exchange_client.Client` (a publish's waits between attempts are awaited). Use it as an
    async context manager, or await :meth:`close`. Every method is a coroutine running the
    same operation as the ``Client`` method of the same name; ``auditor`` holds the audit calls
    (:class:`AsyncAuditor`). One ``AsyncClient`` belongs to one event loop (``grpc.aio``'s
    rule); one used after :meth:`close` raises :class:`ClientClosedError`.
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
        self._transport = AsyncTransport.secure(profile, target=self.target, timeout=timeout)
        context = wire(self._transport, profile, clock=self._clock)
        self._partners = context.partners
        self.auditor = AsyncAuditor(context.auditor, self._transport)
        """The audit calls: checkpoint, whole-log verification, history, comparison."""
        self._state = state = ClientState(profile.state_dir)
        concerns = Concerns.wire(
            context,
            state=state,
            sleep=_no_blocking_sleep,
            monotonic=time.monotonic,
            retry_seconds=retry_seconds,
            on_retry=on_retry,
        )
        self._publisher = concerns.publisher
        self._feed = FeedReader(
            self._transport,
            state=state,
            auditor=context.auditor,
            sleep=_no_blocking_sleep,
            monotonic=time.monotonic,
        )
        self._release = concerns.release
        self._deliveries = concerns.deliveries
        self._opener = concerns.opener

    async def _run(self, steps: Steps[T]) -> T:
        return await run_async(steps, self._transport)

    # --- lifetime ---------------------------------------------------------------------------------

    async def close(self) -> None:
        """Close the channel and fold this process's state journal into the profile's state
        files. Idempotent; any later call raises :class:`ClientClosedError`."""
        await self._transport.close()
        await asyncio.to_thread(self._state.close)  # it may flush: not in the event loop

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # --- directory ----------------------------------------------------------------------------

    async def agencies(self) -> list[AgencyInfo]:
        """See :meth:`exchange_client.Client.agencies`."""
        partners = await self._run(self._partners.fetch(refresh=True))
        return [agency_info(p) for p in partners.values()]

    # --- publishing -----------------------------------------------------------------------------

    async def publish(
        self,
        draft: Draft,
        *,
        supersedes: str | None = None,
        retry_seconds: float | None = None,
    ) -> Receipt:
        """See :meth:`exchange_client.Client.publish`: the same outbox in the profile's
        ``state/outbox/``, the same resends with the same bytes, the waits awaited."""
        return await self._run(
            self._publisher.publish_steps(
                draft, supersedes=supersedes, retry_seconds=retry_seconds
            )
        )

    async def flush_outbox(self, *, retry_seconds: float | None = None) -> list[Receipt]:
        """See :meth:`exchange_client.Client.flush_outbox`."""
        return await self._run(self._publisher.flush_outbox_steps(retry_seconds=retry_seconds))

    # --- reading --------------------------------------------------------------------------------

    async def inbox(self, *, limit: int = 100) -> list[InboxEntry]:
        """See :meth:`exchange_client.Client.inbox`."""
        return await self._run(self._opener.inbox_steps(limit=limit))

    async def open(
        self, alert_id: str, *, originator: str | None = None, version: int | None = None
    ) -> OpenedAlert:
        """See :meth:`exchange_client.Client.open` (receipts and purge acknowledgements are sent
        as ``Client`` sends them)."""
        return await self._run(
            self._opener.open_steps(alert_id, originator=originator, version=version)
        )

    # --- the feed -------------------------------------------------------------------------------

    async def events(self, after: int | None = None, *, limit: int = 100) -> list[FeedEvent]:
        """See :meth:`exchange_client.Client.events`."""
        return await self._run(self._feed.events_steps(after, limit=limit))

    async def commit_cursor(self, sequence: int) -> None:
        """See :meth:`exchange_client.Client.commit_cursor`."""
        self._transport.check_usable()
        self._feed.commit_cursor(sequence)

    async def cursor(self) -> int:
        """See :meth:`exchange_client.Client.cursor`."""
        return self._feed.cursor()

    def watch(
        self,
        after: int | None = None,
        *,
        heartbeats: bool = False,
        give_up_after: float | None = None,
        on_reconnect: Reconnecting | None = None,
    ) -> AsyncFeedSubscription:
        """Stream the feed from ``after`` (default: the saved cursor) as an async iterator:
        ``async for event in client.watch(): ...``.

        :meth:`exchange_client.Client.subscribe`'s subscription, each event awaited: the same
        catch-up then live delivery, reconnections (waits awaited), gap checks, proofs in the
        log, and cursor saves (use ``async with`` to save the last event on a clean exit). It
        takes the profile's cursor lock at once, shared with ``Client``: one reader per profile.
        """
        return self._feed.watch(
            after, heartbeats=heartbeats, give_up_after=give_up_after, on_reconnect=on_reconnect
        )

    # --- release controls -------------------------------------------------------------------

    async def request_release(
        self,
        alert_id: str,
        item_id: str,
        *,
        reason: str,
        for_agency: str | None = None,
        originator: str | None = None,
        version: int | None = None,
    ) -> ReleaseRequest:
        """See :meth:`exchange_client.Client.request_release`."""
        return await self._run(
            self._release.request_release_steps(
                alert_id,
                item_id,
                reason=reason,
                for_agency=for_agency,
                originator=originator,
                version=version,
            )
        )

    async def release_requests(
        self, *, mine: bool = False, include_decided: bool = False
    ) -> list[ReleaseRequest]:
        """See :meth:`exchange_client.Client.release_requests`."""
        return await self._run(
            self._release.release_requests_steps(mine=mine, include_decided=include_decided)
        )

    async def approve(self, request_id: str) -> StatementResult:
        """See :meth:`exchange_client.Client.approve`."""
        return await self._run(self._release.approve_steps(request_id))

    async def deny(self, request_id: str, *, reason: str) -> StatementResult:
        """See :meth:`exchange_client.Client.deny`."""
        return await self._run(self._release.deny_steps(request_id, reason=reason))

    async def revoke(
        self, alert_id: str, item_id: str, *, from_agency: str | None = None, reason: str = ""
    ) -> StatementResult:
        """See :meth:`exchange_client.Client.revoke`."""
        return await self._run(
            self._release.revoke_steps(alert_id, item_id, from_agency=from_agency, reason=reason)
        )

    async def retract(self, alert_id: str, *, reason: str) -> StatementResult:
        """See :meth:`exchange_client.Client.retract`."""
        return await self._run(self._release.retract_steps(alert_id, reason=reason))

    # --- receipts and feedback ------------------------------------------------------------------

    async def feedback(
        self, alert_id: str, outcome: str, *, note: str = "", originator: str | None = None
    ) -> StatementResult:
        """See :meth:`exchange_client.Client.feedback`."""
        return await self._run(
            self._deliveries.feedback_steps(alert_id, outcome, note=note, originator=originator)
        )

    async def receipts(self, alert_id: str) -> list[DeliveryRecord]:
        """See :meth:`exchange_client.Client.receipts`."""
        return await self._run(self._deliveries.receipts_steps(alert_id))

    async def acknowledge_purge(
        self, alert_id: str, item_id: str, *, originator: str, version: int
    ) -> StatementResult:
        """See :meth:`exchange_client.Client.acknowledge_purge`."""
        return await self._run(
            self._deliveries.acknowledge_purge_steps(
                alert_id, item_id, originator=originator, version=version
            )
        )
