"""Signed notes, checkpoints and cosignatures against the C2SP specifications and published vectors."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given
from hypothesis import strategies as st

from exchange.crypto import notes
from exchange.crypto.notes import (
    Checkpoint,
    CosignatureSigner,
    CosignatureVerifier,
    NoteSignature,
    NoteSigner,
    NoteVerifier,
    UnverifiedNoteError,
)
from exchange.errors import (
    ConfigurationError,
    InvalidInputError,
    MalformedError,
    SignatureError,
    TooLargeError,
    VerificationError,
)

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "signed-note"
EXAMPLE_NOTE = (VECTORS / "example.note").read_text(encoding="utf-8")
EXAMPLE_VKEY = (VECTORS / "example.vkey").read_text(encoding="utf-8").strip()
PUBLISHED: dict[str, Any] = json.loads((VECTORS / "published.json").read_text(encoding="utf-8"))
GO = PUBLISHED["go_sumdb_note"]
COSIGNATURE_EXAMPLES = PUBLISHED["cosignature_examples"]

EM_DASH = "\u2014"

LOG = NoteSigner("hub.exchange.example/log", bytes(range(32)))
OTHER_LOG = NoteSigner("hub.exchange.example/log", bytes(range(1, 33)))
WITNESS = CosignatureSigner("us-dea.exchange.example/witness", bytes(range(64, 96)))
OTHER_WITNESS = CosignatureSigner("cn-nncc.exchange.example/witness", bytes(range(96, 128)))

ROOT = hashlib.sha256(b"a root").digest()
CHECKPOINT = Checkpoint("hub.exchange.example/log", 20852163, ROOT)
CHECKPOINT_TEXT = CHECKPOINT.to_text()
TIMESTAMP = 1_700_000_000


def signed_checkpoint() -> str:
    return notes.sign_note(CHECKPOINT_TEXT, [LOG])


def cosigned_checkpoint() -> str:
    return notes.append_signatures(
        signed_checkpoint(), [notes.cosign(CHECKPOINT_TEXT, WITNESS, TIMESTAMP)]
    )


def go_seed() -> bytes:
    encoded = GO["peter_signer_key"].split("+", 4)[4]
    type_and_seed = base64.b64decode(encoded)
    assert type_and_seed[0] == notes.SIGNATURE_TYPE_ED25519
    return type_and_seed[1:]


def reencode(line: str, transform: Any) -> str:
    """The signature line with its decoded bytes passed through ``transform``."""
    head, _, encoded = line.rpartition(" ")
    return f"{head} {base64.b64encode(transform(base64.b64decode(encoded))).decode()}"


# --- published vectors -------------------------------------------------------------------------------


def test_the_c2sp_example_verifies() -> None:
    verifier = NoteVerifier.from_string(EXAMPLE_VKEY)
    assert verifier.to_string() == EXAMPLE_VKEY
    assert f"{verifier.key_id:08x}" == "530d903a"
    opened = notes.open_note(EXAMPLE_NOTE, [verifier])
    assert opened.text == "This is an example message.\n"
    assert [s.verifier for s in opened.signatures] == [verifier]
    assert opened.signatures[0].timestamp is None
    assert opened.unknown_signatures == ()


def test_the_c2sp_example_verifies_as_bytes() -> None:
    verifier = NoteVerifier.from_string(EXAMPLE_VKEY)
    assert (
        notes.open_note(EXAMPLE_NOTE.encode(), [verifier]).text == "This is an example message.\n"
    )


def test_signing_reproduces_the_go_reference_notes_byte_for_byte() -> None:
    peter = NoteSigner("PeterNeumann", go_seed())
    enoch = NoteSigner("EnochRoot", bytes.fromhex(GO["enoch_seed_hex"]))
    assert peter.verifier().to_string() == GO["peter_verifier_key"]
    assert enoch.verifier().to_string() == GO["enoch_verifier_key"]
    expected = (
        GO["text"] + "\n" + GO["peter_signature_line"] + "\n" + GO["enoch_signature_line"] + "\n"
    )
    assert notes.sign_note(GO["text"], [peter, enoch]) == expected


def test_the_go_reference_note_opens_with_one_known_and_one_unknown_key() -> None:
    note = GO["text"] + "\n" + GO["peter_signature_line"] + "\n" + GO["enoch_signature_line"] + "\n"
    peter = NoteVerifier.from_string(GO["peter_verifier_key"])
    enoch = NoteVerifier.from_string(GO["enoch_verifier_key"])
    opened = notes.open_note(note, [peter])
    assert [s.verifier for s in opened.signatures] == [peter]
    assert [s.name for s in opened.unknown_signatures] == ["EnochRoot"]
    both = notes.open_note(note, [peter, enoch])
    assert [s.verifier for s in both.signatures] == [peter, enoch]
    assert both.unknown_signatures == ()


@pytest.mark.parametrize(
    "vkey",
    PUBLISHED["verifier_keys"]["ed25519"] + PUBLISHED["verifier_keys"]["cosignature_v1"],
)
def test_published_verifier_keys_parse_and_print_back(vkey: str) -> None:
    verifier = notes.parse_verifier_key(vkey)
    assert verifier.to_string() == vkey
    if vkey in PUBLISHED["verifier_keys"]["cosignature_v1"]:
        assert isinstance(verifier, CosignatureVerifier)
        assert CosignatureVerifier.from_string(vkey) == verifier
    else:
        assert isinstance(verifier, NoteVerifier)
        assert NoteVerifier.from_string(vkey) == verifier


def test_the_spec_cosignature_example_has_the_cosignature_v1_framing() -> None:
    """The specification publishes no witness key, so only the framing can be checked."""
    line = COSIGNATURE_EXAMPLES["cosignature_line"]
    signature = NoteSignature.from_line(line)
    assert signature.name == "witness.example.com/w1"
    assert f"{signature.key_id:08x}" == COSIGNATURE_EXAMPLES["cosignature_key_id_hex"]
    assert len(signature.signature) == 8 + 64
    assert notes.cosignature_timestamp(signature) == COSIGNATURE_EXAMPLES["cosignature_timestamp"]
    assert signature.to_line() == line
    checkpoint = Checkpoint.from_text(COSIGNATURE_EXAMPLES["checkpoint_text"])
    assert (checkpoint.origin, checkpoint.size) == ("example.com/behind-the-sofa", 20852163)
    assert checkpoint.to_text() == COSIGNATURE_EXAMPLES["checkpoint_text"]


def test_a_published_bare_cosignature_carries_its_timestamp() -> None:
    raw = base64.b64decode(COSIGNATURE_EXAMPLES["bare_cosignature_base64"])
    signature = NoteSignature("witness", int.from_bytes(raw[:4], "big"), raw[4:])
    assert (
        notes.cosignature_timestamp(signature) == COSIGNATURE_EXAMPLES["bare_cosignature_timestamp"]
    )


def test_the_spec_example_checkpoint_with_unknown_keys_is_unverified() -> None:
    note = (
        COSIGNATURE_EXAMPLES["checkpoint_text"]
        + "\n"
        + COSIGNATURE_EXAMPLES["log_signature_line"]
        + "\n"
        + COSIGNATURE_EXAMPLES["cosignature_line"]
        + "\n"
    )
    with pytest.raises(UnverifiedNoteError) as raised:
        notes.open_note(note, [LOG.verifier(), WITNESS.verifier()])
    assert [s.name for s in raised.value.unknown_signatures] == [
        "example.com/behind-the-sofa",
        "witness.example.com/w1",
    ]


# --- keys ------------------------------------------------------------------------------------------


def test_key_ids_follow_the_specification() -> None:
    for signer in (LOG, WITNESS):
        preimage = signer.name.encode() + b"\n" + bytes([signer.SIGNATURE_TYPE]) + signer.public_key
        expected = int.from_bytes(hashlib.sha256(preimage).digest()[:4], "big")
        assert signer.key_id == expected == signer.verifier().key_id


def test_verifier_key_strings_round_trip() -> None:
    for verifier in (LOG.verifier(), WITNESS.verifier()):
        assert notes.parse_verifier_key(verifier.to_string()) == verifier
        assert str(verifier) == verifier.to_string()
    log_key = LOG.verifier().to_string()
    witness_key = WITNESS.verifier().to_string()
    assert base64.b64decode(log_key.split("+", 2)[2])[0] == 0x01
    assert base64.b64decode(witness_key.split("+", 2)[2])[0] == 0x04


def test_a_signer_takes_a_cryptography_key_or_its_seed() -> None:
    seed = bytes(range(32))
    from_key = NoteSigner(LOG.name, Ed25519PrivateKey.from_private_bytes(seed))
    assert from_key.verifier() == NoteSigner(LOG.name, seed).verifier() == LOG.verifier()


@pytest.mark.parametrize(
    ("name", "key"),
    [
        pytest.param("", bytes(32), id="empty name"),
        pytest.param("with space", bytes(32), id="name with a space"),
        pytest.param("with\u00a0nbsp", bytes(32), id="name with a no-break space"),
        pytest.param("a+b", bytes(32), id="name with a plus"),
        pytest.param("tab\there", bytes(32), id="name with a tab"),
        pytest.param("log", bytes(31), id="short seed"),
        pytest.param("log", bytes(33), id="long seed"),
    ],
)
def test_signers_refuse_bad_names_and_keys(name: str, key: bytes) -> None:
    with pytest.raises(MalformedError):
        NoteSigner(name, key)


BAD_VERIFIER_KEYS = {
    "empty": "",
    "name only": "example.com/foo",
    "no key": "example.com/foo+530d903a",
    "no key after plus": "example.com/foo+530d903a+",
    "empty name": "+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
    "short key id": "example.com/foo+530d903+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
    "long key id": "example.com/foo+530d903a0+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
    "key id not hex": "example.com/foo+530d903g+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
    "wrong key id": "example.com/foo+530d903b+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
    "other name": "example.com/bar+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
    "bad base64": "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2!",
    "unpadded base64": "rekor.sigstore.dev+12345678+AwEB",
    "trailing newline": EXAMPLE_VKEY + "\n",
    "leading space": " " + EXAMPLE_VKEY,
    "unknown type": "rekor.sigstore.dev+12345678+AwEBAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
}


@pytest.mark.parametrize("vkey", BAD_VERIFIER_KEYS.values(), ids=BAD_VERIFIER_KEYS.keys())
def test_malformed_verifier_keys_are_refused(vkey: str) -> None:
    with pytest.raises(MalformedError):
        notes.parse_verifier_key(vkey)
    with pytest.raises(MalformedError):
        NoteVerifier.from_string(vkey)


def test_every_truncation_or_changed_character_of_a_verifier_key_is_refused() -> None:
    """As Go's TestNewVerifier: no substring and no single-character change of a key is a key."""
    accepted = []
    for start in range(len(EXAMPLE_VKEY)):
        for end in range(start + 1, len(EXAMPLE_VKEY) + 1):
            if (start, end) != (0, len(EXAMPLE_VKEY)):
                try:
                    NoteVerifier.from_string(EXAMPLE_VKEY[start:end])
                except MalformedError:
                    continue
                accepted.append(EXAMPLE_VKEY[start:end])
    for position in range(len(EXAMPLE_VKEY)):
        changed = (
            EXAMPLE_VKEY[:position]
            + chr(ord(EXAMPLE_VKEY[position]) + 1)
            + EXAMPLE_VKEY[position + 1 :]
        )
        try:
            NoteVerifier.from_string(changed)
        except MalformedError:
            continue
        accepted.append(changed)
    assert accepted == []


