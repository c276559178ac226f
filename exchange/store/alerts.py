"""Alert storage: publishing in one transaction, and the views each agency may see."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    bindparam,
    func,
    or_,
    select,
    update,
)

from exchange.audit import leaves
from exchange.errors import ConflictError, ExchangeError, InvalidInputError, NotFoundError
from exchange.statements.codec import encode
from exchange.statements.publish import CheckedPublish
from exchange.store.bulk import BulkInsert
from exchange.store.compiled import CompiledStatement
from exchange.store.feed import (
    NewEvent,
    event_message,
    event_references,
    insert_events,
    take_sequences,
)
from exchange.store.log import (
    AppendedLeaf,
    NewEntry,
    append_entry,
    insert_entries,
    reserve_indexes,
    set_log_size,
)
from exchange.store.release_tables import item_revocations
from exchange.store.schema import alerts, grants, item_audience, items, log_tree_head
from exchange.v1 import alerts_pb2

# Built once: statements executed with parameters reuse their compiled form and cache key.
# The tree head's hashed size, locked (the batch's checkpoint step hashes from it), and every
# stored version of the batch's alerts, in one statement: one row with no alert when none is
# stored. Read after the log lock, so on PostgreSQL the alerts come from a snapshot taken with
# the log lock held (a statement waiting for the tree head's lock re-reads that row only).
_TREE_AND_VERSIONS = CompiledStatement(
    select(
        log_tree_head.c.hashed_size,
        alerts.c.originator,
        alerts.c.alert_id,
        alerts.c.version,
        alerts.c.manifest_hash,
        alerts.c.request_digest,
        alerts.c.published_at,
        alerts.c.log_index,
    )
    .select_from(
        log_tree_head.outerjoin(
            alerts,
            and_(
                alerts.c.originator.in_(bindparam("originators", expanding=True)),
                alerts.c.alert_id.in_(bindparam("alert_ids", expanding=True)),
            ),
        )
    )
    .where(log_tree_head.c.id == 1)
    .with_for_update(of=log_tree_head)
)
_INSERT_ALERTS = BulkInsert(
    alerts,
    [
        "originator",
        "alert_id",
        "version",
        "manifest_hash",
        "manifest_envelope",
        "request_digest",
        "published_at",
        "log_index",
        "retracted",
    ],
    returning=["id", "manifest_hash"],
)
_ALERT_LOG_INDEX = _INSERT_ALERTS.columns.index("log_index")
_INSERT_ITEMS = BulkInsert(
    items,
    [
        "alert_pk",
        "item_id",
        "position",
        "header",
        "ciphertext",
        "release",
        "embargo_until",
        "expires_at",
        "summary",
    ],
)
_INSERT_AUDIENCE = BulkInsert(item_audience, ["alert_pk", "item_id", "agency_id"])
_INSERT_GRANTS = BulkInsert(
    grants,
    ["alert_pk", "item_id", "recipient", "recipient_key_id", "grant", "available_at", "created_at"],
)


@dataclass(frozen=True)
class PublishOutcome:
    """What the hub answers a publish with; a retry of the same bytes gets the same outcome."""

    originator: str
    alert_id: str
    version: int
    manifest_hash: bytes
    accepted_at: datetime
    log_index: int
    notified: tuple[str, ...]
    feed_events: tuple[alerts_pb2.FeedEvent, ...] = ()


@dataclass(frozen=True)
class PublishedBatch:
    """What :func:`publish_alerts` did in the caller's transaction."""

    results: tuple[PublishOutcome | ExchangeError, ...]
    """Per publish, in order: its outcome, or the error refusing it (nothing of it stored)."""
    start: int
    """The log index of the first leaf appended."""
    leaves: tuple[AppendedLeaf, ...]
    """Every leaf appended, from ``start`` on: each new alert's, then its feed events'."""
    hashed_size: int | None = None
    """How far the tree is hashed, read under the tree head's lock, held until the commit."""


