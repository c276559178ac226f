"""Validators for the identifiers an alert carries, and the printed forms each kind accepts.

The hub never sees plaintext, so it cannot catch a wrong CAS number or a mistyped container
number: the drafting client must, before anything is signed, and the recipient again on open.

Every validator has the shape ``validate_x(value: str) -> None`` and raises
:class:`IdentifierError` with a message that says what was expected ("check digit is 5, expected
1").  No validator raises anything else, whatever it is given: wrong types, empty strings, very long
strings (rejected by a length cap before any work is done) and non-ASCII look-alikes
(``４１６６１-47-6`` in full-width digits, which python-stdnum would accept) are all
:class:`IdentifierError`.

A validator accepts only the canonical electronic form of its identifier (upper case, no spaces,
the usual hyphens): a signed alert carries one spelling of an identifier so that partners can
match it.  Drafts come from documents, though, so each kind that people print differently has a
normaliser, ``normalise_x(value: str) -> str``: it accepts the canonical form and the well-known
printed forms of that kind (an IBAN in groups of four, a container number as ``MSCU 123456-5``, a
BIC in lower case, ...) and returns the canonical form, or raises :class:`IdentifierError` like
the validator for anything else.  :data:`NORMALISERS` maps each validator to its normaliser.
Where python-stdnum knows the identifier, its ``compact()`` turns a printed form into the
canonical one and its validator is called last, as a backstop: these validators never accept
what python-stdnum rejects.
"""

from __future__ import annotations

import datetime
import re
import unicodedata
import urllib.parse
from collections.abc import Callable, Mapping
from typing import NoReturn

import phonenumbers
import pycountry
from email_validator import EmailNotValidError
from email_validator import validate_email as _email_validator
from eth_hash.auto import keccak
from stdnum import bic as _stdnum_bic
from stdnum import casrn as _stdnum_casrn
from stdnum import iban as _stdnum_iban
from stdnum import imo as _stdnum_imo
from stdnum import iso6346 as _stdnum_iso6346
from stdnum import lei as _stdnum_lei
from stdnum.cn import uscc as _stdnum_uscc
from stdnum.exceptions import InvalidComponent as _StdnumInvalidComponent
from stdnum.exceptions import ValidationError as _StdnumValidationError
from stdnum.us import ein as _stdnum_ein

from exchange.alerts import _base58check, _bech32
from exchange.errors import InvalidInputError
from exchange.limits import over_limit

__all__ = [
    "CRYPTO_ASSET_CODES",
    "NORMALISERS",
    "QUANTITY_UNITS",
    "IdentifierError",
    "Normaliser",
    "Validator",
    "normalise_air_waybill",
    "normalise_bic",
    "normalise_bitcoin_address",
    "normalise_bitcoin_transaction_hash",
    "normalise_cas_rn",
    "normalise_cn_uscc",
    "normalise_container_number",
    "normalise_email",
    "normalise_ethereum_address",
    "normalise_ethereum_transaction_hash",
    "normalise_hs_code",
    "normalise_iban",
    "normalise_imo_number",
    "normalise_lei",
    "normalise_phone_e164",
    "normalise_tron_address",
    "normalise_tron_transaction_hash",
    "normalise_uetr",
    "normalise_un_locode",
    "normalise_us_ein",
    "parse_rfc3339_timestamp",
    "validate_agency_id",
    "validate_air_waybill",
    "validate_alert_id",
    "validate_bic",
    "validate_bill_of_lading",
    "validate_bitcoin_address",
    "validate_bitcoin_transaction_hash",
    "validate_cas_rn",
    "validate_cn_uscc",
    "validate_container_number",
    "validate_country_code",
    "validate_crypto_asset_code",
    "validate_currency_code",
    "validate_currency_or_asset_code",
    "validate_decimal",
    "validate_email",
    "validate_ethereum_address",
    "validate_ethereum_transaction_hash",
    "validate_hs_code",
    "validate_iban",
    "validate_imo_number",
    "validate_iso_date",
    "validate_item_id",
    "validate_language_tag",
    "validate_lei",
    "validate_media_type",
    "validate_phone_e164",
    "validate_quantity_unit",
    "validate_tron_address",
    "validate_tron_transaction_hash",
    "validate_uetr",
    "validate_un_locode",
    "validate_us_ein",
    "validate_website",
]


class IdentifierError(InvalidInputError, ValueError):
    """An identifier that is not well formed; the message says what was expected.

    It carries no field path: the caller (``exchange.alerts.validate``) knows where the value was
    and turns the message into a :class:`~exchange.errors.FieldViolation`.
    """

    reason = "IDENTIFIER_INVALID"


# Crypto-asset codes are not ISO 4217 currencies (TRAPS.md): this short list sits beside the ISO
# list.  Each ticker is the one its issuer or network uses in its own documentation:
#   BTC  bitcoin.org               ETH  ethereum.org            USDT tether.to (Tether)
#   USDC circle.com (Circle)       TRX  tron.network            BNB  bnbchain.org
#   DAI  makerdao.com              LTC  litecoin.org            XMR  getmonero.org
#   SOL  solana.com                XRP  xrpl.org                BUSD paxos.com (Binance USD)
# It names the assets seen in precursor-payment cases; extend it here, with the source.
CRYPTO_ASSET_CODES: frozenset[str] = frozenset(
    {"BTC", "ETH", "USDT", "USDC", "TRX", "BNB", "DAI", "LTC", "XMR", "SOL", "XRP", "BUSD"}
)

# ISO 4217 codes that are valid but say "no currency" or "for testing": meaningless in an alert.
_NON_MONETARY_CURRENCY_CODES = frozenset({"XXX", "XTS"})

# Short identifiers are refused past this length before any other work; the cap is generous so
# that a near miss ("CSQU 305438 3") still gets the message that says what was expected.
_SHORT_CAP = 64
_QUOTE_CAP = 40


def _fail(message: str) -> NoReturn:
    raise IdentifierError(message)


