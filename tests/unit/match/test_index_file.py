"""Index files: CSV and JSON lines read to canonical selectors; every bad row named, none kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from exchange.match.index_file import IndexFileError, parse_index_text, read_index_file


def test_csv_with_notes() -> None:
    rows = parse_index_text(
        "kind,value,note\n"
        "iban,GB82 WEST 1234 5698 7654 32,case 17\n"
        "\n"
        'person,"Zhang Wei:1980-03-15","director, Shanghai"\n'
    )
    assert [(r.row, str(r.selector), r.note) for r in rows] == [
        (2, "iban:GB82WEST12345698765432", "case 17"),
        (4, "person:zhangwei:1980-03-15", "director, Shanghai"),
    ]


def test_csv_without_notes_and_with_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "index.csv"
    path.write_bytes("\ufeffKind,Value\r\ncontainer,MSCU 123456-6\r\n".encode())
    rows = read_index_file(path)
    assert [str(r.selector) for r in rows] == ["container:MSCU1234566"]
    assert rows[0].note == ""


def test_json_lines() -> None:
    rows = parse_index_text(
        '{"kind": "imo", "value": "IMO 9319466", "note": "vessel"}\n'
        "\n"
        '{"kind": "wallet", "value": "TLsV52sRDL79HXGGm9yzwKibb6BeruhUzy"}\n'
    )
    assert [(r.row, str(r.selector), r.note) for r in rows] == [
        (1, "imo:9319466", "vessel"),
        (3, "wallet:tron:TLsV52sRDL79HXGGm9yzwKibb6BeruhUzy", ""),
    ]


def _violations(text: str) -> list[str]:
    with pytest.raises(IndexFileError) as raised:
        parse_index_text(text, source="index.csv")
    assert "nothing was indexed" in raised.value.message
    return [str(v) for v in raised.value.violations]


def test_every_bad_csv_row_is_named_with_its_row_and_field() -> None:
    violations = _violations(
        "kind,value,note\n"
        "iban,GB82WEST12345698765432,fine\n"
        "vessel,9319466,\n"
        "container,MSCU1234565,\n"
        "cas,41661-47-6,a,b\n"
        "imo,,\n"
    )
    assert violations == [
        (
            "row 3: kind: unknown selector kind 'vessel'; expected one of company, iban, bic, "
            "account, wallet, container, imo, phone, email, cas, person"
        ),
        "row 4: value: container:MSCU1234565: check digit is 5, expected 6",
        "row 5: has 4 fields, expected 3 (kind,value,note)",
        "row 6: value: is empty",
    ]


def test_bad_json_lines_are_named() -> None:
    violations = _violations(
        '{"kind": "imo", "value": "9319466"}\n'
        '{"kind": "imo", "value": 9319466}\n'
        '{"kind": "imo", "value": "9319466", "owner": "x"}\n'
        "[1]\n"
        '{"kind": "imo"\n'
        '{"value": "9319466"}\n'
    )
    assert violations == [
        "row 2: value: expected a string, got int",
        "row 3: owner: unknown field; expected kind, value and note",
        "row 4: expected a JSON object",
        "row 5: not JSON: Expecting ',' delimiter at column 15",
        "row 6: kind: is missing",
    ]


def test_a_wrong_header_is_refused() -> None:
    with pytest.raises(IndexFileError, match="row 1: expected the header kind,value"):
        parse_index_text("type,identifier\niban,GB82WEST12345698765432\n")


def test_an_empty_file_is_refused() -> None:
    with pytest.raises(IndexFileError, match="no rows"):
        parse_index_text("kind,value\n")


def test_an_unreadable_file_names_itself(tmp_path: Path) -> None:
    with pytest.raises(IndexFileError, match="cannot read"):
        read_index_file(tmp_path / "missing.csv")
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"kind,value\nperson,M\xfcller:1980-01-01\n")
    with pytest.raises(IndexFileError, match="not UTF-8"):
        read_index_file(path)


def test_many_errors_are_capped_in_the_report() -> None:
    text = "kind,value\n" + "imo,9319467\n" * 120
    with pytest.raises(IndexFileError) as raised:
        parse_index_text(text)
    assert len(raised.value.violations) == 50
    assert "120 bad rows of 120" in raised.value.message
    assert "70 more not shown" in raised.value.message