@dataclass(frozen=True)
class _Taken:
    """A version of an alert already stored, or claimed by an earlier publish of the batch."""

    manifest_hash: bytes
    digest: bytes
    stored: PublishOutcome | None = None
    """Its outcome, for a stored version; ``None`` for one claimed in this batch."""
    position: int = -1
    """The claiming publish's position in the batch."""


def publish_alert(connection: Connection, checked: CheckedPublish, *, now: datetime) -> PublishOutcome:
    """Store one checked alert version (:func:`publish_alerts` for a batch of one); raise the
    :class:`~exchange.errors.ExchangeError` refusing it."""
    (result,) = publish_alerts(connection, [checked], now=now).results
    if isinstance(result, ExchangeError):
        raise result
    return result


def publish_alerts(
    connection: Connection, batch: Sequence[CheckedPublish], *, now: datetime, sender: str = ""
) -> PublishedBatch:
    """Store a batch of checked alert versions with their items, grants, log entries and feed
    events, in the caller's write transaction, with one multi-row insert per table.

    Every publish is validated against what is stored, under the log lock, and against the
    batch's earlier publishes before anything is written, so a refused one (a version taken with
    other bytes, a missing or mismatched previous version) gets its own error and leaves nothing
    while the others are stored. The same (originator, alert id, version) with identical
    request bytes is a retry: it gets the first outcome, stored earlier or in this batch.
    ``sender`` is the payload of the feed channel's notification on PostgreSQL
    (:func:`~exchange.store.feed.insert_events`).
    """
    # The log lock, and the indexes of every publish's leaves as if all were stored (the alert's
    # and one feed event per recipient): the common case costs no second statement on the log.
    reserved = sum(1 + len(checked.recipients) for checked in batch)
    start = reserve_indexes(connection, reserved)
    hashed_size, taken = _taken_versions(connection, batch)
    results: list[PublishOutcome | ExchangeError | int] = []  # an int: same as that position
    accepted: list[tuple[int, CheckedPublish]] = []
    for position, checked in enumerate(batch):
        manifest = checked.manifest
        versions = taken.setdefault((manifest.originator, manifest.alert_id), {})
        try:
            same = versions.get(manifest.version)
            if same is not None:
                results.append(_retry(checked, same))
                continue
            _check_previous_version(checked, versions)
        except ExchangeError as error:
            results.append(error)
            continue
        versions[manifest.version] = _Taken(manifest.hash, checked.digest, position=position)
        accepted.append((position, checked))
        results.append(position)
    outcomes, appended = _store(connection, start, accepted, now=now, sender=sender)
    if len(appended) != reserved:  # some refused, or retries: their indexes given back
        set_log_size(connection, start + len(appended))
    final: list[PublishOutcome | ExchangeError] = []
    for position, result in enumerate(results):
        if isinstance(result, int):
            first = outcomes[result]
            final.append(first if result == position else replace(first, feed_events=()))
        else:
            final.append(result)
    return PublishedBatch(tuple(final), start, tuple(appended), hashed_size)


def _taken_versions(
    connection: Connection, batch: Sequence[CheckedPublish]
) -> tuple[int, dict[tuple[str, str], dict[int, _Taken]]]:
    """The tree's hashed size (its head locked) and every stored version of the batch's
    alerts, by (originator, alert id), in one query."""
    taken: dict[tuple[str, str], dict[int, _Taken]] = {}
    wanted = {(c.manifest.originator, c.manifest.alert_id) for c in batch}
    rows = _TREE_AND_VERSIONS.execute(
        connection,
        {
            "originators": sorted({o for o, _ in wanted}),
            "alert_ids": sorted({a for _, a in wanted}),
        },
    )
    hashed_size = int(rows[0][0])
    for _, originator, alert_id, version, manifest_hash, digest, published_at, log_index in rows:
        key = (originator, alert_id)
        if key not in wanted:
            continue  # no alert stored (None), or the cross product of the two lists
        outcome = PublishOutcome(
            originator=originator,
            alert_id=alert_id,
            version=int(version),
            manifest_hash=bytes(manifest_hash),
            accepted_at=published_at,
            log_index=int(log_index),
            notified=(),
        )
        taken.setdefault(key, {})[int(version)] = _Taken(
            bytes(manifest_hash), bytes(digest), stored=outcome
        )
    return hashed_size, taken


