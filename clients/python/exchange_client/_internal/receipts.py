"""Receipts, purge acknowledgements and feedback: what recipients tell the originator.

A recipient's client sends a signed receipt when a version first opens (or more of it opens)
and acknowledges the purge of every revoked item once (:func:`statements_due`, pure); it sends
feedback on request. The originator lists all three for one of its alerts, each verified under
its signer's keys and (feedback) decrypted (:meth:`Deliveries.receipts`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from exchange.crypto.keys import VerifyKey
from exchange.errors import InvalidInputError, VerificationError
from exchange.statements import release
from exchange.statements.alert import AlertManifest, ItemHeader
from exchange.statements.codec import envelope_from_proto
from exchange.statements.sealing import INVALID, REVOKED, VISIBLE, WITHHELD, OpenedVersion
from exchange.v1 import release_pb2, statements_pb2
from exchange_client._internal.calls import Steps, acquire, call
from exchange_client._internal.context import ClientContext, Concern
from exchange_client._internal.manifests import check_alert_id
from exchange_client._internal.models import DeliveryRecord, StatementResult, timestamp_or_none
from exchange_client._internal.signed_calls import statement_call, statement_result
from exchange_client._internal.state import KeyedLocks, SentStatements

FEEDBACK_OUTCOMES = ("SEIZED", "NOTHING_FOUND", "INVESTIGATING", "FALSE_POSITIVE")
"""The outcomes a recipient can report with :meth:`Client.feedback`."""

_Statement = TypeVar("_Statement", bound="release.SignedStatement[Any]")

# --- the rules ----------------------------------------------------------------------------------


def feedback_outcome(outcome: str) -> release.FeedbackOutcome.ValueType:
    """The ``FeedbackOutcome`` value of ``outcome`` (any case); raises for anything else."""
    try:
        value = release.FeedbackOutcome.Value(outcome.upper())
    except ValueError as e:
        raise InvalidInputError(
            f"unknown outcome {outcome!r}: one of {', '.join(FEEDBACK_OUTCOMES)}",
            reason="INVALID_OUTCOME",
        ) from e
    if value == release.FeedbackOutcome.OUTCOME_UNSPECIFIED:
        raise InvalidInputError(f"outcome is one of {', '.join(FEEDBACK_OUTCOMES)}")
    return value


@dataclass(frozen=True)
class DueStatements:
    """What a recipient owes the originator after opening a version."""

    purge_acks: tuple[str, ...]
    """Revoked items not acknowledged yet."""
    receipt: tuple[frozenset[bytes], tuple[bytes, ...]] | None
    """The header hashes opened and withheld, when a receipt is due."""


def statements_due(
    opened: OpenedVersion,
    *,
    agency_id: str,
    purge_acknowledged: Callable[[str], bool],
    receipt_opened: set[bytes] | None,
) -> DueStatements:
    """Whether opening ``opened`` calls for purge acknowledgements and a receipt: a receipt
    when the version first opens or more of it opens than ``receipt_opened`` (the last receipt
    sent), nothing for an originator's own alert."""
    if opened.manifest.originator == agency_id:
        return DueStatements((), None)
    purges = tuple(
        item.item_id
        for item in opened.items
        if item.status == REVOKED and not purge_acknowledged(item.item_id)
    )
    opened_hashes = frozenset(i.header_hash for i in opened.items if i.status in (VISIBLE, INVALID))
    withheld = tuple(i.header_hash for i in opened.items if i.status == WITHHELD)
    if receipt_opened is not None and opened_hashes <= receipt_opened:
        return DueStatements(purges, None)
    return DueStatements(purges, (opened_hashes, withheld))


