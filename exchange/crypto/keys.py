"""An agency's key pairs: Ed25519 for signing statements, X25519 for receiving wrapped item keys.

The classes wrap the ``cryptography`` objects so that the rest of the project never handles raw
library types or exceptions: loading bad material raises :class:`MalformedError`, a bad signature
raises :class:`SignatureError`. Each wrapper exposes the library object as ``.native`` for the PKI
code that puts public keys into certificates.

A key id is the first 16 bytes of SHA-256 over the raw 32-byte public key, in hex: stable, short
enough to log, and long enough that two keys never share one by accident.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

from exchange.errors import MalformedError, SignatureError

PUBLIC_KEY_LENGTH = 32
_KEY_ID_BYTES = 16


def public_key_id(raw_public: bytes) -> str:
    """The key id of a raw public key: hex of the first 16 bytes of its SHA-256 (32 hex chars)."""
    return hashlib.sha256(raw_public).digest()[:_KEY_ID_BYTES].hex()


def fingerprint(raw_public: bytes) -> str:
    """A public key's fingerprint for people to compare, in ssh's form: ``SHA256:<base64>``.

    The base64 has no padding, as ``ssh-keygen -l`` prints it.
    """
    digest = hashlib.sha256(raw_public).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def _raw_public(native: ed25519.Ed25519PublicKey | x25519.X25519PublicKey) -> bytes:
    return native.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _load_private_pem(data: bytes, what: str) -> object:
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        raise MalformedError(f"not an unencrypted PEM {what} private key") from e


def _private_pem(native: ed25519.Ed25519PrivateKey | x25519.X25519PrivateKey) -> bytes:
    return native.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _check_public_length(raw: bytes, what: str) -> None:
    if not isinstance(raw, bytes) or len(raw) != PUBLIC_KEY_LENGTH:
        raise MalformedError(f"an {what} public key is {PUBLIC_KEY_LENGTH} raw bytes")


class _PublicKey:
    """What both public key kinds share: the raw bytes, their id and fingerprint, equality."""

    __slots__ = ("_raw",)

    def __init__(self, raw: bytes) -> None:
        self._raw = raw

    @property
    def raw(self) -> bytes:
        """The 32-byte public key."""
        return self._raw

    @property
    def key_id(self) -> str:
        """32 hex characters naming this key (see :func:`public_key_id`)."""
        return public_key_id(self._raw)

    @property
    def fingerprint(self) -> str:
        """The ``SHA256:...`` form for people to compare out of band."""
        return fingerprint(self._raw)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._raw == self._raw

    def __hash__(self) -> int:
        return hash((type(self), self._raw))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(key_id={self.key_id!r})"


# --- Ed25519 -----------------------------------------------------------------------------------


class VerifyKey(_PublicKey):
    """An Ed25519 public key, which verifies an agency's signatures."""

    __slots__ = ("_native",)

    def __init__(self, native: ed25519.Ed25519PublicKey) -> None:
        super().__init__(_raw_public(native))
        self._native = native

    @classmethod
    def from_bytes(cls, raw: bytes) -> VerifyKey:
        """Load a raw 32-byte Ed25519 public key; anything else raises :class:`MalformedError`."""
        _check_public_length(raw, "Ed25519")
        try:
            return cls(ed25519.Ed25519PublicKey.from_public_bytes(raw))
        except ValueError as e:
            raise MalformedError("not an Ed25519 public key") from e

    @classmethod
    def from_public_key(cls, obj: object) -> VerifyKey:
        """Wrap a ``cryptography`` Ed25519 public key, such as one read from a certificate."""
        if not isinstance(obj, ed25519.Ed25519PublicKey):
            raise MalformedError(f"expected an Ed25519 public key, got {type(obj).__name__}")
        return cls(obj)

    @property
    def native(self) -> ed25519.Ed25519PublicKey:
        """The ``cryptography`` object, for building certificates."""
        return self._native

    def verify(self, message: bytes, signature: bytes) -> None:
        """Check ``signature`` over ``message``; raise :class:`SignatureError` if it does not hold."""
        try:
            self._native.verify(signature, message)
        except InvalidSignature as e:
            raise SignatureError(
                f"Ed25519 signature does not verify under key {self.key_id}"
            ) from e



