"""Release controls in storage: requests, decisions, revocations, purge acknowledgements,
receipts, feedback, retractions, and the embargo and expiry sweeps.

Every function runs in the caller's write transaction and stores the statement's exact bytes,
its audit-log leaf and the feed events it causes together, or nothing.  Statements arrive here
verified (signature, canonical bytes, signer = caller); what is checked here is what needs the
database: that the alert version and item exist, and that the caller may act on them.  An item
the caller may not see is :class:`NotFoundError`, worded exactly as for one that does not exist.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, Table, and_, delete, exists, insert, select, update

from exchange.audit import leaves
from exchange.crypto.encoding import lp
from exchange.errors import (
    ConflictError,
    ExchangeError,
    FieldViolation,
    InvalidInputError,
    NotFoundError,
    NotPermittedError,
)
from exchange.statements.codec import encode, envelope_to_proto, sha256
from exchange.statements.release import (
    Feedback,
    NamesManifest,
    PurgeAck,
    Receipt,
    ReleaseDecision,
    ReleaseRequest,
    Retraction,
    Revocation,
    SignedStatement,
)
from exchange.store.feed import NewEvent, append_event
from exchange.store.log import append_entry
from exchange.store.release_tables import (
    embargo_releases,
    feedback,
    item_revocations,
    purge_acks,
    receipts,
    release_requests,
    retractions,
    revocations,
)
from exchange.store.schema import alerts, grants, item_audience, items
from exchange.v1 import alerts_pb2, release_pb2, statements_pb2

Kind = alerts_pb2.FeedEvent

ITEM_PURGED_LABEL = b"exchange/item-purged/v1"
"""The label of an expiry purge's log body: (label, originator, alert id, version, item id)."""

APPROVED = "APPROVED"
DENIED = "DENIED"


def _envelope_bytes(statement: SignedStatement[Any]) -> bytes:
    return encode(envelope_to_proto(statement.envelope))


@dataclass(frozen=True)
class StoredStatement:
    """What the hub answers when it has stored a statement: its log index and the new events."""

    log_index: int
    events: tuple[alerts_pb2.FeedEvent, ...] = ()
    request_id: str = ""
    grants_deleted: int = 0


# --- lookups -------------------------------------------------------------------------------------


_RecipientMessage = statements_pb2.Receipt | statements_pb2.Feedback


def _alert_version(connection: Connection, message: NamesManifest) -> Row[Any] | None:
    """The stored alert version a statement names, only if its manifest hash matches too."""
    return connection.execute(
        select(alerts).where(
            alerts.c.originator == message.originator,
            alerts.c.alert_id == message.alert_id,
            alerts.c.version == message.version,
            alerts.c.manifest_hash == message.manifest_hash,
        )
    ).first()


def _version_seen_by_recipient(connection: Connection, message: _RecipientMessage) -> Row[Any]:
    """The alert version a recipient's statement names, if the recipient may see it (and is
    not its originator); else the same NOT_FOUND as for a version that does not exist."""
    alert = _alert_version(connection, message)
    if alert is None or message.recipient == alert.originator or not _sees_alert(
        connection, alert, message.recipient
    ):
        raise _not_found_alert(message.alert_id, message.version)
    return alert


def _item(connection: Connection, alert_pk: int, item_id: str) -> Row[Any] | None:
    return connection.execute(
        select(items).where(items.c.alert_pk == alert_pk, items.c.item_id == item_id)
    ).first()


def _audience(connection: Connection, alert_pk: int, item_id: str) -> list[str]:
    return list(
        connection.execute(
            select(item_audience.c.agency_id)
            .where(item_audience.c.alert_pk == alert_pk, item_audience.c.item_id == item_id)
            .order_by(item_audience.c.agency_id)
        ).scalars()
    )


def _alert_audience(connection: Connection, alert_pks: Iterable[int]) -> list[str]:
    return list(
        connection.execute(
            select(item_audience.c.agency_id)
            .where(item_audience.c.alert_pk.in_(list(alert_pks)))
            .distinct()
            .order_by(item_audience.c.agency_id)
        ).scalars()
    )