def test_key_types_are_not_interchangeable_in_key_strings() -> None:
    with pytest.raises(MalformedError, match="signature type 0x04"):
        NoteVerifier.from_string(WITNESS.verifier().to_string())
    with pytest.raises(MalformedError, match="signature type 0x01"):
        CosignatureVerifier.from_string(LOG.verifier().to_string())


# --- signing and opening notes -------------------------------------------------------------------------


def test_round_trip() -> None:
    text = "Alert 7 was published.\nSecond line, with ünïcödé.\n"
    note = notes.sign_note(text, [LOG])
    assert note.startswith(text + "\n" + EM_DASH + " hub.exchange.example/log ")
    opened = notes.open_note(note, [LOG.verifier()])
    assert opened.text == text
    assert opened.signature_by(LOG.verifier()) is not None
    assert opened.signature_by(OTHER_LOG.verifier()) is None


def test_round_trip_with_blank_lines_in_the_text() -> None:
    for text in ("\n", "a\n\nb\n", "ends with a blank line\n\n"):
        assert notes.open_note(notes.sign_note(text, [LOG]), [LOG.verifier()]).text == text


@given(
    st.lists(
        st.text(st.characters(min_codepoint=0x20, exclude_categories=["Cs"]), max_size=40),
        min_size=1,
        max_size=5,
    )
)
def test_any_text_round_trips(lines: list[str]) -> None:
    text = "".join(line + "\n" for line in lines)
    assert notes.open_note(notes.sign_note(text, [LOG]), [LOG.verifier()]).text == text


