"""lp(): the length-prefixed encoding under every AAD, HPKE info and key commitment."""

from __future__ import annotations

import pytest

from exchange.crypto.encoding import lp


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        pytest.param((), b"", id="no-parts"),
        pytest.param((b"",), b"\x00\x00\x00\x00", id="empty-bytes"),
        pytest.param((b"ab",), b"\x00\x00\x00\x02ab", id="bytes"),
        pytest.param(("ü",), b"\x00\x00\x00\x02\xc3\xbc", id="str-is-utf8"),
        pytest.param((0,), b"\x00\x00\x00\x08" + bytes(8), id="int-zero"),
        pytest.param(
            (258,), b"\x00\x00\x00\x08\x00\x00\x00\x00\x00\x00\x01\x02", id="int-big-endian"
        ),
        pytest.param((2**64 - 1,), b"\x00\x00\x00\x08" + b"\xff" * 8, id="int-max"),
        pytest.param(
            (b"x", "y", 1),
            b"\x00\x00\x00\x01x\x00\x00\x00\x01y\x00\x00\x00\x08\x00\x00\x00\x00\x00\x00\x00\x01",
            id="mixed",
        ),
        pytest.param((b"a" * 300,), b"\x00\x00\x01\x2c" + b"a" * 300, id="length-over-255"),
    ],
)
def test_lp_encodes_each_part_with_a_u32_length(
    parts: tuple[bytes | str | int, ...], expected: bytes
) -> None:
    assert lp(*parts) == expected


@pytest.mark.parametrize(
    ("left", "right"),
    [
        pytest.param(("ab", "c"), ("a", "bc"), id="shifted-boundary"),
        pytest.param(("abc",), ("ab", "c"), id="split-part"),
        pytest.param(("", "a"), ("a", ""), id="empty-moves"),
        pytest.param(("a",), ("a", ""), id="trailing-empty-part"),
        pytest.param((), ("",), id="nothing-vs-empty"),
        pytest.param(("us-dea", "x", 1, "i"), ("us-dea", "x", 2, "i"), id="version"),
        pytest.param(
            ("a", b"\x00\x00\x00\x01b"), ("a\x00\x00\x00\x01b",), id="embedded-length-prefix"
        ),
        pytest.param((1,), (b"\x00" * 7 + b"\x01", b""), id="int-vs-bytes-plus-empty"),
    ],
)
def test_lp_encodes_different_tuples_differently(
    left: tuple[bytes | str | int, ...], right: tuple[bytes | str | int, ...]
) -> None:
    assert lp(*left) != lp(*right)


@pytest.mark.parametrize(
    ("part", "error"),
    [
        pytest.param(-1, ValueError, id="negative-int"),
        pytest.param(2**64, ValueError, id="int-over-64-bits"),
        pytest.param(True, TypeError, id="bool"),
        pytest.param(1.5, TypeError, id="float"),
        pytest.param(None, TypeError, id="none"),
        pytest.param("\ud800", ValueError, id="lone-surrogate"),
    ],
)
def test_lp_refuses_parts_it_cannot_encode_unambiguously(
    part: object, error: type[Exception]
) -> None:
    with pytest.raises(error):
        lp(part)  # type: ignore[arg-type]
