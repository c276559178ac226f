"""The hub's side of release controls: the ReleaseService servicer and the embargo/expiry sweeper.

Every call carries a signed statement.  The servicer verifies it under the caller's registered
keys and checks that it names the caller as its signer — the hub never accepts a statement on
someone else's behalf — then hands it to one function of :mod:`exchange.store.release`, which
stores it with its log leaf and feed events in one transaction.

:class:`ReleaseSweeper` tells holders of embargoed grants when the embargo lapses and purges items
past their expiry.  It runs in a background thread at an interval; reads (``GetAlert``,
``ListAlerts``, ``ListEvents``) sweep first when the clock has moved on, and tests call
:meth:`ReleaseSweeper.sweep_now` after moving the frozen clock, so nothing waits on a sleep.  The
hub never serves a grant before its time or an item after its expiry whatever the sweeper has
done: those rules are applied on every read.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

import grpc
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from exchange.errors import (
    ExchangeError,
    FieldViolation,
    InvalidInputError,
    NotPermittedError,
)
from exchange.hub.background import BackgroundThread
from exchange.hub.guard import current_caller
from exchange.hub.notifier import FeedNotifier
from exchange.hub.servicers import HubContext
from exchange.statements.codec import envelope_from_proto
from exchange.statements.release import (
    Feedback,
    PurgeAck,
    Receipt,
    ReleaseDecision,
    ReleaseRequest,
    Retraction,
    Revocation,
    SignedStatement,
)
from exchange.store import release as release_store
from exchange.store.db import Database
from exchange.v1 import release_pb2, release_pb2_grpc, statements_pb2

log = logging.getLogger(__name__)

SWEEP_INTERVAL_SECONDS = 5.0
"""How often the background sweeper looks for lapsed embargoes and expired items."""

READ_SWEEP_SPACING = timedelta(seconds=1)
"""A read sweeps first when the hub's clock has moved on by this much since the last sweep."""

S = TypeVar("S", bound="SignedStatement[Any]")


