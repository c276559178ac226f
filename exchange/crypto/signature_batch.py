"""Ed25519 signature checks in a batch: one check as data, and the batch checked in order.

A full-log verification gathers every signature check its bodies call for into one batch, so
that the checks can be made elsewhere (the client library spreads a large batch over worker
processes, since ``cryptography`` holds the GIL while it verifies); every check is still made.

Run as a program (``python -m exchange.crypto.signature_batch``) it is such a worker: a pickled
list of checks on standard input, the pickled list of answers on standard output.
"""

from __future__ import annotations

import pickle
import sys
from collections.abc import Sequence
from typing import NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

__all__ = ["SignatureCheck", "verify_one_by_one"]


class SignatureCheck(NamedTuple):
    """One Ed25519 check: the raw 32-byte public key, the signed message, the signature."""

    public_key: bytes
    message: bytes
    signature: bytes


def verify_one_by_one(checks: Sequence[SignatureCheck]) -> list[bool]:
    """Whether each check holds, in order, in this process."""
    keys: dict[bytes, ed25519.Ed25519PublicKey | None] = {}
    answers = []
    for public_key, message, signature in checks:
        if public_key not in keys:
            try:
                keys[public_key] = ed25519.Ed25519PublicKey.from_public_bytes(public_key)
            except ValueError:
                keys[public_key] = None
        key = keys[public_key]
        if key is None:
            answers.append(False)
            continue
        try:
            key.verify(signature, message)
        except InvalidSignature:
            answers.append(False)
        else:
            answers.append(True)
    return answers


def _serve() -> None:
    """The worker: checks from standard input, answers to standard output (trusted: the
    caller is the process that started it)."""
    checks = [SignatureCheck(*check) for check in pickle.load(sys.stdin.buffer)]
    pickle.dump(verify_one_by_one(checks), sys.stdout.buffer, protocol=pickle.HIGHEST_PROTOCOL)
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    _serve()
