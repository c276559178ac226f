"""What the hub remembers of its log outside the database: the latest checkpoint it signed.

A database restored from a backup older than a checkpoint the hub already signed holds a log
that is behind what agencies have verified; if the hub served it and appended, it would sign a
second history under the same key: a fork. Clients would catch that (their trusted checkpoint
has no consistency proof to the new one), but the hub should never get there. So after each
checkpoint it adopts, the hub writes the checkpoint's size and root to a small file beside its
checkpoint key (``[log] state_file``), where a database restore does not reach, and at start it
refuses a database whose tree is shorter than that size or has another root at it.

The file is written atomically (a temporary file renamed over it) but not flushed to disk on
every checkpoint, and the checkpoints of publish batches are written to it by the checkpointer's
thread at its next poll (within a second), not by the publish writer between two batches: a
crash or power loss may leave it behind the database, which only weakens the check, never
refuses a good database. Records are kept per database URL, so one configuration used with
several databases (tests, a migration) keeps one record for each.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection
from sqlalchemy.engine import make_url

from exchange.errors import ConfigurationError, VerificationError
from exchange.store.checkpoints import StoredCheckpoint
from exchange.store.tree import StoredTree, hashed_size

_FORMAT = 1


class LogBehindError(VerificationError):
    """The database holds a log that does not extend the latest checkpoint the hub signed (a
    restore from an older backup, or another database). The hub's own: never sent to clients."""

    reason = "LOG_BEHIND_CHECKPOINT"


@dataclass(frozen=True)
class SignedHead:
    """The size and root of the latest checkpoint the hub signed or adopted for one database."""

    size: int
    root_hash: bytes
    signed_at: str


class LogStateFile:
    """The state file: read once at start, rewritten whenever a larger checkpoint is adopted."""

    def __init__(self, path: Path, database_url: str) -> None:
        self.path = path
        self._key = make_url(database_url).render_as_string(hide_password=True)
        self._lock = threading.Lock()
        self._records = self._read()
        self._head = self._parse(self._records.get(self._key))

    @property
    def head(self) -> SignedHead | None:
        """The latest signed checkpoint remembered for this database, if any."""
        return self._head

    def check(self, connection: Connection) -> None:
        """Refuse (:class:`LogBehindError`) a database whose log does not extend the remembered
        checkpoint: a tree shorter than it, or with another root at its size."""
        head = self._head
        if head is None:
            return
        size = hashed_size(connection)
        if size < head.size:
            raise LogBehindError(
                f"the database's log has {size} entries but this hub already signed a checkpoint "
                f"of {head.size} entries on {head.signed_at} (remembered in {self.path}): the "
                "database was restored from a backup older than that checkpoint, or is another "
                "database. Serving it would fork the log the agencies verified. Restore a backup "
                "taken after that checkpoint (docs/OPERATIONS.md, 'Backup and restore')",
                reason="LOG_BEHIND_CHECKPOINT",
            )
        root = StoredTree(connection, size=size).root(head.size)
        if root != head.root_hash:
            raise LogBehindError(
                f"the database's log has another root at size {head.size} than the checkpoint "
                f"this hub signed on {head.signed_at} (remembered in {self.path}): it is not the "
                "log this hub signed. Point the hub at its own database, or restore a backup "
                "taken after that checkpoint (docs/OPERATIONS.md, 'Backup and restore')",
                reason="LOG_FORKED",
            )

    def save(self) -> None:
        """Write the file as it stands: at start, so an unwritable path fails there."""
        with self._lock:
            self._write()

    def remember(self, checkpoint: StoredCheckpoint) -> None:
        """Record ``checkpoint`` if it is larger than the one remembered."""
        with self._lock:
            if self._head is not None and checkpoint.size <= self._head.size:
                return
            head = SignedHead(
                checkpoint.size, checkpoint.root_hash, checkpoint.created_at.isoformat()
            )
            self._records[self._key] = {
                "size": head.size,
                "root_hash": head.root_hash.hex(),
                "signed_at": head.signed_at,
            }
            self._write()
            self._head = head

    def _read(self) -> dict[str, dict[str, object]]:
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ConfigurationError(
                f"{self.path}: cannot read the hub's log state ({e}); it records the latest "
                "signed checkpoint: restore it from a backup of the hub's state directory"
            ) from e
        records = document.get("databases") if isinstance(document, dict) else None
        if not isinstance(records, dict):
            raise ConfigurationError(f"{self.path}: not a log state file of this hub")
        return records

    def _parse(self, record: object) -> SignedHead | None:
        if record is None:
            return None
        size = record.get("size") if isinstance(record, dict) else None
        root = record.get("root_hash") if isinstance(record, dict) else None
        signed_at = record.get("signed_at") if isinstance(record, dict) else None
        try:
            if isinstance(size, int) and isinstance(root, str) and isinstance(signed_at, str):
                return SignedHead(size, bytes.fromhex(root), signed_at)
        except ValueError:
            pass
        raise ConfigurationError(f"{self.path}: its record of this database is malformed")

    def _write(self) -> None:
        document = {"format": _FORMAT, "databases": self._records}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # A name of its own per writer: replicas sharing a state directory never collide.
            with tempfile.NamedTemporaryFile(
                "w", dir=self.path.parent, prefix=f".{self.path.name}.", delete=False
            ) as temporary:
                temporary.write(json.dumps(document, indent=2, sort_keys=True) + "\n")
            os.replace(temporary.name, self.path)
        except OSError as e:
            raise ConfigurationError(
                f"cannot write the hub's log state to {self.path} ({e}): set [log] state_file "
                "in hub.toml to a writable path outside the database"
            ) from e
