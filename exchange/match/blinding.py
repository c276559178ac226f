"""Blinding keys and tokens: what an agency publishes instead of its selectors.

For each ordered pair of agencies (a *holder*, whose index is searched, and a *querier*, who
searches it) there is one blinding key, which only those two can compute:

    shared   = X25519(holder's private encryption key, querier's public encryption key)
             = X25519(querier's private encryption key, holder's public encryption key)
    key      = HKDF-SHA256(shared, salt = none, info = lp(label, holder id, holder key id,
                                                         querier id, querier key id), 32 bytes)
    token    = HMAC-SHA256(key, lp(token label, kind, canonical value))

The hub holds every public key and none of the private ones, so it cannot compute a key and
cannot test a guess against the tokens it stores.  The key is directional (the holder's id comes
first in ``info``), so the tokens B publishes for A and those A publishes for B differ even for a
selector both hold: the hub cannot intersect two indexes without a query.  The key ids are the
encryption keys' ids, so a new encryption key on either side gives a new blinding key and the
index must be re-blinded.  Static-static X25519 is used nowhere else in the exchange (grants use
HPKE's ephemeral keys), and the label separates this use from any later one.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from exchange.crypto.encoding import lp
from exchange.crypto.keys import DecryptionKey, EncryptionKey
from exchange.errors import MalformedError
from exchange.match.selectors import Selector

__all__ = [
    "BLINDING_KEY_LABEL",
    "TOKEN_DIGEST_LABEL",
    "TOKEN_LABEL",
    "TOKEN_LENGTH",
    "BlindingKey",
    "PairKeys",
    "hkdf_sha256",
    "hmac_sha256",
    "pack_tokens",
    "token_digest",
    "token_input",
    "unpack_tokens",
    "x25519_agreement",
]

BLINDING_KEY_LABEL = b"exchange/match/blinding-key/v1"
TOKEN_LABEL = b"exchange/match/token/v1"
TOKEN_DIGEST_LABEL = b"exchange/match/token-digest/v1"
TOKEN_LENGTH = 32
_KEY_LENGTH = 32


def x25519_agreement(own: DecryptionKey, partner: EncryptionKey) -> bytes:
    """The X25519 shared secret of ``own`` private key and ``partner`` public key (RFC 7748).

    Low-order partner keys are refused when an :class:`EncryptionKey` is loaded.
    """
    try:
        return own.native.exchange(partner.native)
    except ValueError as e:
        raise MalformedError("X25519 agreement with a low-order key") from e


def hkdf_sha256(ikm: bytes, *, salt: bytes | None, info: bytes, length: int) -> bytes:
    """HKDF-SHA256 (RFC 5869), extract and expand."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    """HMAC-SHA256 (RFC 2104) of ``data`` under ``key``."""
    mac = crypto_hmac.HMAC(key, hashes.SHA256())
    mac.update(data)
    return mac.finalize()


_U32 = struct.Struct(">I")
# lp(TOKEN_DIGEST_LABEL, token) for a 32-byte token, and lp(TOKEN_LABEL, encoded selector),
# built from their constant prefixes: the hot loops of indexing call these a million times.
_DIGEST_PREFIX = lp(TOKEN_DIGEST_LABEL) + _U32.pack(TOKEN_LENGTH)
_TOKEN_PREFIX = lp(TOKEN_LABEL)


def token_digest(token: bytes) -> bytes:
    """What the log and the holder's hit notices carry instead of a token: a labelled SHA-256,
    ``SHA-256(lp(TOKEN_DIGEST_LABEL, token))``."""
    if len(token) != TOKEN_LENGTH:
        raise MalformedError(f"a token is {TOKEN_LENGTH} bytes")
    return hashlib.sha256(_DIGEST_PREFIX + token).digest()


def token_input(selector: Selector) -> bytes:
    """The bytes a token is the HMAC of: ``lp(TOKEN_LABEL, lp(kind, value))``."""
    kind, value = selector.kind.encode(), selector.value.encode()
    inner = _U32.pack(len(kind)) + kind + _U32.pack(len(value)) + value
    return _TOKEN_PREFIX + _U32.pack(len(inner)) + inner


@dataclass(frozen=True)
class PairKeys:
    """Who holds the index and who queries it, and the encryption key id each side uses.

    The hub checks the key ids against the agencies' current keys; an index blinded under other
    ids is stale and must be re-blinded.
    """

    holder: str
    holder_key_id: str
    querier: str
    querier_key_id: str

    def info(self) -> bytes:
        """The HKDF ``info``: label, then holder and querier ids and key ids, length-prefixed."""
        return lp(
            BLINDING_KEY_LABEL, self.holder, self.holder_key_id, self.querier, self.querier_key_id
        )


class BlindingKey:
    """The key of one (holder, querier) pair: computes the tokens of selectors."""

    __slots__ = ("_key", "pair")

    def __init__(self, key: bytes, pair: PairKeys) -> None:
        if len(key) != _KEY_LENGTH:
            raise MalformedError(f"a blinding key is {_KEY_LENGTH} bytes")
        self._key = key
        self.pair = pair

    @classmethod
    def derive(
        cls,
        own_id: str,
        own_key: DecryptionKey,
        partner_id: str,
        partner_key: EncryptionKey,
        *,
        own_role: str,
    ) -> BlindingKey:
        """The blinding key of this agency and a partner, this agency being the ``holder`` (for
        the tokens it publishes) or the ``querier`` (for the tokens it asks about)."""
        own_key_id = own_key.public_key.key_id
        if own_role == "holder":
            pair = PairKeys(own_id, own_key_id, partner_id, partner_key.key_id)
        elif own_role == "querier":
            pair = PairKeys(partner_id, partner_key.key_id, own_id, own_key_id)
        else:
            raise ValueError(f"own_role is 'holder' or 'querier', not {own_role!r}")
        shared = x25519_agreement(own_key, partner_key)
        return cls(hkdf_sha256(shared, salt=None, info=pair.info(), length=_KEY_LENGTH), pair)

    def token(self, selector: Selector) -> bytes:
        """The 32-byte token of one canonical selector."""
        return hmac_sha256(self._key, token_input(selector))

    def tokens(self, selectors: Iterable[Selector]) -> list[bytes]:
        """The tokens of ``selectors``, in order."""
        keyed = crypto_hmac.HMAC(self._key, hashes.SHA256())
        tokens = []
        for selector in selectors:
            mac = keyed.copy()
            mac.update(token_input(selector))
            tokens.append(mac.finalize())
        return tokens

    def __repr__(self) -> str:
        return f"BlindingKey(pair={self.pair!r})"


def pack_tokens(tokens: Iterable[bytes]) -> bytes:
    """Tokens (or digests) as they travel: 32-byte values one after another."""
    return b"".join(tokens)


def unpack_tokens(packed: bytes, *, what: str = "tokens") -> list[bytes]:
    """The 32-byte values of a packed field; anything but a whole number of them is refused."""
    if len(packed) % TOKEN_LENGTH:
        raise MalformedError(
            f"{what}: {len(packed)} bytes is not a whole number of {TOKEN_LENGTH}-byte values"
        )
    return [packed[i : i + TOKEN_LENGTH] for i in range(0, len(packed), TOKEN_LENGTH)]
