"""C2SP signed notes, log checkpoints and ``cosignature/v1`` witness cosignatures.

The hub signs each checkpoint of the audit log (DESIGN §8) as a signed note; agencies verify it, check
consistency with the last checkpoint they trusted, and cosign what they verified. Everything here
follows the C2SP specifications, so that any tool of that ecosystem (Go's
``golang.org/x/mod/sumdb/note``, the transparency-dev witnesses) can read what the hub and the
clients write, and the other way round:

* https://c2sp.org/signed-note: a note is a text ending in a newline, a blank line, then one or more
  lines ``— <key name> <base64(key id ‖ signature)>`` (em dash U+2014, then a space). The key id is
  ``SHA-256(name ‖ 0x0A ‖ type ‖ public key)[:4]``. Type ``0x01`` is Ed25519 over the note text.
  A verifier key is written ``<name>+<8 hex digits of the key id>+<base64(type ‖ public key)>``.
* https://c2sp.org/tlog-checkpoint: the note text of a checkpoint is the log's origin, the tree size
  in decimal and the base64 root hash, one per line, then optional extension lines.
* https://c2sp.org/tlog-cosignature: type ``0x04`` is an Ed25519 *timestamped* cosignature; it signs
  ``cosignature/v1\\ntime <unix seconds>\\n`` followed by the checkpoint text, and its signature
  bytes are ``key id ‖ u64 big-endian timestamp ‖ 64-byte signature``.

Pure functions and immutable classes, no I/O and no clock: the caller supplies the cosigning time.

**Keys by type.** :class:`NoteSigner`/:class:`NoteVerifier` are type ``0x01`` (the hub's checkpoint
key); :class:`CosignatureSigner`/:class:`CosignatureVerifier` are type ``0x04`` (an agency's witness
key). The same Ed25519 key must not serve both: a ``0x01`` signature over a text that happens to
start with ``cosignature/v1`` would read as a cosignature, and the Ed25519 cosignature does not
commit to the cosigner's name, so one witness key must also serve one name only.

**Errors.** Text that does not follow the formats raises :class:`~exchange.errors.MalformedError`; a
signature line that names a known key (name and key id) but does not verify raises
:class:`~exchange.errors.SignatureError` (the whole note is rejected); a note no known key has
signed raises :class:`UnverifiedNoteError`. Signature lines from unknown keys are ignored, as the
specification requires, and kept in :attr:`SignedNote.unknown_signatures`.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from exchange.errors import (
    ConfigurationError,
    FieldViolation,
    InvalidInputError,
    MalformedError,
    SignatureError,
    TooLargeError,
    VerificationError,
)
from exchange.limits import over_limit

__all__ = [
    "COSIGNATURE_V1_HEADER",
    "MAX_SIGNATURES",
    "MAX_TIMESTAMP",
    "SIGNATURE_TYPE_COSIGNATURE_V1",
    "SIGNATURE_TYPE_ED25519",
    "Checkpoint",
    "CosignatureSigner",
    "CosignatureVerifier",
    "NoteSignature",
    "NoteSigner",
    "NoteVerifier",
    "SignedCheckpoint",
    "SignedNote",
    "UnverifiedNoteError",
    "VerifiedSignature",
    "append_signatures",
    "cosign",
    "cosignature_message",
    "cosignature_timestamp",
    "key_id",
    "open_checkpoint",
    "open_note",
    "parse_verifier_key",
    "sign_note",
    "verify_cosignature",
]

SIGNATURE_TYPE_ED25519 = 0x01
"""Signed-note signature type of a plain Ed25519 signature over the note text."""

SIGNATURE_TYPE_COSIGNATURE_V1 = 0x04
"""Signed-note signature type of a timestamped Ed25519 ``cosignature/v1`` (tlog-cosignature)."""

COSIGNATURE_V1_HEADER = "cosignature/v1"
"""First line of the message a ``cosignature/v1`` signs, separating it from every other use."""

MAX_TIMESTAMP = 2**63 - 1
"""Largest cosignature timestamp the specification allows."""

MAX_SIGNATURES = 100
"""Most signature lines accepted in one note (the specification asks for at least 16; Go allows 100)."""

_SIGNATURE_LINE_PREFIX = "\u2014 "  # em dash, space
_KEY_ID_SIZE = 4
_TIMESTAMP_SIZE = 8
_ED25519_KEY_SIZE = 32
_ED25519_SIGNATURE_SIZE = 64
_HEX_KEY_ID = re.compile(r"[0-9a-fA-F]{8}")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_MAX_TREE_SIZE = 2**64 - 1


# --- small strict parsers ------------------------------------------------------------------------


def _control_character(text: str) -> str | None:
    """Describe the first ASCII control character other than newline in ``text``, if any."""
    for offset, character in enumerate(text):
        if character < " " and character != "\n":
            return f"control character U+{ord(character):04X} at offset {offset}"
    return None


def _check_utf8(text: str, what: str) -> None:
    """Refuse text that has no UTF-8 encoding (lone surrogates) or carries control characters."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise MalformedError(f"{what} is not valid UTF-8") from e
    problem = _control_character(text)
    if problem is not None:
        raise MalformedError(f"{what} contains a {problem}")


