"""The inbox and opening an alert: fetch, verify, decrypt, validate again, flag (DESIGN §6).

Decryption and verification are :func:`exchange.statements.sealing.open_version`; the rules
here are pure: how an opened version becomes the :class:`OpenedAlert` a caller sees
(:func:`opened_alert`: payloads validated again, watchlist flags), what a verified WATCHLIST
alert adds to the watchlist (:func:`watchlist_update`) and what to say of withheld items
(:func:`withheld_details`). :class:`Opener` does the I/O.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

from exchange.alerts.validate import validate_payload
from exchange.alerts.watchlist import Watchlist, WatchlistUpdate
from exchange.errors import ExchangeError
from exchange.statements.codec import envelope_from_proto
from exchange.statements.key_compromise import untrusted_reason
from exchange.statements.sealing import (
    INVALID,
    VISIBLE,
    WITHHELD,
    OpenedVersion,
    open_version,
)
from exchange.statements.sealing import (
    OpenedItem as SealedOpenedItem,
)
from exchange.v1 import alerts_pb2, payloads_pb2
from exchange_client._internal.audit import logged_envelope
from exchange_client._internal.calls import Steps, call
from exchange_client._internal.context import ClientContext, Concern
from exchange_client._internal.manifests import check_answer, claimed_originator
from exchange_client._internal.models import (
    InboxEntry,
    ItemPolicy,
    OpenedAlert,
    OpenedItem,
    ReleaseRequest,
    grading_label,
    timestamp_or_none,
)
from exchange_client._internal.watchlist_updates import WatchlistUpdates

# --- the rules ----------------------------------------------------------------------------------


def flag_messages(
    watchlist: Watchlist, payload: payloads_pb2.ItemPayload, path: str
) -> tuple[str, ...]:
    """What the watchlist flags in ``payload`` (at ``path`` in the draft)."""
    return tuple(flag.message for flag in watchlist.match_payload(payload, path))


def _payload_problems(payload: payloads_pb2.ItemPayload, path: str) -> list[str]:
    return [str(violation) for violation in validate_payload(payload, path)]


def opened_item(
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
        flags = flag_messages(watchlist, item.payload, path)
    return OpenedItem(
        id=item.item_id,
        status=status,
        policy=ItemPolicy.from_proto(item.policy),
        payload=item.payload,
        detail=detail,
        flags=flags,
        header_hash=item.header_hash,
    )


def opened_alert(
    opened: OpenedVersion, watchlist: Watchlist, details: Mapping[str, str] | None = None
) -> OpenedAlert:
    """The alert a caller sees of an opened version; ``details`` says why items are withheld."""
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
            opened_item(item, f"items[{index}]", watchlist, (details or {}).get(item.item_id, ""))
            for index, item in enumerate(opened.items)
        ),
        versions=opened.versions,
        retracted=opened.retracted,
        previous_manifest_hash=bytes(manifest.message.previous_manifest_hash),
        summary_detail=summary_detail,
    )


def watchlist_update(opened: OpenedVersion, *, now: datetime) -> WatchlistUpdate | None:
    """The visible entries of a verified WATCHLIST alert (``None`` for any other kind), ordered
    by publication time (``now`` when the hub gave none)."""
    if opened.summary is None or opened.summary.kind != payloads_pb2.Summary.WATCHLIST:
        return None
    entries = tuple(
        item.payload.watchlist_entry
        for item in opened.items
        if item.status == VISIBLE
        and item.payload is not None
        and item.payload.WhichOneof("body") == "watchlist_entry"
    )
    manifest = opened.manifest
    published = opened.published_at or now
    return WatchlistUpdate(
        agency_id=manifest.originator,
        sequence=int(published.timestamp() * 1_000_000),
        entries=entries,
        reference=f"{manifest.originator}/{manifest.alert_id} version {manifest.version}",
    )


def asks_about_withheld(opened: OpenedVersion, agency_id: str) -> bool:
    """Whether a recipient's open should say what became of its requests for withheld items."""
    return opened.manifest.originator != agency_id and any(
        item.status == WITHHELD for item in opened.items
    )


def withheld_details(
    opened: OpenedVersion, own_requests: Iterable[ReleaseRequest], agency_id: str
) -> dict[str, str]:
    """What became of this agency's latest request for each item of the version: denied (with
    the reason) or pending."""
    manifest = opened.manifest
    latest: dict[str, ReleaseRequest] = {}
    for request in own_requests:
        if (request.originator, request.alert_id, request.version) == (
            manifest.originator,
            manifest.alert_id,
            manifest.version,
        ) and request.target == agency_id:
            latest[request.item_id] = request
    details = {}
    for item_id, request in latest.items():
        if request.status == "DENIED":
            details[item_id] = f"request denied by {request.originator}: {request.decision_reason}"
        elif request.status == "PENDING":
            details[item_id] = f"requested; waiting for {request.originator}"
    return details