def _sees_alert(connection: Connection, alert: Row[Any], agency: str) -> bool:
    return alert.originator == agency or agency in _alert_audience(connection, [alert.id])


def _item_unavailable(item: Row[Any], now: datetime) -> bool:
    """Past its expiry, or already purged."""
    return item.ciphertext is None or (
        item.expires_at is not None and item.expires_at <= now
    )


def _not_found_item(item_id: str, alert_id: str, version: int) -> NotFoundError:
    return NotFoundError(
        f"no item {item_id!r} in version {version} of alert {alert_id} that you may see"
    )


def _not_found_alert(alert_id: str, version: int) -> NotFoundError:
    return NotFoundError(f"no version {version} of alert {alert_id} that you may see")


def _expired(item_id: str) -> ExchangeError:
    return ExchangeError(
        f"item {item_id!r} has expired and was purged; nothing can be released",
        reason="ITEM_EXPIRED",
    )


def _log(
    connection: Connection,
    entry_type: str,
    statement: SignedStatement[Any],
    alert: Row[Any],
    entitled: Iterable[str],
    now: datetime,
) -> int:
    return append_entry(
        connection,
        entry_type=entry_type,
        body=_envelope_bytes(statement),
        references=[alert.originator, alert.alert_id, str(alert.version)],
        entitled=[alert.originator, *entitled],
        now=now,
    )


def _event(
    connection: Connection,
    agency: str,
    kind: int,
    alert: Row[Any],
    now: datetime,
    *,
    item_id: str = "",
    request_id: str = "",
    actor: str = "",
) -> alerts_pb2.FeedEvent:
    return append_event(
        connection,
        NewEvent(
            agency_id=agency,
            kind=kind,
            originator=alert.originator,
            alert_id=alert.alert_id,
            version=int(alert.version),
            item_id=item_id,
            request_id=request_id,
            actor=actor,
        ),
        now=now,
    )


def _available_grant(
    connection: Connection, alert_pk: int, item_id: str, recipient: str, now: datetime
) -> bool:
    found = connection.execute(
        select(grants.c.id).where(
            grants.c.alert_pk == alert_pk,
            grants.c.item_id == item_id,
            grants.c.recipient == recipient,
            grants.c.available_at <= now,
        )
    ).first()
    return found is not None


# --- requests and decisions ----------------------------------------------------------------------


def record_request(
    connection: Connection,
    request: ReleaseRequest,
    *,
    registered: Collection[str],
    now: datetime,
) -> StoredStatement:
    """Store a verified request from an agency in the item's audience, and tell the originator.

    ``registered`` holds every unrevoked agency, for an onward request's ``release_to``.  A
    retry of the same bytes returns the first answer.
    """
    message = request.message
    alert = _alert_version(connection, message)
    item = None if alert is None else _item(connection, alert.id, message.item_id)
    if (
        alert is None
        or item is None
        or message.requester not in _audience(connection, alert.id, message.item_id)
    ):
        raise _not_found_item(message.item_id, message.alert_id, message.version)
    existing = connection.execute(
        select(release_requests).where(release_requests.c.request_id == request.request_id)
    ).first()
    if existing is not None:
        return StoredStatement(log_index=int(existing.log_index), request_id=request.request_id)
    if message.release_to and message.release_to not in registered:
        raise InvalidInputError(
            f"no registered agency {message.release_to!r} to release the item to",
            violations=[FieldViolation("release_to", "not a registered, unrevoked agency")],
            reason="UNKNOWN_AGENCY",
        )
    if _item_unavailable(item, now):
        raise _expired(message.item_id)
    if _available_grant(connection, alert.id, message.item_id, request.target, now):
        raise ConflictError(
            f"item {message.item_id!r} is already released to {request.target}",
            reason="ALREADY_RELEASED",
        )
    log_index = _log(
        connection,
        leaves.RELEASE_REQUEST,
        request,
        alert,
        [message.requester, request.target],
        now,
    )
    connection.execute(
        insert(release_requests).values(
            request_id=request.request_id,
            alert_pk=alert.id,
            item_id=message.item_id,
            requester=message.requester,
            target=request.target,
            envelope=_envelope_bytes(request),
            created_at=now,
            log_index=log_index,
        )
    )
    event = _event(
        connection,
        alert.originator,
        Kind.RELEASE_REQUESTED,
        alert,
        now,
        item_id=message.item_id,
        request_id=request.request_id,
        actor=message.requester,
    )
    return StoredStatement(log_index=log_index, events=(event,), request_id=request.request_id)


