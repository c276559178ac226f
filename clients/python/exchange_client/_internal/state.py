"""What the client keeps in the profile's ``state/`` directory between runs.

- ``outbox/<alert id>.v<version>.pb``: a sealed ``PublishRequest``, written before its first send
  and removed once the hub has acknowledged it, so that an interrupted publish is retried with
  the very same bytes (the hub answers a retry with the first receipt, DESIGN §4).
- ``published/<alert id>.v<version>.json``: the manifest hash the hub acknowledged for each
  version this agency published; a new version names its predecessor's hash. Journalled when
  the hub acknowledges a version, and written as these files when the journal is folded out.
- ``cursor.json``: the sequence of the last feed event processed, guarded by ``cursor.lock``.
- ``receipts/`` and ``purged/``: the receipts and purge acknowledgements already sent.
- ``journal/<id>.wal``: each process's append-only journal (:class:`Journal`) of the writes that
  must survive a crash — outbox entries, grown checkpoints — and of the cursor and the published
  versions, one ``fdatasync`` for every batch of them. The files above are its snapshots: the journal is folded into them at
  a clean close and when it grows large, and a journal left by a process that died is replayed
  into them by the next process (so state written by a version without journals reads as it
  was, and a version without them reads the snapshots).

Every file is written whole to a temporary name and renamed into place, so a crash leaves the old
content or the new, never half of one.
"""

from __future__ import annotations

import base64
import fcntl
import functools
import hashlib
import json
import os
import re
import struct
import threading
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from filelock import FileLock, Timeout

from exchange.crypto.encoding import lp
from exchange.errors import ConfigurationError, ExchangeError
from exchange_client._internal.calls import Flush, SharedLock, Steps, run
from exchange_client._internal.errors import check_same_process

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIRECTORY_MODE = 0o700

_OUTBOX_NAME = re.compile(r"^(?P<alert_id>[0-9a-f-]{36})\.v(?P<version>[0-9]+)\.pb$")


class DirectorySyncs:
    """Group commit of directory fsyncs: a thread that renamed a file into a directory waits for
    an fsync of that directory *begun after* its rename — its own, or one another thread began
    meanwhile, which then covers every rename before it. Threads publishing side by side share
    one directory fsync instead of each doing its own; what is durable on return is the same.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._requested: dict[str, int] = {}
        self._synced: dict[str, int] = {}
        self._running: set[str] = set()

    def sync(self, directory: Path) -> None:
        """Return once an fsync of ``directory`` begun after this call's start has finished."""
        key = str(directory)
        with self._changed:
            ticket = self._requested[key] = self._requested.get(key, 0) + 1
            while self._synced.get(key, 0) < ticket:
                if key in self._running:
                    self._changed.wait()
                    continue
                self._running.add(key)
                covered = self._requested[key]
                self._changed.release()
                try:
                    descriptor = os.open(directory, os.O_RDONLY)
                    try:
                        os.fsync(descriptor)
                    finally:
                        os.close(descriptor)
                finally:
                    self._changed.acquire()
                    self._running.discard(key)
                    self._changed.notify_all()
                self._synced[key] = max(self._synced.get(key, 0), covered)


_DIRECTORY_SYNCS = DirectorySyncs()


def sync_directory(directory: Path) -> None:
    """Flush the renames into ``directory`` (see :class:`DirectorySyncs`)."""
    try:
        _DIRECTORY_SYNCS.sync(directory)
    except OSError as e:
        raise ConfigurationError(f"{directory}: cannot flush client state: {e}") from e


def write_atomically(
    path: Path, data: bytes, *, durable: bool = True, durable_rename: bool = True
) -> None:
    """Replace ``path`` with ``data`` in one rename, after the bytes are on disk.

    With ``durable`` (the default) the new file's bytes are flushed before the rename, so after
    a crash of the machine the path holds the old content or the new, each whole; with
    ``durable_rename`` too the rename is flushed (an fsync of the directory, shared with the
    other threads renaming into it at the same time), so the new content survives the crash.
    Without ``durable`` nothing is flushed: readers still see the old file or the new one whole,
    but a crash of the machine may lose the change, or leave an empty file (for records that
    can be had again).
    """
    # One temporary name per process and thread: two threads replacing the same file never
    # write into each other's temporary file.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
        try:
            os.write(descriptor, data)
            if durable:
                os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, path)
        if durable and durable_rename:
            _DIRECTORY_SYNCS.sync(path.parent)
    except OSError as e:
        raise ConfigurationError(f"{path}: cannot write client state: {e}") from e