# --- the I/O --------------------------------------------------------------------------------------


class Opener(Concern):
    """Lists and opens alert versions addressed to this agency.

    ``after_open`` runs for every opened version (receipts and purge acknowledgements);
    ``own_requests`` lists this agency's release requests (to explain withheld items); both
    are steps, as are :meth:`inbox_steps` and :meth:`open_steps`.
    """

    def __init__(
        self,
        context: ClientContext,
        *,
        watchlist_updates: WatchlistUpdates,
        after_open: Callable[[OpenedVersion], Steps[None]],
        own_requests: Callable[[], Steps[list[ReleaseRequest]]],
    ) -> None:
        super().__init__(context)
        self._watchlist_updates = watchlist_updates
        self._after_open = after_open
        self._own_requests = own_requests
        self.watchlist = watchlist_updates.merged()
        """The shipped watchlist merged with the WATCHLIST alerts this agency has verified."""

    def inbox(self, *, limit: int = 100) -> list[InboxEntry]:
        """See :meth:`exchange_client.Client.inbox`."""
        return self._run(self.inbox_steps(limit=limit))

    def inbox_steps(self, *, limit: int = 100) -> Steps[list[InboxEntry]]:
        """:meth:`inbox` as steps."""
        response = yield from call(
            "alerts", "ListAlerts", alerts_pb2.ListAlertsRequest(include_own=False, limit=limit)
        )
        entries = []
        for summary in response.alerts:
            title: str | None = None
            kind: str | None = None
            problem = untrusted = ""
            try:
                opened = yield from self.open_steps(
                    summary.alert_id, originator=summary.originator, version=summary.version
                )
                title, kind, untrusted = opened.title, opened.kind, opened.untrusted_reason
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
                    untrusted=bool(untrusted),
                    untrusted_reason=untrusted,
                )
            )
        return entries

    def open(
        self, alert_id: str, *, originator: str | None = None, version: int | None = None
    ) -> OpenedAlert:
        """See :meth:`exchange_client.Client.open`."""
        return self._run(self.open_steps(alert_id, originator=originator, version=version))

    def open_steps(
        self, alert_id: str, *, originator: str | None = None, version: int | None = None
    ) -> Steps[OpenedAlert]:
        """:meth:`open` as steps."""
        request = alerts_pb2.GetAlertRequest(
            alert_id=alert_id, originator=originator or "", version=version or 0
        )
        view = yield from call("alerts", "GetAlert", request)
        originator_keys = yield from self._partners.keys_of(claimed_originator(view))
        opened = open_version(
            view,
            recipient=self._profile.agency_id,
            decryption_key=self._profile.decryption_key,
            retired_keys=self._profile.retired_decryption_keys,
            originator_keys=originator_keys,
            now=self._clock(),
        )
        check_answer(
            opened.manifest,
            alert_id,
            originator=originator,
            version=version,
            asked=f" (originator {originator or 'any'}, version {version or 'latest'})",
        )
        # The audit log: act on no manifest that the verified log does not hold.
        yield from self._auditor.prove_statement_steps(
            logged_envelope(view.manifest), view.log_index, acting=True
        )
        compromised = yield from self._partners.compromised_keys()
        untrusted = untrusted_reason(
            envelope_from_proto(view.manifest),
            originator_keys,
            compromised,
            signed_at=timestamp_or_none(opened.manifest.message, "created_at"),
            logged_at=opened.published_at,
        )
        yield from self._after_open(opened)
        if not untrusted:
            self._record_watchlist_update(opened)
        details: dict[str, str] = {}
        if asks_about_withheld(opened, self._profile.agency_id):
            own_requests = yield from self._own_requests()
            details = withheld_details(opened, own_requests, self._profile.agency_id)
        alert = opened_alert(opened, self.watchlist, details)
        if untrusted:
            alert = dataclasses.replace(alert, untrusted=True, untrusted_reason=untrusted)
        return alert

    def _record_watchlist_update(self, opened: OpenedVersion) -> None:
        """Keep the visible entries of a verified WATCHLIST alert, and use them from now on."""
        update = watchlist_update(opened, now=self._clock())
        if update is None:
            return
        self._watchlist_updates.record(update)
        self.watchlist = self._watchlist_updates.merged()
