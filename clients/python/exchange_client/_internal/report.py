"""The cooperation report's I/O: verify the log, read what it holds, compute the figures.

The figures are the pure :func:`~exchange.audit.cooperation.cooperation_figures`; this module
gathers their inputs from entries this client verified, and from nothing else:

1. The whole log is replayed as ``exchange audit verify`` does (:meth:`Auditor.verified_log`);
   a failure raises :class:`~exchange.errors.VerificationError` naming the first bad entry, and
   no figure is computed.
2. The statements this agency may read are parsed from the verified bodies.
3. Each alert version's kind and audience come from its encrypted summary, opened with
   :func:`~exchange.statements.sealing.open_version` from the hub's copy of the alert, whose
   manifest must be byte for byte the verified log entry's (so every header, ciphertext and key
   is checked against the signed manifest in the log).  Opening here is silent: no receipt is
   sent, since a receipt would be a new entry that changes the very figures being computed.
4. Feedback is decrypted from the log body (the originator's grant, or the sender's own).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from google.protobuf.message import Message

from exchange.audit import leaves
from exchange.audit.cooperation import (
    AlertFacts,
    AlertKey,
    CooperationReport,
    LoggedStatement,
    cooperation_figures,
)
from exchange.audit.leaves import LeafContents
from exchange.crypto.dsse import Envelope
from exchange.crypto.keys import SigningKey
from exchange.crypto.notes import NoteVerifier, open_checkpoint
from exchange.errors import ExchangeError, InvalidInputError, VerificationError
from exchange.statements.alert import AlertManifest
from exchange.statements.codec import encode, envelope_from_proto, parse_canonical, sha256
from exchange.statements.cooperation import CooperationBundle, CooperationStatement
from exchange.statements.release import Feedback, FeedbackOutcome
from exchange.statements.sealing import VISIBLE, open_version
from exchange.v1 import alerts_pb2, payloads_pb2, statements_pb2
from exchange_client._internal.audit import Progress, VerifiedLog, logged_envelope
from exchange_client._internal.calls import call
from exchange_client._internal.context import Concern

__all__ = ["CooperationReporter", "sign_report", "verify_summary"]

_STATEMENTS: dict[str, type[Message]] = {
    leaves.ALERT_PUBLISHED: statements_pb2.AlertManifest,
    leaves.RELEASE_REQUEST: statements_pb2.ReleaseRequest,
    leaves.RELEASE_DECISION: statements_pb2.ReleaseDecision,
    leaves.RECEIPT: statements_pb2.Receipt,
    leaves.FEEDBACK: statements_pb2.Feedback,
}

@dataclass(frozen=True)
class _Read:
    """A verified entry with the envelope its statement came in."""

    entry: LoggedStatement
    envelope: statements_pb2.Envelope


class CooperationReporter(Concern):
    """Computes :class:`CooperationReport` objects for one agency; see the module docs."""

    def partners(self, requested: Sequence[str] = ()) -> tuple[str, ...]:
        """The partners to report on: ``requested``, each checked against the profile's partner
        CAs (the agreement), or every partner in the profile."""
        known = sorted(set(self._profile.partner_cas) - {self._profile.agency_id})
        if not requested:
            if not known:
                raise InvalidInputError(
                    "this profile names no partner agency: add their CA certificates under "
                    "[partners] in profile.toml",
                    reason="NO_PARTNER",
                )
            return tuple(known)
        for partner in requested:
            if partner == self._profile.agency_id:
                raise InvalidInputError(
                    f"{partner} is this agency: name a partner", reason="UNKNOWN_PARTNER"
                )
            if partner not in known:
                raise InvalidInputError(
                    f"no agreement with {partner!r}: this profile holds no CA certificate for it "
                    f"(partners: {', '.join(known) or 'none'})",
                    reason="UNKNOWN_PARTNER",
                )
        return tuple(sorted(set(requested)))

    def report(
        self,
        *,
        partners: Sequence[str] = (),
        since: datetime | None = None,
        until: datetime | None = None,
        progress: Progress | None = None,
    ) -> CooperationReport:
        """Verify the log, then compute the figures with ``partners`` over ``[since, until)``.

        Raises :class:`VerificationError` naming the first bad entry when the log fails
        verification, and :class:`InvalidInputError` for an unknown partner, an empty period or
        a period in which nothing happened between the agencies.
        """
        chosen = self.partners(partners)
        if since is not None and until is not None and since >= until:
            raise InvalidInputError(
                f"the period from {since.isoformat()} to {until.isoformat()} is empty: "
                "--since must be before --until",
                reason="EMPTY_PERIOD",
            )
        verified = self._auditor.verified_log(progress=progress)
        verified.report.raise_for_failure()
        read = _read_statements(verified)
        if not verified.leaves:
            raise InvalidInputError("the log is empty: nothing to report", reason="EMPTY_PERIOD")
        last = LeafContents.decode(bytes(verified.leaves[-1].data)).logged_at
        as_of = last if until is None else min(until, last)
        agency = self._profile.agency_id
        involved = {agency, *chosen}
        alerts = self._alert_facts(read, involved)
        entries = [r.entry for r in read]
        figures = cooperation_figures(
            entries,
            alerts,
            self._outcomes(read),
            agency=agency,
            partners=chosen,
            since=since,
            until=until,
            as_of=as_of,
        )
        if not any(figure.log_indices for figure in figures):
            raise InvalidInputError(
                f"nothing between {agency} and {', '.join(chosen)} in the log "
                f"{_period(since, until)}: no alert, request, receipt, feedback or joint case; "
                "widen the period (--since, --until) or check the partner",
                reason="EMPTY_PERIOD",
            )
        in_period = sum(
            1
            for e in entries
            if (since is None or e.logged_at >= since) and (until is None or e.logged_at < until)
        )
        signed = open_checkpoint(verified.checkpoint_note, self._auditor.log_key)
        return CooperationReport(
            agency=agency,
            partners=chosen,
            since=since,
            until=until,
            as_of=as_of,
            checkpoint_note=verified.checkpoint_note,
            checkpoint_size=signed.checkpoint.size,
            checkpoint_root_hash=signed.checkpoint.root_hash,
            entries_verified=verified.report.size,
            entries_in_period=in_period,
            figures=tuple(figures),
        )

    def _alert_facts(self, read: Sequence[_Read], involved: set[str]) -> dict[AlertKey, AlertFacts]:
        facts: dict[AlertKey, AlertFacts] = {}
        for item in read:
            message = item.entry.message
            if not isinstance(message, statements_pb2.AlertManifest):
                continue
            if message.originator not in involved:
                continue
            key = (message.originator, message.alert_id, message.version)
            facts[key] = self._open_summary(key, encode(item.envelope))
        return facts

    def _open_summary(self, key: AlertKey, logged: bytes) -> AlertFacts:
        """What the alert version's summary (and case items) say, opened without a receipt."""
        originator, alert_id, version = key
        request = alerts_pb2.GetAlertRequest(
            alert_id=alert_id, originator=originator, version=version
        )
        try:
            view = self._run(call("alerts", "GetAlert", request))
        except ExchangeError:
            return AlertFacts(kind=None)  # purged, or no longer served: the kind stays unknown
        if logged_envelope(view.manifest) != logged:
            raise VerificationError(
                f"the hub serves alert {alert_id} version {version} of {originator} with "
                "another manifest than the one in the verified log",
                reason="MANIFEST_MISMATCH",
            )
        opened = open_version(
            view,
            recipient=self._profile.agency_id,
            decryption_key=self._profile.decryption_key,
            retired_keys=self._profile.retired_decryption_keys,
            originator_keys=self._partners.verify_keys_of(originator),
            now=self._clock(),
        )
        if opened.summary is None:
            return AlertFacts(kind=None, audience=frozenset(opened.summary_audience))
        kind = payloads_pb2.Summary.Kind.Name(opened.summary.kind)
        members: frozenset[str] = frozenset()
        case: tuple[str, str] | None = None
        closes = False
        for item in opened.items:
            if item.status != VISIBLE or item.payload is None:
                continue
            body = item.payload.WhichOneof("body")
            if body == "case_record" and kind == "CASE":
                members = frozenset(item.payload.case_record.members)
            elif body == "case_entry" and kind == "CASE_ENTRY":
                entry = item.payload.case_entry
                case = (entry.case_originator, entry.case_id)
                closes = entry.outcome != payloads_pb2.CaseEntry.OUTCOME_UNSPECIFIED
        return AlertFacts(
            kind=kind,
            audience=frozenset(opened.summary_audience),
            case_members=members,
            case=case,
            closes_case=closes,
        )

    def _outcomes(self, read: Sequence[_Read]) -> dict[int, str]:
        """The outcome of each feedback entry this agency can decrypt, by log index."""
        manifests = {
            _key(r.entry.message): r.envelope
            for r in read
            if isinstance(r.entry.message, statements_pb2.AlertManifest)
        }
        outcomes: dict[int, str] = {}
        for item in read:
            message = item.entry.message
            if not isinstance(message, statements_pb2.Feedback):
                continue
            manifest_envelope = manifests.get(_key(message))
            if manifest_envelope is None:
                continue
            try:
                manifest = AlertManifest.verify(
                    envelope_from_proto(manifest_envelope),
                    self._partners.verify_keys_of(message.originator),
                )
                envelope = envelope_from_proto(item.envelope)
                feedback = Feedback.parse_verified(envelope, envelope.payload)
                key = self._profile.decryption_key_for(
                    feedback.message.grant.recipient_key_id,
                    feedback.message.sender_grant.recipient_key_id,
                )
                body = feedback.open(manifest, key)
            except ExchangeError:
                continue  # not ours to read (feedback sent before it carried a sender's grant)
            outcomes[item.entry.index] = FeedbackOutcome.Name(body.outcome)
        return outcomes