def _quote(value: str) -> str:
    """Quote a (possibly hostile) value for a message, shortened and with escapes visible."""
    if len(value) > _QUOTE_CAP:
        return repr(value[:_QUOTE_CAP]) + "..."
    return repr(value)


def _check_text(value: object, *, max_length: int, ascii_only: bool = True) -> str:
    """Type, emptiness, length and character checks shared by every validator.

    The length cap comes before anything that looks at the characters, so very long input costs
    nothing.
    """
    if not isinstance(value, str):
        _fail(f"expected a string, got {type(value).__name__}")
    if not value:
        _fail("is empty")
    if len(value) > max_length:
        _fail(over_limit(len(value), max_length, "characters"))
    if ascii_only and not value.isascii():
        for position, char in enumerate(value, start=1):
            if not char.isascii():
                name = unicodedata.name(char, f"U+{ord(char):04X}")
                _fail(
                    f"character {position} is {name} (U+{ord(char):04X}); "
                    "identifiers must be plain ASCII"
                )
    if value != value.strip():
        _fail("has leading or trailing whitespace")
    return value


def _stdnum_backstop(check: Callable[[str], object], value: str, what: str) -> None:
    """Run a python-stdnum validator, turning any of its exceptions into IdentifierError."""
    try:
        check(value)
    except _StdnumValidationError as e:
        detail = str(e).rstrip(".").lower()
        raise IdentifierError(f"is not a valid {what}: {detail}") from e
    except (ValueError, IndexError, KeyError, TypeError) as e:
        # Some stdnum validators raise a bare ValueError on odd input (TRAPS.md).
        raise IdentifierError(f"is not a valid {what}") from e


Validator = Callable[[str], None]
Normaliser = Callable[[str], str]

# Whitespace a printed identifier may have around it (a copied table cell, a YAML block scalar).
# Only ASCII: a no-break or ideographic space stays an error, as does every non-ASCII character.
_PRINTED_WHITESPACE = " \t\r\n"


# Printed forms are longer than the canonical ones: spaces between groups and around the value.
_PRINTED_CAP = 128


def _printed_text(value: object, *, max_length: int = _PRINTED_CAP, ascii_only: bool = True) -> str:
    """:func:`_check_text` for a printed form: the value without the whitespace around it."""
    if isinstance(value, str) and len(value) <= max_length:
        value = value.strip(_PRINTED_WHITESPACE)
    return _check_text(value, max_length=max_length, ascii_only=ascii_only)


def _normalise(
    value: object,
    printed: re.Pattern[str],
    compact: Normaliser,
    validate: Validator,
) -> str:
    """The canonical form of ``value``: compacted when it is one of the ``printed`` forms, then
    checked by the kind's validator, whose message explains any other form."""
    text = _printed_text(value)
    if printed.fullmatch(text):
        text = compact(text)
    validate(text)
    return text


def _remove(characters: str) -> Normaliser:
    table = str.maketrans("", "", characters)
    return lambda text: text.translate(table)


# --- chemicals, trade ----------------------------------------------------------------------------

_CAS_RE = re.compile(r"[1-9][0-9]{1,6}-[0-9]{2}-[0-9]")
_CAS_PRINTED_RE = re.compile(r"[0-9]+ *- *[0-9]+ *- *[0-9]")


def _cas_check_digit(digits: str) -> int:
    return sum(weight * int(digit) for weight, digit in enumerate(reversed(digits), 1)) % 10


def validate_cas_rn(value: str) -> None:
    """CAS registry number: 2-7 digits, 2 digits, check digit, hyphenated (``41661-47-6``)."""
    _check_text(value, max_length=_SHORT_CAP)
    if not _CAS_RE.fullmatch(value):
        _fail(
            "expected a CAS RN: 2 to 7 digits (no leading zero), 2 digits and a check digit, "
            "hyphenated, e.g. 41661-47-6"
        )
    body, check = value[:-2].replace("-", ""), int(value[-1])
    expected = _cas_check_digit(body)
    if check != expected:
        _fail(f"check digit is {check}, expected {expected}")
    _stdnum_backstop(_stdnum_casrn.validate, value, "CAS RN")


def normalise_cas_rn(value: str) -> str:
    """A CAS RN with spaces around its hyphens or around it (``41661 - 47 - 6``), hyphenated
    without spaces.  The hyphens are required: ``41661476`` is refused."""
    return _normalise(value, _CAS_PRINTED_RE, _stdnum_casrn.compact, validate_cas_rn)


_HS_CODE_RE = re.compile(r"[0-9]{6}(?:[0-9]{2}){0,2}")
_HS_CODE_PRINTED_RE = re.compile(r"[0-9]{4}(?:[. ]?[0-9]{2}){1,3}")


def validate_hs_code(value: str) -> None:
    """Harmonized System code: 6, 8 or 10 digits without dots (``293339``, ``2933399073``); the
    first six digits are the international HS subheading, the rest national."""
    _check_text(value, max_length=_SHORT_CAP)
    if not _HS_CODE_RE.fullmatch(value):
        _fail("expected an HS code of 6, 8 or 10 digits without dots, e.g. 293339")
    chapter = int(value[:2])
    if chapter == 0 or chapter == 77:
        _fail(f"HS chapter {value[:2]} does not exist")


def normalise_hs_code(value: str) -> str:
    """An HS code printed with dots or spaces after digits 4, 6 and 8 (``2933.39.90``, the EU's
    ``2933 39 90``), as digits only."""
    return _normalise(value, _HS_CODE_PRINTED_RE, _remove(". "), validate_hs_code)


_CONTAINER_RE = re.compile(r"[A-Z]{3}[UJZR][0-9]{7}")
_CONTAINER_PRINTED_RE = re.compile(r"[A-Z]{3}[UJZR] ?[0-9]{6}[ -]?[0-9]", re.IGNORECASE)
_ISO6346_VALUES = {
    char: number
    for number, char in enumerate("0123456789A BCDEFGHIJK LMNOPQRSTU VWXYZ")
    if char != " "
}