def test_several_signers_and_unknown_signatures_are_kept() -> None:
    note = notes.sign_note("text\n", [LOG, OTHER_LOG])
    opened = notes.open_note(note, [OTHER_LOG.verifier()])
    assert [s.verifier for s in opened.signatures] == [OTHER_LOG.verifier()]
    assert [(s.name, s.key_id) for s in opened.unknown_signatures] == [(LOG.name, LOG.key_id)]


def test_tampered_text_is_rejected() -> None:
    note = notes.sign_note("size 8\n", [LOG])
    with pytest.raises(SignatureError) as raised:
        notes.open_note(note.replace("size 8", "size 9"), [LOG.verifier()])
    assert not isinstance(raised.value, UnverifiedNoteError)
    assert raised.value.reason == "SIGNATURE_INVALID"


def test_a_key_of_the_same_name_but_another_key_is_not_trusted() -> None:
    note = notes.sign_note("text\n", [OTHER_LOG])
    with pytest.raises(UnverifiedNoteError) as raised:
        notes.open_note(note, [LOG.verifier()])
    assert isinstance(raised.value, SignatureError)
    assert [s.key_id for s in raised.value.unknown_signatures] == [OTHER_LOG.key_id]


def test_no_verifiers_means_no_verified_signature() -> None:
    with pytest.raises(UnverifiedNoteError):
        notes.open_note(signed_checkpoint(), [])


