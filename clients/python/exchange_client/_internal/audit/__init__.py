"""The client's side of the audit log (DESIGN §8): it verifies the hub, never takes its word.

* :mod:`.auditor`: :class:`Auditor`, the I/O — it fetches checkpoints, proofs, leaves and bodies
  and submits cosignatures, around the pure verifiers of :mod:`exchange.audit.verify` and the
  pure rules below;
* :mod:`.proofs`: the bytes the hub logs for what it serves, and the inclusion check;
* :mod:`.history`: which log entries concern an alert and how each reads;
* :mod:`.checkpoint_store`: the last verified checkpoint, kept in the profile;
* :mod:`.stream`: a feed stream verified as it passes;
* :mod:`.results`: what the audit commands report, with its ``--json`` form.
"""

from __future__ import annotations

from exchange_client._internal.audit.auditor import LEAVES_PER_PAGE, Auditor, Progress, VerifiedLog
from exchange_client._internal.audit.checkpoint_store import CheckpointStore
from exchange_client._internal.audit.proofs import checkpoint_text, logged_envelope, logged_manifest
from exchange_client._internal.audit.results import (
    CheckpointSummary,
    Comparison,
    HistoryEntry,
    report_to_json,
)
from exchange_client._internal.audit.stream import AuditedStream

__all__ = [
    "LEAVES_PER_PAGE",
    "AuditedStream",
    "Auditor",
    "CheckpointStore",
    "CheckpointSummary",
    "Comparison",
    "HistoryEntry",
    "Progress",
    "VerifiedLog",
    "checkpoint_text",
    "logged_envelope",
    "logged_manifest",
    "report_to_json",
]
