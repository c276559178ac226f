"""The one error tree of the exchange core, hub and client.

Every lower-level exception (``InvalidSignature``, ``InvalidTag``, ``ValueError`` from a parser,
``grpc.RpcError`` on the client) is wrapped into one of these with ``raise ... from e``.  Each
error carries a stable ``reason`` (the ``ErrorInfo`` reason on the wire) and, for validation, a
list of field violations.  The hub maps them to gRPC statuses in one place
(:mod:`exchange.hub.status`), the client maps statuses back in one place.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldViolation:
    """One bad field: a path such as ``items[2].shipment.chemicals[0].cas_rn`` and what was wrong."""

    field: str
    description: str

    def __str__(self) -> str:
        return f"{self.field}: {self.description}" if self.field else self.description


class ExchangeError(Exception):
    """Base of every error raised by the exchange packages."""

    reason = "EXCHANGE_ERROR"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason


# --- bad input -------------------------------------------------------------------------------


class InvalidInputError(ExchangeError):
    """Input that is malformed or fails validation; carries every field violation found."""

    reason = "INVALID_ARGUMENT"

    def __init__(
        self,
        message: str,
        *,
        violations: list[FieldViolation] | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message, reason=reason)
        self.violations: list[FieldViolation] = list(violations or [])

    def __str__(self) -> str:
        if not self.violations:
            return self.message
        lines = "\n".join(f"  {v}" for v in self.violations)
        return f"{self.message}\n{lines}"


class MalformedError(InvalidInputError):
    """Bytes that do not parse as the expected message, or carry unknown fields."""

    reason = "MALFORMED"


class DraftError(InvalidInputError):
    """A draft alert that does not follow the draft format or fails validation."""

    reason = "DRAFT_INVALID"


class TooLargeError(ExchangeError):
    """Input over a size limit."""

    reason = "TOO_LARGE"


# --- verification (tampering) ----------------------------------------------------------------


class VerificationError(ExchangeError):
    """Something that should verify does not: a signature, a hash, a commitment, a proof."""

    reason = "VERIFICATION_FAILED"


class SignatureError(VerificationError):
    """A signature does not verify under the key it must verify under."""

    reason = "SIGNATURE_INVALID"


class UnknownKeyError(VerificationError):
    """A statement is signed by a key that is not registered for its signer."""

    reason = "UNKNOWN_SIGNING_KEY"


class CommitmentError(VerificationError):
    """A header, ciphertext or key does not match the commitment signed over it."""

    reason = "COMMITMENT_MISMATCH"


class DecryptionError(VerificationError):
    """Authenticated decryption failed: wrong key, wrong context or altered ciphertext."""

    reason = "DECRYPTION_FAILED"


class GrantError(VerificationError):
    """A grant does not unwrap for this recipient and context."""

    reason = "GRANT_INVALID"


class KeyCommitmentError(CommitmentError):
    """An unwrapped item key does not match the key commitment in the signed header."""

    reason = "KEY_COMMITMENT_MISMATCH"


class CertificateError(VerificationError):
    """A certificate does not chain to the CA registered for the identity it claims."""

    reason = "CERTIFICATE_INVALID"


# --- authorization, state ----------------------------------------------------------------------


class NotAuthenticatedError(ExchangeError):
    """The caller's identity could not be established (or it has been revoked)."""

    reason = "UNAUTHENTICATED"


class NotPermittedError(ExchangeError):
    """The caller is known but may not do this."""

    reason = "PERMISSION_DENIED"


class QuotaExceededError(NotPermittedError):
    """A limit set for the caller is spent for now, such as a holder's daily match budget."""

    reason = "QUOTA_EXCEEDED"


class OutdatedKeysError(ExchangeError):
    """Something was made under keys that are no longer current: refresh or re-blind."""

    reason = "KEYS_OUTDATED"


class NotFoundError(ExchangeError):
    """No such thing, or nothing the caller may see (the two are deliberately the same)."""

    reason = "NOT_FOUND"


class ConflictError(ExchangeError):
    """The same key was already used with different content."""

    reason = "ALREADY_EXISTS"


class UnavailableError(ExchangeError):
    """The hub could not be reached or did not answer in time."""

    reason = "UNAVAILABLE"


class ConfigurationError(ExchangeError):
    """A configuration file or profile is missing, unreadable or inconsistent."""

    reason = "CONFIGURATION"