def test_a_known_key_that_fails_rejects_the_whole_note() -> None:
    good = notes.sign_note("text\n", [LOG])
    forged_line = reencode(good.splitlines()[-1], lambda raw: raw[:-1] + bytes([raw[-1] ^ 1]))
    note = good + forged_line + "\n"
    with pytest.raises(SignatureError):
        notes.open_note(note, [LOG.verifier()])


def test_a_repeated_signature_is_listed_once() -> None:
    note = notes.sign_note("text\n", [LOG])
    line = note.splitlines()[-1]
    opened = notes.open_note(note + line + "\n", [LOG.verifier()])
    assert len(opened.signatures) == 1


def _signature_line(note: str) -> str:
    return note.splitlines()[-1]


_TEXT = "text\n"
_NOTE = notes.sign_note(_TEXT, [LOG])
_LINE = _signature_line(_NOTE)
_NAME_AND_BASE64 = _LINE[2:]

MALFORMED_NOTES = {
    "missing final newline": _NOTE[:-1],
    "missing newline at the end of the text": "text" + "\n" + _LINE + "\n",
    "no blank line": _TEXT + _LINE + "\n",
    "no signature lines": _TEXT + "\n",
    "blank line after the signatures": _NOTE + "\n",
    "en dash": _TEXT + "\n" + "\u2013 " + _NAME_AND_BASE64 + "\n",
    "hyphen": _TEXT + "\n" + "- " + _NAME_AND_BASE64 + "\n",
    "two hyphens": _TEXT + "\n" + "-- " + _NAME_AND_BASE64 + "\n",
    "em dash without a space": _TEXT + "\n" + EM_DASH + _NAME_AND_BASE64 + "\n",
    "em dash and a tab": _TEXT + "\n" + EM_DASH + "\t" + _NAME_AND_BASE64 + "\n",
    "horizontal bar": _TEXT + "\n" + "\u2015 " + _NAME_AND_BASE64 + "\n",
    "no signature after the name": _TEXT + "\n" + EM_DASH + " " + LOG.name + "\n",
    "empty signature": _TEXT + "\n" + EM_DASH + " " + LOG.name + " \n",
    "signature not base64": _LINE.replace(_LINE[-10:], "!!!!!!!!!!").join((_TEXT + "\n", "\n")),
    "base64 cut short": _TEXT + "\n" + _LINE[:-1] + "\n",
    "signature of four bytes": _TEXT + "\n" + EM_DASH + " " + LOG.name + " AAAAAA==\n",
    "space in the name": _TEXT + "\n" + EM_DASH + " hub exchange " + _LINE.rsplit(" ", 1)[1] + "\n",
    "CRLF line endings": _NOTE.replace("\n", "\r\n"),
    "tab in the text": "a\tb\n\n" + _LINE + "\n",
    "NUL in the text": "a\x00b\n\n" + _LINE + "\n",
    "lone surrogate": "a\ud800b\n\n" + _LINE + "\n",
}