def _retry(checked: CheckedPublish, same: _Taken) -> PublishOutcome | int:
    """The outcome of a version already taken, if ``checked`` is its retry (the stored one's,
    or the position of the batch's publish that took it); else :class:`ConflictError`."""
    manifest = checked.manifest
    if same.digest != checked.digest:
        raise ConflictError(
            f"alert {manifest.alert_id} version {manifest.version} was already published "
            "with different content; publish a new version instead"
        )
    if same.stored is None:
        return same.position
    return replace(same.stored, notified=checked.recipients)


def _check_previous_version(checked: CheckedPublish, versions: Mapping[int, _Taken]) -> None:
    manifest = checked.manifest
    if manifest.version == 1:
        if versions:
            raise ConflictError(f"alert {manifest.alert_id} already exists; publish version 2")
        return
    previous = versions.get(manifest.version - 1)
    if previous is None:
        raise InvalidInputError(
            f"alert {manifest.alert_id} has no version {manifest.version - 1} to supersede",
            reason="NO_PREVIOUS_VERSION",
        )
    if previous.manifest_hash != bytes(manifest.message.previous_manifest_hash):
        raise InvalidInputError(
            f"version {manifest.version} does not name version {manifest.version - 1}'s manifest",
            reason="PREVIOUS_VERSION_MISMATCH",
        )


def _store(
    connection: Connection,
    start: int,
    accepted: Sequence[tuple[int, CheckedPublish]],
    *,
    now: datetime,
    sender: str,
) -> tuple[dict[int, PublishOutcome], list[AppendedLeaf]]:
    """Write the validated publishes: one statement per table for the whole batch (and one per
    recipient agency for its feed head)."""
    if not accepted:
        return {}, []
    counts: dict[str, int] = {}
    for _, checked in accepted:
        for agency in checked.recipients:
            counts[agency] = counts.get(agency, 0) + 1
    next_sequence = take_sequences(connection, counts, wake=sender)
    entries: list[NewEntry] = []
    messages: list[list[tuple[str, alerts_pb2.FeedEvent]]] = []
    for _, checked in accepted:
        manifest = checked.manifest
        entries.append(
            NewEntry(
                entry_type=leaves.ALERT_PUBLISHED,
                body=checked.manifest_envelope,
                references=[manifest.originator, manifest.alert_id, str(manifest.version)],
                entitled=[manifest.originator, *checked.recipients],
            )
        )
        events = []
        for agency in checked.recipients:
            sequence = next_sequence[agency]
            next_sequence[agency] = sequence + 1
            event = NewEvent(
                agency_id=agency,
                kind=alerts_pb2.FeedEvent.ALERT_PUBLISHED,
                originator=manifest.originator,
                alert_id=manifest.alert_id,
                version=manifest.version,
                actor=manifest.originator,
            )
            message = event_message(event, sequence, now=now)
            entries.append(
                NewEntry(
                    entry_type=leaves.FEED_EVENT,
                    body=encode(message),
                    references=event_references(event, sequence),
                    entitled=[agency],
                )
            )
            events.append((agency, message))
        messages.append(events)
    appended = insert_entries(connection, start, entries, now=now)
    indexes = iter(leaf.index for leaf in appended)
    alert_rows: list[tuple[Any, ...]] = []
    event_rows: list[tuple[str, alerts_pb2.FeedEvent]] = []
    for (_, checked), events in zip(accepted, messages, strict=True):
        manifest = checked.manifest
        alert_rows.append(
            (
                manifest.originator,
                manifest.alert_id,
                manifest.version,
                manifest.hash,
                checked.manifest_envelope,
                checked.digest,
                now,
                next(indexes),
                False,
            )
        )
        for agency, message in events:
            message.log_index = next(indexes)
            event_rows.append((agency, message))
    # RETURNING over a multi-row insert gives no order: each key is matched by its manifest hash.
    keys = {
        bytes(manifest_hash): int(pk)
        for pk, manifest_hash in _INSERT_ALERTS.returning(connection, alert_rows)
    }
    item_rows: list[tuple[Any, ...]] = []
    audience_rows: list[tuple[Any, ...]] = []
    grant_rows: list[tuple[Any, ...]] = []
    for _, checked in accepted:
        _item_rows(checked, keys[checked.manifest.hash], now, item_rows, audience_rows, grant_rows)
    _INSERT_ITEMS.execute(connection, item_rows)
    _INSERT_AUDIENCE.execute(connection, audience_rows)
    _INSERT_GRANTS.execute(connection, grant_rows)
    insert_events(connection, event_rows, now=now, sender=sender, woken=True)
    outcomes = {
        position: PublishOutcome(
            originator=checked.manifest.originator,
            alert_id=checked.manifest.alert_id,
            version=checked.manifest.version,
            manifest_hash=checked.manifest.hash,
            accepted_at=now,
            log_index=int(row[_ALERT_LOG_INDEX]),
            notified=checked.recipients,
            feed_events=tuple(message for _, message in events),
        )
        for (position, checked), row, events in zip(accepted, alert_rows, messages, strict=True)
    }
    return outcomes, appended