class ReleaseServicer(release_pb2_grpc.ReleaseServiceServicer):
    """Requests, decisions, revocations, purges, receipts, feedback and retractions."""

    def __init__(self, hub: HubContext) -> None:
        self._hub = hub

    def _verified(
        self, kind: type[S], envelope: statements_pb2.Envelope, field: str, present: bool
    ) -> S:
        """The statement in ``envelope``, signed by the caller and naming the caller as signer."""
        if not present:
            raise InvalidInputError(
                f"the request carries no {field}", violations=[FieldViolation(field, "required")]
            )
        caller = current_caller()
        statement = kind.verify(
            envelope_from_proto(envelope), self._hub.directory.signing_keys(caller)
        )
        if statement.signer != caller:
            raise NotPermittedError(
                f"the {field} is made out by {statement.signer!r}; you are {caller!r}",
                reason="SIGNER_MISMATCH",
            )
        return statement

    def _notify(self, outcome: release_store.StoredStatement) -> None:
        if outcome.events:
            self._hub.notifier.notify()

    def RequestRelease(
        self, request: release_pb2.RequestReleaseRequest, context: grpc.ServicerContext
    ) -> release_pb2.RequestReleaseResponse:
        statement = self._verified(
            ReleaseRequest, request.request, "request", request.HasField("request")
        )
        with self._hub.db.write() as connection:
            outcome = release_store.record_request(
                connection,
                statement,
                registered=self._hub.directory.encryption_key_ids().keys(),
                now=self._hub.clock(),
            )
        self._notify(outcome)
        return release_pb2.RequestReleaseResponse(
            request_id=outcome.request_id, log_index=outcome.log_index
        )

    def ListRequests(
        self, request: release_pb2.ListRequestsRequest, context: grpc.ServicerContext
    ) -> release_pb2.ListRequestsResponse:
        with self._hub.db.read() as connection:
            views = release_store.list_requests(
                connection,
                current_caller(),
                mine=request.mine,
                include_decided=request.include_decided,
            )
        return release_pb2.ListRequestsResponse(requests=views)

    def DecideRelease(
        self, request: release_pb2.DecideReleaseRequest, context: grpc.ServicerContext
    ) -> release_pb2.DecideReleaseResponse:
        decision = self._verified(
            ReleaseDecision, request.decision, "decision", request.HasField("decision")
        )
        grant = request.grant if request.HasField("grant") else None
        with self._hub.db.write() as connection:
            outcome = release_store.record_decision(
                connection,
                decision,
                grant,
                encryption_key_ids=self._hub.directory.encryption_key_ids(),
                now=self._hub.clock(),
            )
        self._notify(outcome)
        return release_pb2.DecideReleaseResponse(log_index=outcome.log_index)

    def Revoke(
        self, request: release_pb2.RevokeRequest, context: grpc.ServicerContext
    ) -> release_pb2.RevokeResponse:
        revocation = self._verified(
            Revocation, request.revocation, "revocation", request.HasField("revocation")
        )
        with self._hub.db.write() as connection:
            outcome = release_store.revoke_item(connection, revocation, now=self._hub.clock())
        self._notify(outcome)
        return release_pb2.RevokeResponse(
            log_index=outcome.log_index, grants_deleted=outcome.grants_deleted
        )

    def AcknowledgePurge(
        self, request: release_pb2.AcknowledgePurgeRequest, context: grpc.ServicerContext
    ) -> release_pb2.AcknowledgePurgeResponse:
        ack = self._verified(PurgeAck, request.purge_ack, "purge_ack", request.HasField("purge_ack"))
        with self._hub.db.write() as connection:
            outcome = release_store.record_purge_ack(connection, ack, now=self._hub.clock())
        self._notify(outcome)
        return release_pb2.AcknowledgePurgeResponse(log_index=outcome.log_index)

    def SubmitReceipt(
        self, request: release_pb2.SubmitReceiptRequest, context: grpc.ServicerContext
    ) -> release_pb2.SubmitReceiptResponse:
        receipt = self._verified(Receipt, request.receipt, "receipt", request.HasField("receipt"))
        with self._hub.db.write() as connection:
            outcome = release_store.record_receipt(connection, receipt, now=self._hub.clock())
        self._notify(outcome)
        return release_pb2.SubmitReceiptResponse(log_index=outcome.log_index)

    def ListReceipts(
        self, request: release_pb2.ListReceiptsRequest, context: grpc.ServicerContext
    ) -> release_pb2.ListReceiptsResponse:
        if not request.alert_id:
            raise InvalidInputError(
                "alert_id is required", violations=[FieldViolation("alert_id", "required")]
            )
        with self._hub.db.read() as connection:
            return release_store.list_receipts(connection, current_caller(), request.alert_id)

    def SubmitFeedback(
        self, request: release_pb2.SubmitFeedbackRequest, context: grpc.ServicerContext
    ) -> release_pb2.SubmitFeedbackResponse:
        statement = self._verified(
            Feedback, request.feedback, "feedback", request.HasField("feedback")
        )
        with self._hub.db.write() as connection:
            outcome = release_store.record_feedback(
                connection,
                statement,
                encryption_key_ids=self._hub.directory.encryption_key_ids(),
                now=self._hub.clock(),
            )
        self._notify(outcome)
        return release_pb2.SubmitFeedbackResponse(log_index=outcome.log_index)

    def Retract(
        self, request: release_pb2.RetractRequest, context: grpc.ServicerContext
    ) -> release_pb2.RetractResponse:
        retraction = self._verified(
            Retraction, request.retraction, "retraction", request.HasField("retraction")
        )
        with self._hub.db.write() as connection:
            outcome = release_store.retract_alert(connection, retraction, now=self._hub.clock())
        self._notify(outcome)
        return release_pb2.RetractResponse(log_index=outcome.log_index)


class ReleaseSweeper(BackgroundThread):
    """Sends embargo-lapse notices and purges expired items, now or in a background thread."""

    def __init__(
        self,
        db: Database,
        notifier: FeedNotifier,
        *,
        clock: Callable[[], datetime],
        interval: float = SWEEP_INTERVAL_SECONDS,
    ) -> None:
        self._db = db
        self._notifier = notifier
        self._clock = clock
        self._interval = interval
        self._lock = threading.Lock()
        self._last_sweep: datetime | None = None
        super().__init__("release-sweeper")

    def sweep_on_read(self) -> None:
        """Sweep before a read unless a sweep ran less than :data:`READ_SWEEP_SPACING` ago."""
        last = self._last_sweep
        if last is None or self._clock() - last >= READ_SWEEP_SPACING:
            self.sweep_now()

    def sweep_now(self) -> tuple[int, int]:
        """Run one sweep at the clock's time; returns (embargo notices sent, items purged)."""
        now = self._clock()
        with self._lock:
            self._last_sweep = now
            with self._db.read() as connection:
                if not release_store.sweep_due(connection, now=now):
                    return 0, 0
            try:
                with self._db.write() as connection:
                    events = release_store.release_lapsed_embargoes(connection, now=now)
                    purged = release_store.purge_expired_items(connection, now=now)
            except IntegrityError:
                # Another replica swept the same rows first; the next sweep sees its result.
                log.info("release sweep raced another replica; retrying at the next interval")
                return 0, 0
        if events:
            self._notifier.notify()
        return len(events), purged

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            try:
                self.sweep_now()
            except ExchangeError as e:
                log.warning("release sweep failed: %s", e.message)
            except SQLAlchemyError:  # a database outage must not end the thread for good
                log.exception("release sweep failed")