def validate_container_number(value: str) -> None:
    """ISO 6346 container number: owner code, category (U, J, Z), 6 digits, check digit.

    Written without spaces (``MSCU1234565``).  Category R is accepted as python-stdnum does.
    """
    _check_text(value, max_length=_SHORT_CAP)
    if not _CONTAINER_RE.fullmatch(value):
        _fail(
            "expected an ISO 6346 container number: 3-letter owner code, category letter "
            "U, J or Z, 6 digits and a check digit, without spaces, e.g. MSCU1234565"
        )
    total = sum(_ISO6346_VALUES[char] * 2**position for position, char in enumerate(value[:10]))
    expected = total % 11 % 10
    if int(value[10]) != expected:
        _fail(f"check digit is {value[10]}, expected {expected}")
    _stdnum_backstop(_stdnum_iso6346.validate, value, "ISO 6346 container number")


def normalise_container_number(value: str) -> str:
    """A container number as painted and printed: a space after the owner code and before the
    check digit, or a hyphen before it, any case (``MSCU 123456-5``, ``MSCU 123456 5``,
    ``mscu1234565``), as ``MSCU1234565``."""
    return _normalise(
        value,
        _CONTAINER_PRINTED_RE,
        lambda text: _stdnum_iso6346.compact(text.replace("-", "")),
        validate_container_number,
    )


_IMO_RE = re.compile(r"[0-9]{7}")
_IMO_PRINTED_RE = re.compile(r"(?:IMO ?)?[0-9]{7}", re.IGNORECASE)


def validate_imo_number(value: str) -> None:
    """IMO ship identification number: 6 digits and a check digit (``9319466``), without the
    ``IMO`` prefix."""
    _check_text(value, max_length=_SHORT_CAP)
    if not _IMO_RE.fullmatch(value):
        _fail("expected an IMO number: 7 digits without the IMO prefix, e.g. 9319466")
    expected = _stdnum_imo.calc_check_digit(value[:6])
    if value[6] != expected:
        _fail(f"check digit is {value[6]}, expected {expected}")
    _stdnum_backstop(_stdnum_imo.validate, value, "IMO number")


def normalise_imo_number(value: str) -> str:
    """An IMO number with or without its prefix (``IMO 9319466``, ``IMO9319466``), as 7 digits."""
    return _normalise(value, _IMO_PRINTED_RE, _stdnum_imo.compact, validate_imo_number)


_AIR_WAYBILL_RE = re.compile(r"[0-9]{3}-([0-9]{8})")
_AIR_WAYBILL_PRINTED_RE = re.compile(r"[0-9]{3}[ -]?[0-9]{4} ?[0-9]{4}")


def validate_air_waybill(value: str) -> None:
    """IATA air waybill number: 3-digit airline prefix, a hyphen and an 8-digit serial whose last
    digit is the first seven modulo 7 (``784-12345675``)."""
    _check_text(value, max_length=_SHORT_CAP)
    match = _AIR_WAYBILL_RE.fullmatch(value)
    if not match:
        _fail("expected an air waybill number: 3-digit prefix, - and 8 digits, e.g. 784-12345675")
    serial = match.group(1)
    expected = int(serial[:7]) % 7
    if int(serial[7]) != expected:
        _fail(f"check digit is {serial[7]}, expected {expected}")


def _air_waybill_compact(text: str) -> str:
    digits = _remove(" -")(text)
    return f"{digits[:3]}-{digits[3:]}"


def normalise_air_waybill(value: str) -> str:
    """An air waybill number without the hyphen or with spaces (``784 1234 5675``,
    ``78412345675``), as ``784-12345675``."""
    return _normalise(value, _AIR_WAYBILL_PRINTED_RE, _air_waybill_compact, validate_air_waybill)


_BILL_OF_LADING_RE = re.compile(r"[A-Z0-9][A-Z0-9/-]{3,34}")


def validate_bill_of_lading(value: str) -> None:
    """Bill of lading number: 4 to 35 upper-case letters, digits, ``-`` or ``/``, usually the
    carrier's SCAC code and a serial (``MEDUSH123456``)."""
    _check_text(value, max_length=_SHORT_CAP)
    if not _BILL_OF_LADING_RE.fullmatch(value):
        _fail("expected a bill of lading number: 4 to 35 upper-case letters, digits, - or /")


# Units a quantity may be given in: mass, volume and a plain count.  Packaging ("80 drums") has
# its own field.
QUANTITY_UNITS: frozenset[str] = frozenset(
    {"kg", "g", "mg", "t", "lb", "l", "ml", "m3", "gal", "pcs"}
)


def validate_quantity_unit(value: str) -> None:
    """A unit from :data:`QUANTITY_UNITS` (``kg``, ``l``, ``t``, ...), lower case."""
    _check_text(value, max_length=_SHORT_CAP)
    if value not in QUANTITY_UNITS:
        _fail(f"expected a unit, one of {', '.join(sorted(QUANTITY_UNITS))}")


# --- places ----------------------------------------------------------------------------------------

_COUNTRY_RE = re.compile(r"[A-Z]{2}")


def validate_country_code(value: str) -> None:
    """ISO 3166-1 alpha-2 country code, upper case (``CN``, ``MX``, ``US``)."""
    _check_text(value, max_length=_SHORT_CAP)
    if not _COUNTRY_RE.fullmatch(value):
        _fail("expected an ISO 3166-1 alpha-2 country code: two upper-case letters, e.g. CN")
    if pycountry.countries.get(alpha_2=value) is None:
        _fail(f"{value} is not an ISO 3166-1 alpha-2 country code")


_LOCODE_RE = re.compile(r"([A-Z]{2})([A-Z2-9]{3})")
_LOCODE_PRINTED_RE = re.compile(r"[A-Z]{2} [A-Z2-9]{3}")


