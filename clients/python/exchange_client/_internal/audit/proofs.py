"""The bytes the hub logs for what it serves, and the inclusion check, pure: no I/O."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from exchange.audit.leaves import LeafContents
from exchange.audit.merkle import leaf_hash, verify_inclusion
from exchange.crypto.notes import Checkpoint
from exchange.errors import InvalidInputError, VerificationError
from exchange.statements.codec import (
    encode,
    envelope_from_proto,
    envelope_to_proto,
    parse_canonical,
)
from exchange.v1 import alerts_pb2, statements_pb2


def logged_envelope(envelope: statements_pb2.Envelope) -> bytes:
    """The bytes the hub logs for a statement: its envelope, re-encoded canonically."""
    return encode(envelope_to_proto(envelope_from_proto(envelope)))


def logged_manifest(publish_request: bytes) -> bytes:
    """The logged bytes of the manifest in a sealed ``PublishRequest``."""
    request = parse_canonical(alerts_pb2.PublishRequest, publish_request, what="publish request")
    return logged_envelope(request.manifest)


def checkpoint_text(note: str) -> str:
    """The checkpoint body of a signed note: everything before the blank line, newline kept."""
    split = note.find("\n\n")
    if split < 0:
        raise InvalidInputError("not a signed note: no blank line before the signatures")
    return note[: split + 1]


def logged_event(event: alerts_pb2.FeedEvent) -> bytes:
    """The logged body of a delivered feed event: the event without its log index."""
    logged = alerts_pb2.FeedEvent()
    logged.CopyFrom(event)
    logged.ClearField("log_index")
    return encode(logged)


def check_inclusion(
    checkpoint: Checkpoint, index: int, body: bytes, proof: Sequence[bytes], leaf: bytes
) -> LeafContents:
    """Check that ``body`` is the entry at ``index`` under ``checkpoint`` (verified): ``leaf``
    must be proven by ``proof`` and commit to ``body``; returns what the leaf says."""
    try:
        contents = LeafContents.decode(leaf)
        verify_inclusion(
            leaf_hash(leaf),
            index,
            checkpoint.size,
            list(proof),
            checkpoint.root_hash,
        )
    except (VerificationError, InvalidInputError) as e:
        raise VerificationError(
            f"log entry {index} is not in the log of the verified checkpoint of size "
            f"{checkpoint.size}: {e.message}",
            reason="INCLUSION_PROOF_INVALID",
        ) from e
    if hashlib.sha256(body).digest() != contents.body_sha256:
        raise VerificationError(
            f"log entry {index} commits to other bytes than the statement the hub served",
            reason="BODY_MISMATCH",
        )
    return contents
