"""Release controls after publish (DESIGN §5): requests, decisions, revocations, retractions.

The statements themselves are :mod:`exchange.statements.release`; the rules here are pure: how
a served request and its decision are checked against each other (:func:`check_request_view`),
how a request is shown (:func:`release_request`), how the originator recovers an item key
from its own grant (:func:`own_item_key`), and which requests carry the alert's summary along
with an item shared onward (:func:`summary_audience`, :func:`companion_summary_requests`).
:class:`ReleaseControls` does the I/O as steps (each method's ``*_steps``, driven by the
blocking client with :func:`~exchange_client._internal.calls.run` and by the asynchronous one
with :func:`~exchange_client._internal.calls.run_async`), each statement sent through
:func:`~exchange_client._internal.signed_calls.statement_call`.

An item shared onward arrives with its alert's summary (title and kind), as an item received
directly does: with an onward request for an item, the requester's client also asks for the
summary item (``_summary``) for the same agency, unless the summary's audience already holds
it; when the originator approves or denies the item, the pending summary requests for that
agency and version are decided with it. Both are signed statements in the log, like any other
release.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from exchange.crypto.keys import DecryptionKey, VerifyKey
from exchange.errors import ConflictError, ExchangeError, NotFoundError, VerificationError
from exchange.statements import release
from exchange.statements.alert import SUMMARY_ITEM_ID, AlertManifest, ItemHeader, KeyGrant
from exchange.statements.codec import envelope_from_proto
from exchange.v1 import alerts_pb2, release_pb2
from exchange_client._internal.calls import Steps, call
from exchange_client._internal.context import Concern
from exchange_client._internal.manifests import check_alert_id
from exchange_client._internal.models import ReleaseRequest, StatementResult, timestamp_or_none
from exchange_client._internal.signed_calls import statement_call, statement_result

# --- the rules ----------------------------------------------------------------------------------


def release_request(
    statement: release.ReleaseRequest,
    decision: release.ReleaseDecision | None,
    *,
    log_index: int = 0,
) -> ReleaseRequest:
    """A verified request (and its decision, if any) as the caller sees it."""
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


def check_request_view(
    view: release_pb2.ReleaseRequestView,
    keys_of: Callable[[str], Steps[Mapping[str, VerifyKey]]],
) -> Steps[tuple[release.ReleaseRequest, ReleaseRequest]]:
    """The request served in ``view`` and its decision, each verified under its signer's keys
    (the steps ``keys_of``), about each other, and served under the request's own id."""
    envelope = envelope_from_proto(view.request)
    requester = release.ReleaseRequest.peek_signer(envelope)
    statement = release.ReleaseRequest.verify(envelope, (yield from keys_of(requester)))
    decision: release.ReleaseDecision | None = None
    if view.HasField("decision"):
        originator_keys = yield from keys_of(statement.message.originator)
        decision = release.ReleaseDecision.verify(
            envelope_from_proto(view.decision), originator_keys
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
    return statement, release_request(statement, decision)


def own_item_key(
    manifest: AlertManifest,
    view: alerts_pb2.AlertView,
    item_id: str,
    *,
    agency_id: str,
    key: DecryptionKey,
    retired_keys: Mapping[str, DecryptionKey] | None = None,
) -> bytes:
    """The key of item ``item_id``, from the grant the originator holds for its own item
    (wrapped to ``key``, or to one of ``retired_keys`` if made before a key rotation)."""
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
        wrapped_to = (retired_keys or {}).get(item_view.grant.recipient_key_id, key)
        return KeyGrant(item_view.grant).open(
            manifest, header, recipient=agency_id, key=wrapped_to
        )
    raise NotFoundError(f"alert {manifest.alert_id} has no item {item_id!r}")


def summary_audience(manifest: AlertManifest, view: alerts_pb2.AlertView) -> tuple[str, ...]:
    """The audience the version's summary header declares (the header committed to by
    ``manifest``, verified); empty if the view shows no summary header."""
    for item_view in view.items:
        header = ItemHeader.parse(bytes(item_view.header))
        if header.message.summary and manifest.commits_to(header):
            return tuple(header.policy.audience)
    return ()


def summary_reason(item_id: str, reason: str) -> str:
    """The reason given for the summary request that goes with an onward request for
    ``item_id``."""
    return f"the alert's title and kind, to go with item {item_id!r} ({reason})"


def companion_summary_requests(
    decided: release.ReleaseRequest, pending: Iterable[release.ReleaseRequest]
) -> list[release.ReleaseRequest]:
    """The pending requests for the summary of ``decided``'s alert version to the same agency,
    when ``decided`` is an onward request for another item: they are decided with it."""
    message = decided.message
    if message.item_id == SUMMARY_ITEM_ID or not message.release_to:
        return []
    return [
        request
        for request in pending
        if request.message.item_id == SUMMARY_ITEM_ID
        and request.request_id != decided.request_id
        and request.target == decided.target
        and (request.message.originator, request.message.alert_id, request.message.version)
        == (message.originator, message.alert_id, message.version)
    ]


# --- the I/O --------------------------------------------------------------------------------------


class ReleaseControls(Concern):
    """This agency's release requests and, as an originator, its decisions and revocations.

    Each public method runs its ``*_steps`` over the blocking transport."""

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
        """See :meth:`exchange_client.Client.request_release`."""
        return self._run(
            self.request_release_steps(
                alert_id,
                item_id,
                reason=reason,
                for_agency=for_agency,
                originator=originator,
                version=version,
            )
        )

    def request_release_steps(
        self,
        alert_id: str,
        item_id: str,
        *,
        reason: str,
        for_agency: str | None = None,
        originator: str | None = None,
        version: int | None = None,
    ) -> Steps[ReleaseRequest]:
        """:meth:`request_release` as steps."""
        view = yield from self._manifests.view_steps(
            check_alert_id(alert_id), originator=originator, version=version
        )
        manifest = yield from self._manifests.verified_steps(
            view, alert_id=alert_id, originator=originator, version=version
        )
        requested = yield from self._send_request(
            manifest, item_id, reason=reason, release_to=for_agency
        )
        if (
            for_agency
            and item_id != SUMMARY_ITEM_ID
            and for_agency not in summary_audience(manifest, view)
        ):
            try:
                yield from self._send_request(
                    manifest,
                    SUMMARY_ITEM_ID,
                    reason=summary_reason(item_id, reason),
                    release_to=for_agency,
                )
            except ConflictError:
                pass  # released to that agency already, with an earlier onward item
        return requested

    def _send_request(
        self, manifest: AlertManifest, item_id: str, *, reason: str, release_to: str | None
    ) -> Steps[ReleaseRequest]:
        statement = release.ReleaseRequest.build(
            requester=self._profile.agency_id,
            manifest=manifest,
            item_id=item_id,
            reason=reason,
            release_to=release_to or "",
            created_at=self._clock(),
            key=self._profile.signing_key,
        )
        response = yield from statement_call(statement)
        if response.request_id != statement.request_id:
            raise VerificationError(
                "the hub acknowledged another request than the one sent", reason="RECEIPT_MISMATCH"
            )
        return release_request(statement, None, log_index=response.log_index)

    def release_requests(
        self, *, mine: bool = False, include_decided: bool = False
    ) -> list[ReleaseRequest]:
        """See :meth:`exchange_client.Client.release_requests`."""
        return self._run(self.release_requests_steps(mine=mine, include_decided=include_decided))

    def release_requests_steps(
        self, *, mine: bool = False, include_decided: bool = False
    ) -> Steps[list[ReleaseRequest]]:
        """:meth:`release_requests` as steps."""
        response = yield from call(
            "release",
            "ListRequests",
            release_pb2.ListRequestsRequest(mine=mine, include_decided=include_decided),
        )
        listed = []
        for view in response.requests:
            _, shown = yield from check_request_view(view, self._partners.keys_of)
            listed.append(shown)
        return listed

    def approve(self, request_id: str) -> StatementResult:
        """See :meth:`exchange_client.Client.approve`."""
        return self._run(self.approve_steps(request_id))

    def approve_steps(self, request_id: str) -> Steps[StatementResult]:
        """:meth:`approve` as steps."""
        request, pending = yield from self._pending_request(request_id)
        result = yield from self._approve(request)
        for companion in companion_summary_requests(request, pending):
            try:
                yield from self._approve(companion)
            except ConflictError:
                pass  # the agency holds the summary already
        return result

    def _approve(self, request: release.ReleaseRequest) -> Steps[StatementResult]:
        request_id = request.request_id
        message = request.message
        view = yield from self._manifests.own_view_steps(message.alert_id, message.version)
        manifest = yield from self._manifests.verified_steps(
            view, alert_id=message.alert_id, originator=self._profile.agency_id
        )
        if manifest.hash != bytes(message.manifest_hash):
            raise VerificationError(
                f"request {request_id} names another manifest than the hub's version "
                f"{message.version}",
                reason="MANIFEST_MISMATCH",
            )
        item_key = own_item_key(
            manifest,
            view,
            message.item_id,
            agency_id=self._profile.agency_id,
            key=self._profile.decryption_key,
            retired_keys=self._profile.retired_decryption_keys,
        )
        target_keys = yield from self._partners.recipient_keys_steps([request.target])
        grant = KeyGrant.make(
            manifest,
            item_id=message.item_id,
            item_key=item_key,
            recipient=request.target,
            recipient_key=target_keys[request.target],
        )
        decision = release.ReleaseDecision.approve(
            request, grant, created_at=self._clock(), key=self._profile.signing_key
        )
        return (yield from self._send_decision(request, decision, grant))

    def deny(self, request_id: str, *, reason: str) -> StatementResult:
        """See :meth:`exchange_client.Client.deny`."""
        return self._run(self.deny_steps(request_id, reason=reason))

    def deny_steps(self, request_id: str, *, reason: str) -> Steps[StatementResult]:
        """:meth:`deny` as steps."""
        request, pending = yield from self._pending_request(request_id)
        result = yield from self._deny(request, reason)
        for companion in companion_summary_requests(request, pending):
            yield from self._deny(companion, reason)
        return result

    def _deny(self, request: release.ReleaseRequest, reason: str) -> Steps[StatementResult]:
        decision = release.ReleaseDecision.deny(
            request, reason=reason, created_at=self._clock(), key=self._profile.signing_key
        )
        return (yield from self._send_decision(request, decision, None))

    def revoke(
        self, alert_id: str, item_id: str, *, from_agency: str | None = None, reason: str = ""
    ) -> StatementResult:
        """See :meth:`exchange_client.Client.revoke`."""
        return self._run(
            self.revoke_steps(alert_id, item_id, from_agency=from_agency, reason=reason)
        )

    def revoke_steps(
        self, alert_id: str, item_id: str, *, from_agency: str | None = None, reason: str = ""
    ) -> Steps[StatementResult]:
        """:meth:`revoke` as steps."""
        manifest = yield from self._manifests.own_steps(alert_id)
        revocation = release.Revocation.build(
            manifest,
            item_id=item_id,
            agency=from_agency or "",
            reason=reason,
            created_at=self._clock(),
            key=self._profile.signing_key,
        )
        response = yield from statement_call(revocation)
        return statement_result(
            "REVOCATION",
            manifest,
            log_index=response.log_index,
            item_id=item_id,
            agency=from_agency or "",
            grants_deleted=response.grants_deleted,
        )

    def retract(self, alert_id: str, *, reason: str) -> StatementResult:
        """See :meth:`exchange_client.Client.retract`."""
        return self._run(self.retract_steps(alert_id, reason=reason))

    def retract_steps(self, alert_id: str, *, reason: str) -> Steps[StatementResult]:
        """:meth:`retract` as steps."""
        manifest = yield from self._manifests.own_steps(alert_id)
        retraction = release.Retraction.build(
            manifest, reason=reason, created_at=self._clock(), key=self._profile.signing_key
        )
        response = yield from statement_call(retraction)
        return statement_result("RETRACTION", manifest, log_index=response.log_index)

    def _pending_request(
        self, request_id: str
    ) -> Steps[tuple[release.ReleaseRequest, list[release.ReleaseRequest]]]:
        """The pending request ``request_id`` (verified), and every other pending request."""
        response = yield from call(
            "release", "ListRequests", release_pb2.ListRequestsRequest(include_decided=True)
        )
        found: release.ReleaseRequest | None = None
        pending = []
        for view in response.requests:
            if view.request_id == request_id:
                statement, listed = yield from check_request_view(view, self._partners.keys_of)
                if listed.status != "PENDING":
                    raise ConflictError(
                        f"request {request_id} was already {listed.status.lower()}",
                        reason="ALREADY_DECIDED",
                    )
                found = statement
                continue
            try:
                statement, listed = yield from check_request_view(view, self._partners.keys_of)
            except ExchangeError:
                continue  # decided along with nothing: it is shown, with why, when listed
            if listed.status == "PENDING":
                pending.append(statement)
        if found is None:
            raise NotFoundError(
                f"no release request {request_id} made of {self._profile.agency_id}"
            )
        return found, pending

    def _send_decision(
        self,
        request: release.ReleaseRequest,
        decision: release.ReleaseDecision,
        grant: KeyGrant | None,
    ) -> Steps[StatementResult]:
        response = yield from statement_call(decision, grant=grant)
        return statement_result(
            "DECISION",
            request.message,
            log_index=response.log_index,
            item_id=request.message.item_id,
            request_id=request.request_id,
            agency=request.target,
            outcome="APPROVED" if decision.approved else "DENIED",
        )
