"""Sending a signed statement to the hub, in one place: which call carries which statement, the
request that carries it, and the result the caller gets back.

Every release-control statement travels the same way: it is built and signed (by the concern's
module), put in its call's request (:func:`statement_request`, pure), sent
(:func:`send_statement`) and the hub's answer turned into a :class:`StatementResult`
(:func:`statement_result`, pure).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message

from exchange.statements import release
from exchange.statements.alert import KeyGrant
from exchange.statements.codec import envelope_to_proto
from exchange.v1 import release_pb2
from exchange_client._internal.calls import Steps, call, run
from exchange_client._internal.models import StatementResult
from exchange_client._internal.transport import Transport


@dataclass(frozen=True)
class _Route:
    """The ``ReleaseService`` method that carries one kind of statement, in which field."""

    method: str
    request: type[Message]
    field: str


_ROUTES: dict[type[release.SignedStatement[Any]], _Route] = {
    release.ReleaseRequest: _Route("RequestRelease", release_pb2.RequestReleaseRequest, "request"),
    release.ReleaseDecision: _Route("DecideRelease", release_pb2.DecideReleaseRequest, "decision"),
    release.Revocation: _Route("Revoke", release_pb2.RevokeRequest, "revocation"),
    release.Retraction: _Route("Retract", release_pb2.RetractRequest, "retraction"),
    release.PurgeAck: _Route("AcknowledgePurge", release_pb2.AcknowledgePurgeRequest, "purge_ack"),
    release.Receipt: _Route("SubmitReceipt", release_pb2.SubmitReceiptRequest, "receipt"),
    release.Feedback: _Route("SubmitFeedback", release_pb2.SubmitFeedbackRequest, "feedback"),
}


def statement_request(
    statement: release.SignedStatement[Any], *, grant: KeyGrant | None = None
) -> Message:
    """The request of the call that carries ``statement`` (with a decision's ``grant``)."""
    route = _ROUTES[type(statement)]
    request = route.request()
    getattr(request, route.field).CopyFrom(envelope_to_proto(statement.envelope))
    if grant is not None:
        request.grant.CopyFrom(grant.message)  # type: ignore[attr-defined]
    return request


def send_statement(
    transport: Transport, statement: release.SignedStatement[Any], *, grant: KeyGrant | None = None
) -> Any:
    """Send ``statement`` in its call; returns the hub's response (each carries ``log_index``)."""
    return run(statement_call(statement, grant=grant), transport)


def statement_call(
    statement: release.SignedStatement[Any], *, grant: KeyGrant | None = None
) -> Steps[Any]:
    """:func:`send_statement` as steps (see :mod:`~exchange_client._internal.calls`)."""
    method = _ROUTES[type(statement)].method
    return (yield from call("release", method, statement_request(statement, grant=grant)))


def statement_result(
    kind: str, about: release.NamesAlertVersion, *, log_index: int, **fields: Any
) -> StatementResult:
    """What a statement about the alert version ``about`` came to, as the caller sees it."""
    return StatementResult(
        kind=kind,
        originator=about.originator,
        alert_id=about.alert_id,
        version=about.version,
        log_index=log_index,
        **fields,
    )
