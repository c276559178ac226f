"""The proofs that travel with what they prove (NOTES: "Proofs travel with what they prove"): a
feed heartbeat's, under a signed checkpoint that covers its events. (A publish receipt's are
computed by the publish writer in the batch's own transaction:
:mod:`exchange.store.publish_writer`.)

A heartbeat asks the :class:`~exchange.hub.background.Checkpointer` for a checkpoint when none
covers its events yet (concurrent callers share it); a failure there only sends it without the
proofs, which the client then asks for (``GetInclusionProof``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection

from exchange.errors import ExchangeError
from exchange.hub.background import Checkpointer
from exchange.store.checkpoints import StoredCheckpoint, latest_checkpoint
from exchange.store.db import Database
from exchange.store.log import feed_event_index
from exchange.store.proofs import proofs_under
from exchange.v1 import alerts_pb2, audit_pb2

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HeartbeatLogState:
    """What a heartbeat says of the log: where the agency's latest event is, under which
    checkpoint, with the proofs of the events it follows and of the checkpoint's consistency."""

    latest_log_index: int
    """The log index of the agency's latest feed event (0 for none)."""
    checkpoint: StoredCheckpoint | None
    event_proofs: tuple[alerts_pb2.EventProof, ...] = ()
    consistency: audit_pb2.ConsistencyProof | None = None


def heartbeat_log_state(
    db: Database,
    checkpointer: Checkpointer | None,
    agency_id: str,
    sequence: int,
    *,
    events: Sequence[int] = (),
    previous_size: int = 0,
) -> HeartbeatLogState:
    """For a heartbeat: the log index of the agency's feed event ``sequence`` and a checkpoint
    that covers it, so the heartbeat proves the latest sequence under a checkpoint; under that
    checkpoint, each of ``events`` (log indices) with its leaf and inclusion proof, and the proof
    that the tree of ``previous_size`` (the stream's previous checkpoint; 0 for none) is a
    prefix of it.

    When the latest checkpoint does not cover the event yet, one is signed first (shared with any
    publish doing the same); if that fails the latest checkpoint goes as it is, and events it
    does not cover go without proofs (the client asks for them later).
    """
    with db.read() as connection:
        index = feed_event_index(connection, agency_id, sequence) if sequence else None
        checkpoint = latest_checkpoint(connection)
        if checkpoint is not None and (index is None or checkpoint.size > index):
            return _with_proofs(connection, index or 0, checkpoint, events, previous_size)
    if checkpointer is not None and index is not None:
        try:
            checkpointer.checkpoint_covering(index + 1)
        except ExchangeError:
            log.exception("no checkpoint covering leaf %d for a heartbeat", index)
    with db.read() as connection:
        checkpoint = latest_checkpoint(connection)
        if checkpoint is None:
            return HeartbeatLogState(index or 0, None)
        return _with_proofs(connection, index or 0, checkpoint, events, previous_size)


def _with_proofs(
    connection: Connection,
    latest_log_index: int,
    checkpoint: StoredCheckpoint,
    events: Sequence[int],
    previous_size: int,
) -> HeartbeatLogState:
    proofs, consistency = proofs_under(connection, checkpoint.size, events, previous_size)
    return HeartbeatLogState(latest_log_index, checkpoint, proofs, consistency)