@pytest.mark.parametrize("note", MALFORMED_NOTES.values(), ids=MALFORMED_NOTES.keys())
def test_malformed_notes_are_rejected(note: str) -> None:
    with pytest.raises(MalformedError):
        notes.open_note(note, [LOG.verifier()])


def test_invalid_utf8_is_rejected() -> None:
    with pytest.raises(MalformedError):
        notes.open_note(b"\xff\xfe\n\n" + _LINE.encode() + b"\n", [LOG.verifier()])


def test_a_truncated_signature_from_a_known_key_is_rejected() -> None:
    truncated = reencode(_LINE, lambda raw: raw[:-1])
    with pytest.raises(SignatureError):
        notes.open_note(_TEXT + "\n" + truncated + "\n", [LOG.verifier()])
    only_key_id = reencode(_LINE, lambda raw: raw[:5])
    with pytest.raises(SignatureError):
        notes.open_note(_TEXT + "\n" + only_key_id + "\n", [LOG.verifier()])


def test_a_signature_with_extra_bytes_from_a_known_key_is_rejected() -> None:
    extended = reencode(_LINE, lambda raw: raw + b"\x00")
    with pytest.raises(SignatureError):
        notes.open_note(_TEXT + "\n" + extended + "\n", [LOG.verifier()])


def test_too_many_signatures_are_refused() -> None:
    note = _NOTE + "".join(
        reencode(_LINE, lambda raw, i=i: i.to_bytes(4, "big") + raw[4:]) + "\n"
        for i in range(notes.MAX_SIGNATURES)
    )
    with pytest.raises(TooLargeError):
        notes.open_note(note, [LOG.verifier()])


def test_sixteen_signatures_are_accepted() -> None:
    signers = [NoteSigner(f"signer-{i}", bytes([i]) * 32) for i in range(16)]
    note = notes.sign_note(_TEXT, signers)
    opened = notes.open_note(note, [s.verifier() for s in signers])
    assert len(opened.signatures) == 16


def test_two_different_keys_with_one_name_and_key_id_are_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(notes, "key_id", lambda name, signature_type, public_key: 7)
    with pytest.raises(ConfigurationError):
        notes.open_note(_NOTE, [LOG.verifier(), OTHER_LOG.verifier()])


def test_the_same_verifier_twice_is_fine() -> None:
    assert notes.open_note(_NOTE, [LOG.verifier(), LOG.verifier()]).text == _TEXT


@pytest.mark.parametrize(
    "text",
    ["no final newline", "", "tab\there\n", "carriage\rreturn\n"],
    ids=["no final newline", "empty", "tab", "carriage return"],
)
def test_sign_note_refuses_text_that_cannot_be_a_note(text: str) -> None:
    with pytest.raises(MalformedError):
        notes.sign_note(text, [LOG])


def test_sign_note_needs_a_signer() -> None:
    with pytest.raises(InvalidInputError):
        notes.sign_note(_TEXT, [])


def test_append_signatures_adds_new_lines_only() -> None:
    cosignature = notes.cosign(CHECKPOINT_TEXT, WITNESS, TIMESTAMP)
    once = notes.append_signatures(signed_checkpoint(), [cosignature])
    assert once == signed_checkpoint() + cosignature + "\n"
    assert notes.append_signatures(once, [cosignature]) == once
    with pytest.raises(MalformedError):
        notes.append_signatures(once, ["- not a signature line"])


# --- checkpoints ---------------------------------------------------------------------------------------


def test_checkpoint_text_round_trips() -> None:
    text = CHECKPOINT.to_text()
    assert text == f"hub.exchange.example/log\n20852163\n{base64.b64encode(ROOT).decode()}\n"
    assert Checkpoint.from_text(text) == CHECKPOINT
    extended = Checkpoint("origin", 0, hashlib.sha256(b"").digest(), ("ext one", "ext two"))
    assert Checkpoint.from_text(extended.to_text()) == extended
    assert extended.to_text().endswith("\next one\next two\n")


_ROOT_B64 = base64.b64encode(ROOT).decode()