def _item_rows(
    checked: CheckedPublish,
    alert_pk: int,
    now: datetime,
    item_rows: list[tuple[Any, ...]],
    audience_rows: list[tuple[Any, ...]],
    grant_rows: list[tuple[Any, ...]],
) -> None:
    """The rows of one alert's items, audiences and grants, in the columns' order of
    ``_INSERT_ITEMS``, ``_INSERT_AUDIENCE`` and ``_INSERT_GRANTS``."""
    originator = checked.manifest.originator
    for position, item in enumerate(checked.items):
        item_id = item.header.item_id
        item_rows.append(
            (
                alert_pk,
                item_id,
                position,
                item.header.raw,
                item.ciphertext,
                item.release_name,
                item.embargo_until,
                item.expires_at,
                item.header.message.summary,
            )
        )
        audience_rows.extend((alert_pk, item_id, agency) for agency in item.audience)
        embargoed = item.embargo_until or now
        grant_rows.extend(
            (
                alert_pk,
                grant.item_id,
                grant.recipient,
                grant.recipient_key_id,
                encode(grant),
                now if grant.recipient == originator else embargoed,
                now,
            )
            for grant in item.grants
        )


# --- what an agency may see ----------------------------------------------------------------------


def _visible_alerts(caller: str) -> ColumnElement[bool]:
    """The caller's own alerts and those with an item addressed to it.

    A correlated ``EXISTS`` looks up the audience rows of the one alert at hand (the primary key
    of ``item_audience`` starts with the alert), where ``id IN (SELECT … WHERE agency_id = …)``
    would read every audience row of the caller: a million of them on a full store."""
    addressed = (
        select(item_audience.c.alert_pk)
        .where(item_audience.c.alert_pk == alerts.c.id, item_audience.c.agency_id == caller)
        .exists()
    )
    return or_(alerts.c.originator == caller, addressed)