def _key(message: Message) -> AlertKey:
    assert isinstance(message, statements_pb2.AlertManifest | statements_pb2.Feedback)
    return (message.originator, message.alert_id, message.version)


def _period(since: datetime | None, until: datetime | None) -> str:
    start = "the start" if since is None else since.isoformat()
    end = "the latest checkpoint" if until is None else until.isoformat()
    return f"from {start} to {end}"


def _read_statements(verified: VerifiedLog) -> list[_Read]:
    """The statements of every verified body this agency may read, with their log entries."""
    read: list[_Read] = []
    for leaf in verified.leaves:
        body = verified.bodies.get(leaf.index)
        contents = LeafContents.decode(bytes(leaf.data))
        message_type = _STATEMENTS.get(contents.entry_type)
        if body is None or message_type is None:
            continue
        envelope = parse_canonical(
            statements_pb2.Envelope, bytes(body.body), what=f"log entry {leaf.index}"
        )
        message = parse_canonical(
            message_type, bytes(envelope.payload), what=f"log entry {leaf.index}"
        )
        entry = LoggedStatement(
            index=leaf.index,
            logged_at=contents.logged_at,
            entry_type=contents.entry_type,
            message=message,
            statement_hash=sha256(bytes(envelope.payload)),
        )
        read.append(_Read(entry, envelope))
    return read


def sign_report(
    report: CooperationReport,
    *,
    signing_key: SigningKey,
    keys_envelope: Envelope | None,
    created_at: datetime,
) -> bytes:
    """The signed summary of ``report`` as a bundle file (see
    :class:`~exchange.statements.cooperation.CooperationBundle`)."""
    if keys_envelope is None:
        raise InvalidInputError(
            "this profile has no keys.dsse (its AgencyKeys statement): a signed summary carries "
            "it for partners to check offline",
            reason="NO_KEYS_STATEMENT",
        )
    statement = CooperationStatement.sign(report.to_summary(created_at=created_at), signing_key)
    return CooperationBundle.encode(statement, keys_envelope)


def verify_summary(
    data: bytes,
    *,
    partner_cas: Mapping[str, x509.Certificate],
    checkpoint_verifier_key: str,
    now: datetime,
) -> CooperationBundle:
    """Verify a partner's signed summary offline, against this profile's CAs and checkpoint key."""
    return CooperationBundle.verify(
        data,
        partner_cas=partner_cas,
        log_verifier=NoteVerifier.from_string(checkpoint_verifier_key),
        now=now,
    )