def list_requests(
    connection: Connection, caller: str, *, mine: bool, include_decided: bool
) -> list[release_pb2.ReleaseRequestView]:
    """Requests made of ``caller`` as originator, or (``mine``) made by it; oldest first."""
    query = select(release_requests).join(alerts, alerts.c.id == release_requests.c.alert_pk)
    if mine:
        query = query.where(release_requests.c.requester == caller)
    else:
        query = query.where(alerts.c.originator == caller)
    if not include_decided:
        query = query.where(release_requests.c.decision.is_(None))
    views = []
    for row in connection.execute(
        query.order_by(release_requests.c.created_at, release_requests.c.log_index)
    ):
        view = release_pb2.ReleaseRequestView(request_id=row.request_id)
        view.request.ParseFromString(bytes(row.envelope))
        if row.decision is not None:
            view.decision.ParseFromString(bytes(row.decision))
        view.created_at.FromDatetime(row.created_at)
        views.append(view)
    return views


def record_decision(
    connection: Connection,
    decision: ReleaseDecision,
    grant: statements_pb2.Grant | None,
    *,
    encryption_key_ids: dict[str, str],
    now: datetime,
) -> StoredStatement:
    """Store the originator's decision on a pending request; with an approval, its grant.

    Only the alert's originator decides.  The grant must be for the request's item and target,
    wrapped for the target's current encryption key (a revoked agency has none), and be the one
    the signed decision names.  An approval of an onward request adds the target to the item's
    audience; any revocation of the item for the target is lifted.
    """
    caller = decision.message.originator
    row = connection.execute(
        select(release_requests, alerts.c.originator)
        .join(alerts, alerts.c.id == release_requests.c.alert_pk)
        .where(release_requests.c.request_id == decision.request_id)
    ).first()
    if row is None or caller not in (row.originator, row.requester, row.target):
        raise NotFoundError(f"no release request {decision.request_id} that you may see")
    if row.originator != caller:
        raise NotPermittedError(
            f"only the originator {row.originator} can decide request {decision.request_id}",
            reason="NOT_ORIGINATOR",
        )
    if row.decision is not None:
        if bytes(row.decision) == _envelope_bytes(decision):
            return StoredStatement(log_index=int(row.decision_log_index))
        raise ConflictError(f"request {decision.request_id} was already {row.outcome.lower()}")
    alert = connection.execute(select(alerts).where(alerts.c.id == row.alert_pk)).one()
    item = _item(connection, alert.id, row.item_id)
    if item is None or _item_unavailable(item, now):
        raise _expired(row.item_id)
    if decision.approved:
        decision.check_grant(
            grant,
            item_id=row.item_id,
            target=row.target,
            target_key_id=encryption_key_ids.get(row.target),
        )
    elif grant is not None:
        raise InvalidInputError(
            "a denial carries no grant",
            violations=[FieldViolation("grant", "must be empty with a denial")],
        )
    log_index = _log(
        connection,
        leaves.RELEASE_DECISION,
        decision,
        alert,
        [row.requester, row.target],
        now,
    )
    outcome = APPROVED if decision.approved else DENIED
    decided = connection.execute(
        update(release_requests)
        .where(
            release_requests.c.request_id == row.request_id,
            release_requests.c.decision.is_(None),
        )
        .values(
            decision=_envelope_bytes(decision),
            outcome=outcome,
            decided_at=now,
            decision_log_index=log_index,
        )
    ).rowcount
    if decided != 1:
        # Another replica decided it between our read and this write; ours is rolled back.
        raise ConflictError(f"request {decision.request_id} was decided meanwhile")
    events = [
        _event(
            connection,
            row.requester,
            Kind.RELEASE_DECIDED,
            alert,
            now,
            item_id=row.item_id,
            request_id=row.request_id,
            actor=caller,
        )
    ]
    if decision.approved and grant is not None:
        _release(connection, alert.id, row.item_id, grant, now)
        events.append(
            _event(
                connection,
                row.target,
                Kind.ITEM_RELEASED,
                alert,
                now,
                item_id=row.item_id,
                request_id=row.request_id,
                actor=caller,
            )
        )
    return StoredStatement(log_index=log_index, events=tuple(events))


