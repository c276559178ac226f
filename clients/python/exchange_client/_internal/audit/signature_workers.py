"""Many Ed25519 signature checks at once, spread over worker processes (``exchange audit verify``).

``cryptography`` holds the GIL while it verifies, so threads do not add up: one process checks
about 9,000-20,000 signatures a second, whatever its threads. A full-log verification with tens
of thousands of readable statements hands its checks here in one batch; they are split into one
part per CPU, this process checks one part and a worker process each of the others, and the
answers come back in order. Every check is made; the workers only change where.

A worker is :mod:`exchange.crypto.signature_batch` run as ``python -m`` (it imports only
``cryptography``), with the checks pickled on its standard input and its answers pickled on its
standard output. It is not a :mod:`multiprocessing` pool: that would
either fork a process whose gRPC threads are running, or (``spawn``, ``forkserver``) import the
caller's main script again in each worker, which runs a script without a ``__main__`` guard twice.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import exchange
from exchange.crypto.signature_batch import SignatureCheck, verify_one_by_one

__all__ = ["verify_in_processes"]

MIN_PER_PROCESS = 2_000
"""Fewest checks worth a worker process (starting one costs about as much as 1,000 checks)."""


def verify_in_processes(
    checks: Sequence[SignatureCheck], *, processes: int | None = None
) -> list[bool]:
    """Whether each check holds, in order, checked by ``processes`` processes (default: one per
    CPU) of which this is one. Fewer than :data:`MIN_PER_PROCESS` checks per process, or a
    machine where no process can be started, and they are all checked here."""
    count = min(
        processes if processes is not None else (os.cpu_count() or 1),
        len(checks) // MIN_PER_PROCESS,
    )
    if count < 2:
        return verify_one_by_one(checks)
    size = -(-len(checks) // count)
    parts = [list(checks[i : i + size]) for i in range(0, len(checks), size)]
    try:
        workers = [_start_worker() for _ in parts[1:]]
    except OSError:
        return verify_one_by_one(checks)
    try:
        for worker, part in zip(workers, parts[1:], strict=True):
            assert worker.stdin is not None
            pickle.dump(part, worker.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            worker.stdin.close()
        answers = verify_one_by_one(parts[0])
        for worker, part in zip(workers, parts[1:], strict=True):
            answers.extend(_answers_of(worker, len(part)))
        return answers
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
            worker.wait()


def _start_worker() -> subprocess.Popen[bytes]:
    """A worker process (:mod:`exchange.crypto.signature_batch` run as a program), finding the
    core where this process found it."""
    root = str(Path(str(exchange.__file__)).resolve().parents[1])
    path = os.environ.get("PYTHONPATH")
    env = {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else "")}
    return subprocess.Popen(
        [sys.executable, "-m", "exchange.crypto.signature_batch"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )


def _answers_of(worker: subprocess.Popen[bytes], expected: int) -> list[bool]:
    """A worker's answers; a worker that died or answered something else is an error."""
    assert worker.stdout is not None
    output = worker.stdout.read()
    if worker.wait() != 0:
        raise RuntimeError(f"a signature worker exited with status {worker.returncode}")
    answers = pickle.loads(output)
    if not isinstance(answers, list) or len(answers) != expected:
        raise RuntimeError("a signature worker answered for another number of checks")
    return [answer is True for answer in answers]
