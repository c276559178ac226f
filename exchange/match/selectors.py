"""Selectors: the canonical form of an identifier that two agencies may both hold.

A selector is written ``KIND:VALUE``.  :func:`parse_selector` is a pure function that turns any
accepted spelling into the one canonical selector, so two spellings of one identifier give the
same selector (and so the same blinded token) and two different identifiers never do.  The
identifier kinds reuse the normalisers of :mod:`exchange.alerts.identifiers`, which accept the
printed forms documents carry and raise on a bad checksum; the kinds made of two parts and person
names are canonicalised here:

=============  ===============================  ==============================================
kind           value                            canonical form
=============  ===============================  ==============================================
``company``    ``[SCHEME:]NUMBER``              ``cn-uscc:…``, ``us-ein:…`` or ``lei:…``; the
                                                scheme is inferred when only one fits
``iban``       an IBAN, paper or electronic     electronic format
``bic``        a BIC                            upper case, 8 characters (branch ``XXX`` is the
                                                head office and is dropped)
``account``    ``BIC:NUMBER``                   BIC as above, the domestic number upper case
                                                without spaces, hyphens, dots or slashes
``wallet``     ``[CHAIN:]ADDRESS``              ``bitcoin:…``, ``ethereum:…`` (EIP-55) or
                                                ``tron:…``; the chain is inferred from the
                                                address when omitted
``container``  ISO 6346 number                  ``MSCU1234566`` (check digit verified)
``imo``        IMO number                       7 digits
``phone``      international number             E.164
``email``      e-mail address                   email-validator's form, then lower case
``cas``        CAS RN                           hyphenated
``person``     ``NAME:YYYY-MM-DD``              name folded (see :func:`fold_person_name`),
                                                then the date of birth
=============  ===============================  ==============================================
"""

from __future__ import annotations

import datetime
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from anyascii import anyascii

from exchange.alerts import identifiers as ids
from exchange.crypto.encoding import lp
from exchange.errors import InvalidInputError

__all__ = [
    "COMPANY_SCHEMES",
    "KINDS",
    "WALLET_CHAINS",
    "Selector",
    "SelectorError",
    "fold_person_name",
    "parse_selector",
]


class SelectorError(InvalidInputError):
    """A selector that is not ``KIND:VALUE`` of a known kind, or whose value is not valid."""

    reason = "SELECTOR_INVALID"

    def __init__(self, message: str, *, part: str = "value") -> None:
        super().__init__(message)
        self.part = part
        """Which part of the selector is wrong: ``kind`` or ``value``."""


@dataclass(frozen=True, order=True)
class Selector:
    """A canonical selector; build one with :func:`parse_selector`, never by hand."""

    kind: str
    value: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"

    def encode(self) -> bytes:
        """The length-prefixed bytes the blinded token is computed over."""
        return lp(self.kind, self.value)


_MAX_SELECTOR_LENGTH = 512


def _canonical_first(validate: ids.Validator, normalise: ids.Normaliser) -> ids.Normaliser:
    """``normalise``, trying ``validate`` first: a value already in canonical form (what index
    files mostly hold) is then checked once instead of compacted and checked, which halves the
    cost of indexing it; any other value gets the normaliser's result or message."""

    def canonical(value: str) -> str:
        try:
            validate(value)
        except ids.IdentifierError:
            return normalise(value)
        return value

    return canonical


COMPANY_SCHEMES: Mapping[str, ids.Normaliser] = MappingProxyType(
    {
        "cn-uscc": _canonical_first(ids.validate_cn_uscc, ids.normalise_cn_uscc),
        "us-ein": _canonical_first(ids.validate_us_ein, ids.normalise_us_ein),
        "lei": _canonical_first(ids.validate_lei, ids.normalise_lei),
    }
)
"""Company registration schemes, named as ``RegistrationNumber.Scheme`` in lower case."""