def verified_about_own(
    kind: type[_Statement],
    envelope: statements_pb2.Envelope,
    *,
    alert_id: str,
    agency_id: str,
    keys_of: Callable[[str], Steps[Mapping[str, VerifyKey]]],
) -> Steps[_Statement]:
    """A statement the hub lists for our alert ``alert_id``, verified under its signer's keys
    (the steps ``keys_of``) and about that alert."""
    unverified = envelope_from_proto(envelope)
    keys = yield from keys_of(kind.peek_signer(unverified))
    statement = kind.verify(unverified, keys)
    about = (statement.message.originator, statement.message.alert_id)
    if about != (agency_id, alert_id):
        raise VerificationError(
            f"the hub listed a statement about {about[0]}/{about[1]} for alert {alert_id}",
            reason="STATEMENT_MISMATCH",
        )
    return statement


# --- the I/O --------------------------------------------------------------------------------------


class Deliveries(Concern):
    """Receipts, purge acknowledgements and feedback, sent and listed."""

    def __init__(self, context: ClientContext, *, sent: SentStatements) -> None:
        super().__init__(context)
        self._sent = sent
        # Threads opening the same version send its receipt once, not once each.
        self._version_locks = KeyedLocks()

    def feedback(
        self, alert_id: str, outcome: str, *, note: str = "", originator: str | None = None
    ) -> StatementResult:
        """See :meth:`exchange_client.Client.feedback`."""
        return self._run(self.feedback_steps(alert_id, outcome, note=note, originator=originator))

    def feedback_steps(
        self, alert_id: str, outcome: str, *, note: str = "", originator: str | None = None
    ) -> Steps[StatementResult]:
        """:meth:`feedback` as steps."""
        value = feedback_outcome(outcome)
        manifest = yield from self._manifests.visible_steps(alert_id, originator=originator)
        keys = yield from self._partners.recipient_keys_steps([manifest.originator])
        originator_key = keys[manifest.originator]
        statement = release.Feedback.seal(
            manifest,
            recipient=self._profile.agency_id,
            outcome=value,
            note=note,
            originator_key=originator_key,
            own_key=self._profile.decryption_key.public_key,
            created_at=self._clock(),
            key=self._profile.signing_key,
        )
        response = yield from statement_call(statement)
        return statement_result(
            "FEEDBACK", manifest, log_index=response.log_index, outcome=outcome.upper()
        )

    def acknowledge_purge(
        self, alert_id: str, item_id: str, *, originator: str, version: int
    ) -> StatementResult:
        """See :meth:`exchange_client.Client.acknowledge_purge`."""
        return self._run(
            self.acknowledge_purge_steps(alert_id, item_id, originator=originator, version=version)
        )

    def acknowledge_purge_steps(
        self, alert_id: str, item_id: str, *, originator: str, version: int
    ) -> Steps[StatementResult]:
        """:meth:`acknowledge_purge` as steps."""
        manifest = yield from self._manifests.visible_steps(
            alert_id, originator=originator, version=version
        )
        ack = release.PurgeAck.build(
            manifest,
            recipient=self._profile.agency_id,
            item_id=item_id,
            created_at=self._clock(),
            key=self._profile.signing_key,
        )
        response = yield from statement_call(ack)
        self._sent.record_purge_ack(originator, alert_id, version, item_id)
        return statement_result(
            "PURGE_ACK", manifest, log_index=response.log_index, item_id=item_id
        )

    def after_open(self, opened: OpenedVersion) -> Steps[None]:
        """Send a receipt when a version first opens (or more of it opens), and acknowledge
        the purge of every revoked item once (steps)."""
        manifest = opened.manifest
        key = (manifest.originator, manifest.alert_id, manifest.version)
        lock = self._version_locks(key)
        yield from acquire(lock)
        try:
            yield from self._send_due(opened, key)
        finally:
            lock.release()

    def _send_due(self, opened: OpenedVersion, key: tuple[str, str, int]) -> Steps[None]:
        manifest = opened.manifest
        due = statements_due(
            opened,
            agency_id=self._profile.agency_id,
            purge_acknowledged=lambda item_id: self._sent.purge_acknowledged(*key, item_id),
            receipt_opened=self._sent.receipt_opened(*key),
        )
        for item_id in due.purge_acks:
            yield from self.acknowledge_purge_steps(
                manifest.alert_id, item_id, originator=manifest.originator, version=manifest.version
            )
        if due.receipt is None:
            return
        opened_hashes, withheld = due.receipt
        receipt = release.Receipt.build(
            manifest,
            recipient=self._profile.agency_id,
            opened=sorted(opened_hashes),
            withheld=list(withheld),
            created_at=self._clock(),
            key=self._profile.signing_key,
        )
        yield from statement_call(receipt)
        self._sent.record_receipt(*key, set(opened_hashes))

    def receipts(self, alert_id: str) -> list[DeliveryRecord]:
        """See :meth:`exchange_client.Client.receipts`."""
        return self._run(self.receipts_steps(alert_id))

    def receipts_steps(self, alert_id: str) -> Steps[list[DeliveryRecord]]:
        """:meth:`receipts` as steps."""
        response = yield from call(
            "release",
            "ListReceipts",
            release_pb2.ListReceiptsRequest(alert_id=check_alert_id(alert_id)),
        )
        versions: dict[int, tuple[AlertManifest, dict[bytes, str]]] = {}

        def version_of(
            version: int, manifest_hash: bytes
        ) -> Steps[tuple[AlertManifest, dict[bytes, str]]]:
            if version not in versions:
                view = yield from self._manifests.own_view_steps(alert_id, version)
                manifest = yield from self._manifests.verified_steps(
                    view, alert_id=alert_id, originator=self._profile.agency_id, version=version
                )
                names = {}
                for item_view in view.items:
                    header = ItemHeader.parse(bytes(item_view.header))
                    names[header.hash] = header.item_id
                versions[version] = (manifest, names)
            manifest, names = versions[version]
            if manifest.hash != manifest_hash:
                raise VerificationError(
                    f"a statement names version {version} with another manifest hash",
                    reason="MANIFEST_MISMATCH",
                )
            return manifest, names

        def verified(
            kind: type[_Statement], envelope: statements_pb2.Envelope
        ) -> Steps[_Statement]:
            return (
                yield from verified_about_own(
                    kind,
                    envelope,
                    alert_id=alert_id,
                    agency_id=self._profile.agency_id,
                    keys_of=self._partners.keys_of,
                )
            )

        def record(kind: str, statement: release.SignedStatement[Any], **fields: Any) -> None:
            message = statement.message
            records.append(
                DeliveryRecord(
                    kind=kind,
                    agency=statement.signer,
                    alert_id=alert_id,
                    version=message.version,
                    created_at=timestamp_or_none(message, "created_at"),
                    **fields,
                )
            )

        records: list[DeliveryRecord] = []
        for envelope in response.receipts:
            receipt = yield from verified(release.Receipt, envelope)
            _, names = yield from version_of(
                receipt.message.version, bytes(receipt.message.manifest_hash)
            )
            record(
                "RECEIPT",
                receipt,
                opened=tuple(names.get(h, h.hex()) for h in receipt.message.opened_header_hashes),
                withheld=tuple(
                    names.get(h, h.hex()) for h in receipt.message.withheld_header_hashes
                ),
            )
        for envelope in response.purge_acks:
            ack = yield from verified(release.PurgeAck, envelope)
            record("PURGE_ACK", ack, item_id=ack.message.item_id)
        for envelope in response.feedback:
            statement = yield from verified(release.Feedback, envelope)
            manifest, _ = yield from version_of(
                statement.message.version, bytes(statement.message.manifest_hash)
            )
            key = self._profile.decryption_key_for(
                statement.message.grant.recipient_key_id,
                statement.message.sender_grant.recipient_key_id,
            )
            body = statement.open(manifest, key)
            record(
                "FEEDBACK",
                statement,
                outcome=release.FeedbackOutcome.Name(body.outcome),
                note=body.note,
            )
        return records
