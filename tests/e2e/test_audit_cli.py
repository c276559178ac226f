"""``exchange audit`` against a real hub: the agencies' clients catch the hub's tampering.

Each test runs the real ``exchange-hub serve`` in a subprocess on SQLite and on PostgreSQL, drives
the real ``exchange`` CLI, and changes the database behind the hub's back while it runs. Every
change must be caught by the client, with a named reason, the first bad index, and exit code 3.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from sqlalchemy import Engine, create_engine, delete, select, update

from exchange.audit import merkle
from exchange.audit.leaves import LeafContents, make_leaf
from exchange.crypto.keys import SigningKey
from exchange.crypto.notes import NoteSignature, NoteSigner
from exchange.store.schema import (
    checkpoints,
    cosignatures,
    feed_events,
    feed_heads,
    log_entries,
    log_subtrees,
    log_tree_head,
)
from tests.e2e.test_cli import GOOD_DRAFT, free_port

BIN = Path(sys.executable).parent
AGENCIES = ("agency-a", "agency-b", "agency-c")
VERIFICATION_FAILED = 3
HEARTBEAT_SECONDS = 0.5
"""Heartbeats come often, so that ``watch`` sees a checkpoint soon."""


def draft_for(audience: list[str]) -> dict[str, Any]:
    """A valid draft whose items go to ``audience``."""
    draft: dict[str, Any] = json.loads(json.dumps(GOOD_DRAFT))
    for item in draft["items"]:
        item["policy"]["audience"] = audience
    return draft


@dataclass
class AuditedExchange:
    """A running hub, its database and the agencies' profiles, driven by the real CLIs."""

    data: Path
    database_url: str
    engine: Engine
    work: Path

    def run(
        self, *args: str, agency: str, expect: int | None = 0
    ) -> subprocess.CompletedProcess[str]:
        command = [str(BIN / "exchange"), "--profile", str(self.data / "agencies" / agency), *args]
        result = subprocess.run(
            command,
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "COLUMNS": "200"},
        )
        if expect is not None:
            assert result.returncode == expect, (
                f"{' '.join(command)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
            )
        return result

    def json(self, *args: str, agency: str, expect: int = 0) -> Any:
        return json.loads(self.run(*args, "--json", agency=agency, expect=expect).stdout)

    def publish(self, agency: str = "agency-a", audience: tuple[str, ...] = ("agency-b",)) -> Any:
        draft = self.work / f"draft-{agency}.json"
        draft.write_text(json.dumps(draft_for(list(audience))))
        return self.json("publish", str(draft), agency=agency)

    def tamper(self, *statements: Any) -> None:
        with self.engine.begin() as connection:
            for statement in statements:
                connection.execute(statement)

    def leaf(self, index: int) -> bytes:
        with self.engine.connect() as connection:
            return bytes(
                connection.execute(
                    select(log_entries.c.leaf).where(log_entries.c.idx == index)
                ).scalar_one()
            )

    def set_profile_audit(self, agency: str, **settings: Any) -> None:
        path = self.data / "agencies" / agency / "profile.toml"
        document = tomllib.loads(path.read_text())
        document["audit"].update(settings)
        path.write_text(tomli_w.dumps(document))