WALLET_CHAINS: Mapping[str, ids.Normaliser] = MappingProxyType(
    {
        "bitcoin": _canonical_first(ids.validate_bitcoin_address, ids.normalise_bitcoin_address),
        "ethereum": _canonical_first(
            ids.validate_ethereum_address, ids.normalise_ethereum_address
        ),
        "tron": _canonical_first(ids.validate_tron_address, ids.normalise_tron_address),
    }
)
"""Chains whose addresses the validators know, named as ``Wallet.Chain`` in lower case."""


def _fail(message: str) -> SelectorError:
    return SelectorError(message)


def _qualified(
    value: str,
    qualifiers: Mapping[str, ids.Normaliser],
    *,
    what: str,
    syntax: str,
) -> str:
    """``QUALIFIER:IDENTIFIER`` canonicalised by the qualifier's normaliser; when no qualifier
    is written, the one whose normaliser alone accepts the identifier."""
    head, separator, tail = value.partition(":")
    qualifier = head.strip().lower()
    if separator and qualifier in qualifiers:
        try:
            return f"{qualifier}:{qualifiers[qualifier](tail)}"
        except ids.IdentifierError as e:
            raise _fail(f"{e.message}") from e
    if separator:
        raise _fail(
            f"{what} {head.strip()!r} is not known; expected {syntax} with {what} one of "
            f"{', '.join(qualifiers)}"
        )
    fits: list[str] = []
    for name, normalise in qualifiers.items():
        try:
            fits.append(f"{name}:{normalise(value)}")
        except ids.IdentifierError:
            continue
    if len(fits) == 1:
        return fits[0]
    raise _fail(
        f"is not valid in any {what} known ({', '.join(qualifiers)}); write {syntax} to see why"
        if not fits
        else f"fits several {what}s; write {syntax}"
    )


def _company(value: str) -> str:
    return _qualified(value, COMPANY_SCHEMES, what="scheme", syntax="company:SCHEME:NUMBER")


def _wallet(value: str) -> str:
    return _qualified(value, WALLET_CHAINS, what="chain", syntax="wallet:CHAIN:ADDRESS")


def _bic(value: str) -> str:
    canonical = _canonical_first(ids.validate_bic, ids.normalise_bic)(value)
    # SWIFT: a BIC8 is the head office, the same as its BIC11 with branch code XXX.
    return canonical[:8] if canonical.endswith("XXX") else canonical


_ACCOUNT_SEPARATORS = str.maketrans("", "", " -./")
_ACCOUNT_RE = re.compile(r"[A-Z0-9]{1,34}")


def _account(value: str) -> str:
    bank, separator, number = value.partition(":")
    if not separator:
        raise _fail("expected account:BIC:NUMBER, e.g. account:BKCHCNBJ300:6217000010001234567")
    try:
        bic = _bic(bank)
    except ids.IdentifierError as e:
        raise _fail(f"BIC {e.message}") from e
    compact = number.strip().upper().translate(_ACCOUNT_SEPARATORS)
    if not compact.isascii() or not _ACCOUNT_RE.fullmatch(compact):
        raise _fail(
            "account number: expected 1 to 34 letters or digits (spaces, hyphens, dots and "
            "slashes are dropped)"
        )
    try:
        ids.validate_iban(compact)
    except ids.IdentifierError:
        return f"{bic}:{compact}"
    raise _fail(f"account number is an IBAN: write iban:{compact}")


def _email(value: str) -> str:
    # The local part is case-sensitive by RFC 5321 and case-insensitive in practice: a selector
    # folds it so that Ops@example.cn and ops@example.cn match.
    return ids.normalise_email(value).lower()


_PERSON_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_NAME_SEPARATORS_RE = re.compile(r"[^0-9a-z]+")
_MAX_NAME_LENGTH = 200


