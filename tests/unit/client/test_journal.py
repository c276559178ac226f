"""The client's state journal: records, torn tails, group commit, processes that die, and the
state files of a version without the journal (``state.Journal``, ``docs/NOTES.md``)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from exchange.errors import ConfigurationError
from exchange_client._internal import state as state_module
from exchange_client._internal.audit import CheckpointStore
from exchange_client._internal.calls import run_async
from exchange_client._internal.state import (
    ClientState,
    Journal,
    journal_record,
    journal_records,
)

ALERT = "0b0e3c1e-8f5d-4d5e-9a57-3f0d0f6f2a10"
OTHER = "5d1c7f3e-0000-4000-8000-000000000000"


def checkpoint(size: int, note: str | None = None) -> dict[str, Any]:
    return {
        "origin": "exchange.example/log",
        "size": size,
        "root_hash": f"{size:064x}",
        "note": note if note is not None else f"note {size}\n",
    }


# A process that journals and is killed (SIGKILL) before any clean close: what it leaves.
DIE_AFTER = """
import os, signal, sys
from pathlib import Path
from exchange_client._internal.state import ClientState, journal_of

state = ClientState(Path(sys.argv[1]))
journal = journal_of(state.directory)
for alert_id, version in ((sys.argv[2], 1), (sys.argv[3], 1)):
    state.save_outbox(alert_id, version, f"request {alert_id}".encode())
state.remove_outbox(state.outbox()[-1])  # the second was acknowledged
journal.sync(journal.put_checkpoint({
    "origin": "exchange.example/log", "size": int(sys.argv[4]),
    "root_hash": "%064x" % int(sys.argv[4]), "note": "note %s\\n" % sys.argv[4]}))
