"""The signed cooperation summary: built, bundled with the signer's keys, verified by a partner
against the signer's CA and the hub's checkpoint key; tampering with any part fails."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from exchange.audit.merkle import EMPTY_ROOT
from exchange.config.profile import load_profile
from exchange.crypto.keys import SigningKey
from exchange.crypto.notes import Checkpoint, NoteSigner, sign_note
from exchange.errors import MalformedError, SignatureError, UnknownKeyError, VerificationError
from exchange.statements.cooperation import CooperationBundle, CooperationStatement
from exchange.v1 import statements_pb2

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
LOG = NoteSigner("exchange.test/log", bytes(range(32)))
ROOT = bytes(range(32))


def summary(**overrides: object) -> statements_pb2.CooperationSummary:
    note = sign_note(Checkpoint("exchange.test/log", 12, ROOT).to_text(), [LOG])
    message = statements_pb2.CooperationSummary(
        agency="agency-a",
        partners=["agency-b"],
        checkpoint=note,
        checkpoint_size=12,
        checkpoint_root_hash=ROOT,
        figures=[
            statements_pb2.CooperationFigure(
                metric="alerts", from_agency="agency-a", to_agency="agency-b",
                detail="SHIPMENT", value=2, unit="count", log_indices=[3, 7],
            )
        ],
    )
    message.as_of.FromDatetime(NOW)
    message.created_at.FromDatetime(NOW)
    for name, value in overrides.items():
        if isinstance(value, list):
            field = getattr(message, name)
            del field[:]
            field.extend(value)
        else:
            setattr(message, name, value)
    return message


@pytest.fixture(scope="module")
def signed(exchange_dir: Path) -> tuple[bytes, object]:
    profile = load_profile(exchange_dir / "agencies" / "agency-a")
    statement = CooperationStatement.sign(summary(), profile.signing_key)
    return CooperationBundle.encode(statement, profile.keys_envelope), profile


def partner_view(exchange_dir: Path) -> dict[str, object]:
    b = load_profile(exchange_dir / "agencies" / "agency-b")
    return {"partner_cas": b.partner_cas, "log_verifier": LOG.verifier(), "now": datetime.now(UTC)}


def test_a_partner_verifies_the_bundle_against_the_signers_ca_and_the_hubs_checkpoint_key(
    exchange_dir: Path, signed: tuple[bytes, object]
) -> None:
    bundle = CooperationBundle.verify(signed[0], **partner_view(exchange_dir))  # type: ignore[arg-type]
    assert bundle.statement.signer == "agency-a"
    assert bundle.signer_keys.agency_id == "agency-a"
    assert [f.log_indices for f in bundle.statement.message.figures] == [[3, 7]]


def test_a_changed_figure_or_a_forged_signature_fails_with_a_verification_error(
    exchange_dir: Path, signed: tuple[bytes, object]
) -> None:
    document = json.loads(signed[0])
    forged = CooperationStatement.sign(summary(figures=[]), SigningKey.generate())
    document["statement"] = json.loads(forged.envelope.to_json())
    with pytest.raises(UnknownKeyError, match="not signed by any trusted key"):
        CooperationBundle.verify(json.dumps(document).encode(), **partner_view(exchange_dir))  # type: ignore[arg-type]
    document = json.loads(signed[0])
    document["statement"]["signatures"][0]["sig"] = "A" * 86 + "=="
    with pytest.raises(SignatureError):
        CooperationBundle.verify(json.dumps(document).encode(), **partner_view(exchange_dir))  # type: ignore[arg-type]
    document = json.loads(signed[0])
    document["statement"]["payload"] = document["statement"]["payload"][:-8] + "AAAAAAA="
    with pytest.raises(VerificationError):
        CooperationBundle.verify(json.dumps(document).encode(), **partner_view(exchange_dir))  # type: ignore[arg-type]


def test_a_checkpoint_not_signed_by_the_hub_or_not_the_one_named_fails(exchange_dir: Path) -> None:
    profile = load_profile(exchange_dir / "agencies" / "agency-a")
    rogue = NoteSigner("exchange.test/log", bytes(32))
    bad_note = sign_note(Checkpoint("exchange.test/log", 12, ROOT).to_text(), [rogue])
    other_size = sign_note(Checkpoint("exchange.test/log", 13, ROOT).to_text(), [LOG])
    for note in (bad_note, other_size):
        statement = CooperationStatement.sign(summary(checkpoint=note), profile.signing_key)
        data = CooperationBundle.encode(statement, profile.keys_envelope)
        with pytest.raises(VerificationError):
            CooperationBundle.verify(data, **partner_view(exchange_dir))  # type: ignore[arg-type]


def test_a_signer_without_a_ca_in_the_profile_is_no_partner(
    exchange_dir: Path, signed: tuple[bytes, object]
) -> None:
    view = partner_view(exchange_dir)
    view["partner_cas"] = {}
    with pytest.raises(UnknownKeyError, match="not a partner"):
        CooperationBundle.verify(signed[0], **view)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"partners": []}, id="no partner"),
        pytest.param({"partners": ["agency-a"]}, id="itself as a partner"),
        pytest.param({"checkpoint_root_hash": EMPTY_ROOT[:4]}, id="short root hash"),
        pytest.param(
            {"figures": [statements_pb2.CooperationFigure(metric="alerts", unit="count", log_indices=[12])]},
            id="an index past the checkpoint",
        ),
        pytest.param(
            {"figures": [statements_pb2.CooperationFigure(metric="alerts", unit="hours")]},
            id="an unknown unit",
        ),
    ],
)
def test_malformed_summaries_are_refused_before_signing(overrides: dict[str, object]) -> None:
    with pytest.raises(MalformedError):
        CooperationStatement.sign(summary(**overrides), SigningKey.generate())


def test_not_a_bundle_is_malformed(exchange_dir: Path) -> None:
    for data in (b"not json", b"{}", json.dumps({"format": "exchange/cooperation-summary/v1"}).encode()):
        with pytest.raises(MalformedError):
            CooperationBundle.verify(data, **partner_view(exchange_dir))  # type: ignore[arg-type]