def validate_un_locode(value: str) -> None:
    """UN/LOCODE: ISO 3166 country and 3 characters from A-Z and 2-9, no space (``CNSHA``)."""
    _check_text(value, max_length=_SHORT_CAP)
    match = _LOCODE_RE.fullmatch(value)
    if not match:
        _fail(
            "expected a UN/LOCODE: 2-letter country code and 3 characters from A-Z and 2-9, "
            "without a space, e.g. CNSHA"
        )
    if pycountry.countries.get(alpha_2=match.group(1)) is None:
        _fail(f"{match.group(1)} is not an ISO 3166-1 alpha-2 country code")


def normalise_un_locode(value: str) -> str:
    """A UN/LOCODE as the UNECE code list prints it, with a space after the country
    (``CN SHA``), as ``CNSHA``."""
    return _normalise(value, _LOCODE_PRINTED_RE, _remove(" "), validate_un_locode)


# --- companies ------------------------------------------------------------------------------------

_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_USCC_RE = re.compile(r"[0-9]{8}[0-9ABCDEFGHJKLMNPQRTUWXY]{10}")
# Registration numbers printed in groups: single spaces or hyphens between characters.
_GROUPED_PRINTED_RE = re.compile(r"[0-9A-Z]+(?:[ -][0-9A-Z]+)*")


def validate_cn_uscc(value: str) -> None:
    """Chinese unified social credit code (GB 32100-2015): 18 characters, last one a check
    character; upper case, no separators (``91310115MA1K3YJ12X``-style)."""
    _check_text(value, max_length=_SHORT_CAP)
    if len(value) != 18:
        _fail(f"is {len(value)} characters long, expected 18")
    if not _USCC_RE.fullmatch(value):
        _fail(
            "expected 8 digits followed by 10 characters from 0-9 and upper-case A-Y "
            "without I, O, S, V, Z"
        )
    total = sum(_USCC_ALPHABET.index(char) * weight for char, weight in zip(value, _USCC_WEIGHTS))
    expected = _USCC_ALPHABET[(31 - total % 31) % 31]
    if value[17] != expected:
        _fail(f"check character is {value[17]}, expected {expected}")
    _stdnum_backstop(_stdnum_uscc.validate, value, "unified social credit code")


def normalise_cn_uscc(value: str) -> str:
    """A unified social credit code printed in groups separated by spaces or hyphens
    (``91310000 MA1FL4TR8R``), without them."""
    return _normalise(value, _GROUPED_PRINTED_RE, _stdnum_uscc.compact, validate_cn_uscc)


_EIN_RE = re.compile(r"[0-9]{9}")
_EIN_PRINTED_RE = re.compile(r"[0-9]{2}-[0-9]{7}")


def validate_us_ein(value: str) -> None:
    """US employer identification number: 9 digits without the hyphen (``123456789``), as IRS
    e-file records carry it; the two-digit prefix must be one the IRS assigns."""
    _check_text(value, max_length=_SHORT_CAP)
    if not _EIN_RE.fullmatch(value):
        _fail("expected a US EIN: 9 digits without the hyphen, e.g. 123456789")
    try:
        _stdnum_ein.validate(value)
    except _StdnumInvalidComponent as e:
        raise IdentifierError(f"prefix {value[:2]} is not one the IRS assigns") from e
    _stdnum_backstop(_stdnum_ein.validate, value, "US EIN")


def normalise_us_ein(value: str) -> str:
    """A US EIN as written, ``12-3456789``, as 9 digits."""
    return _normalise(value, _EIN_PRINTED_RE, _stdnum_ein.compact, validate_us_ein)


_LEI_RE = re.compile(r"[0-9A-Z]{18}[0-9]{2}")


def validate_lei(value: str) -> None:
    """ISO 17442 legal entity identifier: 20 characters, ISO 7064 mod 97-10 check digits."""
    _check_text(value, max_length=_SHORT_CAP)
    if not _LEI_RE.fullmatch(value):
        _fail("expected an LEI: 18 upper-case letters or digits and 2 check digits")
    _stdnum_backstop(_stdnum_lei.validate, value, "LEI")


def normalise_lei(value: str) -> str:
    """An LEI printed in groups separated by spaces or hyphens (``5493 001K JTII GC8Y 1R12``),
    without them."""
    return _normalise(value, _GROUPED_PRINTED_RE, _stdnum_lei.compact, validate_lei)


# --- banking --------------------------------------------------------------------------------------

_IBAN_RE = re.compile(r"([A-Z]{2})([0-9]{2})([A-Z0-9]{11,30})")
# ISO 13616's paper format: groups of four separated by single spaces, the last group shorter,
# optionally after "IBAN"; documents print it in either case.
_IBAN_PRINTED_RE = re.compile(
    r"(?:IBAN )?(?:[A-Z0-9]{4}(?: [A-Z0-9]{4})*(?: [A-Z0-9]{1,3})?|[A-Z0-9]+)", re.IGNORECASE
)


def _mod97(text: str) -> int:
    digits = "".join(str(int(char, 36)) for char in text)
    return int(digits) % 97


def validate_iban(value: str) -> None:
    """IBAN (ISO 13616) in electronic format: country, 2 check digits, BBAN; upper case, no
    spaces, at most 34 characters; the national BBAN layout is checked too."""
    _check_text(value, max_length=_SHORT_CAP)
    if " " in value:
        _fail("expected the electronic format without spaces, e.g. DE89370400440532013000")
    match = _IBAN_RE.fullmatch(value)
    if not match:
        _fail(
            "expected an IBAN: 2-letter country code, 2 check digits and 11 to 30 upper-case "
            "letters or digits"
        )
    country, check, bban = match.groups()
    expected = 98 - _mod97(bban + country + "00")
    if int(check) != expected:
        _fail(f"check digits are {check}, expected {expected:02d}")
    _stdnum_backstop(_stdnum_iban.validate, value, "IBAN for its country")


def _iban_compact(text: str) -> str:
    if text[:5].upper() == "IBAN ":
        text = text[5:]
    return _stdnum_iban.compact(text)