def _release(
    connection: Connection, alert_pk: int, item_id: str, grant: statements_pb2.Grant, now: datetime
) -> None:
    """Store an approved grant, available at once, replacing any held one for the recipient."""
    where = and_(
        grants.c.alert_pk == alert_pk,
        grants.c.item_id == item_id,
        grants.c.recipient == grant.recipient,
    )
    connection.execute(delete(grants).where(where))
    connection.execute(
        insert(grants).values(
            alert_pk=alert_pk,
            item_id=item_id,
            recipient=grant.recipient,
            recipient_key_id=grant.recipient_key_id,
            grant=encode(grant),
            available_at=now,
            created_at=now,
        )
    )
    if grant.recipient not in _audience(connection, alert_pk, item_id):
        connection.execute(
            insert(item_audience).values(
                alert_pk=alert_pk, item_id=item_id, agency_id=grant.recipient
            )
        )
    connection.execute(
        delete(item_revocations).where(
            item_revocations.c.alert_pk == alert_pk,
            item_revocations.c.item_id == item_id,
            item_revocations.c.agency_id == grant.recipient,
        )
    )


# --- revocation and purge acknowledgements -------------------------------------------------------


def revoke_item(connection: Connection, revocation: Revocation, *, now: datetime) -> StoredStatement:
    """Revoke an item from one agency (or all): delete their grants, tell them, mark it revoked.

    Deleting the grant stops delivery whether or not it was ever fetched; the holders' feeds get
    ``ITEM_REVOKED`` so that their clients purge the item and acknowledge.
    """
    message = revocation.message
    alert = _alert_version(connection, message)
    if alert is None:
        raise _not_found_alert(message.alert_id, message.version)
    if _item(connection, alert.id, message.item_id) is None:
        raise _not_found_item(message.item_id, message.alert_id, message.version)
    audience = [a for a in _audience(connection, alert.id, message.item_id) if a != alert.originator]
    if message.agency and message.agency not in audience:
        raise InvalidInputError(
            f"{message.agency} is not in the audience of item {message.item_id!r}",
            violations=[FieldViolation("agency", "not in the item's audience")],
            reason="NOT_IN_AUDIENCE",
        )
    affected = [message.agency] if message.agency else audience
    deleted = connection.execute(
        delete(grants).where(
            grants.c.alert_pk == alert.id,
            grants.c.item_id == message.item_id,
            grants.c.recipient.in_(affected),
        )
    ).rowcount
    log_index = _log(connection, leaves.REVOCATION, revocation, alert, affected, now)
    revocation_id = connection.execute(
        insert(revocations)
        .values(
            alert_pk=alert.id,
            item_id=message.item_id,
            agency=message.agency,
            envelope=_envelope_bytes(revocation),
            created_at=now,
            log_index=log_index,
        )
        .returning(revocations.c.id)
    ).scalar_one()
    events = []
    for agency in affected:
        connection.execute(
            delete(item_revocations).where(
                item_revocations.c.alert_pk == alert.id,
                item_revocations.c.item_id == message.item_id,
                item_revocations.c.agency_id == agency,
            )
        )
        connection.execute(
            insert(item_revocations).values(
                alert_pk=alert.id,
                item_id=message.item_id,
                agency_id=agency,
                revocation_id=revocation_id,
            )
        )
        events.append(
            _event(
                connection,
                agency,
                Kind.ITEM_REVOKED,
                alert,
                now,
                item_id=message.item_id,
                actor=alert.originator,
            )
        )
    return StoredStatement(log_index=log_index, events=tuple(events), grants_deleted=int(deleted))


