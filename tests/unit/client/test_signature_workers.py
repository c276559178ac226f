"""Signature checks spread over worker processes: every check made, answers in order, a single
bad signature found wherever it falls, and the same answers as checking one by one."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from exchange.crypto.signature_batch import SignatureCheck, verify_one_by_one
from exchange_client._internal.audit import signature_workers
from exchange_client._internal.audit.signature_workers import MIN_PER_PROCESS, verify_in_processes

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
PUBLIC = KEY.public_key().public_bytes_raw()


def checks(count: int) -> list[SignatureCheck]:
    messages = [f"statement {i}".encode() for i in range(count)]
    return [SignatureCheck(PUBLIC, m, KEY.sign(m)) for m in messages]


@pytest.fixture
def workers_started(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many worker processes the checks started (the real ones, counted)."""
    started: list[int] = []
    start = signature_workers._start_worker

    def counted():  # type: ignore[no-untyped-def]
        started.append(1)
        return start()

    monkeypatch.setattr(signature_workers, "_start_worker", counted)
    return started


@pytest.mark.parametrize("bad", [0, MIN_PER_PROCESS + 1, 3 * MIN_PER_PROCESS - 1])
def test_a_single_bad_signature_in_a_big_batch_is_found_where_it_is(
    bad: int, workers_started: list[int]
) -> None:
    batch = checks(3 * MIN_PER_PROCESS)
    batch[bad] = batch[bad]._replace(signature=KEY.sign(b"another statement"))
    answers = verify_in_processes(batch, processes=3)
    assert sum(workers_started) == 2  # this process checked one part, two workers the others
    assert [i for i, ok in enumerate(answers) if not ok] == [bad]
    assert answers == verify_one_by_one(batch)


def test_a_key_that_is_not_a_key_fails_its_checks_only() -> None:
    batch = checks(2 * MIN_PER_PROCESS)
    batch[-1] = batch[-1]._replace(public_key=b"\x00" * 31)
    answers = verify_in_processes(batch, processes=2)
    assert answers.count(False) == 1 and not answers[-1]


def test_a_small_batch_is_checked_here(workers_started: list[int]) -> None:
    assert verify_in_processes(checks(10), processes=os.cpu_count() or 2) == [True] * 10
    assert workers_started == []


def test_a_worker_that_dies_is_an_error_not_an_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def dying():  # type: ignore[no-untyped-def]
        import subprocess
        import sys

        return subprocess.Popen(
            [sys.executable, "-c", "import sys; sys.stdin.buffer.read(); sys.exit(3)"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )

    monkeypatch.setattr(signature_workers, "_start_worker", dying)
    with pytest.raises(RuntimeError, match="status 3"):
        verify_in_processes(checks(2 * MIN_PER_PROCESS), processes=2)