def normalise_iban(value: str) -> str:
    """An IBAN in the paper format (``GB82 WEST 1234 5698 7654 32``, ``IBAN GB82 WEST ...``) or
    in lower case, in the electronic format ``GB82WEST12345698765432``."""
    return _normalise(value, _IBAN_PRINTED_RE, _iban_compact, validate_iban)


_BIC_RE = re.compile(r"[A-Z]{4}([A-Z]{2})[A-Z0-9]{2}(?:[A-Z0-9]{3})?")
_BIC_PRINTED_RE = re.compile(r"[A-Z]{4} ?[A-Z]{2} ?[A-Z0-9]{2}(?: ?[A-Z0-9]{3})?", re.IGNORECASE)


# SWIFT assigns BICs (and IBANs) for Kosovo under the user-assigned code XK, which ISO 3166-1
# (and so pycountry) does not list; python-stdnum accepts it too.
_BIC_EXTRA_COUNTRIES = frozenset({"XK"})


def validate_bic(value: str) -> None:
    """BIC (ISO 9362): 4-letter bank code, country, 2-character location, optional 3-character
    branch; 8 or 11 characters, upper case (``DEUTDEFF``, ``BKCHCNBJ300``)."""
    _check_text(value, max_length=_SHORT_CAP)
    if len(value) not in (8, 11):
        _fail(f"is {len(value)} characters long, expected 8 or 11")
    match = _BIC_RE.fullmatch(value)
    if not match:
        _fail(
            "expected a BIC: 4 letters (bank), 2 letters (country), 2 letters or digits "
            "(location) and optionally 3 (branch), upper case"
        )
    country = match.group(1)
    if country not in _BIC_EXTRA_COUNTRIES and pycountry.countries.get(alpha_2=country) is None:
        _fail(f"{country} is not an ISO 3166-1 alpha-2 country code")
    _stdnum_backstop(_stdnum_bic.validate, value, "BIC")


def normalise_bic(value: str) -> str:
    """A BIC in lower case or with spaces between bank, country, location and branch codes
    (``deutdeff``, ``DEUT DE FF``, ``BKCH CN BJ 300``), upper case without spaces.  A branch
    code ``XXX`` is kept: ``DEUTDEFFXXX`` and ``DEUTDEFF`` stay two spellings."""
    return _normalise(value, _BIC_PRINTED_RE, _stdnum_bic.compact, validate_bic)


_UETR_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
_UETR_PRINTED_RE = re.compile(_UETR_RE.pattern, re.IGNORECASE)


def validate_uetr(value: str) -> None:
    """SWIFT gpi UETR: a version 4 UUID in lower case (``eb6305c9-1f7f-49de-aed0-16487c27b42d``)."""
    _check_text(value, max_length=_SHORT_CAP)
    if not _UETR_RE.fullmatch(value):
        _fail(
            "expected a UETR: a lower-case version 4 UUID, e.g. eb6305c9-1f7f-49de-aed0-16487c27b42d"
        )


def normalise_uetr(value: str) -> str:
    """A UETR in upper case, in lower case as SWIFT specifies it."""
    return _normalise(value, _UETR_PRINTED_RE, str.lower, validate_uetr)


# --- money ------------------------------------------------------------------------------------------

_CODE3_RE = re.compile(r"[A-Z]{3,4}")


def validate_currency_code(value: str) -> None:
    """ISO 4217 currency code, upper case (``USD``, ``CNY``, ``MXN``)."""
    _check_text(value, max_length=_SHORT_CAP)
    if not _CODE3_RE.fullmatch(value) or len(value) != 3:
        _fail("expected an ISO 4217 currency code: three upper-case letters, e.g. USD")
    if value in _NON_MONETARY_CURRENCY_CODES or pycountry.currencies.get(alpha_3=value) is None:
        _fail(f"{value} is not an ISO 4217 currency code")


def validate_crypto_asset_code(value: str) -> None:
    """A crypto-asset code from :data:`CRYPTO_ASSET_CODES` (``USDT``, ``BTC``, ...)."""
    _check_text(value, max_length=_SHORT_CAP)
    if value not in CRYPTO_ASSET_CODES:
        _fail(
            f"is not a listed crypto-asset code; expected one of {', '.join(sorted(CRYPTO_ASSET_CODES))}"
        )


def validate_currency_or_asset_code(value: str) -> None:
    """An ISO 4217 currency code or a listed crypto-asset code: what an amount may be in."""
    _check_text(value, max_length=_SHORT_CAP)
    if value in CRYPTO_ASSET_CODES:
        return
    if not _CODE3_RE.fullmatch(value):
        _fail(
            "expected an ISO 4217 currency code (e.g. USD) or a listed crypto-asset code (e.g. USDT)"
        )
    if (
        len(value) != 3
        or value in _NON_MONETARY_CURRENCY_CODES
        or pycountry.currencies.get(alpha_3=value) is None
    ):
        _fail(
            f"{value} is neither an ISO 4217 currency code nor a listed crypto-asset code "
            f"({', '.join(sorted(CRYPTO_ASSET_CODES))})"
        )


_DECIMAL_RE = re.compile(r"(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")


def validate_decimal(value: str) -> None:
    """A non-negative decimal written as a string: digits, optionally a point and more digits.

    Amounts and quantities are never floats: no exponent, no NaN or infinity, no sign, no
    thousands separators, no leading zeros (``1200``, ``0.75``, ``250000.00``).
    """
    _check_text(value, max_length=_SHORT_CAP)
    if not _DECIMAL_RE.fullmatch(value):
        _fail(
            "expected a non-negative decimal: digits with an optional fractional part, "
            "no exponent, sign, separators or leading zeros, e.g. 1200 or 0.75"
        )


# --- crypto addresses and transactions -------------------------------------------------------------

_BITCOIN_P2PKH_VERSION = 0x00
_BITCOIN_P2SH_VERSION = 0x05
_TRON_VERSION = 0x41