class SigningKey:
    """An Ed25519 private key: signs the statements of the agency that holds it."""

    __slots__ = ("_native",)

    def __init__(self, native: ed25519.Ed25519PrivateKey) -> None:
        self._native = native

    @classmethod
    def generate(cls) -> SigningKey:
        """A fresh key from the operating system's random source."""
        return cls(ed25519.Ed25519PrivateKey.generate())

    @classmethod
    def from_pem(cls, data: bytes) -> SigningKey:
        """Load an unencrypted PEM (PKCS8) Ed25519 private key."""
        native = _load_private_pem(data, "Ed25519")
        if not isinstance(native, ed25519.Ed25519PrivateKey):
            raise MalformedError(f"expected an Ed25519 private key, got {type(native).__name__}")
        return cls(native)

    def to_pem(self) -> bytes:
        """The key as unencrypted PKCS8 PEM; protecting the file is the profile's job."""
        return _private_pem(self._native)

    @property
    def native(self) -> ed25519.Ed25519PrivateKey:
        """The ``cryptography`` object, for the PKI code."""
        return self._native

    @property
    def public_key(self) -> VerifyKey:
        """The matching public key."""
        return VerifyKey(self._native.public_key())

    def sign(self, message: bytes) -> bytes:
        """A 64-byte Ed25519 signature over ``message``."""
        return self._native.sign(message)

    def __repr__(self) -> str:
        return f"SigningKey(key_id={self.public_key.key_id!r})"


# --- X25519 ------------------------------------------------------------------------------------


def _reject_low_order(native: x25519.X25519PublicKey) -> None:
    """Refuse a public key whose Diffie-Hellman result is all zeros whatever the private key.

    Such a point (low order) would make every key wrapped to it readable by anyone; X25519 in
    ``cryptography`` signals it with ``ValueError``. One exchange with a throwaway key detects it.
    """
    try:
        x25519.X25519PrivateKey.generate().exchange(native)
    except ValueError as e:
        raise MalformedError("X25519 public key is a low-order point") from e


class EncryptionKey(_PublicKey):
    """An X25519 public key: item keys are wrapped to it with HPKE."""

    __slots__ = ("_native",)

    def __init__(self, native: x25519.X25519PublicKey) -> None:
        super().__init__(_raw_public(native))
        self._native = native

    @classmethod
    def from_bytes(cls, raw: bytes) -> EncryptionKey:
        """Load a raw 32-byte X25519 public key; low-order points raise :class:`MalformedError`."""
        _check_public_length(raw, "X25519")
        try:
            native = x25519.X25519PublicKey.from_public_bytes(raw)
        except ValueError as e:
            raise MalformedError("not an X25519 public key") from e
        _reject_low_order(native)
        return cls(native)

    @classmethod
    def from_public_key(cls, obj: object) -> EncryptionKey:
        """Wrap a ``cryptography`` X25519 public key, such as one read from a certificate."""
        if not isinstance(obj, x25519.X25519PublicKey):
            raise MalformedError(f"expected an X25519 public key, got {type(obj).__name__}")
        _reject_low_order(obj)
        return cls(obj)

    @property
    def native(self) -> x25519.X25519PublicKey:
        """The ``cryptography`` object, for building certificates and for HPKE."""
        return self._native



class DecryptionKey:
    """An X25519 private key: unwraps the item keys granted to the agency that holds it."""

    __slots__ = ("_native",)

    def __init__(self, native: x25519.X25519PrivateKey) -> None:
        self._native = native

    @classmethod
    def generate(cls) -> DecryptionKey:
        """A fresh key from the operating system's random source."""
        return cls(x25519.X25519PrivateKey.generate())

    @classmethod
    def from_pem(cls, data: bytes) -> DecryptionKey:
        """Load an unencrypted PEM (PKCS8) X25519 private key."""
        native = _load_private_pem(data, "X25519")
        if not isinstance(native, x25519.X25519PrivateKey):
            raise MalformedError(f"expected an X25519 private key, got {type(native).__name__}")
        return cls(native)

    def to_pem(self) -> bytes:
        """The key as unencrypted PKCS8 PEM; protecting the file is the profile's job."""
        return _private_pem(self._native)

    @property
    def native(self) -> x25519.X25519PrivateKey:
        """The ``cryptography`` object, for HPKE and the PKI code."""
        return self._native

    @property
    def public_key(self) -> EncryptionKey:
        """The matching public key."""
        return EncryptionKey(self._native.public_key())

    def __repr__(self) -> str:
        return f"DecryptionKey(key_id={self.public_key.key_id!r})"