with state.lock_cursor() as lock:
    lock.commit(int(sys.argv[5]))
    lock.flush()
    print(journal.path, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def die_after_journalling(state_dir: Path, *, size: int = 8, cursor: int = 11) -> Path:
    """Run :data:`DIE_AFTER` in a child process; the journal it left."""
    done = subprocess.run(
        [sys.executable, "-c", DIE_AFTER, str(state_dir), ALERT, OTHER, str(size), str(cursor)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    path = Path(done.stdout.strip())
    assert path.parent == state_dir / "journal" and path.exists()
    return path


# --- records ---------------------------------------------------------------------------------


def test_records_read_back_whole_and_a_torn_tail_is_left_out() -> None:
    first, second = {"kind": "cursor", "sequence": 1}, {"kind": "cursor", "sequence": 2}
    data = journal_record(first) + journal_record(second)
    assert journal_records(data) == ([first, second], len(data))
    whole = len(journal_record(first))
    for cut in range(whole, len(data)):  # every way the second append can be torn
        assert journal_records(data[:cut]) == ([first], whole)


@pytest.mark.parametrize("damage", ["a flipped payload byte", "a length past the end", "zeros"])
def test_a_damaged_last_record_is_left_out_with_what_follows(damage: str) -> None:
    first = {"kind": "cursor", "sequence": 1}
    later = journal_record({"kind": "cursor", "sequence": 2})
    if damage == "a flipped payload byte":
        later = later[:-3] + bytes([later[-3] ^ 0x01]) + later[-2:]
    elif damage == "a length past the end":
        later = (10**6).to_bytes(4, "big") + later[4:]
    else:
        later = bytes(len(later))  # a block written as zeros
    data = journal_record(first) + later + journal_record({"kind": "cursor", "sequence": 3})
    assert journal_records(data)[0] == [first]


def test_a_whole_record_that_is_not_understood_is_a_configuration_error(tmp_path: Path) -> None:
    left = tmp_path / "journal" / "1-dead.wal"
    left.parent.mkdir()
    left.write_bytes(journal_record({"kind": "cursor", "sequence": "many"}))
    with pytest.raises(ConfigurationError) as raised:
        Journal(tmp_path).recover()
    assert str(left) in raised.value.message and "move the file away" in raised.value.message


# --- one process --------------------------------------------------------------------------------


def test_the_largest_checkpoint_is_kept_and_a_smaller_one_never_journalled(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.sync(journal.put_checkpoint(checkpoint(8)))
    length = journal.path.stat().st_size if journal.path else 0
    journal.put_checkpoint(checkpoint(5))  # a thread that is behind
    assert journal.path is not None and journal.path.stat().st_size == length
    journal.put_checkpoint(checkpoint(8, "note 8 with a cosignature\n"))  # same size, newer
    assert journal.state.checkpoint == checkpoint(8, "note 8 with a cosignature\n")
    journal.close()
    saved = json.loads((tmp_path / "checkpoint.json").read_text())
    assert (saved["size"], saved["note"]) == (8, "note 8 with a cosignature\n")


def test_threads_share_flushes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Eight threads save an outbox entry each, all appended while the first flush is under
    way: each is on disk when it returns, after at most two flushes in all, not eight."""
    state = ClientState(tmp_path)
    journal = state.journal
    journal.sync(journal.put_checkpoint(checkpoint(1)))  # opened (and its directory flushed)
    flushes: list[int] = []
    appended = threading.Semaphore(0)
    real = os.fdatasync

    def first_waits_until_all_appended(descriptor: int) -> None:
        flushes.append(descriptor)
        if len(flushes) == 1:
            for _ in range(8):
                assert appended.acquire(timeout=30)
        real(descriptor)

    monkeypatch.setattr(os, "fdatasync", first_waits_until_all_appended)
    durable_on_return: list[bool] = []

    def save(version: int) -> None:
        steps = state.save_outbox_steps(ALERT, version, b"request %d" % version)
        flush = next(steps)  # journalled; the flush is the step left
        appended.release()
        assert isinstance(flush, state_module.Flush)
        flush.flush()
        position = flush.flush.args[0]  # type: ignore[attr-defined]
        durable_on_return.append(journal._durable >= position)
        with pytest.raises(StopIteration):
            steps.send(None)

    threads = [threading.Thread(target=save, args=(v,)) for v in range(1, 9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert durable_on_return == [True] * 8
    assert 1 <= len(flushes) <= 2
    assert sorted(v for _, v, _ in journal.pending_outbox()) == list(range(1, 9))


def test_the_tasks_of_an_event_loop_share_flushes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``AsyncClient``'s steps run a flush in a worker thread: while the first is under way the
    loop goes on, the other tasks journal their entries, and one more flush covers them all."""
    state = ClientState(tmp_path)
    journal = state.journal
    journal.sync(journal.put_checkpoint(checkpoint(1)))
    flushes: list[int] = []
    all_appended = threading.Event()
    real = os.fdatasync

    def first_waits_until_all_appended(descriptor: int) -> None:
        flushes.append(descriptor)
        if len(flushes) == 1:
            # Blocks the event loop if the flush is run in it: then no other task appends.
            assert all_appended.wait(timeout=10), "the loop was blocked during the flush"
        real(descriptor)

    monkeypatch.setattr(os, "fdatasync", first_waits_until_all_appended)

    async def save(version: int) -> None:
        await run_async(state.save_outbox_steps(ALERT, version, b"r"), None)  # type: ignore[arg-type]

    async def main() -> None:
        tasks = [asyncio.create_task(save(v)) for v in range(1, 9)]
        while len(journal.pending_outbox()) < 8:
            await asyncio.sleep(0)
        all_appended.set()
        await asyncio.gather(*tasks)

    asyncio.run(main())
    assert 1 <= len(flushes) <= 2
    assert journal._durable == journal._appended


def test_a_long_journal_is_folded_into_the_state_files_and_emptied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state_module, "JOURNAL_COMPACT_BYTES", 2000)
    state = ClientState(tmp_path)
    journal = state.journal
    in_flight = state.save_outbox(ALERT, 1, b"x" * 500)
    journal.sync(journal.put_checkpoint(checkpoint(9)))
    with state.lock_cursor() as lock:
        lock.commit(4)
        for version in range(2, 6):  # acknowledged at once
            state.remove_outbox(state.save_outbox(OTHER, version, b"y" * 500))
        assert journal.path is not None and journal.path.stat().st_size < 2000
    # What the journal held is in the snapshot files now, the in-flight entry as a file ...
    assert json.loads((tmp_path / "checkpoint.json").read_text())["size"] == 9
    assert json.loads((tmp_path / "cursor.json").read_text()) == {"sequence": 4}
    assert in_flight.path.read_bytes() == b"x" * 500
    assert [e.path for e in state.outbox()] == [in_flight.path]
    # ... which goes when its receipt comes.
    state.remove_outbox(in_flight)
    assert state.outbox() == [] and not in_flight.path.exists()


def test_a_closed_journal_is_let_go_and_taken_up_again(tmp_path: Path) -> None:
    state = ClientState(tmp_path)
    journal = state.journal
    journal.sync(journal.put_checkpoint(checkpoint(3)))
    path = journal.path
    assert path is not None
    state.close()  # flushed, unlocked: the process keeps no descriptor
    assert journal.path is None
    other = Journal(tmp_path)  # another process may take it over now
    other.recover()
    assert other.path == path and other.state.checkpoint_size == 3
    other.close()
    journal.sync(journal.put_checkpoint(checkpoint(4)))  # and this one, writing again
    assert journal.path == path
    assert journal_records(path.read_bytes())[0][-1] == {
        "kind": "checkpoint",
        "record": checkpoint(4),
    }


# --- a process that died ------------------------------------------------------------------------


def test_what_a_killed_process_journalled_is_taken_over_by_the_next(tmp_path: Path) -> None:
    (tmp_path / "checkpoint.json").write_text(json.dumps(checkpoint(5)))  # an older snapshot
    left = die_after_journalling(tmp_path, size=8, cursor=11)
    state = ClientState(tmp_path)
    # The entry not acknowledged is an outbox file again, with its bytes; the other is gone.
    [entry] = state.outbox()
    assert (entry.alert_id, entry.version, entry.read()) == (ALERT, 1, f"request {ALERT}".encode())
    assert entry.path == tmp_path / "outbox" / f"{ALERT}.v1.pb" and entry.path.exists()
    # The checkpoint does not go back to the snapshot's, nor the cursor.
    note = CheckpointStore(tmp_path).load()
    assert note == "note 8\n"
    assert state.read_cursor() == 11
    assert state.journal.path == left  # taken over, not copied
    state.close()
    assert json.loads((tmp_path / "checkpoint.json").read_text())["size"] == 8
    assert json.loads((tmp_path / "cursor.json").read_text()) == {"sequence": 11}


def test_reading_the_checkpoint_and_the_cursor_counts_a_left_journal_and_writes_nothing(
    tmp_path: Path,
) -> None:
    die_after_journalling(tmp_path, size=8, cursor=11)
    before = {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()}
    assert CheckpointStore(tmp_path).load() == "note 8\n"
    assert ClientState(tmp_path).read_cursor() == 11
    after = {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()}
    assert after == before


def test_a_torn_tail_of_a_left_journal_is_cut_and_what_follows_is_read(tmp_path: Path) -> None:
    left = die_after_journalling(tmp_path, size=8, cursor=11)
    whole = left.read_bytes()
    torn = journal_record({"kind": "cursor", "sequence": 99})
    left.write_bytes(whole + torn[: len(torn) // 2])  # the machine crashed in that append
    journal = Journal(tmp_path)
    journal.recover()
    # Taken over with the torn bytes cut: what it appends (the left outbox entry, now a file,
    # marked done) follows the whole records.
    assert journal.path == left
    records, length = journal_records(left.read_bytes())
    assert left.read_bytes().startswith(whole) and length == left.stat().st_size
    assert records[-1] == {"kind": "outbox-done", "alert_id": ALERT, "version": 1}
    assert journal.state.cursor == 11
    journal.sync(journal.put_cursor(12))
    # A reader after this one sees the record appended after the cut.
    records, length = journal_records(left.read_bytes())
    assert length == left.stat().st_size and records[-1] == {"kind": "cursor", "sequence": 12}


def test_a_second_left_journal_is_folded_in_and_removed(tmp_path: Path) -> None:
    first = die_after_journalling(tmp_path, size=8, cursor=11)
    second = first.with_name("2-also-dead.wal")  # left by another process that died
    second.write_bytes(
        journal_record({"kind": "checkpoint", "record": checkpoint(13)})
        + journal_record({"kind": "cursor", "sequence": 7})
        + journal_record({"kind": "outbox", "alert_id": OTHER, "version": 2, "request": "b3RoZXI="})
    )
    journal = Journal(tmp_path)
    journal.recover()
    assert journal.path in (first, second)
    assert [p for p in (first, second) if p.exists()] == [journal.path]
    assert journal.state.checkpoint_size == 13 and journal.state.cursor == 11
    kept = {(e.alert_id, e.version): e.path.read_bytes() for e in ClientState(tmp_path).outbox()}
    assert kept == {(ALERT, 1): f"request {ALERT}".encode(), (OTHER, 2): b"other"}


def test_a_live_process_journal_is_read_not_taken(tmp_path: Path) -> None:
    other = Journal(tmp_path)  # another process, as far as locks go: its own descriptor
    other.sync(other.put_checkpoint(checkpoint(21)))
    mine = Journal(tmp_path)
    mine.recover()
    assert mine.path != other.path and other.path is not None and other.path.exists()
    assert mine.combined().checkpoint_size == 21


# --- state files written before the journal -------------------------------------------------


def test_state_files_of_a_version_without_the_journal_are_read_as_they_were(
    tmp_path: Path,
) -> None:
    """A profile's state as the version before the journal left it: an outbox file, the
    checkpoint and the cursor snapshots. Read as they are; and written back in the same form
    at a clean close, so that the older version still reads the profile."""
    (tmp_path / "outbox").mkdir()
    old_entry = tmp_path / "outbox" / f"{ALERT}.v3.pb"
    old_entry.write_bytes(b"sealed by the older version")
    (tmp_path / "checkpoint.json").write_text(json.dumps(checkpoint(5), indent=2) + "\n")
    (tmp_path / "cursor.json").write_text('{"sequence": 3}\n')
    state = ClientState(tmp_path)
    [entry] = state.outbox()
    assert (entry.path, entry.version, entry.read()) == (
        old_entry,
        3,
        b"sealed by the older version",
    )
    assert CheckpointStore(tmp_path).load() == "note 5\n"
    assert state.read_cursor() == 3
    journal = state.journal
    journal.sync(journal.put_checkpoint(checkpoint(6)))
    with state.lock_cursor() as lock:
        lock.commit(4)
    state.remove_outbox(entry)
    state.close()
    assert not old_entry.exists()
    assert json.loads((tmp_path / "checkpoint.json").read_text()) == checkpoint(6)
    assert (tmp_path / "cursor.json").read_text() == '{"sequence": 4}\n'


# --- published versions ---------------------------------------------------------------------


def published(version: int) -> dict[str, Any]:
    return {
        "alert_id": ALERT,
        "version": version,
        "manifest_hash": f"{version:064x}",
        "log_index": version * 3,
        "accepted_at": "",
    }


def record_published(state: ClientState, version: int) -> None:
    state.record_published(
        alert_id=ALERT,
        version=version,
        manifest_hash=bytes.fromhex(f"{version:064x}"),
        log_index=version * 3,
        accepted_at=None,
    )


def test_a_published_version_is_journalled_and_written_as_its_file_when_folded_out(
    tmp_path: Path,
) -> None:
    state = ClientState(tmp_path)
    record_published(state, 1)
    record_published(state, 2)
    assert not (tmp_path / "published").exists()  # no file per publish: a journal record
    journal = state.journal
    assert journal.path is not None
    assert journal_records(journal.path.read_bytes())[0][-1] == {
        "kind": "published",
        "record": published(2),
    }
    latest = state.latest_published(ALERT)
    assert latest is not None and (latest.version, latest.log_index) == (2, 6)
    state.close()
    # The files, as a version without the record in the journal wrote and reads them.
    assert json.loads((tmp_path / "published" / f"{ALERT}.v2.json").read_text()) == published(2)
    latest = ClientState(tmp_path).latest_published(ALERT)
    assert latest is not None and latest.manifest_hash == bytes.fromhex(f"{2:064x}")


def test_a_long_journal_writes_its_published_versions_before_it_is_emptied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state_module, "JOURNAL_COMPACT_BYTES", 2000)
    state = ClientState(tmp_path)
    record_published(state, 1)
    journal = state.journal
    journal.sync(journal.put_checkpoint(checkpoint(9, note="n" * 2000)))  # past the limit
    assert journal.path is not None and journal.path.stat().st_size == 0
    assert json.loads((tmp_path / "published" / f"{ALERT}.v1.json").read_text()) == published(1)
    latest = state.latest_published(ALERT)
    assert latest is not None and latest.version == 1


def test_published_versions_of_another_journal_count_and_a_dead_ones_become_files(
    tmp_path: Path,
) -> None:
    (tmp_path / "journal").mkdir()
    left = tmp_path / "journal" / "1-dead.wal"
    left.write_bytes(
        journal_record({"kind": "published", "record": published(3)})
        + journal_record({"kind": "published", "record": published(2)})
    )
    state = ClientState(tmp_path)
    before = {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()}
    latest = state.latest_published(ALERT)
    assert latest is not None and latest.version == 3  # the highest, not the last
    assert {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()} == before
    record_published(state, 1)  # opens the journal: the dead one is taken over
    state.close()
    assert json.loads((tmp_path / "published" / f"{ALERT}.v3.json").read_text()) == published(3)
    latest = ClientState(tmp_path).latest_published(ALERT)
    assert latest is not None and latest.version == 3


def test_published_files_of_an_older_version_are_read_and_a_later_file_wins(
    tmp_path: Path,
) -> None:
    (tmp_path / "published").mkdir()
    (tmp_path / "published" / f"{ALERT}.v4.json").write_text(json.dumps(published(4)) + "\n")
    state = ClientState(tmp_path)
    latest = state.latest_published(ALERT)
    assert latest is not None and latest.version == 4
    record_published(state, 3)  # journalled, but the file names a later version
    latest = state.latest_published(ALERT)
    assert latest is not None and latest.version == 4
    record_published(state, 5)
    latest = state.latest_published(ALERT)
    assert latest is not None and latest.version == 5
    state.close()


def test_a_published_record_not_understood_is_a_configuration_error(tmp_path: Path) -> None:
    (tmp_path / "journal").mkdir()
    bad = dict(published(1), version="one")
    (tmp_path / "journal" / "1-dead.wal").write_bytes(
        journal_record({"kind": "published", "record": bad})
    )
    with pytest.raises(ConfigurationError, match="not understood"):
        ClientState(tmp_path).latest_published(ALERT)


def test_a_record_is_encoded_as_before_byte_for_byte() -> None:
    """The encoder made once writes what ``json.dumps`` with the same separators wrote: old
    journals and new ones are the same bytes, read by the same code."""
    fields = {
        "kind": "published",
        "record": {"alert_id": ALERT, "accepted_at": "2026-12-07T12:00:00+00:00", "n": 1.5},
        "text": 'Größe \u2028 "quoted" \\ \x00',
        "list": [None, True, False, -3],
    }
    payload = json.dumps(fields, separators=(",", ":")).encode()
    assert journal_record(fields)[8:] == payload
    assert journal_records(journal_record(fields)) == ([fields], 8 + len(payload))


def test_a_state_looks_up_its_journal_once_per_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = ClientState(tmp_path / "state")
    assert state.journal is state.journal is state_module.journal_of(tmp_path / "state")
    here = state.journal
    # As in a forked child: another process id, another journal.
    monkeypatch.setattr(state_module.os, "getpid", lambda: os.getppid())
    try:
        assert state.journal is not here
        assert state.journal is state_module.journal_of(tmp_path / "state")
    finally:
        state_module._JOURNALS.pop((os.getppid(), os.path.abspath(tmp_path / "state")), None)
        state_module._JOURNALS_BY_PATH.pop((os.getppid(), tmp_path / "state"), None)


def test_one_journal_per_directory_however_it_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "state"
    first = state_module.journal_of(directory)
    monkeypatch.chdir(tmp_path)
    assert state_module.journal_of(directory) is first
    assert state_module.journal_of(Path("state")) is first
    assert state_module.journal_of(tmp_path / "other" / ".." / "state") is first
    assert state_module.journal_of(str(directory)) is first  # type: ignore[arg-type]
    assert state_module.journal_of(tmp_path / "elsewhere") is not first
