"""Properties of the identifier validators.

1. Whatever a validator is given, it returns None or raises IdentifierError: nothing else.
2. Agreement with python-stdnum on ASCII input: on the canonical written form (what stdnum's own
   ``compact`` leaves unchanged) a validator accepts exactly what stdnum accepts; on any other
   input it may be stricter (it asks for the canonical form) but never accepts what stdnum rejects.
3. Whatever a normaliser is given, it returns a canonical form its validator accepts and that it
   leaves unchanged, or raises IdentifierError: nothing else.
4. The printed forms of a valid identifier, generated from its canonical form the ways documents
   print it, normalise back to that canonical form.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from types import ModuleType

import phonenumbers
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from stdnum import bic, casrn, iban, imo, iso6346
from stdnum.cn import uscc
from stdnum.iso7064 import mod_97_10
from stdnum.us import ein

from exchange.alerts import _base58check, _bech32
from exchange.alerts import identifiers as ids

from .test_identifiers import ALL_NORMALISERS, ALL_VALIDATORS, VALIDATOR_OF

Validator = Callable[[str], None]

_settings = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _accepts(validator: Validator, value: str) -> bool:
    try:
        validator(value)
    except ids.IdentifierError:
        return False
    return True


@pytest.mark.parametrize("validator", ALL_VALIDATORS, ids=lambda v: v.__name__)
@_settings
@given(value=st.one_of(st.text(), st.text(alphabet=string.printable, max_size=100)))
def test_no_text_makes_a_validator_raise_anything_else(validator: Validator, value: str) -> None:
    _accepts(validator, value)


@pytest.mark.parametrize("validator", ALL_VALIDATORS, ids=lambda v: v.__name__)
@_settings
@given(value=st.one_of(st.none(), st.integers(), st.floats(), st.binary(), st.lists(st.text())))
def test_no_other_value_makes_a_validator_raise_anything_else(
    validator: Validator, value: object
) -> None:
    with pytest.raises(ids.IdentifierError):
        validator(value)  # type: ignore[arg-type]


_DIGITS = st.text(alphabet=string.digits, min_size=1, max_size=1)
_UPPER_ALNUM = string.ascii_uppercase + string.digits

# Strategies that reach valid identifiers often: the right shape, with the check digits computed
# half of the time and left random otherwise.
_CAS = st.builds(
    lambda head, mid, check: f"{head}-{mid}-{check}",
    st.from_regex(r"[1-9][0-9]{1,6}", fullmatch=True),
    st.from_regex(r"[0-9]{2}", fullmatch=True),
    _DIGITS,
)
_CAS_WITH_CHECK = _CAS.map(lambda v: v[:-1] + casrn.calc_check_digit(v[:-2]))
_CONTAINER = st.from_regex(r"[A-Z]{3}[UJZR][0-9]{7}", fullmatch=True)
_CONTAINER_WITH_CHECK = _CONTAINER.map(lambda v: v[:10] + iso6346.calc_check_digit(v[:10]))
_USCC = st.from_regex(r"[0-9]{8}[0-9ABCDEFGHJKLMNPQRTUWXY]{10}", fullmatch=True)
_USCC_WITH_CHECK = _USCC.map(lambda v: v[:17] + uscc.calc_check_digit(v[:17]))
_IBAN_COUNTRIES = st.sampled_from(["DE", "GB", "ES", "FR", "NL", "CH", "AE", "TR", "QQ"])
_IBAN = st.builds(
    lambda country, bban: country + "00" + bban,
    _IBAN_COUNTRIES,
    st.text(alphabet=_UPPER_ALNUM, min_size=11, max_size=30),
)
_IBAN_WITH_CHECK = _IBAN.map(lambda v: v[:2] + iban.calc_check_digits(v) + v[4:])
_BIC = st.from_regex(r"[A-Z]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?", fullmatch=True)
_EIN = st.from_regex(r"[0-9]{2}-?[0-9]{7}", fullmatch=True)
_LEI_WITH_CHECK = st.from_regex(r"[0-9A-Z]{18}", fullmatch=True).map(
    lambda v: v + mod_97_10.calc_check_digits(v)
)

AGREEMENT: dict[str, tuple[Validator, ModuleType, st.SearchStrategy[str]]] = {
    "cas": (ids.validate_cas_rn, casrn, st.one_of(_CAS, _CAS_WITH_CHECK)),
    "iso6346": (
        ids.validate_container_number,
        iso6346,
        st.one_of(_CONTAINER, _CONTAINER_WITH_CHECK),
    ),
    "uscc": (ids.validate_cn_uscc, uscc, st.one_of(_USCC, _USCC_WITH_CHECK)),
    "iban": (ids.validate_iban, iban, st.one_of(_IBAN, _IBAN_WITH_CHECK)),
    "bic": (ids.validate_bic, bic, _BIC),
    "ein": (ids.validate_us_ein, ein, _EIN),
    "imo": (
        ids.validate_imo_number,
        imo,
        st.from_regex(r"(IMO ?)?[0-9]{7}", fullmatch=True),
    ),
}


def _canonical(module: ModuleType, value: str) -> bool:
    try:
        return bool(module.compact(value) == value)
    except Exception:  # noqa: BLE001 - stdnum's compact may choke on odd input; not canonical then
        return False


@pytest.mark.parametrize("name", sorted(AGREEMENT))
@_settings
@given(data=st.data())
def test_agrees_with_stdnum_on_canonical_ascii(name: str, data: st.DataObject) -> None:
    validator, module, strategy = AGREEMENT[name]
    value = data.draw(strategy)
    ours = _accepts(validator, value)
    theirs = bool(module.is_valid(value))
    if _canonical(module, value):
        assert ours == theirs, value
    else:
        assert not ours or theirs, value


@pytest.mark.parametrize("name", sorted(AGREEMENT))
@_settings
@given(value=st.text(alphabet=string.printable, max_size=40))
@example(value="４１６６１-47-6")
def test_never_accepts_what_stdnum_rejects(name: str, value: str) -> None:
    validator, module, _ = AGREEMENT[name]
    if _accepts(validator, value):
        assert module.is_valid(value), value


def test_stdnum_accepts_full_width_digits_but_we_do_not() -> None:
    value = "４１６６１-47-6"
    assert casrn.is_valid(value)
    assert not _accepts(ids.validate_cas_rn, value)


# --- normalisers -----------------------------------------------------------------------------------

# Characters printed identifiers are made of, so that arbitrary input often takes the printed paths.
_PRINTED_ALPHABET = string.digits + "ABCDEFWXUabcdefwxu +-.()\t\n" + "IBANMOimo"


@pytest.mark.parametrize("normaliser", ALL_NORMALISERS, ids=lambda n: n.__name__)
@_settings
@given(
    value=st.one_of(
        st.text(),
        st.text(alphabet=string.printable, max_size=100),
        st.text(alphabet=_PRINTED_ALPHABET, max_size=50),
    )
)
def test_a_normaliser_gives_a_valid_canonical_form_or_an_identifier_error(
    normaliser: Callable[[str], str], value: str
) -> None:
    try:
        canonical = normaliser(value)
    except ids.IdentifierError:
        return
    VALIDATOR_OF[normaliser](canonical)
    assert normaliser(canonical) == canonical


@pytest.mark.parametrize("normaliser", ALL_NORMALISERS, ids=lambda n: n.__name__)
@_settings
@given(value=st.one_of(st.none(), st.integers(), st.floats(), st.binary(), st.lists(st.text())))
def test_no_other_value_makes_a_normaliser_raise_anything_else(
    normaliser: Callable[[str], str], value: object
) -> None:
    with pytest.raises(ids.IdentifierError):
        normaliser(value)  # type: ignore[arg-type]


_WHITESPACE = st.text(alphabet=" \t\n\r", max_size=3)
_SEPARATOR = st.sampled_from([" ", "-"])


def _grouped(text: str, size: int, separator: str = " ") -> str:
    return separator.join(text[start : start + size] for start in range(0, len(text), size))


@st.composite
def _around(draw: st.DrawFn, text: str) -> str:
    """``text`` with the whitespace a copied cell or a YAML block scalar leaves around it."""
    return draw(_WHITESPACE) + text + draw(_WHITESPACE)


@st.composite
def _one_case(draw: st.DrawFn, text: str) -> str:
    return draw(st.sampled_from([text, text.lower(), text.upper()]))


@st.composite
def _split(draw: st.DrawFn, text: str) -> str:
    """``text`` cut anywhere into groups, each cut a space or a hyphen."""
    cuts = sorted(draw(st.sets(st.integers(1, len(text) - 1), max_size=6)))
    pieces = [text[start:end] for start, end in zip([0, *cuts], [*cuts, len(text)])]
    return "".join(piece + draw(_SEPARATOR) for piece in pieces[:-1]) + pieces[-1]


@st.composite
def _ibans(draw: st.DrawFn) -> tuple[str, str]:
    country, bban = draw(
        st.one_of(
            st.tuples(st.just("GB"), st.from_regex(r"[A-Z]{4}[0-9]{14}", fullmatch=True)),
            st.tuples(st.just("DE"), st.from_regex(r"[0-9]{18}", fullmatch=True)),
        )
    )
    canonical = country + iban.calc_check_digits(country + "00" + bban) + bban
    assume(iban.is_valid(canonical))
    printed = draw(st.sampled_from(["", "IBAN "])) + draw(_one_case(_grouped(canonical, 4)))
    return canonical, draw(_around(printed))


@st.composite
def _cas_numbers(draw: st.DrawFn) -> tuple[str, str]:
    canonical = draw(_CAS_WITH_CHECK)
    spaced = "".join(
        draw(st.text(" ", max_size=2)) + "-" + draw(st.text(" ", max_size=2))
        if char == "-"
        else char
        for char in canonical
    )
    return canonical, draw(_around(spaced))


@st.composite
def _containers(draw: st.DrawFn) -> tuple[str, str]:
    canonical = draw(_CONTAINER_WITH_CHECK)
    printed = (
        canonical[:4]
        + draw(st.sampled_from(["", " "]))
        + canonical[4:10]
        + draw(st.sampled_from(["", " ", "-"]))
        + canonical[10]
    )
    return canonical, draw(_around(draw(_one_case(printed))))


@st.composite
def _hs_codes(draw: st.DrawFn) -> tuple[str, str]:
    chapter = draw(st.integers(1, 97).filter(lambda c: c != 77))
    canonical = f"{chapter:02d}" + draw(st.from_regex(r"[0-9]{4}([0-9]{2}){0,2}", fullmatch=True))
    printed = canonical[:4] + "".join(
        draw(st.sampled_from(["", ".", " "])) + canonical[start : start + 2]
        for start in range(4, len(canonical), 2)
    )
    return canonical, draw(_around(printed))


@st.composite
def _bics(draw: st.DrawFn) -> tuple[str, str]:
    canonical = draw(
        st.from_regex(r"[A-Z]{4}(CN|DE|GB|MX|US)[A-Z0-9]{2}([A-Z0-9]{3})?", fullmatch=True)
    )
    assume(_accepts(ids.validate_bic, canonical))
    parts = [canonical[:4], canonical[4:6], canonical[6:8], canonical[8:]]
    printed = "".join(part + draw(st.sampled_from(["", " "])) for part in parts[:-1]) + parts[-1]
    return canonical, draw(_around(draw(_one_case(printed.rstrip()))))


@st.composite
def _phone_numbers(draw: st.DrawFn) -> tuple[str, str]:
    region = draw(st.sampled_from(sorted(phonenumbers.SUPPORTED_REGIONS)))
    kind = draw(
        st.sampled_from(
            [phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE]
        )
    )
    number = phonenumbers.example_number_for_type(region, kind)
    assume(number is not None and phonenumbers.is_valid_number(number))
    canonical = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    printed = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    return canonical, draw(_around(printed))


@st.composite
def _emails(draw: st.DrawFn) -> tuple[str, str]:
    local = draw(st.from_regex(r"[A-Za-z0-9]{1,8}([._+-][A-Za-z0-9]{1,8}){0,2}", fullmatch=True))
    domain = draw(st.from_regex(r"[a-z][a-z0-9]{0,8}(\.[a-z][a-z0-9]{0,8})?", fullmatch=True))
    domain += draw(st.sampled_from([".cn", ".com", ".de", ".mx", ".org"]))
    printed_domain = "".join(char.upper() if draw(st.booleans()) else char for char in domain)
    return f"{local}@{domain}", draw(_around(f"{local}@{printed_domain}"))


@st.composite
def _air_waybills(draw: st.DrawFn) -> tuple[str, str]:
    prefix, serial = (
        draw(st.from_regex(r"[0-9]{3}", fullmatch=True)),
        draw(st.from_regex(r"[0-9]{7}", fullmatch=True)),
    )
    digits = prefix + serial + str(int(serial) % 7)
    printed = (
        prefix
        + draw(st.sampled_from(["", " ", "-"]))
        + digits[3:7]
        + draw(st.sampled_from(["", " "]))
        + digits[7:]
    )
    return f"{prefix}-{digits[3:]}", draw(_around(printed))


def _printed_from(
    canonical: st.SearchStrategy[str], printed: Callable[[str], st.SearchStrategy[str]]
) -> st.SearchStrategy[tuple[str, str]]:
    return canonical.flatmap(lambda value: st.tuples(st.just(value), printed(value)))


def _hex(size: int) -> st.SearchStrategy[str]:
    return st.binary(min_size=size, max_size=size).map(bytes.hex)


_SEGWIT_ADDRESSES = st.one_of(
    st.builds(
        lambda program: _bech32.encode_segwit_address("bc", 0, program),
        st.binary(min_size=20, max_size=20),
    ),
    st.builds(
        lambda program: _bech32.encode_segwit_address("bc", 1, program),
        st.binary(min_size=32, max_size=32),
    ),
)
_VALID_EIN = st.from_regex(r"[0-9]{9}", fullmatch=True).filter(ein.is_valid)

PRINTED: dict[str, tuple[Callable[[str], str], st.SearchStrategy[tuple[str, str]]]] = {
    "iban": (ids.normalise_iban, _ibans()),
    "bic": (ids.normalise_bic, _bics()),
    "cas": (ids.normalise_cas_rn, _cas_numbers()),
    "container": (ids.normalise_container_number, _containers()),
    "hs": (ids.normalise_hs_code, _hs_codes()),
    "phone": (ids.normalise_phone_e164, _phone_numbers()),
    "email": (ids.normalise_email, _emails()),
    "air waybill": (ids.normalise_air_waybill, _air_waybills()),
    "imo": (
        ids.normalise_imo_number,
        _printed_from(
            st.from_regex(r"[0-9]{6}", fullmatch=True).map(lambda v: v + imo.calc_check_digit(v)),
            lambda v: st.sampled_from(["", "IMO", "IMO ", "imo "]).map(lambda prefix: prefix + v),
        ),
    ),
    "uscc": (
        ids.normalise_cn_uscc,
        _printed_from(_USCC_WITH_CHECK.filter(uscc.is_valid), lambda v: _split(v).flatmap(_around)),
    ),
    "lei": (ids.normalise_lei, _printed_from(_LEI_WITH_CHECK, _split)),
    "ein": (ids.normalise_us_ein, _printed_from(_VALID_EIN, lambda v: st.just(f"{v[:2]}-{v[2:]}"))),
    "locode": (
        ids.normalise_un_locode,
        _printed_from(
            st.from_regex(r"(CN|DE|MX|NL|US)[A-Z2-9]{3}", fullmatch=True),
            lambda v: _around(f"{v[:2]} {v[2:]}"),
        ),
    ),
    "uetr": (
        ids.normalise_uetr,
        _printed_from(st.uuids(version=4).map(str), lambda v: st.just(v.upper())),
    ),
    "segwit": (
        ids.normalise_bitcoin_address,
        _printed_from(_SEGWIT_ADDRESSES, lambda v: _around(v.upper())),
    ),
    "tron": (
        ids.normalise_tron_address,
        _printed_from(
            st.binary(min_size=20, max_size=20).map(
                lambda body: _base58check.encode(b"\x41" + body)
            ),
            _around,
        ),
    ),
    "btc txid": (
        ids.normalise_bitcoin_transaction_hash,
        _printed_from(_hex(32), lambda v: _around(v.upper())),
    ),
    "tron tx hash": (
        ids.normalise_tron_transaction_hash,
        _printed_from(_hex(32), lambda v: _around(v.upper())),
    ),
    "eth tx hash": (
        ids.normalise_ethereum_transaction_hash,
        _printed_from(_hex(32).map(lambda v: "0x" + v), lambda v: st.just("0x" + v[2:].upper())),
    ),
}


@pytest.mark.parametrize("name", sorted(PRINTED))
@_settings
@given(data=st.data())
def test_printed_forms_normalise_back_to_the_canonical_form(name: str, data: st.DataObject) -> None:
    normaliser, strategy = PRINTED[name]
    canonical, printed = data.draw(strategy)
    VALIDATOR_OF[normaliser](canonical)
    assert normaliser(printed) == canonical


@_settings
@given(address=st.binary(min_size=20, max_size=20).map(bytes.hex))
def test_one_case_ethereum_addresses_normalise_to_their_eip55_form(address: str) -> None:
    """EIP-55 itself is checked on its published vectors (test_identifiers); here: both one-case
    spellings of an address give one checksummed form, which passes and differs only in case."""
    canonical = ids.normalise_ethereum_address("0x" + address)
    assert ids.normalise_ethereum_address("0x" + address.upper()) == canonical
    assert canonical.lower() == "0x" + address
    ids.validate_ethereum_address(canonical)


def test_every_normaliser_has_a_printed_form_property() -> None:
    covered = {normaliser for normaliser, _ in PRINTED.values()} | {ids.normalise_ethereum_address}
    assert covered == set(ALL_NORMALISERS)