def record_purge_ack(connection: Connection, ack: PurgeAck, *, now: datetime) -> StoredStatement:
    """Store a recipient's acknowledgement that it purged a revoked item; tell the originator."""
    message = ack.message
    alert = _alert_version(connection, message)
    if alert is None or message.recipient not in _audience(connection, alert.id, message.item_id):
        raise _not_found_item(message.item_id, message.alert_id, message.version)
    revoked = connection.execute(
        select(item_revocations.c.revocation_id).where(
            item_revocations.c.alert_pk == alert.id,
            item_revocations.c.item_id == message.item_id,
            item_revocations.c.agency_id == message.recipient,
        )
    ).first()
    if revoked is None:
        raise ExchangeError(
            f"item {message.item_id!r} is not revoked from {message.recipient}",
            reason="NOT_REVOKED",
        )
    return _store_recipient_statement(connection, ack, alert, now=now, item_id=message.item_id)


_RECIPIENT_STATEMENTS: dict[type[SignedStatement[Any]], tuple[Table, str, int]] = {
    Receipt: (receipts, leaves.RECEIPT, Kind.RECEIPT_RECEIVED),
    PurgeAck: (purge_acks, leaves.PURGE_ACK, Kind.PURGE_ACKNOWLEDGED),
    Feedback: (feedback, leaves.FEEDBACK, Kind.FEEDBACK_RECEIVED),
}
"""Where each kind of recipient statement is kept, how it is logged, and the originator's event."""


def _store_recipient_statement(
    connection: Connection,
    statement: Receipt | PurgeAck | Feedback,
    alert: Row[Any],
    *,
    now: datetime,
    item_id: str = "",
) -> StoredStatement:
    """Log and store a recipient's statement about ``alert`` and tell the originator, once.

    The same signed bytes sent again (a retry) return the first log index and change nothing;
    the envelope names the recipient and item, so equal bytes mean the same statement.
    """
    table, entry_type, event_kind = _RECIPIENT_STATEMENTS[type(statement)]
    recipient = statement.message.recipient
    envelope = _envelope_bytes(statement)
    existing = connection.execute(
        select(table.c.log_index).where(table.c.alert_pk == alert.id, table.c.envelope == envelope)
    ).scalar_one_or_none()
    if existing is not None:
        return StoredStatement(log_index=int(existing))
    log_index = _log(connection, entry_type, statement, alert, [recipient], now)
    row: dict[str, object] = {
        "alert_pk": alert.id,
        "recipient": recipient,
        "envelope": envelope,
        "created_at": now,
        "log_index": log_index,
    }
    if item_id:
        row["item_id"] = item_id
    connection.execute(insert(table).values(**row))
    event = _event(
        connection, alert.originator, event_kind, alert, now, item_id=item_id, actor=recipient
    )
    return StoredStatement(log_index=log_index, events=(event,))


# --- receipts and feedback -----------------------------------------------------------------------


def record_receipt(connection: Connection, receipt: Receipt, *, now: datetime) -> StoredStatement:
    """Store a recipient's signed receipt for an alert version it may see; tell the originator.

    Every header hash it names must be one of the version's items.
    """
    message = receipt.message
    alert = _version_seen_by_recipient(connection, message)
    headers = {
        sha256(bytes(header))
        for header in connection.execute(
            select(items.c.header).where(items.c.alert_pk == alert.id)
        ).scalars()
    }
    named = [*message.opened_header_hashes, *message.withheld_header_hashes]
    if any(bytes(h) not in headers for h in named):
        raise InvalidInputError(
            "the receipt names an item header that is not in this alert version",
            violations=[FieldViolation("header_hashes", "not an item of the version")],
        )
    return _store_recipient_statement(connection, receipt, alert, now=now)


