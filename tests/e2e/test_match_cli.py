"""Private matching as operators use it: the real `exchange match` commands against a hub."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.test_cli import Exchange, exchange  # noqa: F401

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_PERMITTED = 4

INDEX_CSV = (
    "kind,value,note\n"
    "iban,GB82 WEST 1234 5698 7654 32,case 17\n"
    "container,MSCU 123456-6,seized 2026-11\n"
    'person,"José Müller:1975-01-02",director\n'
)


def test_index_query_remove_stats(exchange: Exchange, tmp_path: Path) -> None:  # noqa: F811
    index = tmp_path / "index.csv"
    index.write_text(INDEX_CSV)
    added = exchange.json("match", "index", "add", str(index), "--partner", "agency-a",
                          agency="agency-b")
    assert added["entries"] == 3  # type: ignore[index]
    assert added["totals"] == {"agency-a": 3}  # type: ignore[index]

    listed = exchange.json("match", "index", "list", agency="agency-b")
    assert [(e["selector"], e["partners"], e["note"]) for e in listed] == [  # type: ignore[union-attr]
        ("iban:GB82WEST12345698765432", ["agency-a"], "case 17"),
        ("container:MSCU1234566", ["agency-a"], "seized 2026-11"),
        ("person:josemuller:1975-01-02", ["agency-a"], "director"),
    ]

    asked = ["iban:GB82WEST12345698765432", "container:CSQU3054383", "person:JOSE MULLER:1975-01-02"]
    answer = exchange.json("match", "query", "--partner", "agency-b", *asked, agency="agency-a")
    assert answer == [
        {"selector": "iban:GB82WEST12345698765432", "result": "hit"},
        {"selector": "container:CSQU3054383", "result": "no-hit"},
        {"selector": "person:josemuller:1975-01-02", "result": "hit"},
    ]
    table = exchange.run("match", "query", "--partner", "agency-b", asked[1], asked[0],
                         agency="agency-a").stdout
    assert table.index("no-hit") < table.rindex("hit")
    # agency-c was not named: its query finds nothing.
    assert exchange.json("match", "query", "--partner", "agency-b", asked[0],
                         agency="agency-c") == [{"selector": asked[0], "result": "no-hit"}]

    hits = exchange.json("match", "hits", agency="agency-b")
    # The hub reports the digests of the tokens hit, in no particular order.
    assert [sorted(e["selector"] for e in h["entries"]) for h in hits] == [  # type: ignore[union-attr]
        ["iban:GB82WEST12345698765432", "person:josemuller:1975-01-02"],
        ["iban:GB82WEST12345698765432"],
    ]

    selectors_file = tmp_path / "remove.txt"
    selectors_file.write_text("# closed\niban:GB82WEST12345698765432\n")
    exchange.run("match", "index", "remove", "--file", str(selectors_file), agency="agency-b")
    assert exchange.json("match", "query", "--partner", "agency-b", asked[0],
                         agency="agency-a") == [{"selector": asked[0], "result": "no-hit"}]

    stats = exchange.json("match", "stats", agency="agency-b")
    received = [d for d in stats["days"] if d["direction"] == "received"]  # type: ignore[index]
    assert {(d["partner"], d["queries"], d["selectors"]) for d in received} == {
        ("agency-a", 3, 6),
        ("agency-c", 1, 1),
    }
    assert {i["partner"]: i["hub_tokens"] for i in stats["indexes"]} == {"agency-a": 2}  # type: ignore[index]


def test_bad_input_is_named_and_nothing_is_indexed(exchange: Exchange, tmp_path: Path) -> None:  # noqa: F811
    broken = tmp_path / "broken.csv"
    broken.write_text("kind,value\niban,GB82WEST12345698765432\ncontainer,MSCU1234565\nvessel,1\n")
    failed = exchange.run("match", "index", "add", str(broken), agency="agency-b",
                          expect=EXIT_ERROR)
    assert "row 3: value: container:MSCU1234565: check digit is 5, expected 6" in failed.stderr
    assert "row 4: kind: unknown selector kind 'vessel'" in failed.stderr
    assert "nothing was indexed" in failed.stderr
    assert exchange.json("match", "index", "list", agency="agency-b") == []

    unknown = exchange.run("match", "query", "--partner", "agency-b", "vessel:9319466",
                           agency="agency-a", expect=EXIT_ERROR)
    assert "argument 1: unknown selector kind 'vessel'" in unknown.stderr
    checksum = exchange.run("match", "query", "--partner", "agency-b", "container:MSCU1234565",
                            agency="agency-a", expect=EXIT_ERROR)
    assert "container:MSCU1234565: check digit is 5, expected 6" in checksum.stderr
    exchange.run("match", "query", "iban:GB82WEST12345698765432", agency="agency-a",
                 expect=EXIT_USAGE)


def test_a_budget_set_by_the_holder_refuses_the_partner(exchange: Exchange, tmp_path: Path) -> None:  # noqa: F811
    exchange.run("match", "policy", "set", "--daily-budget", "100", "--partner", "agency-a=1",
                 agency="agency-b")
    shown = exchange.json("match", "policy", "show", agency="agency-b")
    assert shown == {"number": 1, "default_daily_budget": 100, "budgets": {"agency-a": 1}}
    exchange.run("match", "query", "--partner", "agency-b", "imo:9319466", agency="agency-a")
    refused = exchange.run("match", "query", "--partner", "agency-b", "imo:9074729",
                           agency="agency-a", expect=EXIT_NOT_PERMITTED)
    assert "daily budget" in refused.stderr and "0 left today" in refused.stderr
    made = exchange.json("match", "stats", agency="agency-a")["days"]  # type: ignore[index]
    assert [(d["partner"], d["selectors"], d["budget_left"]) for d in made] == [("agency-b", 1, 0)]
    json.dumps(made)