# The newest alert versions addressed to an agency, and those it published, each read backwards
# along an index ((agency_id, alert_pk) of the audience; (originator, id) of the alerts, 0007):
# a page costs the same on a store of a thousand alerts or of a million.
_ADDRESSED_NEWEST = (
    select(item_audience.c.alert_pk)
    .where(item_audience.c.agency_id == bindparam("caller"))
    .group_by(item_audience.c.alert_pk)
    .order_by(item_audience.c.alert_pk.desc())
    .limit(bindparam("limit"))
)
_OWN_NEWEST = (
    select(alerts.c.id)
    .where(alerts.c.originator == bindparam("caller"))
    .order_by(alerts.c.id.desc())
    .limit(bindparam("limit"))
)
_ALERTS_BY_PK = (
    select(alerts).where(alerts.c.id.in_(bindparam("pks", expanding=True))).order_by(alerts.c.id.desc())
)
_CONTENT_TOTALS = (
    select(items.c.alert_pk, func.count())
    .where(items.c.alert_pk.in_(bindparam("pks", expanding=True)), items.c.summary.is_(False))
    .group_by(items.c.alert_pk)
)
# Each content item of the page looked up in the audience by its whole primary key: the agency's
# own audience index would read every item ever addressed to it.
_CONTENT_VISIBLE = (
    select(items.c.alert_pk, func.count())
    .where(
        items.c.alert_pk.in_(bindparam("pks", expanding=True)),
        items.c.summary.is_(False),
        select(item_audience.c.alert_pk)
        .where(
            item_audience.c.alert_pk == items.c.alert_pk,
            item_audience.c.item_id == items.c.item_id,
            item_audience.c.agency_id == bindparam("caller"),
        )
        .exists(),
    )
    .group_by(items.c.alert_pk)
)
_CONTENT_GRANTED = (
    select(grants.c.alert_pk, func.count())
    .select_from(
        grants.join(
            items, and_(items.c.alert_pk == grants.c.alert_pk, items.c.item_id == grants.c.item_id)
        )
    )
    .where(
        grants.c.alert_pk.in_(bindparam("pks", expanding=True)),
        grants.c.recipient == bindparam("caller"),
        grants.c.available_at <= bindparam("now"),
        items.c.summary.is_(False),
    )
    .group_by(grants.c.alert_pk)
)


def list_alerts(
    connection: Connection, caller: str, *, include_own: bool, limit: int, now: datetime
) -> list[alerts_pb2.AlertSummary]:
    """Alert versions the caller may see, newest (latest stored) first: five queries a page,
    whatever the size of the store."""
    parameters = {"caller": caller, "limit": limit}
    pks = set(connection.execute(_ADDRESSED_NEWEST, parameters).scalars())
    if include_own:
        pks.update(connection.execute(_OWN_NEWEST, parameters).scalars())
    page = sorted(pks, reverse=True)[:limit]
    if not page:
        return []
    rows = connection.execute(_ALERTS_BY_PK, {"pks": page}).all()
    totals = _counts(connection, _CONTENT_TOTALS, {"pks": page})
    visible = _counts(connection, _CONTENT_VISIBLE, {"pks": page, "caller": caller})
    granted = _counts(connection, _CONTENT_GRANTED, {"pks": page, "caller": caller, "now": now})
    summaries = []
    for row in rows:
        total = totals.get(row.id, 0)
        summary = alerts_pb2.AlertSummary(
            originator=row.originator,
            alert_id=row.alert_id,
            version=int(row.version),
            manifest_hash=bytes(row.manifest_hash),
            items_visible=total if row.originator == caller else visible.get(row.id, 0),
            items_granted=granted.get(row.id, 0),
            items_total=total,
            retracted=bool(row.retracted),
        )
        summary.published_at.FromDatetime(row.published_at)
        summaries.append(summary)
    return summaries


def _counts(connection: Connection, query: Select[Any], parameters: dict[str, Any]) -> dict[int, int]:
    return {int(pk): int(count) for pk, count in connection.execute(query, parameters).all()}