def _check_key_name(name: str) -> str:
    """A key name is non-empty and has no Unicode spaces, no ``+`` and no control characters."""
    if not name:
        raise MalformedError("key name is empty")
    for character in name:
        if character.isspace() or character == "+" or character < " " or character == "\x7f":
            raise MalformedError(f"key name {name!r} contains {character!r}")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as e:
        raise MalformedError(f"key name {name!r} is not valid UTF-8") from e
    return name


def _decode_base64(value: str, what: str) -> bytes:
    """Standard base64 with padding, in its one canonical spelling (no spaces, no stray bits)."""
    if not value.isascii():
        raise MalformedError(f"{what} is not base64")
    try:
        raw = base64.b64decode(value, validate=True)
    except binascii.Error as e:
        raise MalformedError(f"{what} is not base64: {e}") from e
    if base64.b64encode(raw).decode("ascii") != value:
        raise MalformedError(f"{what} is not canonical base64")
    return raw


def _encode_base64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def key_id(name: str, signature_type: int, public_key: bytes) -> int:
    """The signed-note key id: the first 4 bytes of ``SHA-256(name ‖ 0x0A ‖ type ‖ public key)``.

    Returned as the big-endian unsigned integer the specification calls the uint32 key ID.
    """
    digest = hashlib.sha256(
        name.encode("utf-8") + b"\n" + bytes([signature_type]) + public_key
    ).digest()
    return int.from_bytes(digest[:_KEY_ID_SIZE], "big")


# --- keys ----------------------------------------------------------------------------------------


def _load_private_key(private_key: Ed25519PrivateKey | bytes) -> Ed25519PrivateKey:
    if isinstance(private_key, Ed25519PrivateKey):
        return private_key
    if not isinstance(private_key, bytes) or len(private_key) != _ED25519_KEY_SIZE:
        raise MalformedError(f"an Ed25519 private key is {_ED25519_KEY_SIZE} raw bytes")
    return Ed25519PrivateKey.from_private_bytes(private_key)


@dataclass(frozen=True)
class _VerifierKey:
    """A named Ed25519 public key of one signed-note signature type; see the subclasses."""

    SIGNATURE_TYPE: ClassVar[int]
    KIND: ClassVar[str]

    name: str
    public_key: bytes

    def __post_init__(self) -> None:
        _check_key_name(self.name)
        if not isinstance(self.public_key, bytes) or len(self.public_key) != _ED25519_KEY_SIZE:
            raise MalformedError(f"an Ed25519 public key is {_ED25519_KEY_SIZE} bytes")
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key)
        except ValueError as e:
            raise MalformedError(f"not an Ed25519 public key: {e}") from e

    @functools.cached_property
    def key_id(self) -> int:
        """The key id that signature lines made with this key carry (computed once: the
        verifier is frozen, and a note's every signature line is matched against it)."""
        return key_id(self.name, self.SIGNATURE_TYPE, self.public_key)

    def to_string(self) -> str:
        """The verifier key string ``<name>+<hex key id>+<base64(type ‖ public key)>``."""
        encoded = _encode_base64(bytes([self.SIGNATURE_TYPE]) + self.public_key)
        return f"{self.name}+{self.key_id:08x}+{encoded}"

    def __str__(self) -> str:
        return self.to_string()

    def _check_ed25519(self, message: bytes, signature: bytes) -> None:
        if len(signature) != _ED25519_SIGNATURE_SIZE:
            raise SignatureError(
                f"{self.KIND} signature by {self.to_string()} is {len(signature)} bytes, "
                f"not {_ED25519_SIGNATURE_SIZE}"
            )
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature as e:
            raise SignatureError(f"{self.KIND} signature by {self.to_string()} is invalid") from e

    @classmethod
    def _fields_from_string(cls, vkey: str) -> tuple[str, bytes]:
        name, type_and_key = _split_verifier_key(vkey)
        if type_and_key[0] != cls.SIGNATURE_TYPE:
            raise MalformedError(
                f"verifier key {vkey!r} has signature type {type_and_key[0]:#04x}, "
                f"not {cls.SIGNATURE_TYPE:#04x} ({cls.KIND})"
            )
        return name, type_and_key[1:]