def validate_bitcoin_address(value: str) -> None:
    """Bitcoin mainnet address: Base58Check P2PKH (``1...``) or P2SH (``3...``), or segwit with
    human-readable part ``bc`` in lower case: bech32 for witness version 0, bech32m for versions
    1 to 16."""
    _check_text(value, max_length=_bech32.MAX_LENGTH)
    if value[:3].lower() == "bc1":
        try:
            _bech32.decode_segwit_address("bc", value)
        except _bech32.SegwitAddressError as e:
            _fail(f"segwit address {e}")
        if value != value.lower():
            _fail("is in upper case; a segwit address is written in lower case")
        return
    if value[0] not in "13":
        _fail("expected a Bitcoin mainnet address: 1... or 3... (Base58Check) or bc1... (segwit)")
    if not 26 <= len(value) <= 35:
        _fail(f"is {len(value)} characters long, a Base58Check address has 26 to 35")
    try:
        body = _base58check.decode(value)
    except _base58check.Base58CheckError as e:
        _fail(str(e))
    if len(body) != 21 or body[0] not in (_BITCOIN_P2PKH_VERSION, _BITCOIN_P2SH_VERSION):
        _fail("decodes to something other than a mainnet P2PKH or P2SH address")


_BECH32_UPPER_RE = re.compile(r"BC1[0-9A-Z]+")


def normalise_bitcoin_address(value: str) -> str:
    """A Bitcoin address with whitespace around it, or a segwit address in upper case (as QR
    codes carry it, ``BC1QW508...``), in lower case; Base58Check addresses are case-sensitive and
    have no other printed form."""
    return _normalise(value, _BECH32_UPPER_RE, str.lower, validate_bitcoin_address)


_ETHEREUM_RE = re.compile(r"0x[0-9a-fA-F]{40}")
_ETHEREUM_ONE_CASE_RE = re.compile(r"0x(?:[0-9a-f]{40}|[0-9A-F]{40})")


def _eip55(digits: str) -> str:
    """The 40 hex digits of an address in EIP-55 mixed case: a letter is upper case where the
    matching nibble of Keccak-256 over the lower-case digits is 8 or more."""
    lower = digits.lower()
    digest = keccak(lower.encode("ascii")).hex()
    return "".join(
        char.upper() if int(nibble, 16) >= 8 else char for char, nibble in zip(lower, digest)
    )


def validate_ethereum_address(value: str) -> None:
    """Ethereum address: ``0x`` and 40 hex digits in EIP-55 mixed case, whose checksum
    (Keccak-256 of the lower-case hex) must hold."""
    _check_text(value, max_length=_SHORT_CAP)
    if not _ETHEREUM_RE.fullmatch(value):
        _fail("expected an Ethereum address: 0x followed by 40 hexadecimal digits")
    digits = value[2:]
    checksummed = _eip55(digits)
    if digits == checksummed:
        return
    if digits in (digits.lower(), digits.upper()):
        _fail(f"has no EIP-55 checksum (its letters are all one case): expected 0x{checksummed}")
    for position, (char, expected) in enumerate(zip(digits, checksummed), start=3):
        if char != expected:
            _fail(f"EIP-55 checksum fails: character {position} is {char!r}, expected {expected!r}")


def normalise_ethereum_address(value: str) -> str:
    """An Ethereum address in all lower or all upper case, in EIP-55 mixed case.

    A one-case address carries no checksum, so a mistyped digit in it cannot be caught: it is
    accepted, as wallets and block explorers print addresses that way, and the checksummed form
    computed from it is what gets signed.  A mixed-case address must already pass its checksum.
    """
    return _normalise(
        value,
        _ETHEREUM_ONE_CASE_RE,
        lambda text: "0x" + _eip55(text[2:]),
        validate_ethereum_address,
    )


def validate_tron_address(value: str) -> None:
    """TRON address: Base58Check of version byte 0x41 and 20 bytes, 34 characters starting T."""
    _check_text(value, max_length=_SHORT_CAP)
    if not value.startswith("T"):
        _fail("expected a TRON address: 34 Base58Check characters starting with T")
    if len(value) != 34:
        _fail(f"is {len(value)} characters long, a TRON address has 34")
    try:
        body = _base58check.decode(value)
    except _base58check.Base58CheckError as e:
        _fail(str(e))
    if len(body) != 21 or body[0] != _TRON_VERSION:
        _fail("does not decode to version byte 0x41 and a 20-byte address")


def normalise_tron_address(value: str) -> str:
    """A TRON address with whitespace around it, without; Base58Check is case-sensitive, so there
    is no other printed form."""
    text = _printed_text(value)
    validate_tron_address(text)
    return text


_HEX64_RE = re.compile(r"[0-9a-f]{64}")
_HEX64_UPPER_RE = re.compile(r"(?:0x)?[0-9A-F]{64}")


def validate_bitcoin_transaction_hash(value: str) -> None:
    """Bitcoin transaction id: 64 lower-case hexadecimal digits, no prefix."""
    _check_text(value, max_length=_SHORT_CAP)
    if not _HEX64_RE.fullmatch(value):
        _fail("expected a Bitcoin transaction id: 64 lower-case hexadecimal digits without 0x")


def validate_tron_transaction_hash(value: str) -> None:
    """TRON transaction id: 64 lower-case hexadecimal digits, no prefix."""
    _check_text(value, max_length=_SHORT_CAP)
    if not _HEX64_RE.fullmatch(value):
        _fail("expected a TRON transaction id: 64 lower-case hexadecimal digits without 0x")


def validate_ethereum_transaction_hash(value: str) -> None:
    """Ethereum transaction hash: ``0x`` and 64 lower-case hexadecimal digits."""
    _check_text(value, max_length=66)
    if not value.startswith("0x") or not _HEX64_RE.fullmatch(value[2:]):
        _fail(
            "expected an Ethereum transaction hash: 0x followed by 64 lower-case hexadecimal digits"
        )


def normalise_bitcoin_transaction_hash(value: str) -> str:
    """A Bitcoin transaction id in upper case, in lower case."""
    return _normalise(value, _HEX64_UPPER_RE, str.lower, validate_bitcoin_transaction_hash)


