"""``state/checkpoint.json``: the last checkpoint this profile verified, kept across runs."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from filelock import FileLock, Timeout

from exchange.crypto.notes import SignedCheckpoint
from exchange.errors import ConfigurationError
from exchange_client._internal.state import (
    PRIVATE_DIRECTORY_MODE,
    sync_directory,
    write_atomically,
)

STORE_LOCK_SECONDS = 10.0
"""How long saving the checkpoint waits for another process of the same profile."""

STORE_LOCK_POLL_SECONDS = 0.001
"""How often a process waiting to save the checkpoint tries the lock again (the other process
holds it for one small write)."""


class CheckpointStore:
    """``state/checkpoint.json``: the last checkpoint note this profile verified, as received."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / "checkpoint.json"
        # Group commit of grown checkpoints between the threads of this process: one writes and
        # flushes the newest waiting checkpoint while the others wait; each returns once a
        # checkpoint at least as large as its own is durable.
        self._changed = threading.Condition()
        self._durable_size = -1
        self._waiting: tuple[int, bytes] | None = None
        self._writing = False

    def load(self) -> str | None:
        """The stored note, or ``None`` before the first checkpoint was verified."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as e:
            raise ConfigurationError(f"{self.path}: cannot read the checkpoint: {e}") from e
        try:
            note = json.loads(text)["note"]
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigurationError(
                f"{self.path}: not a checkpoint record; restore it from a backup (deleting it "
                "makes the next checkpoint trusted on first use)"
            ) from e
        if not isinstance(note, str):
            raise ConfigurationError(f"{self.path}: the note must be a string")
        return note

    def save(self, signed: SignedCheckpoint, note: str, *, grown: bool = True) -> None:
        """Replace the stored checkpoint atomically, unless it already holds a larger one.

        Two processes of one profile may verify different checkpoints; the file keeps the larger
        (each was proven consistent with what the profile trusted), so a process that is behind
        never moves the profile's trust back.

        A checkpoint larger than the one trusted before (``grown``) is durable on return — it,
        or a larger one another thread of this process saved at the same time, whose write and
        flush then stand for both — so that a crash of the machine never brings back a smaller
        one. The same checkpoint with newer cosignatures (not ``grown``) is written without
        flushing the rename: a crash may bring back the previous note of the same size, and no
        trust is lost with the cosignatures.
        """
        checkpoint = signed.checkpoint
        record = {
            "origin": checkpoint.origin,
            "size": checkpoint.size,
            "root_hash": checkpoint.root_hash.hex(),
            "note": note,
        }
        data = json.dumps(record, indent=2).encode() + b"\n"
        if not grown:
            self._write(checkpoint.size, data, flush_rename=False)
            return
        size = checkpoint.size
        with self._changed:
            while self._durable_size < size:
                if self._waiting is None or self._waiting[0] < size:
                    self._waiting = (size, data)
                if self._writing:
                    self._changed.wait()
                    continue
                self._writing = True
                written, newest = self._waiting
                self._waiting = None
                self._changed.release()
                try:
                    self._write(written, newest, flush_rename=True)
                finally:
                    self._changed.acquire()
                    self._writing = False
                    self._changed.notify_all()
                self._durable_size = max(self._durable_size, written)

    def _write(self, size: int, data: bytes, *, flush_rename: bool) -> None:
        try:
            self.path.parent.mkdir(mode=PRIVATE_DIRECTORY_MODE, parents=True, exist_ok=True)
            with FileLock(
                self.path.with_name("checkpoint.lock"),
                timeout=STORE_LOCK_SECONDS,
                poll_interval=STORE_LOCK_POLL_SECONDS,
            ):
                if self._stored_size() <= size:
                    write_atomically(self.path, data, durable_rename=False)
        except (OSError, Timeout) as e:
            raise ConfigurationError(f"{self.path}: cannot store the checkpoint: {e}") from e
        if flush_rename:
            # Also when another process stored a larger one: flushed before this returns.
            sync_directory(self.path.parent)

    def _stored_size(self) -> int:
        try:
            size = json.loads(self.path.read_text(encoding="utf-8"))["size"]
        except FileNotFoundError:
            return -1
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ConfigurationError(f"{self.path}: not a checkpoint record") from e
        return int(size)