MALFORMED_CHECKPOINTS = {
    "no final newline": (f"log\n1\n{_ROOT_B64}", "newline"),
    "two lines": ("log\n1\n", "line 3"),
    "one line": ("log\n", "line 2"),
    "empty origin": (f"\n1\n{_ROOT_B64}\n", "line 1"),
    "leading zero": (f"log\n01\n{_ROOT_B64}\n", "line 2"),
    "plus sign": (f"log\n+1\n{_ROOT_B64}\n", "line 2"),
    "negative": (f"log\n-1\n{_ROOT_B64}\n", "line 2"),
    "space before size": (f"log\n 1\n{_ROOT_B64}\n", "line 2"),
    "space after size": (f"log\n1 \n{_ROOT_B64}\n", "line 2"),
    "non-ASCII digits": (f"log\n\u0661\n{_ROOT_B64}\n", "line 2"),
    "hexadecimal size": (f"log\n0x10\n{_ROOT_B64}\n", "line 2"),
    "empty size": (f"log\n\n{_ROOT_B64}\n", "line 2"),
    "size over 64 bits": (f"log\n{2**64}\n{_ROOT_B64}\n", "line 2"),
    "root not base64": ("log\n1\nnot base64!\n", "line 3"),
    "root without padding": (f"log\n1\n{_ROOT_B64.rstrip('=')}\n", "line 3"),
    "root of 31 bytes": (f"log\n1\n{base64.b64encode(ROOT[:31]).decode()}\n", "line 3"),
    "root of 33 bytes": (f"log\n1\n{base64.b64encode(ROOT + b'x').decode()}\n", "line 3"),
    "root in hex": (f"log\n1\n{ROOT.hex()}\n", "line 3"),
    "empty extension line": (f"log\n1\n{_ROOT_B64}\n\next\n", "line 4"),
    "CRLF": (f"log\r\n1\r\n{_ROOT_B64}\r\n", "control character"),
}


@pytest.mark.parametrize(
    ("text", "where"), MALFORMED_CHECKPOINTS.values(), ids=MALFORMED_CHECKPOINTS.keys()
)
def test_malformed_checkpoints_are_rejected_naming_the_line(text: str, where: str) -> None:
    with pytest.raises(MalformedError, match=where):
        Checkpoint.from_text(text)


def test_the_largest_tree_size_parses() -> None:
    assert Checkpoint.from_text(f"log\n{2**64 - 1}\n{_ROOT_B64}\n").size == 2**64 - 1


@pytest.mark.parametrize(
    ("origin", "size", "root", "extensions"),
    [
        pytest.param("", 1, ROOT, (), id="empty origin"),
        pytest.param("two\nlines", 1, ROOT, (), id="origin of two lines"),
        pytest.param("log", -1, ROOT, (), id="negative size"),
        pytest.param("log", 2**64, ROOT, (), id="size over 64 bits"),
        pytest.param("log", 1, ROOT[:31], (), id="short root"),
        pytest.param("log", 1, ROOT, ("",), id="empty extension"),
    ],
)
def test_checkpoints_cannot_be_built_malformed(
    origin: str, size: int, root: bytes, extensions: tuple[str, ...]
) -> None:
    with pytest.raises(MalformedError):
        Checkpoint(origin, size, root, extensions)


def test_open_checkpoint_needs_the_log_signature() -> None:
    opened = notes.open_checkpoint(signed_checkpoint(), LOG.verifier())
    assert opened.checkpoint == CHECKPOINT
    assert opened.cosignatures == {}
    only_cosigned = (
        CHECKPOINT_TEXT + "\n" + notes.cosign(CHECKPOINT_TEXT, WITNESS, TIMESTAMP) + "\n"
    )
    with pytest.raises(UnverifiedNoteError):
        notes.open_checkpoint(only_cosigned, LOG.verifier(), cosigners=[WITNESS.verifier()])
    with pytest.raises(UnverifiedNoteError):
        notes.open_checkpoint(signed_checkpoint(), OTHER_LOG.verifier())


def test_open_checkpoint_checks_the_origin() -> None:
    notes.open_checkpoint(signed_checkpoint(), LOG.verifier(), origin="hub.exchange.example/log")
    with pytest.raises(VerificationError):
        notes.open_checkpoint(signed_checkpoint(), LOG.verifier(), origin="another.example/log")


