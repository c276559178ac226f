"""Bech32 (BIP-173) and Bech32m (BIP-350) segwit address decoding.

Follows the BIP-350 reference implementation (``segwit_addr.py``) step by step; the only change is
that each rejection raises :class:`SegwitAddressError` saying why, instead of returning ``None``.
Encoding is included so tests can build addresses and check the round trip.
"""

from __future__ import annotations

import enum

from exchange.limits import over_limit

CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
BECH32_CONST = 1
BECH32M_CONST = 0x2BC830A3
MAX_LENGTH = 90


class Encoding(enum.Enum):
    """The two checksum variants: BIP-173 Bech32 and BIP-350 Bech32m."""

    BECH32 = BECH32_CONST
    BECH32M = BECH32M_CONST


class SegwitAddressError(ValueError):
    """The text is not a valid segwit address for the expected human-readable part."""


def _polymod(values: list[int]) -> int:
    checksum = 1
    for value in values:
        top = checksum >> 25
        checksum = (checksum & 0x1FFFFFF) << 5 ^ value
        for i in range(5):
            checksum ^= _GENERATOR[i] if (top >> i) & 1 else 0
    return checksum


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(char) >> 5 for char in hrp] + [0] + [ord(char) & 31 for char in hrp]


def _verify_checksum(hrp: str, data: list[int]) -> Encoding | None:
    constant = _polymod(_hrp_expand(hrp) + data)
    if constant == BECH32_CONST:
        return Encoding.BECH32
    if constant == BECH32M_CONST:
        return Encoding.BECH32M
    return None


def _create_checksum(hrp: str, data: list[int], encoding: Encoding) -> list[int]:
    values = _hrp_expand(hrp) + data
    polymod = _polymod(values + [0, 0, 0, 0, 0, 0]) ^ encoding.value
    return [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]


def _convert_bits(data: list[int], from_bits: int, to_bits: int, *, pad: bool) -> list[int] | None:
    accumulator = 0
    bits = 0
    converted: list[int] = []
    max_value = (1 << to_bits) - 1
    max_accumulator = (1 << (from_bits + to_bits - 1)) - 1
    for value in data:
        if value < 0 or value >> from_bits:
            return None
        accumulator = ((accumulator << from_bits) | value) & max_accumulator
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            converted.append((accumulator >> bits) & max_value)
    if pad:
        if bits:
            converted.append((accumulator << (to_bits - bits)) & max_value)
    elif bits >= from_bits or ((accumulator << (to_bits - bits)) & max_value):
        return None
    return converted


def bech32_decode(text: str) -> tuple[str, list[int], Encoding]:
    """Split ``text`` into human-readable part and data values, checksum verified and removed."""
    if any(ord(char) < 33 or ord(char) > 126 for char in text):
        raise SegwitAddressError("contains a character outside printable ASCII")
    if text.lower() != text and text.upper() != text:
        raise SegwitAddressError("mixes upper and lower case")
    text = text.lower()
    separator = text.rfind("1")
    if separator < 1:
        raise SegwitAddressError("has no human-readable part before the separator '1'")
    if separator + 7 > len(text):
        raise SegwitAddressError("is too short for its checksum")
    if len(text) > MAX_LENGTH:
        raise SegwitAddressError(over_limit(len(text), MAX_LENGTH, "characters"))
    for char in text[separator + 1 :]:
        if char not in CHARSET:
            raise SegwitAddressError(f"character {char!r} is not in the bech32 alphabet")
    hrp = text[:separator]
    data = [CHARSET.find(char) for char in text[separator + 1 :]]
    encoding = _verify_checksum(hrp, data)
    if encoding is None:
        raise SegwitAddressError("bech32/bech32m checksum does not match")
    return hrp, data[:-6], encoding


def decode_segwit_address(expected_hrp: str, address: str) -> tuple[int, bytes]:
    """Return (witness version, witness program) of a segwit ``address`` for ``expected_hrp``."""
    hrp, data, encoding = bech32_decode(address)
    if hrp != expected_hrp:
        raise SegwitAddressError(f"human-readable part is {hrp!r}, expected {expected_hrp!r}")
    if not data:
        raise SegwitAddressError("has no witness version")
    program = _convert_bits(data[1:], 5, 8, pad=False)
    if program is None:
        raise SegwitAddressError("witness program has invalid padding")
    if not 2 <= len(program) <= 40:
        raise SegwitAddressError(f"witness program is {len(program)} bytes, expected 2 to 40")
    version = data[0]
    if version > 16:
        raise SegwitAddressError(f"witness version is {version}, expected 0 to 16")
    if version == 0 and len(program) not in (20, 32):
        raise SegwitAddressError(
            f"version 0 witness program is {len(program)} bytes, expected 20 or 32"
        )
    if version == 0 and encoding is not Encoding.BECH32:
        raise SegwitAddressError("witness version 0 must use bech32, not bech32m")
    if version != 0 and encoding is not Encoding.BECH32M:
        raise SegwitAddressError(f"witness version {version} must use bech32m, not bech32")
    return version, bytes(program)


def encode_segwit_address(hrp: str, version: int, program: bytes) -> str:
    """Encode a segwit address (bech32 for version 0, bech32m for later versions)."""
    encoding = Encoding.BECH32 if version == 0 else Encoding.BECH32M
    converted = _convert_bits(list(program), 8, 5, pad=True)
    if converted is None:
        raise SegwitAddressError("witness program cannot be converted")
    data = [version] + converted
    checksum = _create_checksum(hrp, data, encoding)
    address = hrp + "1" + "".join(CHARSET[value] for value in data + checksum)
    decode_segwit_address(hrp, address)
    return address