def record_feedback(
    connection: Connection,
    statement: Feedback,
    *,
    encryption_key_ids: dict[str, str],
    now: datetime,
) -> StoredStatement:
    """Store a recipient's encrypted feedback on an alert version it may see; tell the originator.

    Its key must be wrapped for the originator's current encryption key, or the originator could
    not read it.
    """
    message = statement.message
    alert = _version_seen_by_recipient(connection, message)
    if message.grant.recipient_key_id != encryption_key_ids.get(alert.originator):
        raise InvalidInputError(
            "the feedback's key is not wrapped for the originator's current encryption key",
            violations=[FieldViolation("grant.recipient_key_id", "not the originator's current key")],
            reason="GRANT_MISMATCH",
        )
    return _store_recipient_statement(connection, statement, alert, now=now)


def list_receipts(
    connection: Connection, caller: str, alert_id: str
) -> release_pb2.ListReceiptsResponse:
    """Receipts, purge acknowledgements and feedback on every version of one of caller's alerts."""
    alert_pks = list(
        connection.execute(
            select(alerts.c.id).where(alerts.c.originator == caller, alerts.c.alert_id == alert_id)
        ).scalars()
    )
    if not alert_pks:
        raise NotFoundError(f"no alert {alert_id} of yours")
    response = release_pb2.ListReceiptsResponse()
    for table, field in ((receipts, response.receipts), (purge_acks, response.purge_acks),
                         (feedback, response.feedback)):
        for raw in connection.execute(
            select(table.c.envelope)
            .where(table.c.alert_pk.in_(alert_pks))
            .order_by(table.c.log_index)
        ).scalars():
            field.add().ParseFromString(bytes(raw))
    return response


# --- retraction ----------------------------------------------------------------------------------


def retract_alert(
    connection: Connection, retraction: Retraction, *, now: datetime
) -> StoredStatement:
    """Mark every version of an alert retracted, naming its latest; tell every recipient."""
    message = retraction.message
    alert = _alert_version(connection, message)
    if alert is None:
        raise _not_found_alert(message.alert_id, message.version)
    versions = connection.execute(
        select(alerts.c.id, alerts.c.version).where(
            alerts.c.originator == message.originator, alerts.c.alert_id == message.alert_id
        )
    ).all()
    latest = max(int(v.version) for v in versions)
    if message.version != latest:
        raise InvalidInputError(
            f"a retraction names the latest version ({latest}), not {message.version}",
            violations=[FieldViolation("version", f"must be {latest}")],
        )
    envelope = _envelope_bytes(retraction)
    existing = connection.execute(
        select(retractions).where(retractions.c.alert_pk == alert.id)
    ).first()
    if existing is not None:
        if bytes(existing.envelope) == envelope:
            return StoredStatement(log_index=int(existing.log_index))
        raise ConflictError(f"alert {message.alert_id} is already retracted")
    recipients = _alert_audience(connection, [v.id for v in versions])
    recipients = [a for a in recipients if a != alert.originator]
    log_index = _log(connection, leaves.RETRACTION, retraction, alert, recipients, now)
    connection.execute(
        insert(retractions).values(
            alert_pk=alert.id, envelope=envelope, created_at=now, log_index=log_index
        )
    )
    connection.execute(
        update(alerts)
        .where(alerts.c.originator == message.originator, alerts.c.alert_id == message.alert_id)
        .values(retracted=True)
    )
    events = tuple(
        _event(connection, agency, Kind.ALERT_RETRACTED, alert, now, actor=alert.originator)
        for agency in recipients
    )
    return StoredStatement(log_index=log_index, events=events)


# --- embargo and expiry --------------------------------------------------------------------------