def test_a_signed_note_that_is_not_a_checkpoint_is_refused_as_one() -> None:
    with pytest.raises(MalformedError):
        notes.open_checkpoint(notes.sign_note("not a checkpoint\n", [LOG]), LOG.verifier())


# --- cosignatures --------------------------------------------------------------------------------------


def test_cosignature_round_trip() -> None:
    line = notes.cosign(CHECKPOINT_TEXT, WITNESS, TIMESTAMP)
    assert line.startswith(EM_DASH + " us-dea.exchange.example/witness ")
    assert "\n" not in line
    assert notes.verify_cosignature(CHECKPOINT_TEXT, line, WITNESS.verifier()) == TIMESTAMP
    signature = NoteSignature.from_line(line)
    assert signature.key_id == WITNESS.key_id
    assert notes.cosignature_timestamp(signature) == TIMESTAMP


def test_the_cosignature_signs_the_specified_message() -> None:
    """Checked with ``cryptography`` directly, so a wrong message format cannot hide in both halves."""
    line = notes.cosign(CHECKPOINT_TEXT, WITNESS, TIMESTAMP)
    raw = base64.b64decode(line.rsplit(" ", 1)[1])
    assert len(raw) == 4 + 8 + 64
    assert raw[:4] == WITNESS.key_id.to_bytes(4, "big")
    assert raw[4:12] == TIMESTAMP.to_bytes(8, "big")
    message = f"cosignature/v1\ntime {TIMESTAMP}\n{CHECKPOINT_TEXT}".encode()
    assert notes.cosignature_message(CHECKPOINT_TEXT, TIMESTAMP) == message
    Ed25519PublicKey.from_public_bytes(WITNESS.public_key).verify(raw[12:], message)


def test_a_cosigned_checkpoint_opens_with_the_cosignature_time() -> None:
    note = cosigned_checkpoint()
    opened = notes.open_checkpoint(
        note, LOG.verifier(), cosigners=[WITNESS.verifier(), OTHER_WITNESS.verifier()]
    )
    assert opened.cosignatures == {WITNESS.name: TIMESTAMP}
    signed = notes.open_note(note, [LOG.verifier(), WITNESS.verifier()])
    assert [s.timestamp for s in signed.signatures] == [None, TIMESTAMP]
    unaware = notes.open_checkpoint(note, LOG.verifier())
    assert unaware.cosignatures == {}
    assert [s.name for s in unaware.note.unknown_signatures] == [WITNESS.name]


def test_a_cosignature_with_a_changed_timestamp_is_rejected() -> None:
    line = notes.cosign(CHECKPOINT_TEXT, WITNESS, TIMESTAMP)
    later = reencode(line, lambda raw: raw[:4] + (TIMESTAMP + 1).to_bytes(8, "big") + raw[12:])
    with pytest.raises(SignatureError):
        notes.verify_cosignature(CHECKPOINT_TEXT, later, WITNESS.verifier())
    with pytest.raises(SignatureError):
        notes.open_note(
            notes.append_signatures(signed_checkpoint(), [later]),
            [LOG.verifier(), WITNESS.verifier()],
        )


def test_a_cosignature_of_another_checkpoint_is_rejected() -> None:
    line = notes.cosign(CHECKPOINT_TEXT, WITNESS, TIMESTAMP)
    forked = Checkpoint(CHECKPOINT.origin, CHECKPOINT.size, hashlib.sha256(b"fork").digest())
    with pytest.raises(SignatureError):
        notes.verify_cosignature(forked.to_text(), line, WITNESS.verifier())


def test_a_cosignature_covers_the_extension_lines() -> None:
    extended = Checkpoint(CHECKPOINT.origin, CHECKPOINT.size, ROOT, ("extension",)).to_text()
    line = notes.cosign(extended, WITNESS, TIMESTAMP)
    assert notes.verify_cosignature(extended, line, WITNESS.verifier()) == TIMESTAMP
    with pytest.raises(SignatureError):
        notes.verify_cosignature(
            extended.replace("extension", "extensioN"), line, WITNESS.verifier()
        )


def test_a_cosignature_from_another_witness_is_not_taken_for_this_one() -> None:
    line = notes.cosign(CHECKPOINT_TEXT, OTHER_WITNESS, TIMESTAMP)
    with pytest.raises(SignatureError):
        notes.verify_cosignature(CHECKPOINT_TEXT, line, WITNESS.verifier())


