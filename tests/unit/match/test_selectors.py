"""The canonicalisation table: spellings of one identifier give one selector, different
identifiers never share one, and bad selectors are refused with a message naming them."""

from __future__ import annotations

import itertools

import pytest

from exchange.match.selectors import KINDS, SelectorError, fold_person_name, parse_selector

# Each group: spellings of one identifier, and the canonical selector they all give.
SAME = {
    "company USCC, scheme inferred or named, grouped": (
        "company:cn-uscc:91310000MA1FL4TR8R",
        ["company:91310000MA1FL4TR8R", "company:CN-USCC:91310000 MA1FL4TR8R", "Company:91310000-MA1FL4TR8R"],
    ),
    "company US EIN with its hyphen": (
        "company:us-ein:123456789",
        ["company:us-ein:12-3456789", "company:123456789"],
    ),
    "company LEI in groups": (
        "company:lei:5493001KJTIIGC8Y1R12",
        ["company:lei:5493 001K JTII GC8Y 1R12", "company:5493001KJTIIGC8Y1R12"],
    ),
    "IBAN paper and electronic": (
        "iban:GB82WEST12345698765432",
        ["iban:GB82 WEST 1234 5698 7654 32", "iban:gb82west12345698765432", "IBAN:IBAN GB82 WEST 1234 5698 7654 32"],
    ),
    "BIC head office with and without XXX": (
        "bic:DEUTDEFF",
        ["bic:DEUTDEFFXXX", "bic:deutdeff", "bic:DEUT DE FF", "bic:deut de ff xxx"],
    ),
    "BIC with a branch": ("bic:BKCHCNBJ300", ["bic:bkchcnbj300", "bic:BKCH CN BJ 300"]),
    "account at a bank, number printed in groups": (
        "account:BKCHCNBJ300:6217000010001234567",
        ["account:bkchcnbj300:6217 0000 1000 1234 567", "account:BKCH CN BJ 300:6217-0000-1000-1234-567"],
    ),
    "account at a head office": (
        "account:DEUTDEFF:0532013000",
        ["account:DEUTDEFFXXX:0532013000", "account:deutdeff:0532.013.000"],
    ),
    "TRON wallet, chain inferred": (
        "wallet:tron:TLsV52sRDL79HXGGm9yzwKibb6BeruhUzy",
        ["wallet:TLsV52sRDL79HXGGm9yzwKibb6BeruhUzy", "wallet:TRON:TLsV52sRDL79HXGGm9yzwKibb6BeruhUzy"],
    ),
    "Ethereum wallet in one case or EIP-55": (
        "wallet:ethereum:0x52908400098527886E0F7030069857D2E4169EE7",
        [
            "wallet:0x52908400098527886e0f7030069857d2e4169ee7",
            "wallet:ethereum:0x52908400098527886E0F7030069857D2E4169EE7",
        ],
    ),
    "Bitcoin segwit in upper case (QR codes)": (
        "wallet:bitcoin:bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
        ["wallet:BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4", "wallet:bitcoin:bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"],
    ),
    "container as painted": (
        "container:MSCU1234566",
        ["container:MSCU 123456-6", "container:mscu1234566", "container:MSCU 123456 6"],
    ),
    "IMO with its prefix": ("imo:9319466", ["imo:IMO 9319466", "imo:imo9319466"]),
    "phone in international form": (
        "phone:+8613800138000",
        ["phone:+86 138 0013 8000", "phone:+86-138-0013-8000", "phone:(+86) 138 0013 8000"],
    ),
    "e-mail in any case": (
        "email:ops@example.cn",
        ["email:Ops@Example.CN", "email:OPS@example.cn", " email: ops@example.cn "],
    ),
    "CAS RN with spaces": ("cas:41661-47-6", ["cas:41661 - 47 - 6", "cas: 41661-47-6"]),
    "person: case, whitespace, hyphens": (
        "person:zhangwei:1980-03-15",
        ["person:Zhang Wei:1980-03-15", "person:ZHANG  wei :1980-03-15", "person:Zhang-Wei:1980-03-15"],
    ),
    "person: Han characters transliterated": (
        "person:zhangwei:1980-03-15",
        ["person:张伟:1980-03-15", "person:ＺＨＡＮＧ ＷＥＩ:1980-03-15"],
    ),
    "person: diacritics and special letters": (
        "person:josemuller:1975-01-02",
        ["person:José Müller:1975-01-02", "person:JOSE MULLER:1975-01-02", "person:José Mu\u0308ller:1975-01-02"],
    ),
    "person: Cyrillic and Latin": (
        "person:vladimirpetrov:1969-12-31",
        ["person:Владимир Петров:1969-12-31", "person:Vladimir Petrov:1969-12-31"],
    ),
    "person: ß and Ø": (
        "person:sorenstrasser:1990-07-04",
        ["person:Søren Straßer:1990-07-04", "person:Soren Strasser:1990-07-04"],
    ),
}

