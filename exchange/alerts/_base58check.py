"""Base58Check, the address encoding of Bitcoin (P2PKH, P2SH) and TRON.

Base58 with the Bitcoin alphabet; the last four decoded bytes are the first four bytes of
``sha256(sha256(body))``.  Only decoding is needed to validate, encoding is here so that tests and
examples can make real addresses instead of copying them from somewhere.
"""

from __future__ import annotations

import hashlib

ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_INDEX = {char: position for position, char in enumerate(ALPHABET)}


class Base58CheckError(ValueError):
    """The text is not Base58Check: a character outside the alphabet or a wrong checksum."""


def _checksum(body: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(body).digest()).digest()[:4]


def decode(text: str) -> bytes:
    """Return the body (version byte and payload) of ``text``, checksum verified and removed.

    Callers cap the length of ``text`` first: decoding is quadratic in it.
    """
    number = 0
    for position, char in enumerate(text):
        digit = _INDEX.get(char)
        if digit is None:
            raise Base58CheckError(f"character {char!r} at position {position + 1} is not Base58")
        number = number * 58 + digit
    leading_zero_bytes = len(text) - len(text.lstrip("1"))
    raw = b"\x00" * leading_zero_bytes + number.to_bytes((number.bit_length() + 7) // 8, "big")
    if len(raw) < 5:
        raise Base58CheckError("too short to carry a checksum")
    body, checksum = raw[:-4], raw[-4:]
    if _checksum(body) != checksum:
        raise Base58CheckError("Base58Check checksum does not match")
    return body


def encode(body: bytes) -> str:
    """Encode ``body`` (version byte and payload) with its checksum appended."""
    raw = body + _checksum(body)
    number = int.from_bytes(raw, "big")
    chars: list[str] = []
    while number:
        number, digit = divmod(number, 58)
        chars.append(ALPHABET[digit])
    leading_zero_bytes = len(raw) - len(raw.lstrip(b"\x00"))
    return "1" * leading_zero_bytes + "".join(reversed(chars))