def normalise_tron_transaction_hash(value: str) -> str:
    """A TRON transaction id in upper case, in lower case."""
    return _normalise(value, _HEX64_UPPER_RE, str.lower, validate_tron_transaction_hash)


def normalise_ethereum_transaction_hash(value: str) -> str:
    """An Ethereum transaction hash whose digits are upper case, in lower case."""
    return _normalise(value, _HEX64_UPPER_RE, str.lower, validate_ethereum_transaction_hash)


# --- contacts ---------------------------------------------------------------------------------------

_E164_RE = re.compile(r"\+[1-9][0-9]{1,14}")


def validate_phone_e164(value: str) -> None:
    """Phone number in E.164 form (``+8613800138000``), valid for its numbering plan."""
    _check_text(value, max_length=_SHORT_CAP)
    if not _E164_RE.fullmatch(value):
        _fail(
            "expected an E.164 phone number: + and up to 15 digits, no spaces, e.g. +8613800138000"
        )
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException as e:
        _fail(f"is not a phone number: {e._msg}")
    if not phonenumbers.is_valid_number(number):
        _fail("is not a valid number in its country's numbering plan")


# The international form as people write it: + and the country code, digits grouped by spaces,
# hyphens or dots, parentheses around a group or a trunk prefix (``+44 (0)20 7946 0958``).  No
# letters, so no vanity numbers and no extension, which E.164 cannot hold.
_PHONE_PRINTED_RE = re.compile(r"\(?\+[0-9][0-9 ().-]*[0-9]")


def normalise_phone_e164(value: str) -> str:
    """A phone number in international form as people write it (``+86 138 0013 8000``,
    ``+1 (650) 253-0000``), parsed by phonenumbers, in E.164 (``+8613800138000``).  A number
    without its country code (``0138 0013 8000``, ``0086 ...``) is refused: its country is not
    known."""
    text = _printed_text(value)
    if not _E164_RE.fullmatch(text):
        if not _PHONE_PRINTED_RE.fullmatch(text):
            _fail(
                "expected a phone number in international form, + and the country code first, "
                "e.g. +86 138 0013 8000; no letters or extension"
            )
        try:
            number = phonenumbers.parse(text, None)
        except phonenumbers.NumberParseException as e:
            _fail(f"is not a phone number: {e._msg}")
        text = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    validate_phone_e164(text)
    return text


def _check_no_compatibility_forms(value: str) -> None:
    """Refuse full-width letters and other Unicode compatibility forms, which IDNA would
    silently map to ASCII (``ｅｘａｍｐｌｅ.cn`` to ``example.cn``)."""
    for position, char in enumerate(value, start=1):
        if not char.isascii() and unicodedata.normalize("NFKC", char) != char:
            name = unicodedata.name(char, f"U+{ord(char):04X}")
            _fail(f"character {position} is {name} (U+{ord(char):04X}), a compatibility form")


def _normalised_email(value: str) -> str:
    try:
        return str(_email_validator(value, check_deliverability=False).normalized)
    except EmailNotValidError as e:
        _fail(f"is not a valid e-mail address: {str(e).rstrip('.')}")


def validate_email(value: str) -> None:
    """E-mail address, syntax only (no DNS lookup: validation is offline and pure), in
    email-validator's normalised form: the domain in lower case (Unicode for an internationalised
    one), the local part as written except role names such as ``sales`` (RFC 2142), which are
    case-insensitive and lower-cased."""
    _check_text(value, max_length=254, ascii_only=False)
    _check_no_compatibility_forms(value)
    normalised = _normalised_email(value)
    if value != normalised:
        _fail(f"expected its normalised form {_quote(normalised)}")


def normalise_email(value: str) -> str:
    """An e-mail address with an upper-case or punycode (``xn--``) domain, in email-validator's
    normalised form (``Ops@Example.CN`` to ``Ops@example.cn``)."""
    text = _printed_text(value, max_length=254, ascii_only=False)
    _check_no_compatibility_forms(text)
    normalised = _normalised_email(text)
    validate_email(normalised)
    return normalised


_HOSTNAME_LABEL_RE = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def validate_website(value: str) -> None:
    """Website: an http(s) URL or a bare host name (``example.cn``, ``https://example.cn/about``)."""
    _check_text(value, max_length=2048)
    if any(char.isspace() for char in value):
        _fail("contains whitespace")
    url = value if "://" in value else "https://" + value
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        _fail("expected an http or https URL, or a host name")
    if parts.scheme not in ("http", "https"):
        _fail(f"scheme is {parts.scheme!r}, expected http or https")
    host = (parts.hostname or "").rstrip(".")
    labels = host.split(".")
    if len(labels) < 2 or not all(_HOSTNAME_LABEL_RE.fullmatch(label) for label in labels):
        _fail("expected an http or https URL, or a host name such as example.cn")


NORMALISERS: Mapping[Validator, Normaliser] = {
    validate_air_waybill: normalise_air_waybill,
    validate_bic: normalise_bic,
    validate_bitcoin_address: normalise_bitcoin_address,
    validate_bitcoin_transaction_hash: normalise_bitcoin_transaction_hash,
    validate_cas_rn: normalise_cas_rn,
    validate_cn_uscc: normalise_cn_uscc,
    validate_container_number: normalise_container_number,
    validate_email: normalise_email,
    validate_ethereum_address: normalise_ethereum_address,
    validate_ethereum_transaction_hash: normalise_ethereum_transaction_hash,
    validate_hs_code: normalise_hs_code,
    validate_iban: normalise_iban,
    validate_imo_number: normalise_imo_number,
    validate_lei: normalise_lei,
    validate_phone_e164: normalise_phone_e164,
    validate_tron_address: normalise_tron_address,
    validate_tron_transaction_hash: normalise_tron_transaction_hash,
    validate_uetr: normalise_uetr,
    validate_un_locode: normalise_un_locode,
    validate_us_ein: normalise_us_ein,
}
"""Each validator whose identifier has printed forms, and its normaliser.  A validator missing
here (country and currency codes, dates, decimals, agency and item ids, ...) takes its canonical
form only."""


