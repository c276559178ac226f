"""What the client keeps in the profile's ``state/`` directory between runs.

- ``outbox/<alert id>.v<version>.pb``: a sealed ``PublishRequest``, written before its first send
  and removed once the hub has acknowledged it, so that an interrupted publish is retried with
  the very same bytes (the hub answers a retry with the first receipt, DESIGN §4).
- ``published/<alert id>.v<version>.json``: the manifest hash the hub acknowledged for each
  version this agency published; a new version names its predecessor's hash.
- ``cursor.json``: the sequence of the last feed event processed, guarded by ``cursor.lock``.
- ``receipts/`` and ``purged/``: the receipts and purge acknowledgements already sent.

Every file is written whole to a temporary name and renamed into place, so a crash leaves the old
content or the new, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Self

from filelock import FileLock, Timeout

from exchange.crypto.encoding import lp
from exchange.errors import ConfigurationError, ExchangeError
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


@dataclass(frozen=True)
class OutboxEntry:
    """A sealed publish request waiting for the hub's acknowledgement."""

    path: Path
    alert_id: str
    version: int

    def read(self) -> bytes:
        """The exact request bytes to send."""
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

    # --- outbox ---------------------------------------------------------------------------------

    def save_outbox(self, alert_id: str, version: int, request: bytes) -> OutboxEntry:
        """Keep the sealed request before it is sent for the first time."""
        path = _directory(self.directory / "outbox") / f"{alert_id}.v{version}.pb"
        write_atomically(path, request)
        return OutboxEntry(path=path, alert_id=alert_id, version=version)

    def outbox(self) -> list[OutboxEntry]:
        """Requests still waiting for an acknowledgement, oldest version of each alert first."""
        directory = self.directory / "outbox"
        if not directory.is_dir():
            return []
        entries = []
        for path in directory.iterdir():
            match = _OUTBOX_NAME.match(path.name)
            if match:
                entries.append(
                    OutboxEntry(path, match.group("alert_id"), int(match.group("version")))
                )
        return sorted(entries, key=lambda e: (e.path.stat().st_mtime, e.alert_id, e.version))

    def remove_outbox(self, entry: OutboxEntry) -> None:
        """Forget a request the hub has acknowledged."""
        try:
            entry.path.unlink(missing_ok=True)
        except OSError as e:
            raise ConfigurationError(f"{entry.path}: cannot remove the outbox entry: {e}") from e

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

        Not flushed to disk: ``Client.publish`` takes the version from the hub when a record
        was lost in a crash.
        """
        record = {
            "alert_id": alert_id,
            "version": version,
            "manifest_hash": manifest_hash.hex(),
            "log_index": log_index,
            "accepted_at": accepted_at.isoformat() if accepted_at else "",
        }
        path = _directory(self.directory / "published") / f"{alert_id}.v{version}.json"
        write_atomically(path, json.dumps(record, indent=2).encode() + b"\n", durable=False)

    def latest_published(self, alert_id: str) -> PublishedVersion | None:
        """The highest version of ``alert_id`` this profile has published, if it remembers any
        (``None`` also when that record cannot be read)."""
        directory = self.directory / "published"
        if not directory.is_dir():
            return None
        versions = [
            int(path.name.removeprefix(f"{alert_id}.v").removesuffix(".json"))
            for path in directory.glob(f"{alert_id}.v*.json")
            if path.name.removeprefix(f"{alert_id}.v").removesuffix(".json").isdigit()
        ]
        if not versions:
            return None
        path = directory / f"{alert_id}.v{max(versions)}.json"
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            return PublishedVersion(
                alert_id=str(record["alert_id"]),
                version=int(record["version"]),
                manifest_hash=bytes.fromhex(record["manifest_hash"]),
                log_index=int(record["log_index"]),
                accepted_at=str(record["accepted_at"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            # Records are not flushed to disk, so a crash can leave one empty: as good as none,
            # and the caller asks the hub.
            return None

    # --- feed cursor -----------------------------------------------------------------------------

    def read_cursor(self) -> int:
        """The sequence of the last feed event processed; 0 when none has been."""
        try:
            text = self.cursor_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return 0
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
        return sequence

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

    @property
    def held(self) -> bool:
        """True until :meth:`release`."""
        return self._lock.is_locked

    def commit(self, sequence: int) -> None:
        """Record that every event up to ``sequence`` is processed; the cursor never moves back."""
        # A forked child shares the parent's lock on the file: it must not write under it.
        check_same_process(self._created_in, "this feed cursor lock")
        with self._state.cursor_guard:
            if not self._lock.is_locked:
                raise ExchangeError("the feed cursor lock was released", reason="PROFILE_BUSY")
            if sequence > self._state.read_cursor():
                data = json.dumps({"sequence": sequence}).encode() + b"\n"
                # The rename is not flushed: after a crash of the machine the cursor is this
                # one or an earlier one, whole, and events after it are delivered again (at
                # least once, as after any crash) — never skipped (docs/NOTES.md).
                write_atomically(self._state.cursor_path, data, durable_rename=False)

    def release(self) -> None:
        """Give the cursor up (idempotent); in a forked child, the parent's lock is left alone."""
        if self._lock.is_locked and os.getpid() == self._created_in:
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
    same record: each takes it in turn, while those on other records go on."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[object, threading.Lock] = {}

    def __call__(self, key: object) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())


def _statement_key(*parts: str | int) -> str:
    """A file name for (originator, alert id, version[, item id]): item ids may hold any text."""
    return hashlib.sha256(lp(*parts)).hexdigest()[:40]


class SentStatements:
    """Receipts and purge acknowledgements this agency has sent, so that each is sent once.

    ``receipts/<key>.json`` holds the header hashes a receipt named as opened (a later receipt
    is sent when more items open); ``purged/<key>`` marks a revoked item as acknowledged.
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
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ConfigurationError(f"{path}: unreadable receipt record; delete it") from e

    def record_receipt(
        self, originator: str, alert_id: str, version: int, opened: Iterable[bytes]
    ) -> None:
        path = (
            _directory(self.directory / "receipts")
            / f"{_statement_key(originator, alert_id, version)}.json"
        )
        data = json.dumps({"opened": sorted(h.hex() for h in opened)}).encode() + b"\n"
        write_atomically(path, data)

    def purge_acknowledged(self, originator: str, alert_id: str, version: int, item_id: str) -> bool:
        key = _statement_key(originator, alert_id, version, item_id)
        return (self.directory / "purged" / key).exists()

    def record_purge_ack(self, originator: str, alert_id: str, version: int, item_id: str) -> None:
        key = _statement_key(originator, alert_id, version, item_id)
        write_atomically(_directory(self.directory / "purged") / key, b"")