def fold_person_name(name: str) -> str:
    """A person's name folded for matching: ``Zhang Wei``, ``ZHANG wei``, ``张伟`` and
    ``Zhang-Wei`` all give ``zhangwei``; ``José Müller`` and ``Jose Muller`` give
    ``josemuller``.

    Compatibility forms are unfolded and diacritics removed (NFKD, combining marks dropped),
    every other script transliterated to Latin (``anyascii``: ``ß`` to ``ss``, ``Ø`` to ``O``,
    Cyrillic, Greek, Han to pinyin without tones), then everything but letters and digits removed
    and the rest lower-cased.  The order of the names is kept: ``Wei Zhang`` stays another
    selector, and so do spellings that differ in their letters (``Mueller``).
    """
    decomposed = unicodedata.normalize("NFKD", name)
    stripped = "".join(char for char in decomposed if not unicodedata.combining(char))
    return _NAME_SEPARATORS_RE.sub("", anyascii(stripped).lower())


def _person(value: str) -> str:
    name, separator, born = value.rpartition(":")
    born = born.strip()
    if not separator or not _PERSON_DATE_RE.fullmatch(born):
        raise _fail("expected person:NAME:YYYY-MM-DD (name, then date of birth)")
    try:
        date = datetime.date.fromisoformat(born)
    except ValueError as e:
        raise _fail(f"date of birth {born} is not a calendar date") from e
    if len(name) > _MAX_NAME_LENGTH:
        raise _fail(f"name is {len(name)} characters long, at most {_MAX_NAME_LENGTH} expected")
    folded = fold_person_name(name)
    if not folded:
        raise _fail("name has no letters or digits")
    return f"{folded}:{date.isoformat()}"


KINDS: Mapping[str, Callable[[str], str]] = MappingProxyType(
    {
        "company": _company,
        "iban": _canonical_first(ids.validate_iban, ids.normalise_iban),
        "bic": _bic,
        "account": _account,
        "wallet": _wallet,
        "container": _canonical_first(ids.validate_container_number, ids.normalise_container_number),
        "imo": _canonical_first(ids.validate_imo_number, ids.normalise_imo_number),
        "phone": _canonical_first(ids.validate_phone_e164, ids.normalise_phone_e164),
        "email": _email,
        "cas": _canonical_first(ids.validate_cas_rn, ids.normalise_cas_rn),
        "person": _person,
    }
)
"""Each selector kind and the function that gives a value's canonical form."""


def parse_selector(text: str, *, kind: str | None = None) -> Selector:
    """The canonical selector for ``KIND:VALUE`` (or for ``text`` as the value of ``kind``).

    Raises :class:`SelectorError` naming the selector and what is wrong with it: an unknown
    kind, a malformed value, a bad check digit (``container:MSCU1234565: check digit is 5,
    expected 6``).
    """
    if not isinstance(text, str):
        raise _fail(f"expected a string, got {type(text).__name__}")
    if len(text) > _MAX_SELECTOR_LENGTH:
        raise _fail(f"selector is {len(text)} characters long, at most {_MAX_SELECTOR_LENGTH}")
    if kind is None:
        kind, separator, value = text.partition(":")
        if not separator:
            raise SelectorError(
                f"{_shown(text)}: expected KIND:VALUE with KIND one of {', '.join(KINDS)}",
                part="kind",
            )
    else:
        value = text
    name = kind.strip().lower()
    canonicalise = KINDS.get(name)
    if canonicalise is None:
        raise SelectorError(
            f"unknown selector kind {_shown(kind)!r}; expected one of {', '.join(KINDS)}",
            part="kind",
        )
    try:
        canonical = canonicalise(value)
    except SelectorError as e:
        raise _fail(f"{name}:{_shown(value)}: {e.message}") from e
    except ids.IdentifierError as e:
        raise _fail(f"{name}:{_shown(value)}: {e.message}") from e
    return Selector(name, canonical)


def _shown(value: str) -> str:
    """A value as an error message shows it: shortened, control characters escaped."""
    shown = value if len(value) <= 60 else value[:60] + "..."
    return shown if shown.isprintable() else repr(shown)
