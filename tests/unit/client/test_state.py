"""The client's state directory: feed cursor and its lock, outbox, published versions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from exchange.errors import ConfigurationError, ExchangeError
from exchange_client._internal.state import ClientState

HOLD_LOCK = """
import sys, time
from exchange_client._internal.state import ClientState
lock = ClientState(sys.argv[1]).lock_cursor()
print("locked", flush=True)
sys.stdin.readline()
"""


def test_cursor_starts_at_zero_and_persists_across_instances(tmp_path: Path) -> None:
    state = ClientState(tmp_path)
    assert state.read_cursor() == 0
    with state.lock_cursor() as lock:
        lock.commit(3)
    assert ClientState(tmp_path).read_cursor() == 3
    assert (tmp_path / "cursor.json").read_text() == '{"sequence": 3}\n'


def test_cursor_never_moves_back(tmp_path: Path) -> None:
    state = ClientState(tmp_path)
    with state.lock_cursor() as lock:
        lock.commit(7)
        lock.commit(2)
    assert state.read_cursor() == 7


def test_a_second_reader_in_this_process_is_refused_at_once(tmp_path: Path) -> None:
    state = ClientState(tmp_path)
    with state.lock_cursor(), pytest.raises(ExchangeError) as refused:
        ClientState(tmp_path).lock_cursor()
    assert refused.value.reason == "PROFILE_BUSY"
    assert "another process" in refused.value.message
    with state.lock_cursor() as lock:  # released: free again
        assert lock.held


def test_a_second_process_on_one_profile_is_refused_not_left_waiting(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(ExchangeError) as refused:
            ClientState(tmp_path).lock_cursor()
        assert refused.value.reason == "PROFILE_BUSY"
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait(timeout=30)
    with ClientState(tmp_path).lock_cursor() as lock:  # the holder exited: the lock is free
        assert lock.held


def test_a_released_lock_cannot_commit(tmp_path: Path) -> None:
    lock = ClientState(tmp_path).lock_cursor()
    lock.release()
    lock.release()  # idempotent
    with pytest.raises(ExchangeError):
        lock.commit(1)
    assert ClientState(tmp_path).read_cursor() == 0


@pytest.mark.parametrize(
    "content",
    ["not json", '{"seq": 1}', '{"sequence": -1}', '{"sequence": "4"}', '{"sequence": true}'],
)
def test_a_damaged_cursor_is_a_configuration_error_that_says_what_to_do(
    tmp_path: Path, content: str
) -> None:
    (tmp_path / "cursor.json").write_text(content)
    with pytest.raises(ConfigurationError) as raised:
        ClientState(tmp_path).read_cursor()
    assert "cursor.json" in raised.value.message
    assert "--after" in raised.value.message


def test_outbox_keeps_exact_bytes_until_removed(tmp_path: Path) -> None:
    state = ClientState(tmp_path)
    alert_id = "0b0e3c1e-8f5d-4d5e-9a57-3f0d0f6f2a10"
    entry = state.save_outbox(alert_id, 2, b"\x00sealed request\xff")
    (tmp_path / "outbox" / "stray.tmp").write_bytes(b"ignored")
    [listed] = state.outbox()
    assert (listed.alert_id, listed.version) == (alert_id, 2)
    assert listed.read() == b"\x00sealed request\xff"
    assert not entry.path.exists()  # in flight: the journal holds it
    state.keep_outbox(entry)  # its send failed: kept as the file the error names
    [kept] = state.outbox()
    assert kept.path == entry.path and kept.read() == b"\x00sealed request\xff"
    assert entry.path.stat().st_mode & 0o777 == 0o600
    state.remove_outbox(kept)
    assert state.outbox() == []
    assert not entry.path.exists()


def test_latest_published_version_is_remembered(tmp_path: Path) -> None:
    state = ClientState(tmp_path)
    alert_id = "0b0e3c1e-8f5d-4d5e-9a57-3f0d0f6f2a10"
    assert state.latest_published(alert_id) is None
    for version in (1, 2, 10):
        state.record_published(
            alert_id=alert_id,
            version=version,
            manifest_hash=bytes([version]) * 32,
            log_index=version * 3,
            accepted_at=None,
        )
    latest = state.latest_published(alert_id)
    assert latest is not None
    assert (latest.version, latest.manifest_hash, latest.log_index) == (10, b"\x0a" * 32, 30)
    assert state.latest_published("5d1c7f3e-0000-4000-8000-000000000000") is None


def test_an_unreadable_published_record_counts_as_none(tmp_path: Path) -> None:
    state = ClientState(tmp_path)
    alert_id = "0b0e3c1e-8f5d-4d5e-9a57-3f0d0f6f2a10"
    state.record_published(
        alert_id=alert_id, version=1, manifest_hash=b"\x01" * 32, log_index=3, accepted_at=None
    )
    state.close()  # written as its file
    assert (tmp_path / "published" / f"{alert_id}.v1.json").exists()
    (tmp_path / "published" / f"{alert_id}.v2.json").write_bytes(b"")  # a crash mid-write
    assert state.latest_published(alert_id) is None