def release_lapsed_embargoes(connection: Connection, *, now: datetime) -> list[alerts_pb2.FeedEvent]:
    """Tell each holder of an embargoed grant whose time has come (``ITEM_RELEASED``), once.

    The grant itself is served from its ``available_at`` on (by :func:`alert_view`); this only
    sends the feed event, so a late sweep delays the notice, never the release.
    """
    notified = exists().where(
        embargo_releases.c.alert_pk == grants.c.alert_pk,
        embargo_releases.c.item_id == grants.c.item_id,
        embargo_releases.c.recipient == grants.c.recipient,
    )
    rows = connection.execute(
        select(grants.c.alert_pk, grants.c.item_id, grants.c.recipient)
        .join(alerts, alerts.c.id == grants.c.alert_pk)
        .join(
            items,
            and_(items.c.alert_pk == grants.c.alert_pk, items.c.item_id == grants.c.item_id),
        )
        .where(
            grants.c.available_at <= now,
            grants.c.available_at > grants.c.created_at,
            grants.c.recipient != alerts.c.originator,
            items.c.ciphertext.is_not(None),
            ~notified,
        )
        .order_by(grants.c.available_at, grants.c.id)
    ).all()
    events = []
    for row in rows:
        alert = connection.execute(select(alerts).where(alerts.c.id == row.alert_pk)).one()
        connection.execute(
            insert(embargo_releases).values(
                alert_pk=row.alert_pk, item_id=row.item_id, recipient=row.recipient, released_at=now
            )
        )
        events.append(
            _event(
                connection,
                row.recipient,
                Kind.ITEM_RELEASED,
                alert,
                now,
                item_id=row.item_id,
                actor=alert.originator,
            )
        )
    return events


def purge_expired_items(connection: Connection, *, now: datetime) -> int:
    """Delete the ciphertext and every grant of each item past its expiry; the log keeps a leaf.

    Returns how many items were purged.  Headers stay, so recipients still see the item as
    ``EXPIRED``.
    """
    rows = connection.execute(
        select(items.c.alert_pk, items.c.item_id, alerts.c.originator, alerts.c.alert_id,
               alerts.c.version)
        .join(alerts, alerts.c.id == items.c.alert_pk)
        .where(items.c.expires_at.is_not(None), items.c.expires_at <= now,
               items.c.ciphertext.is_not(None))
        .order_by(items.c.expires_at)
    ).all()
    for row in rows:
        connection.execute(
            update(items)
            .where(items.c.alert_pk == row.alert_pk, items.c.item_id == row.item_id)
            .values(ciphertext=None)
        )
        connection.execute(
            delete(grants).where(grants.c.alert_pk == row.alert_pk, grants.c.item_id == row.item_id)
        )
        audience = _audience(connection, row.alert_pk, row.item_id)
        append_entry(
            connection,
            entry_type=leaves.ITEM_PURGED,
            body=lp(ITEM_PURGED_LABEL, row.originator, row.alert_id, int(row.version), row.item_id),
            references=[row.originator, row.alert_id, str(row.version)],
            entitled=[row.originator, *audience],
            now=now,
        )
    return len(rows)


def sweep_due(connection: Connection, *, now: datetime) -> bool:
    """Whether :func:`release_lapsed_embargoes` or :func:`purge_expired_items` has work (a read)."""
    expired = connection.execute(
        select(items.c.item_id)
        .where(items.c.expires_at.is_not(None), items.c.expires_at <= now,
               items.c.ciphertext.is_not(None))
        .limit(1)
    ).first()
    if expired is not None:
        return True
    notified = exists().where(
        embargo_releases.c.alert_pk == grants.c.alert_pk,
        embargo_releases.c.item_id == grants.c.item_id,
        embargo_releases.c.recipient == grants.c.recipient,
    )
    lapsed = connection.execute(
        select(grants.c.id)
        .where(grants.c.available_at <= now, grants.c.available_at > grants.c.created_at, ~notified)
        .limit(1)
    ).first()
    return lapsed is not None
