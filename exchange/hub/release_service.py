"""The hub's side of release controls: the ReleaseService servicer.

Every call carries a signed statement.  The servicer verifies it under the caller's registered
keys and checks that it names the caller as its signer — the hub never accepts a statement on
someone else's behalf — then hands it to one function of :mod:`exchange.store.release`, which
stores it with its log leaf and feed events in one transaction.  (The embargo and expiry
sweeper is :class:`exchange.hub.background.ReleaseSweeper`.)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message
from sqlalchemy import Connection

from exchange.errors import (
    FieldViolation,
    InvalidInputError,
    NotPermittedError,
)
from exchange.hub.blocking import blocking
from exchange.hub.guard import current_caller
from exchange.hub.servicers import HubContext
from exchange.statements import release
from exchange.statements.codec import envelope_from_proto
from exchange.store import release as release_store
from exchange.store.release import StoredStatement
from exchange.v1 import release_pb2, release_pb2_grpc

log = logging.getLogger(__name__)

S = TypeVar("S", bound="release.SignedStatement[Any]")


class ReleaseServicer(release_pb2_grpc.ReleaseServiceServicer):
    """Requests, decisions, revocations, purges, receipts, feedback and retractions."""

    def __init__(self, hub: HubContext) -> None:
        self._hub = hub

    def _verified(self, kind: type[S], request: Message, field: str) -> S:
        """The statement in ``request.<field>``, signed by the caller and naming the caller as
        its signer."""
        if not request.HasField(field):
            raise InvalidInputError(
                f"the request carries no {field}", violations=[FieldViolation(field, "required")]
            )
        caller = current_caller()
        statement = kind.verify(
            envelope_from_proto(getattr(request, field)), self._hub.directory.signing_keys(caller)
        )
        if statement.signer != caller:
            raise NotPermittedError(
                f"the {field} is made out by {statement.signer!r}; you are {caller!r}",
                reason="SIGNER_MISMATCH",
            )
        return statement

    def _store(self, record: Callable[[Connection, datetime], StoredStatement]) -> StoredStatement:
        """Run one store function in a write transaction at the hub's time; wake the feed
        streams if it appended events."""
        with self._hub.db.write() as connection:
            outcome = record(connection, self._hub.clock())
        if outcome.events:
            self._hub.notifier.notify()
        return outcome

    @blocking
    def RequestRelease(
        self, request: release_pb2.RequestReleaseRequest, context: grpc.ServicerContext
    ) -> release_pb2.RequestReleaseResponse:
        statement = self._verified(release.ReleaseRequest, request, "request")
        registered = self._hub.directory.encryption_key_ids().keys()
        outcome = self._store(
            lambda c, now: release_store.record_request(c, statement, registered=registered, now=now)
        )
        return release_pb2.RequestReleaseResponse(
            request_id=outcome.request_id, log_index=outcome.log_index
        )

    @blocking
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

    @blocking
    def DecideRelease(
        self, request: release_pb2.DecideReleaseRequest, context: grpc.ServicerContext
    ) -> release_pb2.DecideReleaseResponse:
        decision = self._verified(release.ReleaseDecision, request, "decision")
        grant = request.grant if request.HasField("grant") else None
        if grant is not None:
            self._hub.directory.refuse_compromised_grants([grant], now=self._hub.clock())
        key_ids = dict(self._hub.directory.encryption_key_ids())
        outcome = self._store(
            lambda c, now: release_store.record_decision(
                c, decision, grant, encryption_key_ids=key_ids, now=now
            )
        )
        return release_pb2.DecideReleaseResponse(log_index=outcome.log_index)

    @blocking
    def Revoke(
        self, request: release_pb2.RevokeRequest, context: grpc.ServicerContext
    ) -> release_pb2.RevokeResponse:
        revocation = self._verified(release.Revocation, request, "revocation")
        outcome = self._store(lambda c, now: release_store.revoke_item(c, revocation, now=now))
        return release_pb2.RevokeResponse(
            log_index=outcome.log_index, grants_deleted=outcome.grants_deleted
        )

    @blocking
    def AcknowledgePurge(
        self, request: release_pb2.AcknowledgePurgeRequest, context: grpc.ServicerContext
    ) -> release_pb2.AcknowledgePurgeResponse:
        statement = self._verified(release.PurgeAck, request, "purge_ack")
        outcome = self._store(lambda c, now: release_store.record_purge_ack(c, statement, now=now))
        return release_pb2.AcknowledgePurgeResponse(log_index=outcome.log_index)

    @blocking
    def SubmitReceipt(
        self, request: release_pb2.SubmitReceiptRequest, context: grpc.ServicerContext
    ) -> release_pb2.SubmitReceiptResponse:
        statement = self._verified(release.Receipt, request, "receipt")
        outcome = self._store(lambda c, now: release_store.record_receipt(c, statement, now=now))
        return release_pb2.SubmitReceiptResponse(log_index=outcome.log_index)

    @blocking
    def ListReceipts(
        self, request: release_pb2.ListReceiptsRequest, context: grpc.ServicerContext
    ) -> release_pb2.ListReceiptsResponse:
        if not request.alert_id:
            raise InvalidInputError(
                "alert_id is required", violations=[FieldViolation("alert_id", "required")]
            )
        with self._hub.db.read() as connection:
            return release_store.list_receipts(connection, current_caller(), request.alert_id)

    @blocking
    def SubmitFeedback(
        self, request: release_pb2.SubmitFeedbackRequest, context: grpc.ServicerContext
    ) -> release_pb2.SubmitFeedbackResponse:
        statement = self._verified(release.Feedback, request, "feedback")
        key_ids = dict(self._hub.directory.encryption_key_ids())
        outcome = self._store(
            lambda c, now: release_store.record_feedback(
                c, statement, encryption_key_ids=key_ids, now=now
            )
        )
        return release_pb2.SubmitFeedbackResponse(log_index=outcome.log_index)

    @blocking
    def Retract(
        self, request: release_pb2.RetractRequest, context: grpc.ServicerContext
    ) -> release_pb2.RetractResponse:
        statement = self._verified(release.Retraction, request, "retraction")
        outcome = self._store(lambda c, now: release_store.retract_alert(c, statement, now=now))
        return release_pb2.RetractResponse(log_index=outcome.log_index)
