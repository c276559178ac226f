"""The operator's view: the real `exchange-hub` and `exchange` commands in subprocesses."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]
AGENCIES = ("agency-a", "agency-b", "agency-c")

GOOD_DRAFT = {
    "kind": "SHIPMENT",
    "grading": {"source": "B", "information": "2"},
    "title": "Cleaning agent that is 4-piperidone",
    "items": [
        {
            "id": "shipment",
            "policy": {"audience": ["agency-b"], "release": "IMMEDIATE", "tlp": "TLP:AMBER+STRICT",
                       "handling": ["H1", "H2"]},
            "shipment": {
                "declared_description": "industrial cleaning agent",
                "chemicals": [{"name": "4-piperidone", "cas_rn": "41661-47-6"}],
                "containers": ["CSQU3054383"],
                "origin": "CNSHA",
                "destination": "MXZLO",
                "quantity": {"value": "1200", "unit": "kg"},
            },
        },
        {
            "id": "source-note",
            "policy": {"audience": ["agency-b"], "release": "ON_REQUEST", "tlp": "RED"},
            "note": {"text": "Informant inside the forwarder.", "language": "en"},
        },
    ],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Exchange:
    data: Path
    database_url: str

    def run(self, *args: str, agency: str | None = None, expect: int | None = 0) -> subprocess.CompletedProcess[str]:
        if agency is None:
            command = [str(BIN / args[0]), *args[1:]]
        else:
            command = [str(BIN / "exchange"), "--profile", str(self.data / "agencies" / agency), *args]
        result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120,
                                env={**os.environ, "COLUMNS": "200"})
        if expect is not None:
            assert result.returncode == expect, (
                f"{' '.join(command)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
            )
        return result

    def json(self, *args: str, agency: str) -> object:
        return json.loads(self.run(*args, "--json", agency=agency).stdout)


@pytest.fixture
def exchange(tmp_path: Path, database_url: str) -> Iterator[Exchange]:
    data = tmp_path / "exchange"
    port = free_port()
    setup = Exchange(data, database_url)
    setup.run("exchange-hub", "init", str(data), *[f"--agency={a}" for a in AGENCIES],
              "--listen", f"127.0.0.1:{port}")
    hub = subprocess.Popen(
        [str(BIN / "exchange-hub"), "serve", "--config", str(data / "hub.toml"),
         "--database", database_url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert hub.stdout is not None
    line = hub.stdout.readline()
    assert line.strip() == f"listening on 127.0.0.1:{port}", hub.stderr.read() if hub.stderr else ""
    try:
        yield setup
    finally:
        hub.terminate()
        hub.wait(timeout=30)


def write_draft(path: Path, draft: object) -> Path:
    path.write_text(json.dumps(draft))
    return path


def test_publish_show_and_outsider(exchange: Exchange, tmp_path: Path) -> None:
    draft = write_draft(tmp_path / "draft.json", GOOD_DRAFT)
    receipt = exchange.json("publish", str(draft), agency="agency-a")
    assert receipt["version"] == 1  # type: ignore[index]
    alert_id = receipt["alert_id"]  # type: ignore[index]

    shown = exchange.json("show", alert_id, agency="agency-b")
    assert isinstance(shown, dict)
    assert {"alert_id", "originator", "version", "kind", "items"} <= set(shown)
    assert (shown["alert_id"], shown["originator"], shown["version"], shown["kind"]) == (
        alert_id, "agency-a", 1, "SHIPMENT"
    )
    items = {item["id"]: item for item in shown["items"]}
    assert items["shipment"]["status"] == "VISIBLE"
    assert items["shipment"]["payload"]["shipment"]["chemicals"][0]["cas_rn"] == "41661-47-6"
    assert items["shipment"]["policy"]["tlp"] == "AMBER+STRICT"
    assert items["shipment"]["policy"]["handling"] == ["H1", "H2"]
    assert items["source-note"]["status"] == "WITHHELD"
    assert "payload" not in items["source-note"]

    assert exchange.json("inbox", agency="agency-c") == []
    refused = exchange.run("show", alert_id, agency="agency-c", expect=1)
    assert "no alert" in refused.stderr
    events = exchange.run("watch", "--json", "--count", "1", agency="agency-b").stdout.splitlines()
    assert json.loads(events[0])["alert_id"] == alert_id


def test_wrong_cas_check_digit_names_the_field_and_publishes_nothing(
    exchange: Exchange, tmp_path: Path
) -> None:
    bad = json.loads(json.dumps(GOOD_DRAFT))
    bad["items"][0]["shipment"]["chemicals"][0]["cas_rn"] = "41661-47-5"
    result = exchange.run("publish", str(write_draft(tmp_path / "bad.json", bad)),
                          agency="agency-a", expect=1)
    assert "items[0].shipment.chemicals[0].cas_rn" in result.stderr
    assert "check digit" in result.stderr
    assert exchange.json("inbox", agency="agency-b") == []


PRINTED_DRAFT = {
    "kind": "FUND_FLOW",
    "title": "Wire for a relabelled 4-piperidone shipment",
    "items": [
        {
            "id": "wire",
            "policy": {"audience": ["agency-b"], "release": "IMMEDIATE", "tlp": "AMBER"},
            "account": {"iban": "gb82 west 1234 5698 7654 32", "bic": "nwbk gb 2l", "country": "GB"},
        },
        {
            "id": "shipment",
            "policy": {"audience": ["agency-b"], "release": "IMMEDIATE", "tlp": "AMBER"},
            "shipment": {
                "chemicals": [{"name": "4-piperidone", "cas_rn": " 41661 - 47 - 6 "}],
                "containers": ["MSCU 528641-8"],
                "origin": "CN SHA",
            },
        },
    ],
}


def test_printed_identifiers_are_shown_as_notices_and_published_canonical(
    exchange: Exchange, tmp_path: Path
) -> None:
    draft = write_draft(tmp_path / "printed.json", PRINTED_DRAFT)
    text = exchange.run("validate", str(draft), agency="agency-a").stdout
    assert ('items[0].account.iban: normalised "gb82 west 1234 5698 7654 32" to '
            '"GB82WEST12345698765432"') in text
    checked = exchange.json("validate", str(draft), agency="agency-a")
    assert isinstance(checked, dict) and checked["valid"] is True and checked["errors"] == []
    assert [(n["field"], n["canonical"]) for n in checked["notices"]] == [
        ("items[0].account.iban", "GB82WEST12345698765432"),
        ("items[0].account.bic", "NWBKGB2L"),
        ("items[1].shipment.chemicals[0].cas_rn", "41661-47-6"),
        ("items[1].shipment.containers[0]", "MSCU5286418"),
        ("items[1].shipment.origin", "CNSHA"),
    ]

    published = exchange.run("publish", str(draft), "--json", agency="agency-a")
    assert 'items[1].shipment.origin: normalised "CN SHA" to "CNSHA"' in published.stderr
    alert_id = json.loads(published.stdout)["alert_id"]
    shown = exchange.json("show", alert_id, agency="agency-b")
    assert isinstance(shown, dict)
    items = {item["id"]: item for item in shown["items"]}
    assert items["wire"]["status"] == items["shipment"]["status"] == "VISIBLE"
    assert items["wire"]["payload"]["account"] == {
        "iban": "GB82WEST12345698765432", "bic": "NWBKGB2L", "country": "GB"
    }
    shipment = items["shipment"]["payload"]["shipment"]
    assert shipment["chemicals"][0]["cas_rn"] == "41661-47-6"
    assert (shipment["containers"], shipment["origin"]) == (["MSCU5286418"], "CNSHA")


@pytest.mark.parametrize(
    ("mutation", "named"),
    [
        (lambda d: d["items"][0].__setitem__("colour", "red"), "items[0].colour"),
        (lambda d: d.pop("title"), "title"),
        (lambda d: d["items"][0]["policy"].__setitem__("tlp", "AMBER-ISH"), "items[0].policy.tlp"),
        (lambda d: d["items"][0]["policy"].__setitem__("release", 7), "items[0].policy.release"),
        (
            lambda d: d["items"][0]["shipment"]["chemicals"][0].__setitem__("cas_rn", ""),
            "items[0].shipment.chemicals[0].cas_rn",
        ),
    ],
    ids=["unknown field", "missing field", "mistyped enum", "enum number", "empty identifier"],
)
def test_bad_drafts_are_refused_before_signing(
    exchange: Exchange, tmp_path: Path, mutation: object, named: str
) -> None:
    draft = json.loads(json.dumps(GOOD_DRAFT))
    mutation(draft)  # type: ignore[operator]
    result = exchange.run("publish", str(write_draft(tmp_path / "d.json", draft)),
                          agency="agency-a", expect=1)
    assert named in result.stderr
    assert exchange.json("inbox", agency="agency-b") == []


def test_tampering_behind_the_hubs_back_is_exit_3(exchange: Exchange, tmp_path: Path) -> None:
    draft = write_draft(tmp_path / "draft.json", GOOD_DRAFT)
    alert_id = exchange.json("publish", str(draft), agency="agency-a")["alert_id"]  # type: ignore[index]
    engine = create_engine(exchange.database_url)
    with engine.begin() as connection:
        rows = connection.execute(text("SELECT alert_pk, item_id, ciphertext FROM items")).all()
        for alert_pk, item_id, ciphertext in rows:
            flipped = bytearray(ciphertext)
            flipped[40] ^= 1
            connection.execute(
                text("UPDATE items SET ciphertext = :c WHERE alert_pk = :a AND item_id = :i"),
                {"c": bytes(flipped), "a": alert_pk, "i": item_id},
            )
    engine.dispose()
    result = exchange.run("show", alert_id, agency="agency-b", expect=3)
    assert "ciphertext" in result.stderr or "verif" in result.stderr.lower()


def test_usage_errors_and_missing_profile(exchange: Exchange) -> None:
    assert exchange.run("exchange", "frobnicate", expect=2).returncode == 2
    env_free = subprocess.run([str(BIN / "exchange"), "inbox"], check=False, capture_output=True, text=True,
                              env={k: v for k, v in os.environ.items() if k != "EXCHANGE_PROFILE"})
    assert env_free.returncode == 2  # a missing profile is a usage error
    assert "--profile" in env_free.stderr


def test_hub_agency_list(exchange: Exchange) -> None:
    listed = json.loads(exchange.run("exchange-hub", "agency", "list", "--config",
                                     str(exchange.data / "hub.toml"), "--database",
                                     exchange.database_url, "--json").stdout)
    assert [a["agency_id"] for a in listed] == list(AGENCIES)
    assert all(not a["revoked"] for a in listed)


def test_a_verified_watchlist_update_flags_from_then_on_offline_too(
    exchange: Exchange, tmp_path: Path
) -> None:
    shipment = json.loads(json.dumps(GOOD_DRAFT))
    shipment["items"] = [shipment["items"][0]]
    shipment["items"][0]["shipment"]["chemicals"] = [
        {"name": "pharmaceutical intermediate", "cas_rn": "3612-20-2"}
    ]
    draft = write_draft(tmp_path / "benzyl.json", shipment)

    def flagged_cas() -> dict[str, str]:
        flags = exchange.json("watchlist", "match", str(draft), agency="agency-c")
        return {f["cas_rn"]: f["list_source"] for f in flags}  # type: ignore[union-attr, index]

    assert "3612-20-2" not in flagged_cas()  # not on the shipped list
    update = exchange.json(
        "publish", str(ROOT / "examples" / "watchlist-update.yaml"), agency="agency-b"
    )
    exchange.run("show", update["alert_id"], agency="agency-c")  # type: ignore[index]
    assert "agency-b" in flagged_cas()["3612-20-2"]
    listed = exchange.json("watchlist", "show", agency="agency-c")
    assert "3612-20-2" in json.dumps(listed)