@pytest.fixture
def exchange(tmp_path: Path, database_url: str) -> Iterator[AuditedExchange]:
    data = tmp_path / "exchange"
    port = free_port()
    subprocess.run(
        [
            str(BIN / "exchange-hub"),
            "init",
            str(data),
            *[f"--agency={a}" for a in AGENCIES],
            "--listen",
            f"127.0.0.1:{port}",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    hub_toml = data / "hub.toml"
    hub_config = tomllib.loads(hub_toml.read_text())
    hub_config["feed"]["heartbeat_interval_seconds"] = HEARTBEAT_SECONDS
    hub_toml.write_text(tomli_w.dumps(hub_config))
    hub = subprocess.Popen(
        [
            str(BIN / "exchange-hub"),
            "serve",
            "--config",
            str(data / "hub.toml"),
            "--database",
            database_url,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert hub.stdout is not None
    line = hub.stdout.readline()
    assert line.strip() == f"listening on 127.0.0.1:{port}", hub.stderr.read() if hub.stderr else ""
    engine = create_engine(database_url)
    try:
        yield AuditedExchange(data, database_url, engine, tmp_path)
    finally:
        hub.terminate()
        hub.wait(timeout=30)
        engine.dispose()


def published_alerts(exchange: AuditedExchange, count: int) -> list[int]:
    """Publish ``count`` alerts from agency-a to agency-b; return their log indices."""
    return [exchange.publish()["log_index"] for _ in range(count)]


def failed_verification(exchange: AuditedExchange, agency: str = "agency-b") -> dict[str, Any]:
    report = exchange.json("audit", "verify", agency=agency, expect=VERIFICATION_FAILED)
    assert report["ok"] is False
    first: dict[str, Any] = report["first_failure"]
    return first


def forge_latest_checkpoint(exchange: AuditedExchange) -> None:
    """Replace the hub's latest checkpoint with one whose signature is another key's."""
    with exchange.engine.connect() as connection:
        size, note = connection.execute(
            select(checkpoints.c.size, checkpoints.c.note)
            .order_by(checkpoints.c.size.desc())
            .limit(1)
        ).one()
    body = note[: note.index("\n\n") + 1]
    genuine = NoteSignature.from_line(note[note.index("\n\n") + 2 :].split("\n")[0])
    rogue = NoteSigner(genuine.name, SigningKey.generate().native)
    # The genuine key name and id with another key's signature: only the signature tells.
    forged_signature = NoteSignature.from_line(rogue.signature_line(body)).signature
    forged = body + "\n" + NoteSignature(genuine.name, genuine.key_id, forged_signature).to_line()
    exchange.tamper(
        update(checkpoints).where(checkpoints.c.size == size).values(note=forged + "\n")
    )


# --- the honest log ----------------------------------------------------------------------------------


def test_checkpoint_cosignatures_verify_and_history(exchange: AuditedExchange) -> None:
    receipt = exchange.publish()
    alert_id = receipt["alert_id"]
    seen_by_b = exchange.json("audit", "checkpoint", agency="agency-b")
    raw = exchange.run("audit", "checkpoint", "--raw", agency="agency-a").stdout
    body, signatures = raw.split("\n\n")
    origin, size, _root = body.split("\n")
    assert int(size) == seen_by_b["size"] > receipt["log_index"]
    signers = [line.split(" ")[1] for line in signatures.splitlines()]
    assert signers[0] == origin  # the hub's signature first, exactly as signed
    assert {"agency-a", "agency-b"} <= set(signers[1:])  # the agencies' cosignature lines
    assert all(line.startswith("\u2014 ") for line in signatures.splitlines())
    summary = exchange.json("audit", "checkpoint", agency="agency-a")
    assert {c["name"] for c in summary["cosignatures"] if c["verified"]} == {
        "agency-a",
        "agency-b",
    }
    (exchange.work / "a.note").write_text(raw)
    compared = exchange.json("audit", "compare", str(exchange.work / "a.note"), agency="agency-c")
    assert compared["consistent"] is True

    exchange.run("show", alert_id, agency="agency-b")
    for agency in ("agency-a", "agency-b"):
        report = exchange.json("audit", "verify", agency=agency)
        assert report["ok"] is True and report["first_failure"] is None
        assert report["signatures_verified"] >= 1
    history = exchange.json("audit", "history", alert_id, agency="agency-b")
    publication = history[0]
    assert (publication["kind"], publication["signed_by"], publication["assertion"]) == (
        "publication",
        "agency-a",
        "agency",
    )
    assert publication["index"] == receipt["log_index"]
    deliveries = [entry for entry in history if entry["kind"] == "delivery"]
    assert deliveries and all(entry["assertion"] == "hub" for entry in deliveries)
    assert deliveries[0]["agency"] == "agency-b" and deliveries[0]["signed_by"] is None
    table = exchange.run("audit", "history", alert_id, agency="agency-b").stdout
    assert "signed by agency-a" in table and "the hub's assertion" in table
    assert exchange.json("audit", "history", alert_id, agency="agency-c") == []


def test_required_cosigners_must_have_cosigned_before_the_client_acts(
    exchange: AuditedExchange,
) -> None:
    alert_id = exchange.publish()["alert_id"]  # agency-a cosigns the receipt's checkpoint
    exchange.set_profile_audit("agency-b", require_cosigners=["agency-c"])
    refused = exchange.run("show", alert_id, agency="agency-b", expect=VERIFICATION_FAILED)
    assert "COSIGNATURE_MISSING" in refused.stderr and "agency-c" in refused.stderr
    # That show logged the grant's delivery, in a checkpoint agency-a may not have seen yet
    # (the hub's thread signs it within a second). agency-a's next publish is checkpointed with
    # every leaf before it, and agency-a cosigns that checkpoint.
    exchange.publish()
    exchange.set_profile_audit(
        "agency-b", require_cosigners=["agency-a"], max_cosignature_age_seconds=600
    )
    exchange.run("show", alert_id, agency="agency-b")


# --- tampering behind the hub's back ------------------------------------------------------------------


def change_leaf(exchange: AuditedExchange, index: int) -> None:
    """Replace leaf ``index`` behind the hub's back with one committing to another body."""
    original = LeafContents.decode(exchange.leaf(index))
    forged = make_leaf(original.entry_type, original.logged_at, b"another body", b"s" * 16, [])
    exchange.tamper(
        update(log_entries)
        .where(log_entries.c.idx == index)
        .values(leaf=forged, leaf_hash=merkle.leaf_hash(forged))
    )


def test_a_changed_leaf_is_named(exchange: AuditedExchange) -> None:
    indices = published_alerts(exchange, 3)
    exchange.run("audit", "checkpoint", agency="agency-b")
    target = indices[1]
    change_leaf(exchange, target)
    first = failed_verification(exchange)
    assert (first["reason"], first["index"]) == ("ROOT_MISMATCH", target)
    printed = exchange.run("audit", "verify", agency="agency-b", expect=VERIFICATION_FAILED)
    assert f"entry {target}" in printed.stderr and "ROOT_MISMATCH" in printed.stderr


def test_a_deleted_leaf_is_named(exchange: AuditedExchange) -> None:
    indices = published_alerts(exchange, 3)
    exchange.tamper(delete(log_entries).where(log_entries.c.idx == indices[1]))
    first = failed_verification(exchange)
    assert (first["reason"], first["index"]) == ("LEAF_MISSING", indices[1])


def test_two_swapped_leaves_are_named(exchange: AuditedExchange) -> None:
    indices = published_alerts(exchange, 3)
    first_index, second_index = indices[0], indices[2]
    first_leaf, second_leaf = exchange.leaf(first_index), exchange.leaf(second_index)
    exchange.tamper(
        update(log_entries).where(log_entries.c.idx == first_index).values(leaf=second_leaf),
        update(log_entries).where(log_entries.c.idx == second_index).values(leaf=first_leaf),
    )
    first = failed_verification(exchange, "agency-a")
    assert (first["reason"], first["index"]) == ("ROOT_MISMATCH", first_index)


def test_a_truncated_log_is_named(exchange: AuditedExchange) -> None:
    indices = published_alerts(exchange, 3)
    exchange.tamper(delete(log_entries).where(log_entries.c.idx >= indices[2]))
    first = failed_verification(exchange)
    assert (first["reason"], first["index"]) == ("LOG_TRUNCATED", indices[2])


def test_a_checkpoint_with_a_forged_signature_is_refused(exchange: AuditedExchange) -> None:
    published_alerts(exchange, 2)
    forge_latest_checkpoint(exchange)
    for command in (("audit", "checkpoint"), ("audit", "verify")):
        refused = exchange.json(*command, agency="agency-b", expect=VERIFICATION_FAILED)
        assert refused["reason"] == "SIGNATURE_INVALID"
    printed = exchange.run("audit", "checkpoint", agency="agency-c", expect=VERIFICATION_FAILED)
    assert "SIGNATURE_INVALID" in printed.stderr


def test_a_forged_checkpoint_in_a_heartbeat_stops_watch(exchange: AuditedExchange) -> None:
    published_alerts(exchange, 1)
    exchange.run("watch", "--count", "1", agency="agency-b")  # the one event, processed
    forge_latest_checkpoint(exchange)
    watched = exchange.run(
        "watch",
        "--json",
        "--heartbeats",
        "--count",
        "1",
        agency="agency-b",
        expect=VERIFICATION_FAILED,
    )
    assert "SIGNATURE_INVALID" in watched.stderr


def test_an_event_withheld_from_agency_b_stops_watch(exchange: AuditedExchange) -> None:
    published_alerts(exchange, 3)
    exchange.tamper(
        delete(feed_events).where(
            feed_events.c.agency_id == "agency-b", feed_events.c.sequence == 2
        )
    )
    watched = exchange.run(
        "watch", "--json", "--count", "3", agency="agency-b", expect=VERIFICATION_FAILED
    )
    assert [json.loads(line)["sequence"] for line in watched.stdout.splitlines()] == [1]
    assert "FEED_GAP" in watched.stderr and "feed event 2 is missing" in watched.stderr


def test_an_event_withheld_with_a_lying_heartbeat_shows_in_the_log(
    exchange: AuditedExchange,
) -> None:
    """The hub drops agency-b's later events and states its feed ends at 1: only the log tells."""
    indices = published_alerts(exchange, 3)
    with exchange.engine.connect() as connection:
        second_event = connection.execute(
            select(feed_events.c.log_index).where(
                feed_events.c.agency_id == "agency-b", feed_events.c.sequence == 2
            )
        ).scalar_one()
    exchange.tamper(
        delete(feed_events).where(
            feed_events.c.agency_id == "agency-b", feed_events.c.sequence > 1
        ),
        update(feed_heads).where(feed_heads.c.agency_id == "agency-b").values(last_sequence=1),
    )
    first = failed_verification(exchange)
    assert (first["reason"], first["index"]) == ("FEED_GAP", second_event)
    assert second_event > indices[1]


def test_a_fork_is_caught_by_comparing_checkpoints_out_of_band(
    exchange: AuditedExchange,
) -> None:
    """The hub shows agency-a one history, then rewrites it and shows agency-b another: agency-b
    compares the checkpoint agency-a sent it by mail, and agency-a refuses the rewritten log."""
    indices = published_alerts(exchange, 2)
    note_of_a = exchange.work / "agency-a.note"
    note_of_a.write_text(exchange.run("audit", "checkpoint", "--raw", agency="agency-a").stdout)
    original = LeafContents.decode(exchange.leaf(indices[1]))
    rewritten = make_leaf(original.entry_type, original.logged_at, b"rewritten", b"s" * 16, [])
    exchange.tamper(
        update(log_entries)
        .where(log_entries.c.idx == indices[1])
        .values(leaf=rewritten, leaf_hash=merkle.leaf_hash(rewritten)),
        delete(cosignatures),
        delete(checkpoints),
        delete(log_subtrees),
        update(log_tree_head).values(hashed_size=0),
    )
    exchange.publish("agency-c")  # the hub signs the rewritten history
    forked = exchange.json("audit", "compare", str(note_of_a), agency="agency-b", expect=3)
    assert forked["reason"] == "LOG_INCONSISTENT"
    assert (
        forked["new_root_hash"]
        == json.loads(
            exchange.run("audit", "checkpoint", "--json", agency="agency-a", expect=3).stdout
        )["known_root_hash"]
    )
    printed = exchange.run("audit", "compare", str(note_of_a), agency="agency-b", expect=3)
    assert "FORK" in printed.stderr and str(note_of_a) in printed.stderr
    refused = exchange.run("audit", "checkpoint", agency="agency-a", expect=VERIFICATION_FAILED)
    assert "LOG_INCONSISTENT" in refused.stderr