# --- dates, language, media ---------------------------------------------------------------------------

_ISO_DATE_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")


def validate_iso_date(value: str) -> None:
    """Calendar date in ISO 8601 extended form, ``YYYY-MM-DD``."""
    _check_text(value, max_length=_SHORT_CAP)
    match = _ISO_DATE_RE.fullmatch(value)
    if not match:
        _fail("expected a date as YYYY-MM-DD, e.g. 2026-11-03")
    try:
        datetime.date(*(int(part) for part in match.groups()))
    except ValueError as e:
        _fail(f"is not a calendar date: {e}")


_RFC3339_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})"
)


def parse_rfc3339_timestamp(value: str) -> tuple[int, int]:
    """Parse an RFC 3339 timestamp with an explicit offset into (Unix seconds, nanoseconds).

    ``2026-12-01T08:00:00Z`` or ``2026-12-01T16:00:00+08:00``; fractional seconds up to
    nanoseconds.  A time without offset is refused: an embargo must not depend on whose clock
    reads it.
    """
    _check_text(value, max_length=_SHORT_CAP)
    match = _RFC3339_RE.fullmatch(value)
    if not match:
        _fail(
            "expected an RFC 3339 timestamp with offset, e.g. 2026-12-01T08:00:00Z or "
            "2026-12-01T16:00:00+08:00"
        )
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    fraction, offset = match.group(7) or "", match.group(8)
    if offset == "Z":
        zone = datetime.UTC
    else:
        offset_hours, offset_minutes = int(offset[1:3]), int(offset[4:6])
        if offset_hours > 23 or offset_minutes > 59:
            _fail(f"offset {offset} is out of range")
        sign = 1 if offset[0] == "+" else -1
        zone = datetime.timezone(
            sign * datetime.timedelta(hours=offset_hours, minutes=offset_minutes)
        )
    try:
        moment = datetime.datetime(year, month, day, hour, minute, second, tzinfo=zone)
    except ValueError as e:
        _fail(f"is not a valid time: {e}")
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
    seconds = (moment - epoch) // datetime.timedelta(seconds=1)
    nanos = int(fraction.ljust(9, "0")) if fraction else 0
    return seconds, nanos


_LANGUAGE_TAG_RE = re.compile(
    r"(?P<language>[A-Za-z]{2,3})"
    r"(?:-(?P<script>[A-Za-z]{4}))?"
    r"(?:-(?P<region>[A-Za-z]{2}|[0-9]{3}))?"
    r"(?P<variants>(?:-(?:[A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}))*)"
    r"(?P<extensions>(?:-[0-9A-WY-Za-wy-z](?:-[A-Za-z0-9]{2,8})+)*)"
    r"(?:-[xX](?:-[A-Za-z0-9]{1,8})+)?"
)


def validate_language_tag(value: str) -> None:
    """BCP 47 language tag of the common shapes: language (ISO 639), optional script (ISO
    15924), region (ISO 3166 or UN M.49), variants, extensions, private use (``zh-Hans``,
    ``en``, ``zh-Latn-pinyin``, ``es-419``).  Grandfathered and extlang forms are refused."""
    _check_text(value, max_length=64)
    match = _LANGUAGE_TAG_RE.fullmatch(value)
    if not match:
        _fail("expected a BCP 47 language tag, e.g. en, zh-Hans, zh-Latn-pinyin")
    language = match.group("language").lower()
    known_language = (
        pycountry.languages.get(alpha_2=language)
        if len(language) == 2
        else pycountry.languages.get(alpha_3=language)
    )
    if known_language is None:
        _fail(f"language {match.group('language')!r} is not an ISO 639 code")
    script = match.group("script")
    if script is not None and pycountry.scripts.get(alpha_4=script.title()) is None:
        _fail(f"script {script!r} is not an ISO 15924 code")
    region = match.group("region")
    if (
        region is not None
        and region.isalpha()
        and pycountry.countries.get(alpha_2=region.upper()) is None
    ):
        _fail(f"region {region!r} is not an ISO 3166-1 alpha-2 code")


_MEDIA_TYPE_RE = re.compile(
    r"(application|audio|font|image|message|model|multipart|text|video)"
    r"/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}",
    re.IGNORECASE,
)


def validate_media_type(value: str) -> None:
    """IANA media type without parameters (``application/pdf``, ``image/jpeg``)."""
    _check_text(value, max_length=255)
    if not _MEDIA_TYPE_RE.fullmatch(value):
        _fail("expected a media type such as application/pdf or image/jpeg")


# --- exchange identifiers -----------------------------------------------------------------------------

_AGENCY_ID_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_ITEM_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def validate_agency_id(value: str) -> None:
    """Agency id: lower-case letters, digits and ``-``, starting with a letter or digit, at most
    63 characters (``agency-b``, ``us-dea``)."""
    _check_text(value, max_length=_SHORT_CAP)
    if not _AGENCY_ID_RE.fullmatch(value):
        _fail("expected an agency id: lower-case letters, digits and -, e.g. agency-b")


_ALERT_ID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def validate_alert_id(value: str) -> None:
    """Alert id: a UUID in lower case, as the publishing client makes them
    (``0b0e3c1e-8f5d-4d5e-9a57-3f0d0f6f2a10``)."""
    _check_text(value, max_length=_SHORT_CAP)
    if not _ALERT_ID_RE.fullmatch(value):
        _fail("expected an alert id: a lower-case UUID, e.g. 0b0e3c1e-8f5d-4d5e-9a57-3f0d0f6f2a10")


def validate_item_id(value: str) -> None:
    """Item id: letters, digits, ``.``, ``_`` and ``-``, starting with a letter or digit, at most
    64 characters.  The hub sees item ids: choose neutral ones."""
    _check_text(value, max_length=64)
    if not _ITEM_ID_RE.fullmatch(value):
        _fail(
            "expected an item id: letters, digits, '.', '_' and '-', starting with a letter or digit"
        )
