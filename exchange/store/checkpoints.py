"""Signed checkpoints of the audit log and the agencies' cosignatures, in the database.

The hub signs a checkpoint (a C2SP signed note: origin, size, base64 root) of the hashed tree after
each batch of appends; agencies cosign what they verified (``cosignature/v1``) and send the lines
back, and every later reader gets the note with those lines appended. One checkpoint per tree
size: Ed25519 is deterministic, so signing the same size again would give the same note.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite

from exchange.audit.cosignatures import check_cosignature
from exchange.crypto.notes import (
    Checkpoint,
    CosignatureVerifier,
    NoteSigner,
    append_signatures,
    sign_note,
)
from exchange.errors import InvalidInputError, NotFoundError
from exchange.store.bulk import BulkInsert
from exchange.store.schema import checkpoints, cosignatures
from exchange.store.tree import StoredTree, TreeGrowth, hashed_size

__all__ = [
    "StoredCheckpoint",
    "add_cosignature",
    "checkpoint_at",
    "latest_checkpoint",
    "sign_checkpoint",
    "signed_checkpoint",
]

@dataclass(frozen=True)
class StoredCheckpoint:
    """One signed checkpoint with the cosignature lines agencies have submitted for it."""

    size: int
    root_hash: bytes
    signed_note: str
    """The note exactly as the hub signed it."""
    created_at: datetime
    cosignature_lines: tuple[str, ...] = ()

    @property
    def checkpoint_text(self) -> str:
        """The checkpoint body (origin, size, root) that the signatures cover."""
        return self.signed_note[: self.signed_note.index("\n\n") + 1]

    @property
    def note(self) -> str:
        """The signed note with every stored cosignature line appended."""
        if not self.cosignature_lines:
            return self.signed_note
        return append_signatures(self.signed_note, self.cosignature_lines)


# Built once: statements executed with parameters reuse their compiled form and cache key.
_COSIGNATURE_LINES = (
    select(cosignatures.c.signature_line)
    .where(cosignatures.c.checkpoint_size == bindparam("size"))
    .order_by(cosignatures.c.cosigner)
)
_LATEST = select(checkpoints).order_by(checkpoints.c.size.desc()).limit(1)
_INSERT_CHECKPOINT = BulkInsert(checkpoints, ["size", "root_hash", "note", "created_at"])


def _with_cosignatures(connection: Connection, row: object) -> StoredCheckpoint:
    size = int(row.size)  # type: ignore[attr-defined]
    lines = connection.execute(_COSIGNATURE_LINES, {"size": size}).scalars()
    return StoredCheckpoint(
        size=size,
        root_hash=bytes(row.root_hash),  # type: ignore[attr-defined]
        signed_note=str(row.note),  # type: ignore[attr-defined]
        created_at=row.created_at,  # type: ignore[attr-defined]
        cosignature_lines=tuple(str(line) for line in lines),
    )


def latest_checkpoint(connection: Connection) -> StoredCheckpoint | None:
    """The checkpoint of the largest tree signed so far, or ``None`` before the first one."""
    row = connection.execute(_LATEST).first()
    return None if row is None else _with_cosignatures(connection, row)


def signed_checkpoint(connection: Connection) -> StoredCheckpoint:
    """The latest checkpoint; :class:`~exchange.errors.NotFoundError` before the first one."""
    checkpoint = latest_checkpoint(connection)
    if checkpoint is None:
        raise NotFoundError("the log has no signed checkpoint yet", reason="NO_CHECKPOINT")
    return checkpoint


def checkpoint_at(connection: Connection, size: int) -> StoredCheckpoint | None:
    """The checkpoint signed at tree size ``size``, if there is one."""
    row = connection.execute(select(checkpoints).where(checkpoints.c.size == size)).first()
    return None if row is None else _with_cosignatures(connection, row)


def sign_checkpoint(
    connection: Connection,
    signer: NoteSigner,
    *,
    origin: str,
    now: datetime,
    growth: TreeGrowth | None = None,
) -> StoredCheckpoint:
    """Sign the tree as hashed so far, unless its latest checkpoint already covers that size.

    Runs in the caller's write transaction under the tree head's lock, so two replicas never sign
    the same size twice; returns the latest checkpoint either way. ``growth``, the result of
    :func:`~exchange.store.tree.hash_new_leaves` earlier in the same transaction, spares every
    read when it grew the tree: no checkpoint can exist at a size hashed only now, and its root
    is known.
    """
    if growth is not None and growth.grew and growth.root_hash is not None:
        size, root_hash = growth.new_size, growth.root_hash
    else:
        size = hashed_size(connection, for_update=True)
        latest = latest_checkpoint(connection)
        if latest is not None and latest.size >= size:
            return latest
        root_hash = StoredTree(connection, size=size).root(size)
    note = sign_note(Checkpoint(origin, size, root_hash).to_text(), [signer])
    _INSERT_CHECKPOINT.execute(connection, [(size, root_hash, note, now)])
    return StoredCheckpoint(size=size, root_hash=root_hash, signed_note=note, created_at=now)


def add_cosignature(
    connection: Connection,
    *,
    cosigner: str,
    checkpoint_text: str,
    signature_line: str,
    verifier: CosignatureVerifier,
    now: datetime,
) -> int:
    """Verify and store ``cosigner``'s cosignature over a checkpoint this log signed.

    ``checkpoint_text`` must be the body of a stored checkpoint, byte for byte, and the line must
    verify under ``verifier`` (the cosigner's current witness key). A later cosignature by the
    same agency replaces an earlier one (the acceptance rule is
    :func:`~exchange.audit.cosignatures.check_cosignature`). Returns the cosignature's timestamp.
    """
    try:
        checkpoint = Checkpoint.from_text(checkpoint_text)
    except InvalidInputError as e:
        raise InvalidInputError(f"not a checkpoint: {e.message}", reason=e.reason) from e
    stored = checkpoint_at(connection, checkpoint.size)
    if stored is None or stored.checkpoint_text != checkpoint_text:
        raise NotFoundError(
            f"this log signed no checkpoint with that text at size {checkpoint.size}",
            reason="CHECKPOINT_UNKNOWN",
        )
    timestamp = check_cosignature(checkpoint_text, signature_line, verifier, now=now)
    # One statement, so that two calls storing the same agency's cosignature at once (two
    # processes of one agency) cannot both find none and both insert: the later time wins.
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(cosignatures).values(
        checkpoint_size=checkpoint.size,
        cosigner=cosigner,
        signature_line=signature_line,
        cosigned_at=timestamp,
        received_at=now,
    )
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=[cosignatures.c.checkpoint_size, cosignatures.c.cosigner],
            set_={
                "signature_line": statement.excluded.signature_line,
                "cosigned_at": statement.excluded.cosigned_at,
                "received_at": statement.excluded.received_at,
            },
            where=cosignatures.c.cosigned_at < statement.excluded.cosigned_at,
        )
    )
    return timestamp
