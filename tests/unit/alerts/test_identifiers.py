"""Identifier validators and normalisers: named valid and invalid cases, printed forms,
corruptions, odd types, long input."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest

from exchange.alerts import _base58check, _bech32
from exchange.alerts import identifiers as ids

Validator = Callable[[str], None]
Normaliser = Callable[[str], str]

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
    "ein": (ids.validate_us_ein, "123456789"),
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
    "hs 8": (ids.validate_hs_code, "29333990"),
    "hs 10": (ids.validate_hs_code, "2933399073"),
    "imo": (ids.validate_imo_number, "9319466"),
    "imo 2": (ids.validate_imo_number, "8814275"),
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
    "btc bech32 v0 p2wpkh": (
        ids.validate_bitcoin_address,
        "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
    ),
    "btc bech32 v0 p2wsh": (
        ids.validate_bitcoin_address,
        "bc1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3qccfmv3",
    ),
    "btc bech32m v1 taproot": (
        ids.validate_bitcoin_address,
        "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",
    ),
    "btc bech32m v16": (ids.validate_bitcoin_address, "bc1sw50qgdz25j"),
    "btc bech32m v2": (ids.validate_bitcoin_address, "bc1zw508d6qejxtdg4y5r3zarvaryvaxxpcs"),
    # EIP-55 test vectors.
    "eth eip55 1": (ids.validate_ethereum_address, "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"),
    "eth eip55 2": (ids.validate_ethereum_address, "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359"),
    "eth eip55 3": (ids.validate_ethereum_address, "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB"),
    "eth eip55 4": (ids.validate_ethereum_address, "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb"),
    "eth digits only": (ids.validate_ethereum_address, "0x" + "1234567890" * 4),
    "tron usdt contract": (ids.validate_tron_address, "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"),
    "btc txid": (ids.validate_bitcoin_transaction_hash, "ab" * 32),
    "eth tx hash": (ids.validate_ethereum_transaction_hash, "0x" + "cd" * 32),
    "tron tx hash": (ids.validate_tron_transaction_hash, "ef" * 32),
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
    "ein unassigned prefix": (ids.validate_us_ein, "073456789", "prefix 07"),
    "ein eight digits": (ids.validate_us_ein, "12345678", "9 digits"),
    "ein with hyphen": (ids.validate_us_ein, "12-3456789", "without the hyphen"),
    "imo with prefix": (ids.validate_imo_number, "IMO 9319466", "without the IMO prefix"),
    "imo wrong check": (ids.validate_imo_number, "9319467", "check digit is 7, expected 6"),
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
    "hs dotted": (ids.validate_hs_code, "2933.39", "without dots"),
    "phone no plus": (ids.validate_phone_e164, "8613800138000", "E.164"),
    "phone spaces": (ids.validate_phone_e164, "+86 138 0013 8000", "E.164"),
    "phone too short": (ids.validate_phone_e164, "+861", "phone number"),
    "phone not in plan": (ids.validate_phone_e164, "+8610123", "numbering plan"),
    "email no domain": (ids.validate_email, "ops@", "e-mail"),
    "email upper-case domain": (ids.validate_email, "ops@EXAMPLE.cn", "normalised form 'ops@"),
    "email full-width domain": (ids.validate_email, "ops@ｅｘａｍｐｌｅ.cn", "FULLWIDTH"),
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
    "btc upper-case bech32": (
        ids.validate_bitcoin_address,
        "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4",
        "written in lower case",
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
    "eth all lower (no checksum)": (
        ids.validate_ethereum_address,
        "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed",
        (
            "no EIP-55 checksum (its letters are all one case): expected "
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
        ),
    ),
    "eth all upper (no checksum)": (
        ids.validate_ethereum_address,
        "0x5AAEB6053F3E94C9B9A09F33669435E7EF1BEAED",
        "no EIP-55 checksum",
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
    "btc txid mixed case": (ids.validate_bitcoin_transaction_hash, "aB" * 32, "64 lower-case"),
    "btc txid upper case": (ids.validate_bitcoin_transaction_hash, "AB" * 32, "64 lower-case"),
    "eth tx hash upper case": (ids.validate_ethereum_transaction_hash, "0x" + "CD" * 32, "lower"),
    "decimal float exponent": (ids.validate_decimal, "1e3", "no exponent"),
    "decimal nan": (ids.validate_decimal, "NaN", "decimal"),
    "decimal negative": (ids.validate_decimal, "-5", "non-negative"),
    "decimal separator": (ids.validate_decimal, "1,200", "separators"),
    "decimal trailing point": (ids.validate_decimal, "12.", "decimal"),
    "decimal leading zero": (ids.validate_decimal, "0123", "leading zeros"),
    "air waybill without hyphen": (ids.validate_air_waybill, "78412345675", "784-12345675"),
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
ALL_NORMALISERS: list[Normaliser] = sorted(ids.NORMALISERS.values(), key=lambda n: n.__name__)
VALIDATOR_OF: dict[Normaliser, Validator] = {n: v for v, n in ids.NORMALISERS.items()}
# The checks every validator and every normaliser share: odd types, empty, long, full-width.
ALL_CHECKS: list[Callable[[str], object]] = [*ALL_VALIDATORS, *ALL_NORMALISERS]


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


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda v: v.__name__)
@pytest.mark.parametrize(
    "value", [None, 41661476, 1.5, True, b"41661-47-6", ["x"], {"a": 1}], ids=repr
)
def test_wrong_types_are_identifier_errors(check: Validator, value: object) -> None:
    with pytest.raises(ids.IdentifierError, match="expected a string"):
        check(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda v: v.__name__)
@pytest.mark.parametrize("value", ["", " ", "\t \n"], ids=repr)
def test_empty_string_is_rejected(check: Validator, value: str) -> None:
    if not value or check in ALL_NORMALISERS:
        with pytest.raises(ids.IdentifierError, match="is empty"):
            check(value)
    else:
        with pytest.raises(ids.IdentifierError):
            check(value)


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda v: v.__name__)
def test_very_long_input_is_rejected_by_the_length_cap(check: Validator) -> None:
    with pytest.raises(ids.IdentifierError, match="is 10000000 characters; the limit is"):
        check("1" * 10_000_000)


# Internationalised e-mail addresses may legitimately be non-ASCII, so e-mail is not in this list;
# a bare full-width string is still no address.
@pytest.mark.parametrize(
    "check",
    [v for v in ALL_CHECKS if v not in (ids.validate_email, ids.normalise_email)],
    ids=lambda v: v.__name__,
)
def test_full_width_lookalikes_are_rejected(check: Validator) -> None:
    with pytest.raises(ids.IdentifierError, match="ASCII"):
        check("４１")


# Printed forms: how documents write each identifier, and its canonical electronic form.
PRINTED_FORMS: dict[str, tuple[Normaliser, str, str]] = {
    "iban groups of four": (
        ids.normalise_iban,
        "GB82 WEST 1234 5698 7654 32",
        "GB82WEST12345698765432",
    ),
    "iban groups in lower case": (
        ids.normalise_iban,
        "gb82 west 1234 5698 7654 32",
        "GB82WEST12345698765432",
    ),
    "iban paper format with prefix": (
        ids.normalise_iban,
        "IBAN DE89 3704 0044 0532 0130 00",
        "DE89370400440532013000",
    ),
    "iban lower case": (ids.normalise_iban, "de89370400440532013000", "DE89370400440532013000"),
    "bic lower case": (ids.normalise_bic, "deutdeff", "DEUTDEFF"),
    "bic with spaces": (ids.normalise_bic, "DEUT DE FF", "DEUTDEFF"),
    "bic 11 spaced in lower case": (ids.normalise_bic, "bkch cn bj 300", "BKCHCNBJ300"),
    "container spaced, hyphen before check": (
        ids.normalise_container_number,
        "MSCU 528641-8",
        "MSCU5286418",
    ),
    "container spaced": (ids.normalise_container_number, "MSCU 528641 8", "MSCU5286418"),
    "container lower case": (ids.normalise_container_number, "mscu5286418", "MSCU5286418"),
    "container space after owner code": (
        ids.normalise_container_number,
        "CSQU 3054383",
        "CSQU3054383",
    ),
    "cas spaces around hyphens": (ids.normalise_cas_rn, "41661 - 47 - 6", "41661-47-6"),
    "cas spaces around it": (ids.normalise_cas_rn, " 41661-47-6 ", "41661-47-6"),
    "cas tab and newline around it": (ids.normalise_cas_rn, "\t67-64-1\n", "67-64-1"),
    "imo with prefix": (ids.normalise_imo_number, "IMO 9319466", "9319466"),
    "imo with prefix, no space": (ids.normalise_imo_number, "IMO9319466", "9319466"),
    "imo with lower-case prefix": (ids.normalise_imo_number, "imo 8814275", "8814275"),
    "phone spaced": (ids.normalise_phone_e164, "+86 138 0013 8000", "+8613800138000"),
    "phone hyphens": (ids.normalise_phone_e164, "+86-138-0013-8000", "+8613800138000"),
    "phone parentheses": (ids.normalise_phone_e164, "+1 (650) 253-0000", "+16502530000"),
    "phone trunk prefix in parentheses": (
        ids.normalise_phone_e164,
        "+44 (0)20 7946 0958",
        "+442079460958",
    ),
    "phone dots": (ids.normalise_phone_e164, "+52.55.1234.5678", "+525512345678"),
    "email upper-case domain": (ids.normalise_email, "ops@EXAMPLE.CN", "ops@example.cn"),
    "email local part keeps its case": (ids.normalise_email, "Ops@Example.cn", "Ops@example.cn"),
    "email punycode domain": (ids.normalise_email, "ops@xn--fsqu00a.xn--fiqs8s", "ops@例子.中国"),
    "locode with space": (ids.normalise_un_locode, "CN SHA", "CNSHA"),
    "locode with digit and space": (ids.normalise_un_locode, "DE HA2", "DEHA2"),
    "hs dotted 6": (ids.normalise_hs_code, "2933.39", "293339"),
    "hs dotted 8": (ids.normalise_hs_code, "2933.39.90", "29333990"),
    "hs dotted 10": (ids.normalise_hs_code, "2933.39.90.73", "2933399073"),
    "hs spaced as the EU prints it": (ids.normalise_hs_code, "2933 39 90", "29333990"),
    "eth all lower case": (
        ids.normalise_ethereum_address,
        "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed",
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    ),
    "eth all upper case": (
        ids.normalise_ethereum_address,
        "0xFB6916095CA1DF60BB79CE92CE3EA74C37C5D359",
        "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
    ),
    "btc bech32 in upper case (QR codes)": (
        ids.normalise_bitcoin_address,
        "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4",
        "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
    ),
    "btc base58 with spaces around it": (
        ids.normalise_bitcoin_address,
        " 1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa ",
        "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa",
    ),
    "tron with a newline after it": (
        ids.normalise_tron_address,
        "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t\n",
        "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t",
    ),
    "btc txid in upper case": (ids.normalise_bitcoin_transaction_hash, "AB" * 32, "ab" * 32),
    "tron tx hash in upper case": (ids.normalise_tron_transaction_hash, "EF" * 32, "ef" * 32),
    "eth tx hash in upper case": (
        ids.normalise_ethereum_transaction_hash,
        "0x" + "CD" * 32,
        "0x" + "cd" * 32,
    ),
    "uetr in upper case": (
        ids.normalise_uetr,
        "EB6305C9-1F7F-49DE-AED0-16487C27B42D",
        "eb6305c9-1f7f-49de-aed0-16487c27b42d",
    ),
    "uscc with hyphen": (ids.normalise_cn_uscc, "91310000-MA1FL4TR8R", "91310000MA1FL4TR8R"),
    "uscc in groups": (ids.normalise_cn_uscc, "9131 0000 MA1F L4TR 8R", "91310000MA1FL4TR8R"),
    "lei in groups": (ids.normalise_lei, "5493 001K JTII GC8Y 1R12", "5493001KJTIIGC8Y1R12"),
    "ein with hyphen": (ids.normalise_us_ein, "12-3456789", "123456789"),
    "air waybill without hyphen": (ids.normalise_air_waybill, "78412345675", "784-12345675"),
    "air waybill spaced": (ids.normalise_air_waybill, "784 1234 5675", "784-12345675"),
    "air waybill hyphen and space": (ids.normalise_air_waybill, "784-1234 5675", "784-12345675"),
}

# Forms that are not printed forms of their kind, or printed forms of an invalid identifier.
NOT_PRINTED_FORMS: dict[str, tuple[Normaliser, str, str]] = {
    "iban irregular groups": (ids.normalise_iban, "GB82 WES T123 4569 8765 432", "without spaces"),
    "iban two spaces": (ids.normalise_iban, "GB82  WEST 1234 5698 7654 32", "without spaces"),
    "iban wrong check digits": (
        ids.normalise_iban,
        "GB83 WEST 1234 5698 7654 32",
        "check digits are 83, expected 82",
    ),
    "iban full-width letters": (ids.normalise_iban, "ＧＢ82WEST12345698765432", "FULLWIDTH"),
    "iban no-break space": (ids.normalise_iban, "GB82\u00a0WEST12345698765432", "NO-BREAK SPACE"),
    "bic with hyphens": (ids.normalise_bic, "DEUT-DE-FF", "characters long"),
    "container two spaces": (ids.normalise_container_number, "MSCU  528641 8", "ISO 6346"),
    "container space inside the serial": (
        ids.normalise_container_number,
        "CSQU 305 438 3",
        "ISO 6346",
    ),
    "container wrong check digit": (
        ids.normalise_container_number,
        "MSCU 528641-9",
        "check digit is 9, expected 8",
    ),
    "cas without hyphens": (ids.normalise_cas_rn, "41661476", "hyphenated"),
    "cas en dashes": (ids.normalise_cas_rn, "41661–47–6", "EN DASH"),
    "cas full-width digits": (ids.normalise_cas_rn, "４１６６１-47-6", "FULLWIDTH DIGIT FOUR"),
    "cas wrong check digit": (ids.normalise_cas_rn, "41661 - 47 - 5", "check digit is 5"),
    "imo with colon": (ids.normalise_imo_number, "IMO: 9319466", "IMO number"),
    "imo wrong check digit": (ids.normalise_imo_number, "IMO 9319467", "expected 6"),
    "phone national form": (ids.normalise_phone_e164, "0138 0013 8000", "international form"),
    "phone 00 prefix": (ids.normalise_phone_e164, "0086 138 0013 8000", "international form"),
    "phone extension": (ids.normalise_phone_e164, "+1 650 253 0000 ext. 12", "no letters"),
    "phone vanity number": (ids.normalise_phone_e164, "+1 800 FLOWERS", "no letters"),
    "phone not in the plan": (ids.normalise_phone_e164, "+86 10 123", "numbering plan"),
    "email full-width domain": (ids.normalise_email, "ops@ｅｘａｍｐｌｅ.cn", "compatibility form"),
    "email no domain": (ids.normalise_email, "ops@", "e-mail"),
    "locode lower case": (ids.normalise_un_locode, "cn sha", "UN/LOCODE"),
    "locode hyphen": (ids.normalise_un_locode, "CN-SHA", "UN/LOCODE"),
    "hs slash": (ids.normalise_hs_code, "2933/39", "HS code"),
    "hs dot in wrong place": (ids.normalise_hs_code, "29.3339", "HS code"),
    "eth mixed case with bad checksum": (
        ids.normalise_ethereum_address,
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD",
        "EIP-55 checksum fails: character 42",
    ),
    "eth upper-case prefix": (
        ids.normalise_ethereum_address,
        "0X5AAEB6053F3E94C9B9A09F33669435E7EF1BEAED",
        "0x followed",
    ),
    "btc mixed-case bech32": (
        ids.normalise_bitcoin_address,
        "bc1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4",
        "mixes upper and lower case",
    ),
    "btc base58 in lower case": (
        ids.normalise_bitcoin_address,
        "1a1zp1ep5qgefi2dmptftl5slmv7divfna",
        "not Base58",
    ),
    "uetr without hyphens": (ids.normalise_uetr, "EB6305C91F7F49DEAED016487C27B42D", "UETR"),
    "uscc lower case": (ids.normalise_cn_uscc, "91310000ma1fl4tr8r", "upper-case"),
    "uscc double separator": (ids.normalise_cn_uscc, "91310000--MA1FL4TR8R", "expected 18"),
    "ein spaced": (ids.normalise_us_ein, "12 3456789", "9 digits"),
    "air waybill dots": (ids.normalise_air_waybill, "784.12345675", "air waybill"),
}


@pytest.mark.parametrize("name", sorted(PRINTED_FORMS))
def test_printed_form_normalises_to_the_canonical_form(name: str) -> None:
    normaliser, printed, canonical = PRINTED_FORMS[name]
    assert normaliser(printed) == canonical
    validator = VALIDATOR_OF[normaliser]
    validator(canonical)
    with pytest.raises(ids.IdentifierError):
        validator(printed)


@pytest.mark.parametrize("name", sorted(NOT_PRINTED_FORMS))
def test_other_forms_stay_errors(name: str) -> None:
    normaliser, value, expected_text = NOT_PRINTED_FORMS[name]
    with pytest.raises(ids.IdentifierError) as caught:
        normaliser(value)
    assert expected_text in caught.value.message


@pytest.mark.parametrize("name", sorted(n for n in VALID if VALID[n][0] in ids.NORMALISERS))
def test_normaliser_leaves_the_canonical_form_alone(name: str) -> None:
    validator, value = VALID[name]
    assert ids.NORMALISERS[validator](value) == value


@pytest.mark.parametrize("name", sorted(n for n in INVALID if INVALID[n][0] in ids.NORMALISERS))
def test_normaliser_refuses_what_is_invalid_in_any_form(name: str) -> None:
    validator, value, _ = INVALID[name]
    canonical = ids.NORMALISERS[validator]
    try:
        normalised = canonical(value)
    except ids.IdentifierError:
        return
    # Refused by the validator only for its form: then it is a printed form of a valid one.
    assert normalised != value
    validator(normalised)


def test_every_normaliser_is_listed_and_every_kind_is_tested() -> None:
    exported = {name for name in ids.__all__ if name.startswith("normalise_")}
    assert exported == {normaliser.__name__ for normaliser in ids.NORMALISERS.values()}
    assert set(ids.NORMALISERS) <= set(ALL_VALIDATORS)
    assert {normaliser for normaliser, _, _ in PRINTED_FORMS.values()} == set(ALL_NORMALISERS)


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
