"""Identifier validators: named valid and invalid cases, corruptions, odd types, long input."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest

from exchange.alerts import _base58check, _bech32
from exchange.alerts import identifiers as ids

Validator = Callable[[str], None]

VALID: dict[str, tuple[Validator, str]] = {
    "cas 4-piperidone": (ids.validate_cas_rn, "41661-47-6"),
    "cas norfentanyl": (ids.validate_cas_rn, "1609-66-1"),
    "cas seven-digit prefix": (ids.validate_cas_rn, "2167189-50-4"),
    "cas two-digit prefix": (ids.validate_cas_rn, "67-64-1"),
    "iban germany": (ids.validate_iban, "DE89370400440532013000"),
    "iban uk": (ids.validate_iban, "GB82WEST12345698765432"),
    "iban spain": (ids.validate_iban, "ES9121000418450200051332"),
    "bic 8": (ids.validate_bic, "DEUTDEFF"),
    "bic 11": (ids.validate_bic, "BKCHCNBJ300"),
    "container msc": (ids.validate_container_number, "MSCU5286418"),
    "container csq": (ids.validate_container_number, "CSQU3054383"),
    "uscc": (ids.validate_cn_uscc, "91310000MA1FL4TR8R"),
    "uscc shenzhen": (ids.validate_cn_uscc, "91440300MA5FK3QP7M"),
    "ein hyphen": (ids.validate_us_ein, "12-3456789"),
    "ein plain": (ids.validate_us_ein, "123456789"),
    "lei": (ids.validate_lei, "5493001KJTIIGC8Y1R12"),
    "country cn": (ids.validate_country_code, "CN"),
    "country mx": (ids.validate_country_code, "MX"),
    "currency usd": (ids.validate_currency_code, "USD"),
    "currency cny": (ids.validate_currency_code, "CNY"),
    "asset usdt": (ids.validate_crypto_asset_code, "USDT"),
    "amount currency eur": (ids.validate_currency_or_asset_code, "EUR"),
    "amount currency trx": (ids.validate_currency_or_asset_code, "TRX"),
    "locode shanghai": (ids.validate_un_locode, "CNSHA"),
    "locode manzanillo": (ids.validate_un_locode, "MXZLO"),
    "locode with digit": (ids.validate_un_locode, "DEHA2"),
    "hs 6": (ids.validate_hs_code, "293339"),
    "hs 6 dotted": (ids.validate_hs_code, "2933.39"),
    "hs 8 dotted": (ids.validate_hs_code, "2933.39.90"),
    "hs 10": (ids.validate_hs_code, "2933399073"),
    "hs 10 dotted": (ids.validate_hs_code, "2933.39.90.73"),
    "phone cn mobile": (ids.validate_phone_e164, "+8613800138000"),
    "phone mx": (ids.validate_phone_e164, "+525512345678"),
    "email": (ids.validate_email, "ops@example.cn"),
    "uetr": (ids.validate_uetr, "eb6305c9-1f7f-49de-aed0-16487c27b42d"),
    "date": (ids.validate_iso_date, "2026-11-03"),
    "date leap day": (ids.validate_iso_date, "2028-02-29"),
    "language en": (ids.validate_language_tag, "en"),
    "language zh-Hans": (ids.validate_language_tag, "zh-Hans"),
    "language pinyin": (ids.validate_language_tag, "zh-Latn-pinyin"),
    "language es-419": (ids.validate_language_tag, "es-419"),
    "btc p2pkh genesis": (ids.validate_bitcoin_address, "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"),
    "btc p2sh": (ids.validate_bitcoin_address, "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy"),
    # BIP-173 / BIP-350 test vectors.
    "btc bech32 v0 p2wpkh upper": (
        ids.validate_bitcoin_address,
        "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4",
    ),
    "btc bech32 v0 p2wsh": (
        ids.validate_bitcoin_address,
        "bc1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3qccfmv3",
    ),
    "btc bech32m v1 taproot": (
        ids.validate_bitcoin_address,
        "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",
    ),
    "btc bech32m v16": (ids.validate_bitcoin_address, "BC1SW50QGDZ25J"),
    "btc bech32m v2": (ids.validate_bitcoin_address, "bc1zw508d6qejxtdg4y5r3zarvaryvaxxpcs"),
    # EIP-55 test vectors.
    "eth eip55 1": (ids.validate_ethereum_address, "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"),
    "eth eip55 2": (ids.validate_ethereum_address, "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359"),
    "eth eip55 3": (ids.validate_ethereum_address, "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB"),
    "eth eip55 4": (ids.validate_ethereum_address, "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb"),
    "eth all lower": (ids.validate_ethereum_address, "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"),
    "eth all upper": (ids.validate_ethereum_address, "0x5AAEB6053F3E94C9B9A09F33669435E7EF1BEAED"),
    "tron usdt contract": (ids.validate_tron_address, "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"),
    "btc txid": (ids.validate_bitcoin_transaction_hash, "ab" * 32),
    "eth tx hash": (ids.validate_ethereum_transaction_hash, "0x" + "cd" * 32),
    "tron tx hash": (ids.validate_tron_transaction_hash, "EF" * 32),
    "decimal integer": (ids.validate_decimal, "1200"),
    "decimal fraction": (ids.validate_decimal, "0.75"),
    "decimal zero": (ids.validate_decimal, "0"),
    "air waybill": (ids.validate_air_waybill, "784-12345675"),
    "bill of lading": (ids.validate_bill_of_lading, "MEDUSH5402781"),
    "unit": (ids.validate_quantity_unit, "kg"),
    "media type": (ids.validate_media_type, "application/pdf"),
    "website bare": (ids.validate_website, "example.cn"),
    "website url": (ids.validate_website, "https://example.cn/about"),
    "agency id": (ids.validate_agency_id, "agency-b"),
    "item id": (ids.validate_item_id, "s1.shipment_2-a"),
}

INVALID: dict[str, tuple[Validator, str, str]] = {
    "cas wrong check digit": (ids.validate_cas_rn, "41661-47-5", "check digit is 5, expected 6"),
    "cas public dataset error": (ids.validate_cas_rn, "1609-66-5", "expected 1"),
    "cas without hyphens": (ids.validate_cas_rn, "41661476", "hyphenated"),
    "cas leading zero": (ids.validate_cas_rn, "041661-47-6", "leading zero"),
    "cas full-width digits": (ids.validate_cas_rn, "４１６６１-47-6", "FULLWIDTH DIGIT FOUR"),
    "cas arabic-indic digit": (ids.validate_cas_rn, "4166١-47-6", "ASCII"),
    "cas trailing space": (ids.validate_cas_rn, "41661-47-6 ", "whitespace"),
    "iban wrong check": (
        ids.validate_iban,
        "DE88370400440532013000",
        "check digits are 88, expected 89",
    ),
    "iban with spaces": (ids.validate_iban, "DE89 3704 0044 0532 0130 00", "without spaces"),
    "iban lower case": (ids.validate_iban, "de89370400440532013000", "IBAN"),
    "iban bad bban length": (ids.validate_iban, "DE8937040044053201300", "check digits"),
    "iban unknown country": (ids.validate_iban, "QQ33370400440532013000", "IBAN for its country"),
    "bic unknown country": (ids.validate_bic, "DEUTQQFF", "QQ is not"),
    "bic length 9": (ids.validate_bic, "DEUTDEFF5", "expected 8 or 11"),
    "bic lower": (ids.validate_bic, "deutdeff", "BIC"),
    "container wrong check": (
        ids.validate_container_number,
        "CSQU3054384",
        "check digit is 4, expected 3",
    ),
    "container with space": (ids.validate_container_number, "CSQU 305438 3", "ISO 6346"),
    "container bad category": (ids.validate_container_number, "CSQX3054383", "ISO 6346"),
    "uscc wrong check": (ids.validate_cn_uscc, "91310000MA1FL4TR8A", "expected R"),
    "uscc letter O": (ids.validate_cn_uscc, "91310000MA1FL4TO8R", "without I, O"),
    "uscc short": (ids.validate_cn_uscc, "91310000MA1FL4TR8", "expected 18"),
    "ein unassigned prefix": (ids.validate_us_ein, "07-3456789", "prefix 07"),
    "ein eight digits": (ids.validate_us_ein, "12-345678", "9 digits"),
    "lei wrong check": (ids.validate_lei, "5493001KJTIIGC8Y1R13", "LEI"),
    "country lower": (ids.validate_country_code, "cn", "upper-case"),
    "country unassigned": (ids.validate_country_code, "QQ", "not an ISO 3166"),
    "country alpha-3": (ids.validate_country_code, "CHN", "two upper-case letters"),
    "currency unknown": (ids.validate_currency_code, "ABC", "not an ISO 4217"),
    "currency test code": (ids.validate_currency_code, "XTS", "not an ISO 4217"),
    "currency is crypto": (ids.validate_currency_code, "USDT", "three upper-case letters"),
    "asset unknown": (ids.validate_crypto_asset_code, "DOGE", "not a listed"),
    "amount currency unknown": (ids.validate_currency_or_asset_code, "ZZZ", "neither"),
    "locode with space": (ids.validate_un_locode, "CN SHA", "without a space"),
    "locode digit one": (ids.validate_un_locode, "CNSH1", "2-9"),
    "locode bad country": (ids.validate_un_locode, "QQSHA", "QQ is not"),
    "hs five digits": (ids.validate_hs_code, "29333", "6, 8 or 10"),
    "hs seven digits": (ids.validate_hs_code, "2933399", "6, 8 or 10"),
    "hs dot in wrong place": (ids.validate_hs_code, "29.3339", "6, 8 or 10"),
    "hs chapter 00": (ids.validate_hs_code, "003339", "chapter 00"),
    "phone no plus": (ids.validate_phone_e164, "8613800138000", "E.164"),
    "phone spaces": (ids.validate_phone_e164, "+86 138 0013 8000", "E.164"),
    "phone too short": (ids.validate_phone_e164, "+861", "phone number"),
    "phone not in plan": (ids.validate_phone_e164, "+8610123", "numbering plan"),
    "email no domain": (ids.validate_email, "ops@", "e-mail"),
    "uetr upper case": (ids.validate_uetr, "EB6305C9-1F7F-49DE-AED0-16487C27B42D", "lower-case"),
    "uetr version 1": (ids.validate_uetr, "eb6305c9-1f7f-19de-aed0-16487c27b42d", "version 4"),
    "date 30 february": (ids.validate_iso_date, "2026-02-30", "calendar date"),
    "date compact": (ids.validate_iso_date, "20261103", "YYYY-MM-DD"),
    "date with time": (ids.validate_iso_date, "2026-11-03T10:00:00Z", "YYYY-MM-DD"),
    "language unknown": (ids.validate_language_tag, "qq", "ISO 639"),
    "language bad script": (ids.validate_language_tag, "zh-Qqqq", "ISO 15924"),
    "language underscore": (ids.validate_language_tag, "zh_Hans", "BCP 47"),
    "btc testnet bech32": (
        ids.validate_bitcoin_address,
        "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7",
        "expected",
    ),
    "btc v1 with bech32 checksum": (
        ids.validate_bitcoin_address,
        "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqh2y7hd",
        "must use bech32m",
    ),
    "btc v0 with bech32m checksum": (
        ids.validate_bitcoin_address,
        "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kemeawh",
        "must use bech32",
    ),
    "btc v16 with bech32 checksum": (
        ids.validate_bitcoin_address,
        "BC1S0XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ54WELL",
        "must use bech32m",
    ),
    "btc mixed case bech32": (
        ids.validate_bitcoin_address,
        "bc1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4",
        "mixes upper and lower case",
    ),
    "btc base58 bad checksum": (
        ids.validate_bitcoin_address,
        "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb",
        "checksum",
    ),
    "btc base58 zero char": (
        ids.validate_bitcoin_address,
        "1A1zP1eP5QGefi2DMPTfTL5SLmv7Divf0a",
        "not Base58",
    ),
    "btc tron address": (
        ids.validate_bitcoin_address,
        "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t",
        "1...",
    ),
    "eth bad eip55": (
        ids.validate_ethereum_address,
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD",
        "EIP-55 checksum fails: character 42 is 'D', expected 'd'",
    ),
    "eth no prefix": (
        ids.validate_ethereum_address,
        "5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "0x",
    ),
    "eth short": (
        ids.validate_ethereum_address,
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeA",
        "40 hexadecimal",
    ),
    "tron bad checksum": (
        ids.validate_tron_address,
        "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6u",
        "checksum",
    ),
    "tron no T": (
        ids.validate_tron_address,
        "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa",
        "starting with T",
    ),
    "tron wrong version byte": (
        ids.validate_tron_address,
        _base58check.encode(b"\x42" + b"\x07" * 20),
        "version byte 0x41",
    ),
    "eth tx hash without 0x": (ids.validate_ethereum_transaction_hash, "cd" * 32, "0x"),
    "btc txid mixed case": (ids.validate_bitcoin_transaction_hash, "aB" * 32, "64 hexadecimal"),
    "decimal float exponent": (ids.validate_decimal, "1e3", "no exponent"),
    "decimal nan": (ids.validate_decimal, "NaN", "decimal"),
    "decimal negative": (ids.validate_decimal, "-5", "non-negative"),
    "decimal separator": (ids.validate_decimal, "1,200", "separators"),
    "decimal trailing point": (ids.validate_decimal, "12.", "decimal"),
    "decimal leading zero": (ids.validate_decimal, "0123", "leading zeros"),
    "air waybill wrong check": (
        ids.validate_air_waybill,
        "784-12345676",
        "check digit is 6, expected 5",
    ),
    "unit unknown": (ids.validate_quantity_unit, "drums", "expected a unit"),
    "media type unknown top level": (ids.validate_media_type, "foo/bar", "media type"),
    "website javascript": (ids.validate_website, "javascript:alert(1)", "expected"),
    "website ftp": (ids.validate_website, "ftp://example.cn", "scheme"),
    "agency id upper": (ids.validate_agency_id, "Agency-B", "agency id"),
    "agency id leading dash": (ids.validate_agency_id, "-agency", "agency id"),
    "item id leading dot": (ids.validate_item_id, ".s1", "item id"),
}

ALL_VALIDATORS: list[Validator] = sorted(
    {validator for validator, _ in VALID.values()}
    | {validator for validator, _, _ in INVALID.values()},
    key=lambda v: v.__name__,
)


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_identifier_is_accepted(name: str) -> None:
    validator, value = VALID[name]
    validator(value)


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_identifier_is_rejected_with_a_reason(name: str) -> None:
    validator, value, expected_text = INVALID[name]
    with pytest.raises(ids.IdentifierError) as caught:
        validator(value)
    assert expected_text in caught.value.message


@pytest.mark.parametrize("validator", ALL_VALIDATORS, ids=lambda v: v.__name__)
@pytest.mark.parametrize(
    "value", [None, 41661476, 1.5, True, b"41661-47-6", ["x"], {"a": 1}], ids=repr
)
def test_wrong_types_are_identifier_errors(validator: Validator, value: object) -> None:
    with pytest.raises(ids.IdentifierError, match="expected a string"):
        validator(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("validator", ALL_VALIDATORS, ids=lambda v: v.__name__)
def test_empty_string_is_rejected(validator: Validator) -> None:
    with pytest.raises(ids.IdentifierError, match="is empty"):
        validator("")


@pytest.mark.parametrize("validator", ALL_VALIDATORS, ids=lambda v: v.__name__)
def test_very_long_input_is_rejected_by_the_length_cap(validator: Validator) -> None:
    with pytest.raises(ids.IdentifierError, match="is 10000000 characters; the limit is"):
        validator("1" * 10_000_000)


# Internationalised e-mail addresses may legitimately be non-ASCII, so e-mail is not in this list;
# a bare full-width string is still no address.
@pytest.mark.parametrize(
    "validator", [v for v in ALL_VALIDATORS if v is not ids.validate_email], ids=lambda v: v.__name__
)
def test_full_width_lookalikes_are_rejected(validator: Validator) -> None:
    with pytest.raises(ids.IdentifierError):
        validator("４１")


def _replace(value: str, position: int, char: str) -> str:
    return value[:position] + char + value[position + 1 :]


CHECK_DIGIT_CASES = {
    "cas": (ids.validate_cas_rn, "41661-47-6", [9]),
    "container": (ids.validate_container_number, "MSCU5286418", [10]),
    "air waybill": (ids.validate_air_waybill, "784-12345675", [11]),
    "iban": (ids.validate_iban, "DE89370400440532013000", [2, 3]),
}


@pytest.mark.parametrize("name", sorted(CHECK_DIGIT_CASES))
def test_every_other_check_digit_is_rejected(name: str) -> None:
    validator, value, positions = CHECK_DIGIT_CASES[name]
    for position in positions:
        for digit in "0123456789":
            if digit == value[position]:
                continue
            with pytest.raises(ids.IdentifierError):
                validator(_replace(value, position, digit))


CORRUPTION_CASES: dict[str, tuple[Validator, str, str]] = {
    # (validator, valid value, alphabet of same-kind replacement characters)
    "cas +1 on each digit": (ids.validate_cas_rn, "41661-47-6", "digits+1"),
    "iban any digit": (ids.validate_iban, "GB82WEST12345698765432", "0123456789"),
    "uscc any position": (
        ids.validate_cn_uscc,
        "91310000MA1FL4TR8R",
        "0123456789ABCDEFGHJKLMNPQRTUWXY",
    ),
    "container any digit": (ids.validate_container_number, "CSQU3054383", "digits+1"),
    "tron any char": (
        ids.validate_tron_address,
        "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t",
        _base58check.ALPHABET,
    ),
    "btc base58 any char": (
        ids.validate_bitcoin_address,
        "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa",
        _base58check.ALPHABET,
    ),
    "btc bech32 any char": (
        ids.validate_bitcoin_address,
        "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",
        _bech32.CHARSET,
    ),
}


@pytest.mark.parametrize("name", sorted(CORRUPTION_CASES))
def test_single_character_corruptions_are_rejected(name: str) -> None:
    validator, value, alphabet = CORRUPTION_CASES[name]
    first = 4 if value.startswith("bc1") else 1 if value[0] in "1T" else 0
    for position in range(first, len(value)):
        original = value[position]
        if not original.isalnum():
            continue
        if alphabet == "digits+1":
            if not original.isdigit():
                continue
            replacements = [str((int(original) + 1) % 10)]
        else:
            replacements = [c for c in alphabet if c != original][:5]
        for char in replacements:
            with pytest.raises(ids.IdentifierError):
                validator(_replace(value, position, char))


def test_eip55_case_flip_is_rejected() -> None:
    value = "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359"
    for position in range(2, len(value)):
        if value[position].isalpha():
            with pytest.raises(ids.IdentifierError, match="EIP-55"):
                ids.validate_ethereum_address(_replace(value, position, value[position].swapcase()))


def test_tron_address_round_trips_through_base58check() -> None:
    body = b"\x41" + hashlib.sha256(b"wallet").digest()[:20]
    address = _base58check.encode(body)
    ids.validate_tron_address(address)
    assert _base58check.decode(address) == body


def test_segwit_encoding_round_trips() -> None:
    for version, program in [(0, bytes(20)), (0, bytes(range(32))), (1, bytes(range(32)))]:
        address = _bech32.encode_segwit_address("bc", version, program)
        ids.validate_bitcoin_address(address)
        assert _bech32.decode_segwit_address("bc", address) == (version, program)


def test_rfc3339_timestamp_parsing() -> None:
    assert ids.parse_rfc3339_timestamp("1970-01-01T00:00:00Z") == (0, 0)
    assert ids.parse_rfc3339_timestamp("1970-01-01T08:00:00.5+08:00") == (0, 500_000_000)
    assert ids.parse_rfc3339_timestamp("2026-12-01T08:00:00.123456789Z")[1] == 123_456_789
    for bad in [
        "2026-12-01T08:00:00",
        "2026-12-01 08:00:00Z",
        "2026-13-01T08:00:00Z",
        "2026-12-01T08:00:00+24:00",
    ]:
        with pytest.raises(ids.IdentifierError):
            ids.parse_rfc3339_timestamp(bad)


def test_crypto_asset_codes_are_not_iso_currencies() -> None:
    for code in ids.CRYPTO_ASSET_CODES:
        with pytest.raises(ids.IdentifierError):
            ids.validate_currency_code(code)


def test_identifier_error_is_a_value_error_and_a_project_error() -> None:
    from exchange.errors import InvalidInputError

    with pytest.raises(ValueError):
        ids.validate_cas_rn("x")
    with pytest.raises(InvalidInputError):
        ids.validate_cas_rn("x")


def test_kosovo_bic_is_accepted_as_swift_and_stdnum_do() -> None:
    """XK is user-assigned in ISO 3166-1 but is the country code of Kosovo's BICs and IBANs."""
    ids.validate_bic("AAAAXK00")
    with pytest.raises(ids.IdentifierError, match="country code"):
        ids.validate_bic("AAAAXQ00")
