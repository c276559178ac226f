"""Private matching against a real hub over mTLS, on SQLite and PostgreSQL: three agencies,
removal, budgets, hits, re-blinding, and what the hub (and its operator) can and cannot learn."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy import MetaData, func, select

from exchange.crypto.encoding import lp
from exchange.crypto.keys import DecryptionKey, EncryptionKey
from exchange.errors import OutdatedKeysError, QuotaExceededError
from exchange.match.blinding import (
    TOKEN_LABEL,
    BlindingKey,
    PairKeys,
    hkdf_sha256,
    pack_tokens,
    unpack_tokens,
)
from exchange.match.index_file import IndexFileError, parse_index_text
from exchange.match.selectors import parse_selector
from exchange.store.schema import metadata as hub_metadata
from exchange.v1 import match_pb2, match_pb2_grpc
from exchange_client import Client, Profile
from tests.conftest import FrozenClock
from tests.integration.agency import channel_for

SELECTORS = [
    "iban:GB82WEST12345698765432",
    "container:CSQU3054383",
    "company:91310000MA1FL4TR8R",
    "wallet:TLsV52sRDL79HXGGm9yzwKibb6BeruhUzy",
    "person:Zhang Wei:1980-03-15",
    "phone:+86 138 0013 8000",
]


def index_file(*selectors: str, note: str = "case 17") -> list:  # type: ignore[type-arg]
    text = "kind,value,note\n" + "".join(
        f'{s.split(":", 1)[0]},"{s.split(":", 1)[1]}",{note}\n' for s in selectors
    )
    return parse_index_text(text)


@pytest.fixture
def clients(
    hub: object, exchange_dir: Path, tmp_path: Path, clock: FrozenClock
) -> Iterator[Callable[..., Client]]:
    opened: list[Client] = []

    def client_for(agency: str, **replace: object) -> Client:
        profile = dataclasses.replace(
            Profile.load(exchange_dir / "agencies" / agency),
            state_dir=tmp_path / agency,
            **replace,
        )
        client = Client(profile, hub=f"127.0.0.1:{hub.port}", clock=clock)  # type: ignore[attr-defined]
        opened.append(client)
        return client

    yield client_for
    for client in opened:
        client.close()


def results(client: Client, partner: str, *selectors: str) -> list[str]:
    asked = [parse_selector(s) for s in selectors]
    return [
        "hit" if r.hit else "no-hit" for r in client.matching.query(partner, asked)
    ]


def test_a_query_hits_the_holders_entry_and_misses_an_entry_made_for_another_partner(
    clients: Callable[..., Client],
) -> None:
    a, b, c = clients("agency-a"), clients("agency-b"), clients("agency-c")
    b.matching.add(index_file(SELECTORS[0], SELECTORS[1]))  # every partner: a and c
    c.matching.add(index_file(SELECTORS[0]), partners=["agency-b"])  # for b only

    assert results(a, "agency-b", SELECTORS[0], "iban:DE89370400440532013000", SELECTORS[1]) == [
        "hit",
        "no-hit",
        "hit",
    ]
    assert results(a, "agency-c", SELECTORS[0]) == ["no-hit"]
    assert results(b, "agency-c", SELECTORS[0]) == ["hit"]
    # Two spellings of one identifier are one selector, so one token.
    assert results(a, "agency-b", "iban:GB82 WEST 1234 5698 7654 32") == ["hit"]


def test_the_holder_learns_which_entries_were_hit_and_nothing_else(
    clients: Callable[..., Client],
) -> None:
    a, b = clients("agency-a"), clients("agency-b")
    b.matching.add(index_file(*SELECTORS[:3]), partners=["agency-a"])
    results(a, "agency-b", SELECTORS[1], "container:MSCU1234566", "imo:9319466")

    reports = b.matching.hits()
    assert len(reports) == 1
    assert reports[0].querier == "agency-a"
    assert [str(e.selector) for e in reports[0].entries] == ["container:CSQU3054383"]
    assert reports[0].entries[0].note == "case 17"
    assert reports[0].unknown == 0
    assert b.matching.hits() == []  # the cursor moved on
    assert len(b.matching.hits(include_seen=True)) == 1
    # The querier is told nothing of the holder's hits list.
    assert a.matching.hits() == []


def test_removing_an_entry_removes_its_tokens_from_the_hub(clients: Callable[..., Client]) -> None:
    a, b = clients("agency-a"), clients("agency-b")
    b.matching.add(index_file(SELECTORS[0], SELECTORS[2]))
    assert results(a, "agency-b", SELECTORS[0], SELECTORS[2]) == ["hit", "hit"]

    change = b.matching.remove([parse_selector(SELECTORS[0])])
    assert change.totals == {"agency-a": 1, "agency-c": 1}
    assert results(a, "agency-b", SELECTORS[0], SELECTORS[2]) == ["no-hit", "hit"]
    assert [str(e.selector) for e in b.matching.entries()] == ["company:cn-uscc:91310000MA1FL4TR8R"]

    # Removing for one partner only keeps the entry for the others.
    b.matching.remove([parse_selector(SELECTORS[2])], partners=["agency-a"])
    assert results(a, "agency-b", SELECTORS[2]) == ["no-hit"]
    assert results(clients("agency-c"), "agency-b", SELECTORS[2]) == ["hit"]
    assert b.matching.entries()[0].partners == ("agency-c",)


def test_a_query_over_the_holders_budget_is_refused_and_changes_nothing(
    clients: Callable[..., Client], hub: object, clock: FrozenClock
) -> None:
    a, b = clients("agency-a"), clients("agency-b")
    b.matching.add(index_file(SELECTORS[0]))
    b.matching.set_policy(default_daily_budget=100, budgets={"agency-a": 3})
    assert results(a, "agency-b", SELECTORS[0], SELECTORS[1]) == ["hit", "no-hit"]

    before = row_counts(hub)
    with pytest.raises(QuotaExceededError) as refused:
        results(a, "agency-b", SELECTORS[2], SELECTORS[3])
    assert refused.value.reason == "MATCH_BUDGET_EXHAUSTED"
    assert "1 left today" in refused.value.message
    assert row_counts(hub) == before

    assert results(a, "agency-b", SELECTORS[2]) == ["no-hit"]  # the last one left fits
    registry = hub.metrics.registry  # type: ignore[attr-defined]
    assert registry.get_sample_value("exchange_match_queries_total") == 2
    assert registry.get_sample_value("exchange_match_selectors_queried_total") == 3
    assert registry.get_sample_value("exchange_match_hits_total") == 1
    assert registry.get_sample_value("exchange_match_burst_queries_total") == 2
    assert registry.get_sample_value(
        "exchange_refusals_total", {"reason": "MATCH_BUDGET_EXHAUSTED"}
    ) == 1
    clock.advance(days=1)
    assert results(a, "agency-b", SELECTORS[2], SELECTORS[3]) == ["no-hit", "no-hit"]

    stats = b.matching.stats()
    received = [d for d in stats.days if d.direction == "received"]
    assert [(d.partner, d.queries, d.selectors, d.hits, d.daily_budget, d.budget_left) for d in received] == [
        ("agency-a", 1, 2, 0, 3, 1),
        ("agency-a", 2, 3, 1, 3, 0),
    ]
    assert all(d.burst for d in received)  # a third of the budget within a minute
    made = a.matching.stats().days
    assert [(d.partner, d.direction, d.selectors) for d in made] == [
        ("agency-b", "made", 2),
        ("agency-b", "made", 3),
    ]


def test_every_query_and_every_hit_is_a_log_entry_with_counts_and_digests_only(
    clients: Callable[..., Client], hub: object
) -> None:
    a, b = clients("agency-a"), clients("agency-b")
    b.matching.add(index_file(SELECTORS[0]))
    results(a, "agency-b", SELECTORS[0], SELECTORS[1])
    results(a, "agency-b", SELECTORS[1])
    with hub.db.read() as connection:  # type: ignore[attr-defined]
        entries = hub_rows(connection, "log_entries")
    bodies = {e["entry_type"]: [] for e in entries}
    for entry in entries:
        bodies[entry["entry_type"]].append(entry)
    queries = [match_pb2.MatchQueryRecord.FromString(e["body"]) for e in bodies["match_query"]]
    assert [(q.querier, q.holder, q.selectors, q.hits) for q in queries] == [
        ("agency-a", "agency-b", 2, 1),
        ("agency-a", "agency-b", 1, 0),
    ]
    (hit,) = [match_pb2.MatchHitRecord.FromString(e["body"]) for e in bodies["match_hit"]]
    assert len(unpack_tokens(hit.token_digests)) == 1
    assert all(e["entitled"] == "agency-a agency-b" for e in bodies["match_query"])
    # Both agencies replay the log with these entries and their bodies (the policy signed too).
    b.matching.set_policy(default_daily_budget=10, budgets={})
    hub.checkpoint_now()  # type: ignore[attr-defined]
    for client in (a, b):
        report = client.auditor.verify()
        assert report.ok, report.failures


def test_reblinding_after_a_partners_new_encryption_key(
    clients: Callable[..., Client], hub: object, exchange_dir: Path, clock: FrozenClock
) -> None:
    a, b = clients("agency-a"), clients("agency-b")
    b.matching.add(index_file(SELECTORS[0], SELECTORS[1]))
    assert results(a, "agency-b", SELECTORS[0]) == ["hit"]

    new_key = rotate_encryption_key(hub, exchange_dir, "agency-a", clock)
    a2 = clients("agency-a", decryption_key=new_key)
    with pytest.raises(OutdatedKeysError) as stale:
        results(a2, "agency-b", SELECTORS[0])
    assert stale.value.reason == "MATCH_INDEX_STALE"
    assert {i.partner: i.stale for i in b.matching.stats().indexes} == {
        "agency-a": True,
        "agency-c": False,
    }

    b2 = clients("agency-b")
    change = b2.matching.reblind()
    assert change.reblinded == ("agency-a",)
    assert change.totals == {"agency-a": 2}
    assert results(a2, "agency-b", SELECTORS[0], SELECTORS[2]) == ["hit", "no-hit"]
    results(a2, "agency-b", SELECTORS[1])
    # The hit before re-blinding was on a token digest the index no longer holds.
    assert [([str(e.selector) for e in r.entries], r.unknown) for r in b2.matching.hits()] == [
        ([], 1),
        (["iban:GB82WEST12345698765432"], 0),
        (["container:CSQU3054383"], 0),
    ]
    assert b2.matching.reblind().reblinded == ()


def test_a_broken_index_file_indexes_nothing_locally_or_on_the_hub(
    clients: Callable[..., Client], hub: object
) -> None:
    b = clients("agency-b")
    with pytest.raises(IndexFileError) as raised:
        parse_index_text("kind,value\niban,GB82WEST12345698765432\ncontainer,MSCU1234565\n")
    assert [str(v) for v in raised.value.violations] == [
        "row 3: value: container:MSCU1234565: check digit is 5, expected 6"
    ]
    assert b.matching.entries() == []
    assert row_counts(hub)["match_tokens"] == 0


def test_a_token_update_that_fails_midway_stores_nothing(
    clients: Callable[..., Client], hub: object, exchange_dir: Path
) -> None:
    b = clients("agency-b")
    b.matching.add(index_file(SELECTORS[0]))
    before = row_counts(hub)
    stub, key = raw_stub(hub, exchange_dir, "agency-b"), blinding(b, "agency-a")
    good = match_pb2.UpdateTokensRequest(
        partner="agency-a",
        holder_key_id=key.pair.holder_key_id,
        querier_key_id=key.pair.querier_key_id,
        add=pack_tokens([bytes([n]) * 32 for n in range(5)]),
    )
    torn = match_pb2.UpdateTokensRequest(partner="agency-a", holder_key_id=key.pair.holder_key_id,
                                 querier_key_id=key.pair.querier_key_id, add=b"x" * 33)
    with pytest.raises(grpc.RpcError) as raised:
        stub.UpdateTokens(iter([good, torn]), timeout=10)
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "whole number" in (raised.value.details() or "")
    assert row_counts(hub) == before


def test_the_database_holds_no_selector_in_plaintext(
    clients: Callable[..., Client], hub: object
) -> None:
    a, b, c = clients("agency-a"), clients("agency-b"), clients("agency-c")
    b.matching.add(index_file(*SELECTORS, note="informant HUANG"))
    c.matching.add(index_file(*SELECTORS[:3]), partners=["agency-b"])
    results(a, "agency-b", *SELECTORS[:4])
    b.matching.set_policy(default_daily_budget=500, budgets={})
    b.matching.hits()
    needles = set()
    for text in SELECTORS:
        selector = parse_selector(text)
        needles |= {str(selector), selector.value, text.split(":", 1)[1]}
        # The identifier part alone (an address without its chain, a name without the date).
        needles |= {part for part in selector.value.split(":") if len(part) >= 6}
    needles.add("informant HUANG")
    found = []
    with hub.db.read() as connection:  # type: ignore[attr-defined]
        for table in hub_metadata.sorted_tables:
            for row in hub_rows(connection, table.name):
                for column, value in row.items():
                    data = value if isinstance(value, bytes) else str(value).encode()
                    for needle in needles:
                        if needle.encode() in data or needle.lower().encode() in data.lower():
                            found.append((table.name, column, needle))
    assert found == []
    assert row_counts(hub)["match_tokens"] == 6 * 2 + 3  # the scan did see tokens


def test_the_hub_operator_cannot_confirm_a_guessed_selector(
    clients: Callable[..., Client], hub: object, exchange_dir: Path
) -> None:
    """The operator holds the whole database, the hub's TLS and checkpoint keys and every
    agency's public keys; it guesses the right selector and tries every key it can make."""
    b = clients("agency-b")
    b.matching.add(index_file(SELECTORS[0]), partners=["agency-a"])
    with hub.db.read() as connection:  # type: ignore[attr-defined]
        stored = {bytes(r["token"]) for r in hub_rows(connection, "match_tokens")}
        index = hub_rows(connection, "match_indexes")[0]
    assert len(stored) == 1
    guess = parse_selector(SELECTORS[0])
    pair = PairKeys("agency-b", index["holder_key_id"], "agency-a", index["querier_key_id"])
    public = {
        agency: raw_public(exchange_dir / "registry" / agency / "encryption.pem")
        for agency in ("agency-a", "agency-b")
    }
    hub_dir = exchange_dir / "hub"
    hub_secrets = [path.read_bytes() for path in sorted(hub_dir.glob("*key*.pem"))]
    assert hub_secrets, "the operator's key files were found"

    candidates: list[bytes] = []
    ikms = [public["agency-a"], public["agency-b"], public["agency-a"] + public["agency-b"],
            public["agency-b"] + public["agency-a"], b"", *hub_secrets]
    for secret in hub_secrets:
        # An X25519 key of the operator's own (from each secret it holds) against both
        # agencies' public keys.
        own = DecryptionKey(_x25519_from_secret(secret))
        ikms += [own.native.exchange(EncryptionKey.from_bytes(public[agency]).native)
                 for agency in public]
    for ikm in ikms:
        key = hkdf_sha256(ikm, salt=None, info=pair.info(), length=32)
        candidates.append(BlindingKey(key, pair).token(guess))
        candidates.append(hmac.digest(ikm or b"\0", lp(TOKEN_LABEL, guess.encode()), "sha256"))
    candidates.append(hashlib.sha256(guess.encode()).digest())
    candidates.append(hashlib.sha256(str(guess).encode()).digest())
    assert not stored & set(candidates)

    # Control: with agency-b's private key (which the hub never has) the guess is confirmed.
    real = BlindingKey.derive("agency-b", b.profile.decryption_key, "agency-a",
                              EncryptionKey.from_bytes(public["agency-a"]), own_role="holder")
    assert real.token(guess) in stored


