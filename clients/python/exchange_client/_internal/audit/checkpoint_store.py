"""``state/checkpoint.json``: the last checkpoint this profile verified, kept across runs."""

from __future__ import annotations

import json
from pathlib import Path

from filelock import FileLock, Timeout

from exchange.crypto.notes import SignedCheckpoint
from exchange.errors import ConfigurationError
from exchange_client._internal.state import PRIVATE_DIRECTORY_MODE, write_atomically

STORE_LOCK_SECONDS = 10.0
"""How long saving the checkpoint waits for another process of the same profile."""

STORE_LOCK_POLL_SECONDS = 0.001
"""How often a process waiting to save the checkpoint tries the lock again (the other process
holds it for one small write)."""


class CheckpointStore:
    """``state/checkpoint.json``: the last checkpoint note this profile verified, as received."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / "checkpoint.json"

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

    def save(self, signed: SignedCheckpoint, note: str) -> None:
        """Replace the stored checkpoint atomically, unless it already holds a larger one.

        Two processes of one profile may verify different checkpoints; the file keeps the larger
        (each was proven consistent with what the profile trusted), so a process that is behind
        never moves the profile's trust back.
        """
        checkpoint = signed.checkpoint
        record = {
            "origin": checkpoint.origin,
            "size": checkpoint.size,
            "root_hash": checkpoint.root_hash.hex(),
            "note": note,
        }
        try:
            self.path.parent.mkdir(mode=PRIVATE_DIRECTORY_MODE, parents=True, exist_ok=True)
            with FileLock(
                self.path.with_name("checkpoint.lock"),
                timeout=STORE_LOCK_SECONDS,
                poll_interval=STORE_LOCK_POLL_SECONDS,
            ):
                if self._stored_size() > checkpoint.size:
                    return
                write_atomically(self.path, json.dumps(record, indent=2).encode() + b"\n")
        except (OSError, Timeout) as e:
            raise ConfigurationError(f"{self.path}: cannot store the checkpoint: {e}") from e

    def _stored_size(self) -> int:
        try:
            size = json.loads(self.path.read_text(encoding="utf-8"))["size"]
        except FileNotFoundError:
            return -1
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ConfigurationError(f"{self.path}: not a checkpoint record") from e
        return int(size)