def test_a_cosignature_key_does_not_verify_as_a_plain_note_signature() -> None:
    """Same name, same Ed25519 key, different type byte: a different key id, so an unknown key."""
    as_note_key = NoteVerifier(WITNESS.name, WITNESS.public_key)
    assert as_note_key.key_id != WITNESS.key_id
    cosigned_only = (
        CHECKPOINT_TEXT + "\n" + notes.cosign(CHECKPOINT_TEXT, WITNESS, TIMESTAMP) + "\n"
    )
    with pytest.raises(UnverifiedNoteError):
        notes.open_note(cosigned_only, [as_note_key])


def test_a_plain_note_signature_does_not_verify_as_a_cosignature() -> None:
    plain_signer = NoteSigner(WITNESS.name, bytes(range(64, 96)))
    plain = notes.sign_note(CHECKPOINT_TEXT, [plain_signer])
    with pytest.raises(UnverifiedNoteError):
        notes.open_note(plain, [WITNESS.verifier()])
    relabelled = reencode(
        _signature_line(plain), lambda raw: WITNESS.key_id.to_bytes(4, "big") + raw[4:]
    )
    with pytest.raises(SignatureError):
        notes.open_note(CHECKPOINT_TEXT + "\n" + relabelled + "\n", [WITNESS.verifier()])


@pytest.mark.parametrize(
    "timestamp", [-1, 2**63, True], ids=["negative", "beyond 2^63-1", "a boolean"]
)
def test_cosign_refuses_timestamps_outside_the_specification(timestamp: int) -> None:
    with pytest.raises(InvalidInputError):
        notes.cosign(CHECKPOINT_TEXT, WITNESS, timestamp)


def test_the_largest_timestamp_is_accepted() -> None:
    line = notes.cosign(CHECKPOINT_TEXT, WITNESS, notes.MAX_TIMESTAMP)
    assert (
        notes.verify_cosignature(CHECKPOINT_TEXT, line, WITNESS.verifier()) == notes.MAX_TIMESTAMP
    )


def test_a_timestamp_beyond_the_specification_is_rejected_on_verification() -> None:
    line = notes.cosign(CHECKPOINT_TEXT, WITNESS, TIMESTAMP)
    huge = reencode(line, lambda raw: raw[:4] + (2**63).to_bytes(8, "big") + raw[12:])
    with pytest.raises(SignatureError):
        notes.verify_cosignature(CHECKPOINT_TEXT, huge, WITNESS.verifier())


def test_only_checkpoints_are_cosigned() -> None:
    with pytest.raises(MalformedError):
        notes.cosign("just a note\n", WITNESS, TIMESTAMP)


def test_cosignature_timestamp_refuses_other_signatures() -> None:
    with pytest.raises(MalformedError):
        notes.cosignature_timestamp(NoteSignature.from_line(_LINE))


def _non_canonical(encoded: str) -> str:
    """The same bytes in base64 with a stray bit set in the last character before the padding."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    data = encoded.rstrip("=")
    padding = encoded[len(data) :]
    changed = data[:-1] + alphabet[alphabet.index(data[-1]) | 1] + padding
    assert changed != encoded and base64.b64decode(changed) == base64.b64decode(encoded)
    return changed


def test_non_canonical_base64_is_refused_everywhere() -> None:
    head, _, encoded = _LINE.rpartition(" ")
    with pytest.raises(MalformedError):
        notes.open_note(
            _TEXT + "\n" + head + " " + _non_canonical(encoded) + "\n", [LOG.verifier()]
        )
    with pytest.raises(MalformedError, match="line 3"):
        Checkpoint.from_text(f"log\n1\n{_non_canonical(_ROOT_B64)}\n")
    cosignature = notes.cosign(CHECKPOINT_TEXT, WITNESS, TIMESTAMP)
    head, _, encoded = cosignature.rpartition(" ")
    with pytest.raises(MalformedError):
        notes.verify_cosignature(
            CHECKPOINT_TEXT, head + " " + _non_canonical(encoded), WITNESS.verifier()
        )


def test_a_repeated_unknown_signature_is_kept_once() -> None:
    note = notes.sign_note(_TEXT, [LOG, OTHER_LOG])
    opened = notes.open_note(note + _signature_line(note) + "\n", [LOG.verifier()])
    assert len(opened.unknown_signatures) == 1
