"""The local match index file: entries, partners, digests, blindings, one transaction."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from exchange.match.blinding import PairKeys
from exchange.match.selectors import parse_selector
from exchange_client._internal.match_index import INDEX_FILE_NAME, LocalIndex

NOW = datetime(2026, 12, 1, tzinfo=UTC)
IBAN = parse_selector("iban:GB82WEST12345698765432")
IMO = parse_selector("imo:9319466")


def test_entries_partners_and_digests(tmp_path: Path) -> None:
    with LocalIndex.open(tmp_path / "state") as index:
        assert stat.S_IMODE((tmp_path / "state" / INDEX_FILE_NAME).stat().st_mode) == 0o600
        with index.transaction():
            ids = index.add_entries([(IBAN, "case 17"), (IMO, "")], now=NOW)
            index.publish("agency-a", [(ids[0], b"a" * 32), (ids[1], b"b" * 32)])
            index.publish("agency-c", [(ids[1], b"c" * 32)])
            index.record_blinding(PairKeys("agency-b", "kb", "agency-a", "ka"))
        assert [(str(e.selector), e.partners, e.note) for e in index.entries()] == [
            ("iban:GB82WEST12345698765432", ("agency-a",), "case 17"),
            ("imo:9319466", ("agency-a", "agency-c"), ""),
        ]
        assert [str(e.selector) for e in index.entries(partner="agency-c")] == ["imo:9319466"]
        assert [str(e.selector) for e in index.entries(kind="iban")] == [str(IBAN)]
        assert index.partners_of([IBAN, IMO, parse_selector("bic:DEUTDEFF")]) == {
            str(IBAN): {"agency-a"},
            str(IMO): {"agency-a", "agency-c"},
        }
        assert list(index.entries_by_digest("agency-c", [b"c" * 32, b"a" * 32])) == [b"c" * 32]
        assert index.blinding("agency-a") == ("kb", "ka")
        assert index.partner_counts() == {"agency-a": 2, "agency-c": 1}
        with index.transaction():
            index.remove([IMO], partners=["agency-a"])
        assert index.partner_counts() == {"agency-a": 1, "agency-c": 1}
        with index.transaction():
            index.remove([IMO], partners=["agency-c"])
        assert [str(e.selector) for e in index.entries()] == [str(IBAN)]


def test_a_failed_change_is_rolled_back(tmp_path: Path) -> None:
    with LocalIndex.open(tmp_path) as index:
        with pytest.raises(RuntimeError), index.transaction():
            index.add_entries([(IBAN, "")], now=NOW)
            raise RuntimeError("the hub refused")
        assert index.count() == 0