# --- helpers -----------------------------------------------------------------------------------


def hub_rows(connection: object, table: str) -> list[dict[str, object]]:
    reflected = MetaData()
    reflected.reflect(bind=connection.engine if hasattr(connection, "engine") else connection)  # type: ignore[attr-defined]
    rows = connection.execute(select(reflected.tables[table]))  # type: ignore[attr-defined]
    return [dict(row._mapping) for row in rows]


# What the hub's checkpointer writes in the background as it catches up with entries logged
# earlier; a refused call adds no log leaf, and the leaves are counted.
BACKGROUND_TABLES = frozenset({"checkpoints", "log_subtrees"})


def row_counts(hub: object) -> dict[str, int]:
    with hub.db.read() as connection:  # type: ignore[attr-defined]
        return {
            table.name: int(connection.execute(select(func.count()).select_from(table)).scalar_one())
            for table in hub_metadata.sorted_tables
            if table.name not in BACKGROUND_TABLES
        }


def raw_public(certificate: Path) -> bytes:
    from cryptography import x509

    key = x509.load_pem_x509_certificate(certificate.read_bytes()).public_key()
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _x25519_from_secret(secret: bytes):  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives.asymmetric import x25519

    return x25519.X25519PrivateKey.from_private_bytes(hashlib.sha256(secret).digest())


