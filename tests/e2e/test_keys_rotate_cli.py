"""`exchange keys rotate`: the real CLI in a subprocess against a real hub (SQLite, PostgreSQL).

Every key kind is rotated while the agencies keep exchanging: old alerts stay readable through
the retired encryption key, a held item is granted to the recipient's new key, partners follow
the rotation. Bad input leaves the profile as it was.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from exchange import pki
from exchange.crypto.keys import SigningKey
from tests.e2e.test_cli import GOOD_DRAFT, Exchange, exchange, write_draft  # noqa: F401

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_PERMITTED = 4


def items_of(shown: object) -> dict[str, dict[str, object]]:
    assert isinstance(shown, dict)
    return {item["id"]: item for item in shown["items"]}


def profile_of(exchange: Exchange, agency: str) -> Path:  # noqa: F811
    return exchange.data / "agencies" / agency


def snapshot(profile: Path) -> dict[str, str]:
    """Every file of the profile but its client state, by name, as a hash."""
    return {
        str(path.relative_to(profile)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(profile.rglob("*"))
        if path.is_file() and "state" not in path.relative_to(profile).parts
        and path.name != "rotate.lock"
    }


def rotate(exchange: Exchange, agency: str, *flags: str, expect: int = 0) -> dict[str, object]:  # noqa: F811
    result = exchange.run("keys", "rotate", *flags, "--json", agency=agency, expect=expect)
    return json.loads(result.stdout) if expect == 0 else {"stderr": result.stderr}


@pytest.mark.slow
def test_every_key_kind_rotated_while_exchanging(exchange: Exchange, tmp_path: Path) -> None:  # noqa: F811
    draft = write_draft(tmp_path / "draft.json", GOOD_DRAFT)
    first = exchange.json("publish", str(draft), agency="agency-a")["alert_id"]  # type: ignore[index]
    request = exchange.json("request", first, "source-note", "--reason", "court order",
                            agency="agency-b")
    assert isinstance(request, dict)

    # The recipient rotates its encryption key: what was wrapped to the old one stays readable.
    rotated_b = rotate(exchange, "agency-b", "--encryption")
    assert rotated_b["kinds"] == ["encryption"]
    assert rotated_b["key_number"] == 2 and rotated_b["published"] is True
    retired = [Path(str(p)) for p in rotated_b["retired"]]  # type: ignore[attr-defined]
    assert {p.name for p in retired} == {"encryption-key-1.pem", "encryption-1.pem"}
    assert all(p.exists() for p in retired)
    assert oct(retired[0].stat().st_mode & 0o777) == "0o600"
    assert not (profile_of(exchange, "agency-b") / "rotation").exists()
    assert items_of(exchange.json("show", first, agency="agency-b"))["shipment"]["status"] == (
        "VISIBLE"
    )

    # Feedback is wrapped to the originator's key of the time: its old one, once it rotates.
    exchange.run("feedback", first, "--outcome", "SEIZED", "--note", "at Manzanillo",
                 agency="agency-b")

    # The originator rotates everything; its own grant of the held item is to its old key.
    rotated_a = rotate(exchange, "agency-a", "--all", "--tls-days", "60", "--key-days", "200")
    assert rotated_a["kinds"] == ["signing", "encryption", "witness", "tls"]
    assert rotated_a["key_number"] == 2
    expires = rotated_a["expires"]
    assert isinstance(expires, dict)
    now = datetime.now(UTC)
    tls_until = datetime.fromisoformat(expires["tls"])
    assert timedelta(days=59) < tls_until - now <= timedelta(days=60)
    signing_until = datetime.fromisoformat(expires["signing"])
    assert timedelta(days=199) < signing_until - now <= timedelta(days=200)

    # The held item is granted after the recipient rotated: wrapped to its new key.
    approved = exchange.json("approve", request["request_id"], agency="agency-a")
    assert approved["outcome"] == "APPROVED"  # type: ignore[index]
    note = items_of(exchange.json("show", first, agency="agency-b"))["source-note"]
    assert note["status"] == "VISIBLE", note

    records = exchange.json("receipts", first, agency="agency-a")
    assert isinstance(records, list)
    (fed,) = [r for r in records if r["kind"] == "FEEDBACK"]
    assert (fed["outcome"], fed["note"]) == ("SEIZED", "at Manzanillo")

    # New alerts, signed by the new key, sealed to the new one.
    second = exchange.json("publish", str(draft), agency="agency-a")["alert_id"]  # type: ignore[index]
    assert items_of(exchange.json("show", second, agency="agency-b"))["shipment"]["status"] == (
        "VISIBLE"
    )
    assert items_of(exchange.json("show", first, agency="agency-b"))["shipment"]["status"] == (
        "VISIBLE"
    )
    # agency-b publishes to agency-a, which reads it with its new encryption key.
    back = write_draft(tmp_path / "back.json", {
        **GOOD_DRAFT,
        "items": [{**GOOD_DRAFT["items"][0], "policy": {  # type: ignore[index, dict-item]
            **GOOD_DRAFT["items"][0]["policy"], "audience": ["agency-a"]}}],  # type: ignore[index]
    })
    third = exchange.json("publish", str(back), agency="agency-b")["alert_id"]  # type: ignore[index]
    assert items_of(exchange.json("show", third, agency="agency-a"))["shipment"]["status"] == (
        "VISIBLE"
    )

    # Partners follow: agency-c sees statement 2 of agency-a, signed as the rules require.
    shown = exchange.json("keys", "show", "--agency", "agency-a", agency="agency-c")
    assert isinstance(shown, list)
    assert [s["key_number"] for s in shown] == [1, 2]
    assert shown[1]["current"] is True
    assert set(shown[1]["signed_by"]) == {"CA", "own signing key", "signing key of statement 1"}
    assert shown[1]["signing_key_fingerprint"] == rotated_a["fingerprints"]["signing"]  # type: ignore[index]
    agencies = exchange.json("agencies", agency="agency-c")
    assert isinstance(agencies, list)
    by_id = {a["agency_id"]: a for a in agencies}
    assert by_id["agency-a"]["key_number"] == 2 and by_id["agency-b"]["key_number"] == 2
    status = exchange.run("keys", "status", agency="agency-a")
    assert status.returncode == 0, status.stderr

    # TLS alone publishes nothing and the hub takes the new certificate.
    tls_only = rotate(exchange, "agency-b", "--tls")
    assert tls_only["published"] is False and tls_only["key_number"] == 2
    assert exchange.json("inbox", agency="agency-b")


@pytest.mark.parametrize(
    "flags", [("--tls",), ("--tls", "--signing")], ids=["tls alone", "tls with signing"]
)
def test_an_expired_tls_certificate_is_refused_and_rotate_tls_fixes_it(
    exchange: Exchange, flags: tuple[str, ...]  # noqa: F811
) -> None:
    profile = profile_of(exchange, "agency-b")
    ca = x509.load_pem_x509_certificate((profile / "ca.pem").read_bytes())
    ca_key = pki.load_tls_private_key_pem((profile / "ca-key.pem").read_bytes())
    key = pki.generate_tls_key()
    # Valid for two minutes from the CA's start (five minutes before init): expired since.
    start = ca.not_valid_before_utc
    assert start + timedelta(minutes=2) < datetime.now(UTC)
    expired = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "agency-b tls")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(minutes=2))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier("exchange://agency/agency-b")]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    (profile / "tls.pem").write_bytes(pki.certificate_to_pem(expired))
    (profile / "tls-key.pem").write_bytes(pki.private_key_to_pem(key))

    refused = exchange.run("inbox", agency="agency-b", expect=None)
    assert refused.returncode != 0
    assert "tls.pem" in refused.stderr and "expired" in refused.stderr
    assert "exchange keys rotate --tls" in refused.stderr
    status = exchange.run("keys", "status", agency="agency-b", expect=1)
    assert "exchange keys rotate --tls" in status.stderr

    before = snapshot(profile)
    signing = rotate(exchange, "agency-b", "--signing", expect=EXIT_ERROR)
    assert "exchange keys rotate --tls --signing" in str(signing["stderr"])
    assert snapshot(profile) == before

    # With other keys, the statement goes to the hub over the new certificate.
    rotated = rotate(exchange, "agency-b", *flags)
    assert rotated["kinds"] == [flag.removeprefix("--") for flag in reversed(flags)]
    assert rotated["key_number"] == len(flags)
    assert exchange.run("inbox", agency="agency-b").returncode == 0
    exchange.run("keys", "status", agency="agency-b")


def test_rotate_without_a_kind_says_what_to_pass(exchange: Exchange) -> None:  # noqa: F811
    before = snapshot(profile_of(exchange, "agency-a"))
    result = exchange.run("keys", "rotate", agency="agency-a", expect=EXIT_USAGE)
    for flag in ("--signing", "--encryption", "--witness", "--tls", "--all"):
        assert flag in result.stderr
    assert snapshot(profile_of(exchange, "agency-a")) == before


def test_a_rotation_while_another_is_in_progress_is_refused(exchange: Exchange) -> None:  # noqa: F811
    profile = profile_of(exchange, "agency-a")
    before = snapshot(profile)
    descriptor = os.open(profile / "rotate.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        result = rotate(exchange, "agency-a", "--signing", expect=EXIT_ERROR)
        # A revocation takes the same lock: one key change of a profile at a time.
        revoked = exchange.run(
            "keys", "revoke", "--compromised", "--since", "2026-01-01T00:00:00Z", "--signing",
            agency="agency-a", expect=EXIT_ERROR,
        )
    finally:
        os.close(descriptor)
    for refused in (str(result["stderr"]), revoked.stderr):
        assert "another key change (rotate, revoke or recover) of this profile" in refused
        assert "rotate.lock" in refused
    assert snapshot(profile) == before
    assert rotate(exchange, "agency-a", "--signing")["key_number"] == 2  # the lock is free now


def test_a_profile_whose_key_files_do_not_match_its_statement_is_refused(
    exchange: Exchange,  # noqa: F811
) -> None:
    profile = profile_of(exchange, "agency-a")
    # A signing key and certificate that belong together and to the CA, but no statement names.
    ca = x509.load_pem_x509_certificate((profile / "ca.pem").read_bytes())
    ca_key = pki.load_tls_private_key_pem((profile / "ca-key.pem").read_bytes())
    stray = SigningKey.generate()
    certificate = pki.issue_key_certificate(
        ca_key, ca, "agency-a", stray.public_key.native, "signing"
    )
    (profile / "signing.pem").write_bytes(pki.certificate_to_pem(certificate))
    (profile / "signing-key.pem").write_bytes(stray.to_pem())
    before = snapshot(profile)
    result = rotate(exchange, "agency-a", "--encryption", expect=EXIT_ERROR)
    assert "signing.pem is not the certificate key statement 1" in str(result["stderr"])
    assert "restore" in str(result["stderr"])
    assert snapshot(profile) == before


def test_a_lost_answer_leaves_the_rotation_pending_and_a_retry_finishes_it(
    exchange: Exchange, dead_hub: str  # noqa: F811
) -> None:
    profile = profile_of(exchange, "agency-b")
    before = snapshot(profile)
    lost = exchange.run("--hub", dead_hub, "keys", "rotate", "--encryption", agency="agency-b",
                        expect=EXIT_ERROR)
    assert "run `exchange keys rotate` again" in lost.stderr
    assert (profile / "rotation").is_dir()
    unchanged = snapshot(profile)
    assert {k: v for k, v in unchanged.items() if not k.startswith("rotation/")} == before
    # The retry sends the same statement (so a hub that did take it answers alike) and moves on.
    finished = rotate(exchange, "agency-b", "--signing")
    assert finished["resumed"] is True and finished["kinds"] == ["encryption"]
    assert finished["key_number"] == 2
    assert not (profile / "rotation").exists()
    again = rotate(exchange, "agency-b", "--signing")
    assert again["resumed"] is False and again["key_number"] == 3


def test_a_refused_rotation_leaves_the_profile_as_it_was(exchange: Exchange, tmp_path: Path) -> None:  # noqa: F811
    profile = profile_of(exchange, "agency-a")
    backup = tmp_path / "backup"
    shutil.copytree(profile, backup)
    assert rotate(exchange, "agency-a", "--signing")["key_number"] == 2
    # An old copy of the profile: its files match its statement 1, the hub holds statement 2.
    shutil.rmtree(profile)
    shutil.copytree(backup, profile)
    before = snapshot(profile)
    result = rotate(exchange, "agency-a", "--encryption", expect=EXIT_ERROR)
    assert "already has key statement 2" in str(result["stderr"])
    assert "restore the profile from the backup" in str(result["stderr"])
    assert not (profile / "rotation").exists()
    assert snapshot(profile) == before


def test_a_profile_without_its_ca_key_cannot_rotate(exchange: Exchange, tmp_path: Path) -> None:  # noqa: F811
    profile = profile_of(exchange, "agency-a")
    (profile / "ca-key.pem").rename(tmp_path / "ca-key.pem")  # kept offline
    before = snapshot(profile)
    result = rotate(exchange, "agency-a", "--tls", expect=EXIT_ERROR)
    assert "ca-key.pem: missing" in str(result["stderr"])
    assert "kept offline" in str(result["stderr"])
    assert snapshot(profile) == before
