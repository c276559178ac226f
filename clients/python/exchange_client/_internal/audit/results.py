"""What the audit commands report: checkpoints with their cosignatures, comparisons, history
entries and verification reports, each with its ``--json`` form."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from exchange.audit.verify import LogFailure, VerificationReport
from exchange.crypto.notes import Checkpoint
from exchange_client._internal.models import JsonObject, rfc3339


@dataclass(frozen=True)
class CosignatureLine:
    """One cosignature on a checkpoint: who, when, and whether it verified under a known key."""

    name: str
    timestamp: int | None
    verified: bool

    def to_json(self) -> JsonObject:
        """For ``--json``."""
        moment = None if self.timestamp is None else datetime.fromtimestamp(self.timestamp, UTC)
        return {"name": self.name, "time": rfc3339(moment), "verified": self.verified}


@dataclass(frozen=True)
class CheckpointSummary:
    """A verified checkpoint as ``exchange audit checkpoint`` shows it."""

    origin: str
    size: int
    root_hash: bytes
    note: str
    """The note exactly as signed, with every cosignature line known to this client."""
    cosignatures: tuple[CosignatureLine, ...]

    def to_json(self) -> JsonObject:
        """For ``--json``."""
        return {
            "origin": self.origin,
            "size": self.size,
            "root_hash": self.root_hash.hex(),
            "cosignatures": [line.to_json() for line in self.cosignatures],
            "note": self.note,
        }


@dataclass(frozen=True)
class Comparison:
    """A partner's checkpoint proven consistent with this client's view of the log."""

    ours: Checkpoint
    theirs: Checkpoint
    cosigners: tuple[str, ...]
    """The agencies whose cosignature on the partner's note verified."""

    def to_json(self) -> JsonObject:
        """For ``--json``."""
        return {
            "consistent": True,
            "our_size": self.ours.size,
            "our_root_hash": self.ours.root_hash.hex(),
            "their_size": self.theirs.size,
            "their_root_hash": self.theirs.root_hash.hex(),
            "their_cosigners": list(self.cosigners),
        }


@dataclass(frozen=True)
class HistoryEntry:
    """One log entry about an alert, as the caller may see it.

    ``signed_by`` names the agency whose signature on the statement verified; it is empty for
    the hub's own assertions (deliveries, purges), which only the log vouches for.
    """

    index: int
    logged_at: datetime
    entry_type: str
    kind: str
    signed_by: str
    version: int = 0
    agency: str = ""
    """The agency the entry concerns: the signer, or the recipient of a delivery."""
    detail: str = ""

    @property
    def hub_assertion(self) -> bool:
        """True when no agency signed the entry: the hub's word, logged."""
        return not self.signed_by

    def to_json(self) -> JsonObject:
        """For ``--json``."""
        return {
            "index": self.index,
            "logged_at": rfc3339(self.logged_at),
            "entry_type": self.entry_type,
            "kind": self.kind,
            "signed_by": self.signed_by or None,
            "assertion": "hub" if self.hub_assertion else "agency",
            "version": self.version,
            "agency": self.agency,
            "detail": self.detail,
        }


def report_to_json(report: VerificationReport) -> JsonObject:
    """A :class:`VerificationReport` for ``exchange audit verify --json``."""

    def failure(item: LogFailure) -> JsonObject:
        return {
            "reason": item.reason,
            "message": item.message,
            "index": item.index,
            "checkpoint_size": item.checkpoint_size,
        }

    first = report.first_failure
    return {
        "ok": report.ok,
        "size": report.size,
        "root_hash": report.root_hash.hex(),
        "checkpoints_verified": report.checkpoints_verified,
        "bodies_verified": report.bodies_verified,
        "signatures_verified": report.signatures_verified,
        "references_verified": report.references_verified,
        "feed_sequence": report.feed_sequence,
        "first_failure": None if first is None else failure(first),
        "failures": [failure(item) for item in report.failures],
    }
