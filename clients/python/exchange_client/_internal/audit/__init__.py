"""The client's side of the audit log (DESIGN §8): it verifies the hub, never takes its word.

:class:`Auditor` (in :mod:`.auditor`) does the I/O around the pure verifiers of
:mod:`exchange.audit.verify` and the pure rules of this package.
"""

from __future__ import annotations

from exchange_client._internal.audit.auditor import (
    LEAVES_PER_PAGE,
    AuditedStream,
    Auditor,
    CheckpointStore,
    CheckpointSummary,
    Comparison,
    HistoryEntry,
    Progress,
    checkpoint_text,
    logged_envelope,
    logged_manifest,
    report_to_json,
)

__all__ = [
    "LEAVES_PER_PAGE",
    "AuditedStream",
    "Auditor",
    "CheckpointStore",
    "CheckpointSummary",
    "Comparison",
    "HistoryEntry",
    "Progress",
    "checkpoint_text",
    "logged_envelope",
    "logged_manifest",
    "report_to_json",
]