def raw_stub(hub: object, exchange_dir: Path, agency: str) -> match_pb2_grpc.MatchServiceStub:
    profile = Profile.load(exchange_dir / "agencies" / agency)
    channel = channel_for(hub.port, key=profile.tls_key_pem, cert=profile.tls_certificate_pem,  # type: ignore[attr-defined]
                          root=profile.hub_ca_certificate_pem)
    return match_pb2_grpc.MatchServiceStub(channel)


def blinding(client: Client, partner: str) -> BlindingKey:
    keys = client._partners.recipient_keys([partner])
    return BlindingKey.derive(client.profile.agency_id, client.profile.decryption_key, partner,
                              keys[partner], own_role="holder")


def rotate_encryption_key(
    hub: object, exchange_dir: Path, agency: str, clock: FrozenClock
) -> DecryptionKey:
    """Give ``agency`` a new encryption key at the store level (key rotation has no command
    yet): a certificate from its CA and an AgencyKeys statement number 2, registered."""
    from exchange import pki
    from exchange.config.profile import load_profile
    from exchange.statements.agency_keys import AgencyKeys
    from exchange.store import registry

    profile = load_profile(exchange_dir / "agencies" / agency)
    ca_key = pki.load_tls_private_key_pem(profile.config.paths.ca_key.read_bytes())
    new_key = DecryptionKey.generate()
    # Past statement 1, made at init within this second (the frozen clock has whole seconds, a
    # statement dated before its predecessor is refused as a rollback).
    clock.advance(seconds=1)
    now = clock()
    certificate = pki.issue_key_certificate(
        ca_key, profile.ca_certificate, agency, new_key.public_key.native, "encryption", now=now
    )
    envelope = AgencyKeys.create_rotation(
        AgencyKeys.verify(profile.keys_envelope, profile.ca_certificate, now=now),
        previous_signing_key=profile.signing_key,
        signing_key=profile.signing_key,
        ca_key=ca_key,
        ca_certificate=profile.ca_certificate,
        signing_certificate=profile.signing_certificate,
        encryption_certificate=certificate,
        witness_certificate=profile.witness_certificate,
        created_at=now,
    )
    keys = AgencyKeys.verify(envelope, profile.ca_certificate, now=now)
    with hub.db.write() as connection:  # type: ignore[attr-defined]
        registry.register_agency(
            connection, ca_certificate=profile.ca_certificate, keys=keys, now=now
        )
    hub.directory.refresh()  # type: ignore[attr-defined]
    return new_key


def test_an_unknown_partner_is_named(clients: Callable[..., Client]) -> None:
    from exchange.errors import NotFoundError

    b = clients("agency-b")
    with pytest.raises(NotFoundError, match="no verified, unrevoked partner 'agency-z'"):
        b.matching.add(index_file(SELECTORS[0]), partners=["agency-z"])
    with pytest.raises(NotFoundError, match="'agency-z'"):
        results(b, "agency-z", SELECTORS[0])
    assert b.matching.entries() == []