# Pairs of different identifiers that must stay apart.
DIFFERENT = {
    "two IBANs": ("iban:GB82WEST12345698765432", "iban:DE89370400440532013000"),
    "BIC head office and a branch": ("bic:DEUTDEFF", "bic:DEUTDEFF500"),
    "one number at two banks": ("account:DEUTDEFF:0532013000", "account:COBADEFF:0532013000"),
    "account numbers with and without a leading zero": (
        "account:DEUTDEFF:0532013000",
        "account:DEUTDEFF:532013000",
    ),
    "same person name, other birthday": (
        "person:Zhang Wei:1980-03-15",
        "person:Zhang Wei:1980-03-16",
    ),
    "names in the other order": ("person:Zhang Wei:1980-03-15", "person:Wei Zhang:1980-03-15"),
    "two containers": ("container:MSCU1234566", "container:CSQU3054383"),
    "addresses on two chains": (
        "wallet:tron:TLsV52sRDL79HXGGm9yzwKibb6BeruhUzy",
        "wallet:bitcoin:1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2",
    ),
    "same digits, different kind": ("imo:9319466", "company:us-ein:931946600"),
    "e-mail domains": ("email:ops@example.cn", "email:ops@example.com"),
}

BAD = {
    "unknown kind": ("vessel:9319466", "unknown selector kind 'vessel'", "kind"),
    "no kind": ("GB82WEST12345698765432", "expected KIND:VALUE", "kind"),
    "container check digit (the issue's example)": (
        "container:MSCU1234565",
        "container:MSCU1234565: check digit is 5, expected 6",
        "value",
    ),
    "IBAN check digits": ("iban:GB82WEST12345698765431", "check digits are 82", "value"),
    "CAS check digit": ("cas:41661-47-5", "check digit is 5, expected 6", "value"),
    "IMO check digit": ("imo:9319467", "check digit is 7, expected 6", "value"),
    "unknown company scheme": ("company:fr-siren:732829320", "scheme 'fr-siren' is not known", "value"),
    "company number of no scheme": ("company:12345", "is not valid in any scheme", "value"),
    "wallet checksum": (
        "wallet:ethereum:0x52908400098527886E0F7030069857D2E4169Ee7",
        "EIP-55 checksum fails",
        "value",
    ),
    "account without a BIC": ("account:6217000010001234567", "expected account:BIC:NUMBER", "value"),
    "account whose number is an IBAN": (
        "account:DEUTDEFF:DE89370400440532013000",
        "write iban:DE89370400440532013000",
        "value",
    ),
    "account number with other characters": ("account:DEUTDEFF:12#34", "letters or digits", "value"),
    "person without a date of birth": ("person:Zhang Wei", "expected person:NAME:YYYY-MM-DD", "value"),
    "person born on no day": ("person:Zhang Wei:1980-02-30", "is not a calendar date", "value"),
    "person with no letters": ("person:--:1980-02-03", "no letters or digits", "value"),
    "full-width digits in a CAS RN": ("cas:４１６６１-47-6", "plain ASCII", "value"),
    "phone without country code": ("phone:0138 0013 8000", "international form", "value"),
}


@pytest.mark.parametrize("name", SAME)
def test_spellings_of_one_identifier_give_one_selector(name: str) -> None:
    canonical, spellings = SAME[name]
    assert str(parse_selector(canonical)) == canonical
    for spelling in spellings:
        assert str(parse_selector(spelling)) == canonical, spelling


def test_different_identifiers_in_the_table_give_different_selectors() -> None:
    canonical = {str(parse_selector(c)) for c, _ in SAME.values()}
    # The two person groups that fold to zhangwei are the same identifier by design.
    assert len(canonical) == len(SAME) - 1


@pytest.mark.parametrize("name", DIFFERENT)
def test_different_identifiers_never_share_a_selector(name: str) -> None:
    first, second = DIFFERENT[name]
    assert parse_selector(first) != parse_selector(second)


def test_a_canonical_selector_is_a_fixed_point() -> None:
    for canonical, spellings in SAME.values():
        for text in itertools.chain([canonical], spellings):
            once = parse_selector(text)
            assert parse_selector(str(once)) == once


@pytest.mark.parametrize("name", BAD)
def test_bad_selectors_are_named_with_what_is_wrong(name: str) -> None:
    text, expected, part = BAD[name]
    with pytest.raises(SelectorError) as raised:
        parse_selector(text)
    assert expected in raised.value.message
    assert raised.value.part == part
    assert raised.value.reason == "SELECTOR_INVALID"


def test_every_kind_of_the_contract_is_known() -> None:
    assert list(KINDS) == [
        "company", "iban", "bic", "account", "wallet", "container", "imo", "phone", "email",
        "cas", "person",
    ]


def test_the_kind_may_be_given_apart_from_the_value() -> None:
    assert parse_selector("MSCU 123456-6", kind="container") == parse_selector(
        "container:MSCU1234566"
    )


@pytest.mark.parametrize(
    ("written", "folded"),
    [
        ("欧阳娜娜", "ouyangnana"),
        ("Ouyang Nana", "ouyangnana"),
        ("Nguyễn Văn An", "nguyenvanan"),
        ("Łukasz Żółw", "lukaszzolw"),
        ("Ærøskøbing", "aeroskobing"),
        ("O'Brien", "obrien"),
        ("Þór", "thor"),
    ],
)
def test_person_names_are_folded(written: str, folded: str) -> None:
    assert fold_person_name(written) == folded


def test_overlong_selectors_are_refused_before_any_work() -> None:
    with pytest.raises(SelectorError, match="at most"):
        parse_selector("iban:" + "1" * 10_000)