def alert_view(
    connection: Connection,
    caller: str,
    *,
    alert_id: str,
    originator: str = "",
    version: int = 0,
    now: datetime,
    undelivered: list[int] | None = None,
) -> alerts_pb2.AlertView:
    """One alert version as ``caller`` may see it.

    Grants handed to a recipient for the first time are added to ``undelivered`` (their row
    ids), for :func:`record_deliveries` to log after the read.

    The caller gets the manifest, the headers of the items addressed to it (all items, for the
    originator), and the ciphertext with a grant only where a grant for it is available.  An
    alert the caller may not see is :class:`NotFoundError`, exactly like one that does not exist.
    """
    query = select(alerts).where(alerts.c.alert_id == alert_id, _visible_alerts(caller))
    if originator:
        query = query.where(alerts.c.originator == originator)
    rows = connection.execute(query.order_by(alerts.c.version)).all()
    originators = {row.originator for row in rows}
    if not rows:
        raise NotFoundError(f"no alert {alert_id} that you may see")
    if len(originators) > 1:
        raise InvalidInputError(
            f"alert id {alert_id} is used by {', '.join(sorted(originators))}: name the originator",
            reason="AMBIGUOUS_ALERT_ID",
        )
    chosen = rows[-1] if version == 0 else next((r for r in rows if r.version == version), None)
    if chosen is None:
        raise NotFoundError(f"no version {version} of alert {alert_id} that you may see")
    own = chosen.originator == caller
    view = alerts_pb2.AlertView(
        versions=[int(r.version) for r in rows],
        retracted=bool(chosen.retracted),
        log_index=int(chosen.log_index),
    )
    view.manifest.ParseFromString(bytes(chosen.manifest_envelope))
    view.published_at.FromDatetime(chosen.published_at)
    item_query = select(items).where(items.c.alert_pk == chosen.id).order_by(items.c.position)
    if not own:
        item_query = item_query.where(
            items.c.item_id.in_(
                select(item_audience.c.item_id).where(
                    item_audience.c.alert_pk == chosen.id, item_audience.c.agency_id == caller
                )
            )
        )
    caller_grants = {
        row.item_id: row
        for row in connection.execute(
            select(grants).where(and_(grants.c.alert_pk == chosen.id, grants.c.recipient == caller))
        )
    }
    revoked = set(
        connection.execute(
            select(item_revocations.c.item_id).where(
                item_revocations.c.alert_pk == chosen.id, item_revocations.c.agency_id == caller
            )
        ).scalars()
    )
    for row in connection.execute(item_query):
        item_view = alerts_pb2.ItemView(header=bytes(row.header))
        expires_at = row.expires_at
        grant_row = caller_grants.get(row.item_id)
        if (expires_at is not None and expires_at <= now) or row.ciphertext is None:
            item_view.state = alerts_pb2.ItemView.EXPIRED
        elif row.item_id in revoked:
            item_view.state = alerts_pb2.ItemView.REVOKED
        elif grant_row is None:
            item_view.state = alerts_pb2.ItemView.WITHHELD
        elif grant_row.available_at > now:
            item_view.state = alerts_pb2.ItemView.EMBARGOED
        else:
            item_view.state = alerts_pb2.ItemView.GRANTED
            item_view.ciphertext = bytes(row.ciphertext)
            item_view.grant.ParseFromString(bytes(grant_row.grant))
            if undelivered is not None and grant_row.delivered_at is None and not own:
                undelivered.append(int(grant_row.id))
        view.items.append(item_view)
    return view


def record_deliveries(connection: Connection, grant_ids: list[int], *, now: datetime) -> int:
    """Mark grants delivered and log each first delivery (the hub's assertion; the recipient's
    signed receipt is the proof).  Grants another call recorded first are skipped."""
    rows = connection.execute(
        update(grants)
        .where(grants.c.id.in_(grant_ids), grants.c.delivered_at.is_(None))
        .values(delivered_at=now)
        .returning(grants.c.alert_pk, grants.c.recipient, grants.c.grant)
    ).all()
    for row in rows:
        alert = connection.execute(
            select(alerts.c.originator, alerts.c.alert_id, alerts.c.version).where(
                alerts.c.id == row.alert_pk
            )
        ).one()
        append_entry(
            connection,
            entry_type=leaves.GRANT_DELIVERED,
            body=bytes(row.grant),
            references=[alert.originator, alert.alert_id, str(alert.version)],
            entitled=[alert.originator, row.recipient],
            now=now,
        )
    return len(rows)