def _split_verifier_key(vkey: str) -> tuple[str, bytes]:
    """Split ``name+keyid+base64`` and check the key id; return the name and ``type ‖ key``."""
    name, _, rest = vkey.partition("+")
    hex_key_id, _, encoded = rest.partition("+")
    _check_key_name(name)
    if not _HEX_KEY_ID.fullmatch(hex_key_id):
        raise MalformedError(f"verifier key {vkey!r}: the key id is not 8 hex digits")
    type_and_key = _decode_base64(encoded, f"verifier key {vkey!r}")
    if len(type_and_key) != 1 + _ED25519_KEY_SIZE:
        raise MalformedError(
            f"verifier key {vkey!r} holds {len(type_and_key)} bytes, "
            f"not a type byte and an Ed25519 key"
        )
    expected = key_id(name, type_and_key[0], type_and_key[1:])
    if int(hex_key_id, 16) != expected:
        raise MalformedError(
            f"verifier key {vkey!r}: key id {hex_key_id} does not match the key ({expected:08x})"
        )
    return name, type_and_key


@dataclass(frozen=True)
class NoteVerifier(_VerifierKey):
    """An Ed25519 note key (signature type ``0x01``) that checks signatures over a note's text."""

    SIGNATURE_TYPE: ClassVar[int] = SIGNATURE_TYPE_ED25519
    KIND: ClassVar[str] = "Ed25519 note"

    @classmethod
    def from_string(cls, vkey: str) -> NoteVerifier:
        """Parse a verifier key string of type ``0x01``; anything else raises MalformedError."""
        name, public_key = cls._fields_from_string(vkey)
        return cls(name, public_key)

    def verify(self, text: str, signature: bytes) -> None:
        """Check ``signature`` (the bytes after the key id) over ``text``; raise SignatureError."""
        self._check_ed25519(text.encode("utf-8"), signature)


@dataclass(frozen=True)
class CosignatureVerifier(_VerifierKey):
    """A witness key (signature type ``0x04``) that checks timestamped ``cosignature/v1`` signatures."""

    SIGNATURE_TYPE: ClassVar[int] = SIGNATURE_TYPE_COSIGNATURE_V1
    KIND: ClassVar[str] = "cosignature/v1"

    @classmethod
    def from_string(cls, vkey: str) -> CosignatureVerifier:
        """Parse a verifier key string of type ``0x04``; anything else raises MalformedError."""
        name, public_key = cls._fields_from_string(vkey)
        return cls(name, public_key)

    def verify(self, text: str, signature: bytes) -> int:
        """Check a cosignature (the bytes after the key id) over checkpoint ``text``.

        Returns the timestamp it carries; raises SignatureError if it does not verify, and
        MalformedError if ``text`` is not a checkpoint.
        """
        expected_size = _TIMESTAMP_SIZE + _ED25519_SIGNATURE_SIZE
        if len(signature) != expected_size:
            raise SignatureError(
                f"cosignature by {self.to_string()} is {len(signature)} bytes, not {expected_size}"
            )
        timestamp = int.from_bytes(signature[:_TIMESTAMP_SIZE], "big")
        if timestamp > MAX_TIMESTAMP:
            raise SignatureError(f"cosignature by {self.to_string()} has timestamp {timestamp}")
        self._check_ed25519(cosignature_message(text, timestamp), signature[_TIMESTAMP_SIZE:])
        return timestamp