def _directory(path: Path) -> Path:
    try:
        path.mkdir(mode=PRIVATE_DIRECTORY_MODE, parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigurationError(f"{path}: cannot create the state directory: {e}") from e
    return path


def _flush(descriptor: int) -> None:
    """Flush a file's bytes (and the length that reaches them) to disk."""
    if hasattr(os, "fdatasync"):
        os.fdatasync(descriptor)
    else:  # pragma: no cover - platforms without fdatasync
        os.fsync(descriptor)


def _read_whole(descriptor: int) -> bytes:
    size = os.fstat(descriptor).st_size
    chunks = []
    offset = 0
    while offset < size:
        chunk = os.pread(descriptor, size - offset, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


# --- the journal ------------------------------------------------------------------------------

JOURNAL_COMPACT_BYTES = 1024 * 1024
"""A journal longer than this is folded into the snapshot files and emptied."""

_RECORD_HEADER = struct.Struct(">II")
"""Before each record's payload: its length and its CRC-32."""


_RECORD_ENCODER = json.JSONEncoder(separators=(",", ":"))
"""The records' JSON encoder, made once: ``json.dumps`` with any option builds a new one per
call. Its output is ``json.dumps(fields, separators=(",", ":"))``, byte for byte."""


def journal_record(fields: dict[str, Any]) -> bytes:
    """One record as appended to a journal: the header, then the payload (JSON)."""
    payload = _RECORD_ENCODER.encode(fields).encode()
    return _RECORD_HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def journal_records(data: bytes) -> tuple[list[dict[str, Any]], int]:
    """The records of a journal's bytes up to the first that is not whole, and their length.

    A crash of the machine can cut the last appends (a torn tail: a header without all of its
    payload, or bytes that never reached the disk); they were never flushed, so nothing waited
    for them, and the records before them are what the journal holds.
    """
    records = []
    offset = 0
    while offset + _RECORD_HEADER.size <= len(data):
        length, checksum = _RECORD_HEADER.unpack_from(data, offset)
        start = offset + _RECORD_HEADER.size
        payload = data[start : start + length]
        if length == 0 or len(payload) < length or zlib.crc32(payload) != checksum:
            break
        try:
            record = json.loads(payload)
        except ValueError:
            break
        if not isinstance(record, dict):
            break
        records.append(record)
        offset = start + length
    return records, offset


@dataclass
class JournalState:
    """What a journal's records add up to."""

    outbox: dict[tuple[str, int], bytes] = field(default_factory=dict)
    """Sealed requests not acknowledged (nor refused, nor kept as outbox files), oldest first."""
    checkpoint: dict[str, Any] | None = None
    """The largest checkpoint, as ``checkpoint.json`` holds it (the latest of that size)."""
    cursor: int = 0
    """The largest feed cursor committed."""
    published: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    """The versions acknowledged, as their ``published/`` files hold them (those not written as
    files yet: see :meth:`Journal._fold_out`)."""

    def apply(self, record: dict[str, Any], *, source: Path) -> None:
        """Add one record; records of kinds this version does not know are passed over."""
        try:
            kind = record["kind"]
            if kind == "outbox":
                key = (str(record["alert_id"]), int(record["version"]))
                self.outbox[key] = base64.b64decode(record["request"], validate=True)
            elif kind == "outbox-done":
                self.outbox.pop((str(record["alert_id"]), int(record["version"])), None)
            elif kind == "checkpoint":
                checkpoint = dict(record["record"])
                if int(checkpoint["size"]) >= self.checkpoint_size:
                    self.checkpoint = checkpoint
            elif kind == "cursor":
                self.cursor = max(self.cursor, int(record["sequence"]))
            elif kind == "published":
                self.add_published(published_fields(record["record"]))
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigurationError(
                f"{source}: a record of the client's journal is whole but not understood "
                f"({record!r:.80}); move the file away to start without it"
            ) from e

    @property
    def checkpoint_size(self) -> int:
        """The largest checkpoint's size, -1 without one."""
        return -1 if self.checkpoint is None else int(self.checkpoint["size"])

    def add_published(self, fields: dict[str, Any]) -> None:
        """Keep a published version's record."""
        self.published[(fields["alert_id"], fields["version"])] = fields

    def latest_published(self, alert_id: str) -> dict[str, Any] | None:
        """The record of the highest version of ``alert_id`` kept, if one is."""
        versions = [version for (kept, version) in self.published if kept == alert_id]
        return self.published[(alert_id, max(versions))] if versions else None

    def merge(self, other: JournalState) -> None:
        """Take the larger checkpoint and cursor of ``other`` and its later published versions
        (not its outbox)."""
        if other.checkpoint is not None and other.checkpoint_size >= self.checkpoint_size:
            self.checkpoint = other.checkpoint
        self.cursor = max(self.cursor, other.cursor)
        self.published.update(other.published)


def published_fields(record: Any) -> dict[str, Any]:
    """A published version's record (a ``published/`` file's fields), its types checked
    (``ValueError`` or ``TypeError`` if one is wrong, ``KeyError`` if one is missing)."""
    fields: dict[str, Any] = {
        "alert_id": str(record["alert_id"]),
        "version": int(record["version"]),
        "manifest_hash": str(record["manifest_hash"]),
        "log_index": int(record["log_index"]),
        "accepted_at": str(record["accepted_at"]),
    }
    bytes.fromhex(fields["manifest_hash"])
    return fields


def published_path(state_dir: Path, alert_id: str, version: int) -> Path:
    """Where a published version's record is kept as a file."""
    return state_dir / "published" / f"{alert_id}.v{version}.json"


def write_published(state_dir: Path, records: Iterable[dict[str, Any]]) -> None:
    """Write published versions' records as their ``published/`` files (not flushed: a lost
    record is taken from the hub)."""
    directory: Path | None = None
    for fields in records:
        if directory is None:
            directory = _directory(state_dir / "published")
        path = published_path(state_dir, fields["alert_id"], fields["version"])
        # One line: ``indent`` would turn off the JSON encoder's C speedups.
        write_atomically(path, json.dumps(fields).encode() + b"\n", durable=False)


def snapshot_value(path: Path, key: str) -> int:
    """The whole number ``key`` of a snapshot file (``size``, ``sequence``); -1 without the
    file."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))[key]
    except FileNotFoundError:
        return -1
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigurationError(f"{path}: not a client state record ({key} unreadable)") from e
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigurationError(f"{path}: {key} must be a whole number")
    return value


SNAPSHOT_LOCK_SECONDS = 10.0
"""How long writing a snapshot file waits for another process of the same profile."""


def replace_if_larger(
    path: Path, key: str, value: int, data: bytes, *, flush_rename: bool, lock_name: str
) -> None:
    """Replace the snapshot ``path`` with ``data`` unless it holds a larger ``key`` already:
    two processes of one profile each keep the larger, so a snapshot never moves back."""
    try:
        with FileLock(
            path.with_name(lock_name), timeout=SNAPSHOT_LOCK_SECONDS, poll_interval=0.001
        ):
            try:
                if path.read_bytes() == data:
                    return
            except FileNotFoundError:
                pass
            if snapshot_value(path, key) <= value:
                write_atomically(path, data, durable_rename=False)
    except (OSError, Timeout) as e:
        raise ConfigurationError(f"{path}: cannot store the snapshot: {e}") from e
    if flush_rename:
        sync_directory(path.parent)


def checkpoint_snapshot(record: dict[str, Any]) -> bytes:
    """``checkpoint.json``'s bytes for a checkpoint record."""
    return json.dumps(record, indent=2).encode() + b"\n"


def cursor_snapshot(sequence: int) -> bytes:
    """``cursor.json``'s bytes for a cursor."""
    return json.dumps({"sequence": sequence}).encode() + b"\n"


def outbox_name(alert_id: str, version: int) -> str:
    """An outbox entry's file name (in ``outbox/``)."""
    return f"{alert_id}.v{version}.pb"


def outbox_path(state_dir: Path, alert_id: str, version: int) -> Path:
    """Where an outbox entry is kept as a file."""
    return state_dir / "outbox" / outbox_name(alert_id, version)


class Journal:
    """One process's append-only journal of a profile's state directory (``journal/<id>.wal``).

    Records — a sealed request before its first send, its acknowledgement, a checkpoint, the
    feed cursor — are appended by every thread of the process (and every task of an
    ``AsyncClient``) with one ``write``; one that must survive a crash of the machine waits in
    :meth:`sync` for an ``fdatasync`` *begun after* it was written — its own, or one another
    thread began meanwhile, which then covers all the records before it (group commit).

    The journal is locked (``flock``) by its process for as long as it lives. Opened, it takes
    over a journal left by a process that died (replaying it, its torn tail cut) or creates one;
    any other left journal is folded in (:meth:`recover`): its outbox entries become outbox
    files, its checkpoint and cursor records are appended here, and it is removed. At a clean
    close and when it grows past :data:`JOURNAL_COMPACT_BYTES`, the journal is folded into the
    snapshot files (``outbox/``, ``checkpoint.json``, ``cursor.json``), which are what readers
    from before the journal, and other processes, read.
    """

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.directory = self.state_dir / "journal"
        self.path: Path | None = None
        self.state = JournalState()
        self._guard = threading.Condition()
        self._descriptor: int | None = None
        self._appended = 0  # bytes appended since opened (never moves back: positions)
        self._durable = 0  # of them, flushed
        self._syncing = False
        self._length = 0  # the file's length

    # --- appending --------------------------------------------------------------------------

    def append(self, fields: dict[str, Any]) -> int:
        """Append one record (not flushed); its end's position, for :meth:`sync`."""
        with self._guard:
            return self._append(fields)

    def _append(self, fields: dict[str, Any]) -> int:
        data = journal_record(fields)
        descriptor = self._open()
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(descriptor, view) :]
        except OSError as e:
            raise ConfigurationError(f"{self.path}: cannot write the client journal: {e}") from e
        self._length += len(data)
        self._appended += len(data)
        return self._appended

    def sync(self, position: int | None = None) -> None:
        """Return once the records up to ``position`` (default: all so far) are on disk."""
        with self._guard:
            target = self._appended if position is None else position
            while self._durable < target:
                if self._syncing:
                    self._guard.wait()
                    continue
                self._syncing = True
                covered, descriptor = self._appended, self._descriptor
                self._guard.release()
                try:
                    if descriptor is not None:
                        _flush(descriptor)
                except OSError as e:
                    raise ConfigurationError(
                        f"{self.path}: cannot flush the client journal: {e}"
                    ) from e
                finally:
                    self._guard.acquire()
                    self._syncing = False
                    self._guard.notify_all()
                self._durable = max(self._durable, covered)
            if self._length > JOURNAL_COMPACT_BYTES:
                self._fold_out(empty=True)

    # --- the outbox ---------------------------------------------------------------------------

    def put_outbox(self, alert_id: str, version: int, request: bytes) -> int:
        """Journal a sealed request; the position to :meth:`sync` before its first send."""
        with self._guard:
            position = self._append(
                {
                    "kind": "outbox",
                    "alert_id": alert_id,
                    "version": version,
                    "request": base64.b64encode(request).decode(),
                }
            )
            self.state.outbox[(alert_id, version)] = request
            return position

    def forget_outbox(self, alert_id: str, version: int) -> bool:
        """Journal that a request was acknowledged (or refused); ``False`` if the journal did
        not hold it (it is an outbox file). Not flushed: if the record is lost in a crash, the
        request is resent, and the hub answers it with the first receipt."""
        with self._guard:
            if self.state.outbox.pop((alert_id, version), None) is None:
                return False
            self._append({"kind": "outbox-done", "alert_id": alert_id, "version": version})
            return True

    def file_outbox(self, alert_id: str, version: int) -> None:
        """Keep a journalled request as an outbox file (its send failed: the file is what
        ``exchange resend`` and the error name); a no-op if the journal does not hold it."""
        with self._guard:
            self._file(alert_id, version)

    def _file(self, alert_id: str, version: int) -> None:
        request = self.state.outbox.get((alert_id, version))
        if request is None:
            return
        path = outbox_path(self.state_dir, alert_id, version)
        _directory(path.parent)
        write_atomically(path, request)
        self.state.outbox.pop((alert_id, version), None)
        self._append({"kind": "outbox-done", "alert_id": alert_id, "version": version})

    def pending_outbox(self) -> list[tuple[str, int, bytes]]:
        """The journalled requests not acknowledged yet, oldest first."""
        with self._guard:
            return [(a, v, request) for (a, v), request in self.state.outbox.items()]

    # --- checkpoint and cursor ------------------------------------------------------------------

    def put_checkpoint(self, record: dict[str, Any]) -> int:
        """Journal a checkpoint unless a larger one is journalled already (or this very one);
        the position to :meth:`sync` for it, or for the larger one, to be durable."""
        with self._guard:
            self._open()  # a journal taken over first: its checkpoint counts
            size = int(record["size"])
            if size > self.state.checkpoint_size or (
                size == self.state.checkpoint_size and record != self.state.checkpoint
            ):
                self.state.checkpoint = record
                self._append({"kind": "checkpoint", "record": record})
            return self._appended

    def put_published(self, fields: dict[str, Any]) -> None:
        """Journal a version the hub acknowledged (not flushed: a lost record is taken from
        the hub; the next flush, the next publish's outbox entry, covers it)."""
        with self._guard:
            self._append({"kind": "published", "record": fields})
            self.state.add_published(fields)

    def published(self, alert_id: str) -> dict[str, Any] | None:
        """The highest version of ``alert_id`` any journal of the profile holds, if one does
        (read before the ``published/`` files, as :meth:`combined` is)."""
        with self._guard:
            best = self.state.latest_published(alert_id)
        for other in self._other_states():
            found = other.latest_published(alert_id)
            if found is not None and (best is None or found["version"] > best["version"]):
                best = found
        return best

    def put_cursor(self, sequence: int) -> int:
        """Journal the feed cursor (not flushed: see ``docs/NOTES.md``)."""
        with self._guard:
            position = self._append({"kind": "cursor", "sequence": sequence})
            self.state.cursor = max(self.state.cursor, sequence)
            return position

    def combined(self) -> JournalState:
        """This journal's checkpoint and cursor merged with those of every other journal of
        the profile (of live processes and of dead ones alike, read as far as they are whole;
        nothing is written, so a profile only read stays as it is). Read before the snapshot
        files: a process that folds its journal into them writes them before it empties the
        journal, so nothing is missed in between."""
        with self._guard:
            merged = JournalState(checkpoint=self.state.checkpoint, cursor=self.state.cursor)
        for other in self._other_states():
            merged.merge(other)
        return merged

    def _other_states(self) -> Iterator[JournalState]:
        """What every other journal of the profile holds, read as far as it is whole (one
        gone meanwhile is passed over; nothing is written)."""
        for path in self._others():
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            except OSError as e:
                raise ConfigurationError(f"{path}: cannot read the client journal: {e}") from e
            other = JournalState()
            for record in journal_records(data)[0]:
                other.apply(record, source=path)
            yield other

    # --- opening, folding in, folding out ------------------------------------------------------

    def _others(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.glob("*.wal") if p != self.path)

    def _open(self) -> int:
        """The journal's descriptor, opened at first use (the guard held)."""
        if self._descriptor is not None:
            return self._descriptor
        try:
            created = not self.directory.is_dir()
            _directory(self.directory)
            if created:
                sync_directory(self.state_dir)
            left = self._take_left()
            if left:
                (path, descriptor, data), *others = left
                self._adopt(path, descriptor, data)
            else:
                self._create()
                others = []
        except OSError as e:
            raise ConfigurationError(
                f"{self.directory}: cannot open the client journal: {e}"
            ) from e
        assert self._descriptor is not None
        # Entries left by the process that died are no longer in flight: kept as outbox files.
        for alert_id, version in list(self.state.outbox):
            self._file(alert_id, version)
        self._fold_in(others)
        return self._descriptor

    def _take_left(self) -> list[tuple[Path, int, bytes]]:
        """The other journals no live process holds, each locked, with its bytes."""
        taken = []
        for path in self._others():
            try:
                descriptor = os.open(path, os.O_RDWR | os.O_APPEND)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(descriptor)  # its process is alive
                continue
            if os.fstat(descriptor).st_nlink == 0:
                os.close(descriptor)  # folded in and removed by another process meanwhile
                continue
            taken.append((path, descriptor, _read_whole(descriptor)))
        return taken

    def _adopt(self, path: Path, descriptor: int, data: bytes) -> None:
        records, length = journal_records(data)
        if length < len(data):
            os.ftruncate(descriptor, length)  # the torn tail, so that appends follow whole records
            _flush(descriptor)
        self.path, self._descriptor, self._length = path, descriptor, length
        for record in records:
            self.state.apply(record, source=path)

    def _create(self) -> None:
        name = f"{os.getpid()}-{os.urandom(8).hex()}.wal"
        temporary = self.directory / f".{name}.tmp"
        descriptor = os.open(
            temporary, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND, PRIVATE_FILE_MODE
        )
        # Locked before it has its name, so that no other process takes it for a left one.
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        path = self.directory / name
        os.rename(temporary, path)
        sync_directory(self.directory)
        self.path, self._descriptor, self._length = path, descriptor, 0

    def _fold_in(self, left: list[tuple[Path, int, bytes]]) -> None:
        """Take over what journals left by dead processes hold, then remove them."""
        if not left:
            return
        for path, _, data in left:
            state = JournalState()
            for record in journal_records(data)[0]:
                state.apply(record, source=path)
            for (alert_id, version), request in state.outbox.items():
                entry = outbox_path(self.state_dir, alert_id, version)
                _directory(entry.parent)
                write_atomically(entry, request)
            write_published(self.state_dir, state.published.values())
            newer = state.checkpoint_size >= self.state.checkpoint_size
            if state.checkpoint is not None and newer and state.checkpoint != self.state.checkpoint:
                self.state.checkpoint = state.checkpoint
                self._append({"kind": "checkpoint", "record": state.checkpoint})
            if state.cursor > self.state.cursor:
                self.state.cursor = state.cursor
                self._append({"kind": "cursor", "sequence": state.cursor})
        assert self._descriptor is not None
        try:
            _flush(self._descriptor)
            self._durable = self._appended
            for path, descriptor, _ in left:
                path.unlink(missing_ok=True)  # then unlocked: folded in once
                os.close(descriptor)
        except OSError as e:
            raise ConfigurationError(f"{self.directory}: cannot fold in a left journal: {e}") from e

    def recover(self) -> None:
        """Fold in the journals of processes of this profile that died since."""
        with self._guard:
            if self._descriptor is None:
                self._open()
                return
            try:
                left = self._take_left()
            except OSError as e:
                raise ConfigurationError(f"{self.directory}: cannot read journals: {e}") from e
            self._fold_in(left)

    def close(self) -> None:
        """Fold the journal into the snapshot files (a clean close; emptied only when long),
        flush it and let it go: its file, unlocked, is taken over by the next process of the
        profile that writes (or by this one, if one of its clients writes again)."""
        with self._guard:
            while self._syncing:
                self._guard.wait()
            if self._descriptor is None:
                return
            self._fold_out(empty=self._length > JOURNAL_COMPACT_BYTES)
            try:
                _flush(self._descriptor)  # what other threads wait for, before the file goes
                os.close(self._descriptor)
            except OSError as e:
                raise ConfigurationError(f"{self.path}: cannot close the client journal: {e}") from e
            finally:
                self._descriptor, self.path, self._length = None, None, 0
            self._durable = self._appended
            self._guard.notify_all()

    def _fold_out(self, *, empty: bool) -> None:
        """Write what the journal holds into the snapshot files (the guard held, no sync
        running); with ``empty``, flushed, and the journal emptied."""
        while self._syncing:
            self._guard.wait()
        for alert_id, version in list(self.state.outbox):
            self._file(alert_id, version)  # in flight: each thread removes its file when received
        write_published(self.state_dir, self.state.published.values())
        self.state.published.clear()  # the files hold them now
        checkpoint = self.state.checkpoint
        if checkpoint is not None:
            replace_if_larger(
                self.state_dir / "checkpoint.json",
                "size",
                int(checkpoint["size"]),
                checkpoint_snapshot(checkpoint),
                flush_rename=empty,
                lock_name="checkpoint.lock",
            )
        if self.state.cursor > 0:
            replace_if_larger(
                self.state_dir / "cursor.json",
                "sequence",
                self.state.cursor,
                cursor_snapshot(self.state.cursor),
                flush_rename=empty,
                lock_name="snapshots.lock",
            )
        if empty and self._descriptor is not None:
            try:
                os.ftruncate(self._descriptor, 0)
                _flush(self._descriptor)
            except OSError as e:
                raise ConfigurationError(
                    f"{self.path}: cannot empty the client journal: {e}"
                ) from e
            self._length = 0
            self._durable = self._appended


_JOURNALS: dict[tuple[int, str], Journal] = {}
_JOURNALS_GUARD = threading.Lock()


_JOURNALS_BY_PATH: dict[tuple[int, Path], Journal] = {}
"""The same journals by the absolute ``Path`` they were asked for (each publish asks twice):
no ``abspath`` each time."""


def journal_of(state_dir: Path) -> Journal:
    """This process's journal of ``state_dir`` (one per process, shared by its clients; a forked
    child gets its own)."""
    pid = os.getpid()
    if isinstance(state_dir, Path) and state_dir.is_absolute():
        known = _JOURNALS_BY_PATH.get((pid, state_dir))
        if known is not None:
            return known
    key = (pid, os.path.abspath(state_dir))
    with _JOURNALS_GUARD:
        journal = _JOURNALS.get(key)
        if journal is None:
            journal = _JOURNALS[key] = Journal(Path(key[1]))
        if isinstance(state_dir, Path) and state_dir.is_absolute():
            _JOURNALS_BY_PATH[(pid, state_dir)] = journal
        return journal


@dataclass(frozen=True)
class OutboxEntry:
    """A sealed publish request waiting for the hub's acknowledgement."""

    path: Path
    """Where it is kept as a file (once kept: while it is in flight, the journal holds it)."""
    alert_id: str
    version: int
    request: bytes | None = field(default=None, repr=False, compare=False)
    """The bytes, when the journal holds them."""

    def read(self) -> bytes:
        """The exact request bytes to send."""
        if self.request is not None:
            return self.request
        try:
            return self.path.read_bytes()
        except OSError as e:
            raise ConfigurationError(f"{self.path}: cannot read the outbox entry: {e}") from e


@dataclass(frozen=True)
class PublishedVersion:
    """What this agency knows about one version it published."""

    alert_id: str
    version: int
    manifest_hash: bytes
    log_index: int
    accepted_at: str


class ClientState:
    """The files of one profile's ``state/`` directory."""

    def __init__(self, state_dir: Path) -> None:
        self.directory = Path(state_dir)
        self.cursor_path = self.directory / "cursor.json"
        self.cursor_lock_path = self.directory / "cursor.lock"
        # Threads of this process take the feed cursor one after the other (the file lock
        # keeps other processes out, and refuses a second reader at once).
        self.cursor_guard = threading.RLock()
        self._made: set[str] = set()
        self._outbox_directory = self.directory / "outbox"
        self._journal: tuple[int, Journal] | None = None  # this process's, with its id

    def _subdirectory(self, name: str) -> Path:
        """``name`` under the state directory, created the first time this object needs it."""
        path = self.directory / name
        if name not in self._made:
            _directory(path)
            self._made.add(name)
        return path

    # --- outbox ---------------------------------------------------------------------------------

    @property
    def journal(self) -> Journal:
        """This process's journal of the directory (looked up once per process: a forked
        child looks up its own)."""
        pid = os.getpid()
        known = self._journal
        if known is None or known[0] != pid:
            known = self._journal = (pid, journal_of(self.directory))
        return known[1]

    def save_outbox_steps(self, alert_id: str, version: int, request: bytes) -> Steps[OutboxEntry]:
        """Keep the sealed request before it is sent for the first time: journalled, and on
        disk when this returns (the flush shared with the other threads and tasks saving)."""
        if "outbox" not in self._made:
            self._subdirectory("outbox")
        journal = self.journal
        position = journal.put_outbox(alert_id, version, request)
        yield Flush(functools.partial(journal.sync, position))
        return OutboxEntry(
            path=self._outbox_directory / outbox_name(alert_id, version),
            alert_id=alert_id,
            version=version,
            request=request,
        )

    def save_outbox(self, alert_id: str, version: int, request: bytes) -> OutboxEntry:
        """:meth:`save_outbox_steps`, run at once."""
        return run(self.save_outbox_steps(alert_id, version, request), None)

    def keep_outbox(self, entry: OutboxEntry) -> None:
        """Keep an entry whose send failed as its outbox file (``entry.path``), the form
        ``exchange resend`` and the error that names the file know."""
        self.journal.file_outbox(entry.alert_id, entry.version)

    def outbox(self) -> list[OutboxEntry]:
        """Requests still waiting for an acknowledgement, oldest version of each alert first:
        the outbox files (those left in journals of processes that died included), then the
        requests this process has in flight."""
        journal = self.journal
        journal.recover()
        directory = self.directory / "outbox"
        entries = []
        if directory.is_dir():
            for path in directory.iterdir():
                match = _OUTBOX_NAME.match(path.name)
                if match:
                    entries.append(
                        OutboxEntry(path, match.group("alert_id"), int(match.group("version")))
                    )
        entries.sort(key=lambda e: (e.path.stat().st_mtime, e.alert_id, e.version))
        return entries + [
            OutboxEntry(outbox_path(self.directory, alert_id, version), alert_id, version, request)
            for alert_id, version, request in journal.pending_outbox()
        ]

    def remove_outbox(self, entry: OutboxEntry) -> None:
        """Forget a request the hub has acknowledged (or refused)."""
        if self.journal.forget_outbox(entry.alert_id, entry.version):
            return
        try:
            entry.path.unlink(missing_ok=True)
        except OSError as e:
            raise ConfigurationError(f"{entry.path}: cannot remove the outbox entry: {e}") from e

    def close(self) -> None:
        """Fold this process's journal into the snapshot files (a clean close)."""
        self.journal.close()

    # --- published versions -------------------------------------------------------------------

    def record_published(
        self,
        *,
        alert_id: str,
        version: int,
        manifest_hash: bytes,
        log_index: int,
        accepted_at: datetime | None,
    ) -> None:
        """Remember the manifest hash of a version the hub acknowledged.

        Journalled, not flushed to disk: ``Client.publish`` takes the version from the hub when
        a record was lost in a crash.
        """
        self.journal.put_published(
            {
                "alert_id": alert_id,
                "version": version,
                "manifest_hash": manifest_hash.hex(),
                "log_index": log_index,
                "accepted_at": accepted_at.isoformat() if accepted_at else "",
            }
        )

    def latest_published(self, alert_id: str) -> PublishedVersion | None:
        """The highest version of ``alert_id`` this profile has published, if it remembers any
        (``None`` also when that record cannot be read): the journals' records (this process's
        and those of others, live or dead) and the ``published/`` files."""
        journalled = self.journal.published(alert_id)
        directory = self.directory / "published"
        versions = []
        if directory.is_dir():
            versions = [
                int(path.name.removeprefix(f"{alert_id}.v").removesuffix(".json"))
                for path in directory.glob(f"{alert_id}.v*.json")
                if path.name.removeprefix(f"{alert_id}.v").removesuffix(".json").isdigit()
            ]
        if journalled is not None and journalled["version"] >= max(versions, default=0):
            record: Any = journalled
        elif not versions:
            return None
        else:
            try:
                path = published_path(self.directory, alert_id, max(versions))
                record = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                # Records are not flushed to disk, so a crash can leave one empty: as good as
                # none, and the caller asks the hub.
                return None
        try:
            fields = published_fields(record)
        except (ValueError, KeyError, TypeError):
            return None
        return PublishedVersion(
            alert_id=fields["alert_id"],
            version=fields["version"],
            manifest_hash=bytes.fromhex(fields["manifest_hash"]),
            log_index=fields["log_index"],
            accepted_at=fields["accepted_at"],
        )

    # --- feed cursor -----------------------------------------------------------------------------

    def read_cursor(self) -> int:
        """The sequence of the last feed event processed; 0 when none has been."""
        journalled = self.journal.combined().cursor
        try:
            text = self.cursor_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return journalled
        except OSError as e:
            raise ConfigurationError(f"{self.cursor_path}: cannot read the feed cursor: {e}") from e
        try:
            sequence = json.loads(text)["sequence"]
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigurationError(
                f"{self.cursor_path}: not a feed cursor; delete it and resume with --after N"
            ) from e
        if not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 0:
            raise ConfigurationError(
                f"{self.cursor_path}: the sequence must be a whole number ≥ 0; delete the file "
                "and resume with --after N"
            )
        return max(sequence, journalled)

    def lock_cursor(self) -> CursorLock:
        """Take the feed cursor for this process; see :class:`CursorLock`."""
        _directory(self.directory)
        return CursorLock(self)


class CursorLock:
    """Exclusive use of a profile's feed cursor by one reader.

    Taken without waiting: a second reader on the same profile fails at once with a clear error
    instead of hanging, and could not corrupt the cursor anyway.  The lock is an OS file lock, so
    it is released when its holder exits, however it exits.
    """

    def __init__(self, state: ClientState) -> None:
        self._state = state
        self._created_in = os.getpid()
        self._lock = FileLock(state.cursor_lock_path, timeout=0)
        try:
            self._lock.acquire()
        except Timeout as e:
            raise ExchangeError(
                f"another process or subscription is reading this profile's feed "
                f"({state.cursor_lock_path} is locked): stop it first, or read the feed with "
                "another profile",
                reason="PROFILE_BUSY",
            ) from e
        except OSError as e:
            raise ConfigurationError(f"{state.cursor_lock_path}: cannot lock: {e}") from e
        try:
            self._committed = self._saved = state.read_cursor()
        except BaseException:
            self._lock.release()
            raise

    @property
    def held(self) -> bool:
        """True until :meth:`release`."""
        return self._lock.is_locked

    def commit(self, sequence: int) -> None:
        """Record that every event up to ``sequence`` is processed; the cursor never moves back.

        Journalled, not flushed: after a crash of the machine the cursor may be an earlier one
        (at most back to the last :meth:`flush`, a heartbeat's), and the events after it are
        delivered again — at least once, as after any crash — never skipped (``docs/NOTES.md``).
        """
        # A forked child shares the parent's lock on the file: it must not write under it.
        check_same_process(self._created_in, "this feed cursor lock")
        with self._state.cursor_guard:
            if not self._lock.is_locked:
                raise ExchangeError("the feed cursor lock was released", reason="PROFILE_BUSY")
            if sequence > self._committed:
                self._state.journal.put_cursor(sequence)
                self._committed = sequence

    def flush(self) -> None:
        """Put the committed cursor on disk (with whatever else the journal holds)."""
        if os.getpid() == self._created_in:
            self._state.journal.sync()

    def release(self) -> None:
        """Give the cursor up (idempotent), saving the committed cursor to ``cursor.json`` (its
        bytes flushed); in a forked child, the parent's lock is left alone."""
        if self._lock.is_locked and os.getpid() == self._created_in:
            try:
                with self._state.cursor_guard:
                    if self._committed > self._saved:
                        replace_if_larger(
                            self._state.cursor_path,
                            "sequence",
                            self._committed,
                            cursor_snapshot(self._committed),
                            flush_rename=False,
                            lock_name="snapshots.lock",
                        )
                        self._saved = self._committed
            finally:
                self._lock.release()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


class KeyedLocks:
    """One lock per key (an alert version, say), for threads of one process that work on the
    same record, or tasks of an event loop: each takes it in turn, while those on other records
    go on."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[object, SharedLock] = {}

    def __call__(self, key: object) -> SharedLock:
        with self._guard:
            lock = self._locks.get(key)
            if lock is None:
                lock = self._locks[key] = SharedLock()
            return lock


def _statement_key(*parts: str | int) -> str:
    """A file name for (originator, alert id, version[, item id]): item ids may hold any text."""
    return hashlib.sha256(lp(*parts)).hexdigest()[:40]


class SentStatements:
    """Receipts and purge acknowledgements this agency has sent, so that each is sent once.

    ``receipts/<key>.json`` holds the header hashes a receipt named as opened (a later receipt
    is sent when more items open); ``purged/<key>`` marks a revoked item as acknowledged.

    Neither is flushed to disk: each is written after its statement was sent, so a crash in
    between sends it again whatever is flushed, and the hub takes a second receipt or
    acknowledgement as one more statement of the same fact. A crash of the machine may lose a
    record or leave it empty: it then counts as none, and the statement is sent again.
    """

    def __init__(self, state_dir: Path) -> None:
        self.directory = Path(state_dir)

    def receipt_opened(self, originator: str, alert_id: str, version: int) -> set[bytes] | None:
        """The header hashes the last receipt for this version named as opened, if one was sent."""
        path = self.directory / "receipts" / f"{_statement_key(originator, alert_id, version)}.json"
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            return {bytes.fromhex(h) for h in record["opened"]}
        except FileNotFoundError:
            return None
        except OSError as e:
            raise ConfigurationError(f"{path}: cannot read the receipt record: {e}") from e
        except (ValueError, KeyError, TypeError):
            return None  # cut by a crash of the machine: the receipt is sent again

    def record_receipt(
        self, originator: str, alert_id: str, version: int, opened: Iterable[bytes]
    ) -> None:
        path = (
            _directory(self.directory / "receipts")
            / f"{_statement_key(originator, alert_id, version)}.json"
        )
        data = json.dumps({"opened": sorted(h.hex() for h in opened)}).encode() + b"\n"
        write_atomically(path, data, durable=False)

    def purge_acknowledged(
        self, originator: str, alert_id: str, version: int, item_id: str
    ) -> bool:
        key = _statement_key(originator, alert_id, version, item_id)
        return (self.directory / "purged" / key).exists()

    def record_purge_ack(self, originator: str, alert_id: str, version: int, item_id: str) -> None:
        key = _statement_key(originator, alert_id, version, item_id)
        write_atomically(_directory(self.directory / "purged") / key, b"", durable=False)
