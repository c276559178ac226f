"""``state/checkpoint.json``: the last checkpoint this profile verified, kept across runs.

A grown checkpoint is journalled (:class:`~exchange_client._internal.state.Journal`) and on disk
before anything is proven under it; ``checkpoint.json`` is its snapshot, written when the journal
is folded (a clean close, a long journal, a journal left by a process that died).
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

from exchange.crypto.notes import SignedCheckpoint
from exchange.errors import ConfigurationError
from exchange_client._internal.calls import Flush, Steps, run
from exchange_client._internal.state import Journal, journal_of


class CheckpointStore:
    """``state/checkpoint.json``: the last checkpoint note this profile verified, as received."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / "checkpoint.json"
        self._journal: tuple[int, Journal] | None = None  # this process's, with its id

    @property
    def _own_journal(self) -> Journal:
        """This process's journal of the state directory, looked up once per process (a
        forked child looks up its own)."""
        pid = os.getpid()
        known = self._journal
        if known is None or known[0] != pid:
            known = self._journal = (pid, journal_of(self.path.parent))
        return known[1]

    def load(self) -> str | None:
        """The stored note — the largest of the snapshot's and the journals' — or ``None``
        before the first checkpoint was verified."""
        journalled = journal_of(self.path.parent).combined().checkpoint
        snapshot = self._load_snapshot()
        if journalled is not None and (
            snapshot is None or int(journalled["size"]) >= int(snapshot["size"])
        ):
            return self._note(journalled)
        return None if snapshot is None else self._note(snapshot)

    def _load_snapshot(self) -> dict[str, Any] | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as e:
            raise ConfigurationError(f"{self.path}: cannot read the checkpoint: {e}") from e
        try:
            record = json.loads(text)
            size, _ = record["size"], record["note"]
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigurationError(
                f"{self.path}: not a checkpoint record; restore it from a backup (deleting it "
                "makes the next checkpoint trusted on first use)"
            ) from e
        if not isinstance(size, int):
            raise ConfigurationError(f"{self.path}: the size must be a whole number")
        return dict(record)

    def _note(self, record: dict[str, Any]) -> str:
        note = record["note"]
        if not isinstance(note, str):
            raise ConfigurationError(f"{self.path}: the note must be a string")
        return note

    def save_steps(self, signed: SignedCheckpoint, note: str, *, grown: bool = True) -> Steps[None]:
        """Keep ``note`` as the profile's checkpoint, unless a larger one is kept already.

        Two processes of one profile may verify different checkpoints; each keeps the larger
        (each was proven consistent with what the profile trusted), so a process that is behind
        never moves the profile's trust back.

        A checkpoint larger than the one trusted before (``grown``) is on disk when the steps
        end — journalled, with one flush for every thread and task saving at the same time —
        so that a crash of the machine never brings back a smaller one. The same checkpoint
        with newer cosignatures (not ``grown``) is journalled without waiting for the flush: a
        crash may bring back the previous note of the same size, and no trust is lost with the
        cosignatures.
        """
        checkpoint = signed.checkpoint
        record = {
            "origin": checkpoint.origin,
            "size": checkpoint.size,
            "root_hash": checkpoint.root_hash.hex(),
            "note": note,
        }
        journal = self._own_journal
        position = journal.put_checkpoint(record)
        if grown:
            yield Flush(functools.partial(journal.sync, position))

    def save(self, signed: SignedCheckpoint, note: str, *, grown: bool = True) -> None:
        """:meth:`save_steps`, run at once."""
        run(self.save_steps(signed, note, grown=grown), None)