def parse_verifier_key(vkey: str) -> NoteVerifier | CosignatureVerifier:
    """Parse a verifier key string of either supported type, chosen by its type byte."""
    _, type_and_key = _split_verifier_key(vkey)
    if type_and_key[0] == SIGNATURE_TYPE_ED25519:
        return NoteVerifier.from_string(vkey)
    if type_and_key[0] == SIGNATURE_TYPE_COSIGNATURE_V1:
        return CosignatureVerifier.from_string(vkey)
    raise MalformedError(f"verifier key {vkey!r} has unsupported signature type {type_and_key[0]}")


class _Signer:
    """A key name and an Ed25519 private key; the subclasses fix the signature type."""

    SIGNATURE_TYPE: ClassVar[int]

    def __init__(self, name: str, private_key: Ed25519PrivateKey | bytes) -> None:
        """Take a key name and an Ed25519 private key (a ``cryptography`` key or the 32-byte seed)."""
        self.name = _check_key_name(name)
        self._private_key = _load_private_key(private_key)
        self.public_key = self._private_key.public_key().public_bytes(
            Encoding.Raw, PublicFormat.Raw
        )
        self.key_id = key_id(self.name, self.SIGNATURE_TYPE, self.public_key)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, key id {self.key_id:08x})"

    def _signature_line(self, signature: bytes) -> str:
        raw = self.key_id.to_bytes(_KEY_ID_SIZE, "big") + signature
        return f"{_SIGNATURE_LINE_PREFIX}{self.name} {_encode_base64(raw)}"


class NoteSigner(_Signer):
    """Signs note texts with a named Ed25519 key (signature type ``0x01``), e.g. the hub's log key."""

    SIGNATURE_TYPE: ClassVar[int] = SIGNATURE_TYPE_ED25519

    def verifier(self) -> NoteVerifier:
        """The verifier of this key, whose :meth:`~NoteVerifier.to_string` goes to the verifiers."""
        return NoteVerifier(self.name, self.public_key)

    def signature_line(self, text: str) -> str:
        """The signature line (without its newline) of this key over ``text``."""
        _check_note_text(text)
        return self._signature_line(self._private_key.sign(text.encode("utf-8")))


class CosignatureSigner(_Signer):
    """Cosigns checkpoints with a named witness key (signature type ``0x04``)."""

    SIGNATURE_TYPE: ClassVar[int] = SIGNATURE_TYPE_COSIGNATURE_V1

    def verifier(self) -> CosignatureVerifier:
        """The verifier of this witness key, as partners and the hub configure it."""
        return CosignatureVerifier(self.name, self.public_key)

    def signature_line(self, text: str, timestamp: int) -> str:
        """The cosignature line (without its newline) over checkpoint ``text`` at ``timestamp``."""
        signature = self._private_key.sign(cosignature_message(text, timestamp))
        return self._signature_line(timestamp.to_bytes(_TIMESTAMP_SIZE, "big") + signature)


# --- signature lines and notes -----------------------------------------------------------------------


@dataclass(frozen=True)
class NoteSignature:
    """One signature line of a note, parsed but not verified."""

    name: str
    key_id: int
    signature: bytes
    """The signature bytes after the key id."""

    @classmethod
    def from_line(cls, line: str) -> NoteSignature:
        """Parse ``— <name> <base64(key id ‖ signature)>`` (no trailing newline)."""
        if not line.startswith(_SIGNATURE_LINE_PREFIX):
            raise MalformedError(
                f"signature line {line!r} does not start with an em dash (U+2014) and a space"
            )
        name, separator, encoded = line[len(_SIGNATURE_LINE_PREFIX) :].partition(" ")
        if not separator:
            raise MalformedError(f"signature line {line!r} has no space after the key name")
        _check_key_name(name)
        raw = _decode_base64(encoded, f"signature of {name}")
        if len(raw) <= _KEY_ID_SIZE:
            raise MalformedError(f"signature of {name} is {len(raw)} bytes, too short")
        return cls(name, int.from_bytes(raw[:_KEY_ID_SIZE], "big"), raw[_KEY_ID_SIZE:])

    def to_line(self) -> str:
        """The signature line, without its newline."""
        raw = self.key_id.to_bytes(_KEY_ID_SIZE, "big") + self.signature
        return f"{_SIGNATURE_LINE_PREFIX}{self.name} {_encode_base64(raw)}"


