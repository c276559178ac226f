"""Length-prefixed encoding of tuples, the one input format of every AAD, HPKE ``info``, key
commitment label and hash in the exchange.

Concatenating fields without their lengths lets two different tuples encode alike (``("ab", "c")``
and ``("a", "bc")``), which would let a ciphertext or grant made for one context open under another.
Prefixing each part with its length makes the encoding injective for tuples of a fixed schema.
"""

from __future__ import annotations

import struct

_MAX_PART_LENGTH = 0xFFFF_FFFF
_MAX_UINT64 = 0xFFFF_FFFF_FFFF_FFFF


def lp(*parts: bytes | str | int) -> bytes:
    """Encode ``parts`` as ``u32_be(len(part)) || part`` for each part, in order.

    ``str`` parts are UTF-8; ``int`` parts are 8-byte big-endian unsigned (so an ``int`` part always
    has length 8). A ``str`` and the ``bytes`` of its UTF-8 encode alike: each schema fixes the type
    of each position, so the types never need to be told apart.

    Raises ``ValueError`` for a negative or over-64-bit integer or a part over 4 GiB, and
    ``TypeError`` for any other type (``bool`` included: it is an ``int`` only by accident of Python).
    """
    encoded = bytearray()
    for part in parts:
        raw = _part_bytes(part)
        if len(raw) > _MAX_PART_LENGTH:
            raise ValueError(f"part of {len(raw)} bytes does not fit a u32 length prefix")
        encoded += struct.pack(">I", len(raw))
        encoded += raw
    return bytes(encoded)


def _part_bytes(part: object) -> bytes:
    if isinstance(part, bool):
        raise TypeError("lp() takes bytes, str or int parts, not bool")
    if isinstance(part, int):
        if part < 0 or part > _MAX_UINT64:
            raise ValueError(f"integer part {part} is not an unsigned 64-bit value")
        return struct.pack(">Q", part)
    if isinstance(part, str):
        return part.encode("utf-8")
    if isinstance(part, (bytes, bytearray, memoryview)):
        return bytes(part)
    raise TypeError(f"lp() takes bytes, str or int parts, not {type(part).__name__}")
