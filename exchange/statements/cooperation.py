"""The signed cooperation summary: figures an agency computed from the log, and the checkpoint
it verified the log at, signed by the agency (``exchange report --sign``).

A delegation hands the summary over; the partner checks it offline with ``exchange report
verify``: the agency's key statement against that agency's CA in the partner's own profile, the
summary's signature under the certified key, and the checkpoint's signature under the hub's
checkpoint key, also from the profile.  Every figure cites log indices below the checkpoint's
size, so the partner can recompute it from its own copy of the log (``exchange audit compare``
with the checkpoint proves the two copies are one log).

The summary travels as a *bundle*: a JSON document holding the summary's DSSE envelope and the
signer's ``AgencyKeys`` envelope, both in the DSSE JSON form.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

from exchange.crypto.dsse import Envelope
from exchange.crypto.notes import NoteVerifier, SignedCheckpoint, open_checkpoint
from exchange.errors import MalformedError, UnknownKeyError, VerificationError
from exchange.statements.agency_keys import AgencyKeys
from exchange.statements.release import SignedStatement
from exchange.v1 import statements_pb2

__all__ = ["BUNDLE_FORMAT", "CooperationBundle", "CooperationStatement"]

BUNDLE_FORMAT = "exchange/cooperation-summary/v1"
UNITS = frozenset({"count", "microseconds"})
HASH_BYTES = 32


def _require(condition: bool, problem: str) -> None:
    if not condition:
        raise MalformedError(f"cooperation summary: {problem}")


class CooperationStatement(SignedStatement[statements_pb2.CooperationSummary]):
    """An agency's signed cooperation figures (see the module documentation)."""

    KIND = "cooperation_summary"
    MESSAGE = statements_pb2.CooperationSummary

    @classmethod
    def signer_field(cls) -> str:
        return "agency"

    @classmethod
    def _check(cls, message: statements_pb2.CooperationSummary) -> None:
        _require(bool(message.agency), "names no agency")
        partners = list(message.partners)
        _require(bool(partners), "names no partner")
        _require(partners == sorted(set(partners)), "partners are not sorted and distinct")
        _require(message.agency not in partners, "names its own agency as a partner")
        _require(bool(message.checkpoint), "carries no checkpoint")
        _require(message.checkpoint_size > 0, "the checkpoint is empty")
        _require(len(message.checkpoint_root_hash) == HASH_BYTES, "needs a 32-byte root hash")
        _require(message.HasField("as_of"), "has no as-of time")
        _require(message.HasField("created_at"), "has no creation time")
        if message.HasField("since") and message.HasField("until"):
            _require(message.since.ToDatetime() < message.until.ToDatetime(), "an empty period")
        for position, figure in enumerate(message.figures):
            what = f"figure {position}"
            _require(bool(figure.metric), f"{what} names no metric")
            _require(figure.unit in UNITS, f"{what} has unit {figure.unit!r}")
            _require(figure.value >= 0, f"{what} is negative")
            indices = list(figure.log_indices)
            _require(indices == sorted(set(indices)), f"{what}: log indices not ascending")
            _require(
                all(index < message.checkpoint_size for index in indices),
                f"{what} cites an entry past the checkpoint",
            )

    def check_checkpoint(self, log_verifier: NoteVerifier) -> SignedCheckpoint:
        """Open the summary's checkpoint under the hub's key and check that it is the one the
        summary names (size and root); raises :class:`VerificationError` otherwise."""
        message = self.message
        signed = open_checkpoint(message.checkpoint, log_verifier, origin=log_verifier.name)
        checkpoint = signed.checkpoint
        if (checkpoint.size, checkpoint.root_hash) != (
            message.checkpoint_size,
            bytes(message.checkpoint_root_hash),
        ):
            raise VerificationError(
                f"the summary names a checkpoint of size {message.checkpoint_size}, its note is "
                f"of size {checkpoint.size} with another root",
                reason="CHECKPOINT_MISMATCH",
            )
        return signed


@dataclass(frozen=True)
class CooperationBundle:
    """A signed summary with the key statement of its signer, as handed over."""

    statement: CooperationStatement
    signer_keys: AgencyKeys

    @staticmethod
    def encode(statement: CooperationStatement, signer_keys: Envelope) -> bytes:
        """The bundle file: JSON with both DSSE envelopes (one line per key, for diffs)."""
        document = {
            "format": BUNDLE_FORMAT,
            "statement": json.loads(statement.envelope.to_json()),
            "signer_keys": json.loads(signer_keys.to_json()),
        }
        return (json.dumps(document, indent=1, ensure_ascii=False) + "\n").encode("utf-8")

    @classmethod
    def verify(
        cls,
        data: bytes,
        *,
        partner_cas: Mapping[str, x509.Certificate],
        log_verifier: NoteVerifier,
        now: datetime,
    ) -> CooperationBundle:
        """Verify a bundle: the signer's keys against its CA in ``partner_cas``, the summary's
        signature under them, and its checkpoint under ``log_verifier``.

        A bundle that is not one raises :class:`MalformedError`; a signer this profile holds no
        CA for, :class:`UnknownKeyError`; a signature or checkpoint that fails,
        :class:`VerificationError`.
        """
        try:
            document = json.loads(data)
        except (UnicodeDecodeError, ValueError) as e:
            raise MalformedError("not a cooperation summary: the file is not JSON") from e
        if not isinstance(document, dict) or document.get("format") != BUNDLE_FORMAT:
            raise MalformedError(f"not a cooperation summary: its format is not {BUNDLE_FORMAT}")
        envelopes = []
        for name in ("statement", "signer_keys"):
            part = document.get(name)
            if not isinstance(part, dict):
                raise MalformedError(f"the cooperation summary has no {name} envelope")
            envelopes.append(Envelope.from_json(json.dumps(part).encode("utf-8")))
        envelope, keys_envelope = envelopes
        try:
            agency = CooperationStatement.peek_signer(envelope)
        except MalformedError as e:
            raise VerificationError(
                f"the signed summary is altered or corrupt: {e.message}", reason="PAYLOAD_INVALID"
            ) from e
        ca = partner_cas.get(agency)
        if ca is None:
            raise UnknownKeyError(
                f"the summary is signed in the name of {agency!r}, for whom this profile holds no "
                "CA certificate: it is not a partner of this agency"
            )
        keys = AgencyKeys.verify(keys_envelope, ca, now=now)
        if keys.agency_id != agency:
            raise VerificationError(
                f"the summary names {agency!r} but carries the keys of {keys.agency_id!r}",
                reason="SIGNER_MISMATCH",
            )
        statement = CooperationStatement.verify(envelope, {keys.verify_key.key_id: keys.verify_key})
        statement.check_checkpoint(log_verifier)
        return cls(statement=statement, signer_keys=keys)