@dataclass(frozen=True)
class VerifiedSignature:
    """A signature line that verified under a known key."""

    signature: NoteSignature
    verifier: NoteVerifier | CosignatureVerifier
    timestamp: int | None = None
    """The cosignature's time in Unix seconds; ``None`` for a plain note signature."""


@dataclass(frozen=True)
class SignedNote:
    """An opened note: its text, the signatures that verified, and those from unknown keys."""

    text: str
    signatures: tuple[VerifiedSignature, ...]
    unknown_signatures: tuple[NoteSignature, ...]

    def signature_by(
        self, verifier: NoteVerifier | CosignatureVerifier
    ) -> VerifiedSignature | None:
        """The verified signature made with ``verifier``'s key, or None if it did not sign."""
        for verified in self.signatures:
            if verified.verifier == verifier:
                return verified
        return None


class UnverifiedNoteError(SignatureError):
    """A well-formed note that no known key has signed (only unknown keys, or none known given)."""

    def __init__(self, message: str, *, unknown_signatures: Sequence[NoteSignature]) -> None:
        super().__init__(message)
        self.unknown_signatures = tuple(unknown_signatures)


def _split_note(note: str | bytes) -> tuple[str, list[str]]:
    """Split a note into its text and its signature lines, checking the framing only."""
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError as e:
            raise MalformedError("note is not valid UTF-8") from e
    _check_utf8(note, "note")
    if not note.endswith("\n"):
        raise MalformedError("note does not end with a newline")
    split = note.rfind("\n\n")
    if split < 0:
        raise MalformedError("note has no blank line before its signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if not block:
        raise MalformedError("note has no signature lines")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise TooLargeError(
            over_limit(len(lines), MAX_SIGNATURES, "signature lines", what="the note", verb="has")
        )
    return text, lines


def _index_verifiers(
    verifiers: Iterable[NoteVerifier | CosignatureVerifier],
) -> dict[tuple[str, int], NoteVerifier | CosignatureVerifier]:
    known: dict[tuple[str, int], NoteVerifier | CosignatureVerifier] = {}
    for verifier in verifiers:
        if not isinstance(verifier, NoteVerifier | CosignatureVerifier):
            raise ConfigurationError(f"not a note verifier: {verifier!r}")
        slot = (verifier.name, verifier.key_id)
        if known.setdefault(slot, verifier) != verifier:
            raise ConfigurationError(
                f"two different verifier keys share name {verifier.name} and key id "
                f"{verifier.key_id:08x}"
            )
    return known


def open_note(
    note: str | bytes, verifiers: Iterable[NoteVerifier | CosignatureVerifier]
) -> SignedNote:
    """Parse ``note`` and verify every signature made with one of ``verifiers``.

    A signature line whose key name and key id match a known verifier must verify, or the whole
    note is rejected (SignatureError); lines from unknown keys are kept unverified; at least one
    known key must have signed (else :class:`UnverifiedNoteError`). A key that signed twice is
    listed once, with its first signature, but every one of its signatures is checked.
    """
    text, lines = _split_note(note)
    known = _index_verifiers(verifiers)
    verified: list[VerifiedSignature] = []
    verified_slots: set[tuple[str, int]] = set()
    unknown: list[NoteSignature] = []
    for number, line in enumerate(lines, start=1):
        try:
            signature = NoteSignature.from_line(line)
        except MalformedError as e:
            raise MalformedError(
                f"signature line {number}: {e.message}",
                violations=[FieldViolation(f"signature line {number}", e.message)],
            ) from e
        slot = (signature.name, signature.key_id)
        verifier = known.get(slot)
        if verifier is None:
            if signature not in unknown:
                unknown.append(signature)
            continue
        timestamp: int | None = None
        if isinstance(verifier, CosignatureVerifier):
            timestamp = verifier.verify(text, signature.signature)
        else:
            verifier.verify(text, signature.signature)
        if slot not in verified_slots:
            verified_slots.add(slot)
            verified.append(VerifiedSignature(signature, verifier, timestamp))
    if not verified:
        signers = ", ".join(f"{s.name}+{s.key_id:08x}" for s in unknown)
        raise UnverifiedNoteError(
            f"note is signed by no known key (signed by: {signers})",
            unknown_signatures=unknown,
        )
    return SignedNote(text, tuple(verified), tuple(unknown))


def _check_note_text(text: str) -> None:
    if not text.endswith("\n"):
        raise MalformedError("note text does not end with a newline")
    _check_utf8(text, "note text")


def sign_note(text: str, signers: Sequence[NoteSigner]) -> str:
    """Sign ``text`` (which ends with a newline) with each of ``signers``; return the note."""
    _check_note_text(text)
    if not signers:
        raise InvalidInputError("a signed note needs at least one signer")
    lines = [signer.signature_line(text) for signer in signers]
    return text + "\n" + "".join(line + "\n" for line in lines)


def append_signatures(note: str, signature_lines: Iterable[str]) -> str:
    """Add signature lines (e.g. cosignatures) to a signed note, skipping lines already present.

    Only the framing is checked, not the signatures: the reader verifies with :func:`open_note`.
    """
    text, lines = _split_note(note)
    for line in lines:
        NoteSignature.from_line(line)
    for line in signature_lines:
        NoteSignature.from_line(line)
        if line not in lines:
            lines.append(line)
    if len(lines) > MAX_SIGNATURES:
        raise TooLargeError(
            over_limit(
                len(lines), MAX_SIGNATURES, "signature lines", what="the note", verb="would have"
            )
        )
    return text + "\n" + "".join(line + "\n" for line in lines)


# --- checkpoints -------------------------------------------------------------------------------------


def _checkpoint_error(line: int, field: str, problem: str) -> MalformedError:
    where = f"checkpoint line {line} ({field})"
    return MalformedError(f"{where}: {problem}", violations=[FieldViolation(where, problem)])


@dataclass(frozen=True)
class Checkpoint:
    """The note text of a tlog checkpoint: origin, tree size, root hash, extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin or _control_character(self.origin):
            raise _checkpoint_error(1, "origin", "must be one non-empty line of text")
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise _checkpoint_error(2, "tree size", "must be an integer")
        if not 0 <= self.size <= _MAX_TREE_SIZE:
            raise _checkpoint_error(2, "tree size", f"{self.size} is outside 0..2^64-1")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != 32:
            raise _checkpoint_error(3, "root hash", "must be 32 bytes")
        for number, extension in enumerate(self.extensions, start=4):
            if not extension or "\n" in extension or _control_character(extension):
                raise _checkpoint_error(number, "extension", "must be one non-empty line of text")

    def to_text(self) -> str:
        """The checkpoint as note text, ending with a newline."""
        lines = [self.origin, str(self.size), _encode_base64(self.root_hash), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def from_text(cls, text: str) -> Checkpoint:
        """Parse checkpoint note text strictly; a MalformedError names the line at fault."""
        _check_utf8(text, "checkpoint")
        if not text.endswith("\n"):
            raise MalformedError("checkpoint text does not end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise _checkpoint_error(len(lines) + 1, "missing", "a checkpoint has at least 3 lines")
        origin, size_line, root_line, *extensions = lines
        if not origin:
            raise _checkpoint_error(1, "origin", "is empty")
        if not _DECIMAL.fullmatch(size_line):
            raise _checkpoint_error(
                2, "tree size", f"{size_line!r} is not a decimal number without leading zeros"
            )
        size = int(size_line)
        if size > _MAX_TREE_SIZE:
            raise _checkpoint_error(2, "tree size", f"{size_line} does not fit in 64 bits")
        try:
            root_hash = _decode_base64(root_line, "root hash")
        except MalformedError as e:
            raise _checkpoint_error(3, "root hash", e.message) from e
        if len(root_hash) != 32:
            raise _checkpoint_error(3, "root hash", f"is {len(root_hash)} bytes, not 32")
        for number, extension in enumerate(extensions, start=4):
            if not extension:
                raise _checkpoint_error(number, "extension", "is empty")
        return cls(origin, size, root_hash, tuple(extensions))


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint whose note verified under the log's key, with the cosignatures that verified."""

    checkpoint: Checkpoint
    note: SignedNote

    @property
    def cosignatures(self) -> dict[str, int]:
        """Cosigner name to cosignature timestamp, for every known witness that cosigned."""
        return {
            verified.verifier.name: verified.timestamp
            for verified in self.note.signatures
            if verified.timestamp is not None
        }


def open_checkpoint(
    note: str | bytes,
    log_verifier: NoteVerifier,
    *,
    cosigners: Iterable[CosignatureVerifier] = (),
    origin: str | None = None,
) -> SignedCheckpoint:
    """Open a checkpoint note that must be signed by ``log_verifier``; check known cosignatures.

    ``origin``, when given, must be the checkpoint's origin line (a checkpoint of another log proves
    nothing about this one). Which cosigners must have signed, and how recently, is the caller's
    policy: :attr:`SignedCheckpoint.cosignatures` lists those that did.
    """
    signed = open_note(note, [log_verifier, *cosigners])
    if signed.signature_by(log_verifier) is None:
        raise UnverifiedNoteError(
            f"checkpoint is not signed by the log key {log_verifier.to_string()}",
            unknown_signatures=signed.unknown_signatures,
        )
    checkpoint = Checkpoint.from_text(signed.text)
    if origin is not None and checkpoint.origin != origin:
        raise VerificationError(
            f"checkpoint is for log {checkpoint.origin!r}, expected {origin!r}",
            reason="CHECKPOINT_ORIGIN_MISMATCH",
        )
    return SignedCheckpoint(checkpoint, signed)


# --- cosignatures ------------------------------------------------------------------------------------


def _check_timestamp(timestamp: int) -> int:
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise InvalidInputError(f"cosignature timestamp must be an integer, got {timestamp!r}")
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise InvalidInputError(f"cosignature timestamp {timestamp} is outside 0..2^63-1")
    return timestamp


def cosignature_message(checkpoint_text: str, timestamp: int) -> bytes:
    """The bytes a ``cosignature/v1`` signs: header, time line, then the checkpoint text."""
    Checkpoint.from_text(checkpoint_text)
    _check_timestamp(timestamp)
    return f"{COSIGNATURE_V1_HEADER}\ntime {timestamp}\n{checkpoint_text}".encode()


def cosign(checkpoint_text: str, signer: CosignatureSigner, timestamp: int) -> str:
    """Cosign checkpoint note text at ``timestamp`` (Unix seconds); return the signature line.

    The line has no trailing newline; :func:`append_signatures` adds it to the signed checkpoint.
    """
    return signer.signature_line(checkpoint_text, timestamp)


def verify_cosignature(
    checkpoint_text: str, signature_line: str, verifier: CosignatureVerifier
) -> int:
    """Check one cosignature line over checkpoint text; return its timestamp (Unix seconds).

    Raises SignatureError if the line is not from ``verifier``'s key or does not verify.
    """
    signature = NoteSignature.from_line(signature_line)
    if (signature.name, signature.key_id) != (verifier.name, verifier.key_id):
        raise SignatureError(
            f"cosignature is from {signature.name}+{signature.key_id:08x}, "
            f"not {verifier.name}+{verifier.key_id:08x}"
        )
    return verifier.verify(checkpoint_text, signature.signature)


def cosignature_timestamp(signature: NoteSignature) -> int:
    """Read the timestamp of a ``cosignature/v1`` signature *without verifying it*, for display."""
    if len(signature.signature) != _TIMESTAMP_SIZE + _ED25519_SIGNATURE_SIZE:
        raise MalformedError(f"signature of {signature.name} is not a cosignature/v1")
    return int.from_bytes(signature.signature[:_TIMESTAMP_SIZE], "big")
