"""Payload validation: every identifier at its path, the rules between fields, received payloads."""

from __future__ import annotations

import pytest

from exchange.alerts import validate_payload, validate_policy
from exchange.v1 import payloads_pb2, statements_pb2

P = payloads_pb2


def messages(payload: payloads_pb2.ItemPayload, path: str = "items[0]") -> list[str]:
    return [str(v) for v in validate_payload(payload, path)]


CASES: dict[str, tuple[payloads_pb2.ItemPayload, str]] = {
    "cas check digit": (
        P.ItemPayload(
            shipment=P.Shipment(chemicals=[P.Chemical(name="x"), P.Chemical(cas_rn="41661-47-1")])
        ),
        "items[0].shipment.chemicals[1].cas_rn: check digit is 1, expected 6",
    ),
    "container": (
        P.ItemPayload(shipment=P.Shipment(containers=["MSCU5286418", "MSCU5286417"])),
        "items[0].shipment.containers[1]: check digit is 7, expected 8",
    ),
    "duplicate container": (
        P.ItemPayload(shipment=P.Shipment(containers=["MSCU5286418", "MSCU5286418"])),
        "items[0].shipment.containers[1]: duplicate of items[0].shipment.containers[0]",
    ),
    "route locode": (
        P.ItemPayload(shipment=P.Shipment(route=["CNSHA", "KR PUS"])),
        "items[0].shipment.route[1]: expected a UN/LOCODE",
    ),
    "point of entry": (
        P.ItemPayload(shipment=P.Shipment(point_of_entry="XXZLO")),
        "items[0].shipment.point_of_entry: XX is not",
    ),
    "arrival before dispatch": (
        P.ItemPayload(shipment=P.Shipment(dispatch_date="2026-11-03", arrival_date="2026-10-03")),
        "items[0].shipment.arrival_date: is before dispatch_date 2026-11-03",
    ),
    "quantity without unit": (
        P.ItemPayload(shipment=P.Shipment(quantity=P.Quantity(value="12"))),
        "items[0].shipment.quantity.unit: is required with a value",
    ),
    "quantity float text": (
        P.ItemPayload(shipment=P.Shipment(quantity=P.Quantity(value="1.2e3", unit="kg"))),
        "items[0].shipment.quantity.value: expected a non-negative decimal",
    ),
    "exporter registration by scheme": (
        P.ItemPayload(
            shipment=P.Shipment(
                exporter=P.Party(
                    names=[P.PartyName(value="x")],
                    registration_numbers=[
                        P.RegistrationNumber(
                            scheme=P.RegistrationNumber.CN_USCC, value="91310000MA1FL4TR8A"
                        )
                    ],
                )
            )
        ),
        "items[0].shipment.exporter.registration_numbers[0].value: check character is A, expected R",
    ),
    "registration without scheme": (
        P.ItemPayload(
            party=P.Party(registration_numbers=[P.RegistrationNumber(value="12-3456789")])
        ),
        "items[0].party.registration_numbers[0].scheme: is required",
    ),
    "party contact phone": (
        P.ItemPayload(
            party=P.Party(names=[P.PartyName(value="x")], contacts=[P.Contact(phone="13800138000")])
        ),
        "items[0].party.contacts[0].phone: expected an E.164 phone number",
    ),
    "party country": (
        P.ItemPayload(party=P.Party(names=[P.PartyName(value="x")], country="China")),
        "items[0].party.country:",
    ),
    "party name language": (
        P.ItemPayload(party=P.Party(names=[P.PartyName(value="x", language="chinese")])),
        "items[0].party.names[0].language:",
    ),
    "company with date of birth": (
        P.ItemPayload(
            party=P.Party(
                kind=P.Party.COMPANY, names=[P.PartyName(value="x")], date_of_birth="1980-01-01"
            )
        ),
        "items[0].party.date_of_birth: is for persons",
    ),
    "party without name": (
        P.ItemPayload(party=P.Party(country="CN")),
        "items[0].party: a party needs",
    ),
    "account iban": (
        P.ItemPayload(account=P.Account(iban="DE88370400440532013000")),
        "items[0].account.iban: check digits are 88, expected 89",
    ),
    "account bic": (
        P.ItemPayload(account=P.Account(iban="DE89370400440532013000", bic="COBADEF")),
        "items[0].account.bic: is 7 characters long, expected 8 or 11",
    ),
    "wallet by chain": (
        P.ItemPayload(
            account=P.Account(
                wallet=P.Wallet(chain=P.Wallet.TRON, address="1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa")
            )
        ),
        "items[0].account.wallet.address: expected a TRON address",
    ),
    "wallet without chain": (
        P.ItemPayload(
            account=P.Account(wallet=P.Wallet(address="TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"))
        ),
        "items[0].account.wallet.chain: is required with address",
    ),
    "transaction currency": (
        P.ItemPayload(transaction=P.Transaction(amount=P.Amount(value="10", currency="USDX"))),
        "items[0].transaction.amount.currency: USDX is neither",
    ),
    "transaction agent bic": (
        P.ItemPayload(transaction=P.Transaction(debtor_agent="COBADEFFXX")),
        "items[0].transaction.debtor_agent:",
    ),
    "transaction uetr": (
        P.ItemPayload(transaction=P.Transaction(uetr="not-a-uuid")),
        "items[0].transaction.uetr: expected a UETR",
    ),
    "transaction eth hash": (
        P.ItemPayload(
            transaction=P.Transaction(chain=P.Wallet.ETHEREUM, transaction_hash="ab" * 32)
        ),
        "items[0].transaction.transaction_hash: expected an Ethereum transaction hash",
    ),
    "transaction address needs chain": (
        P.ItemPayload(transaction=P.Transaction(to_address="TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t")),
        "items[0].transaction.chain: is required with to_address",
    ),
    "nested account holder": (
        P.ItemPayload(
            transaction=P.Transaction(
                creditor_account=P.Account(
                    iban="DE89370400440532013000",
                    holder=P.Party(names=[P.PartyName(value="x")], country="XX"),
                )
            )
        ),
        "items[0].transaction.creditor_account.holder.country:",
    ),
    "attachment path in name": (
        P.ItemPayload(
            attachment=P.Attachment(name="../x.pdf", media_type="application/pdf", content=b"x")
        ),
        "items[0].attachment.name: is a file name",
    ),
    "note language": (
        P.ItemPayload(note=P.Note(text="x", language="english")),
        "items[0].note.language:",
    ),
    "control character": (
        P.ItemPayload(note=P.Note(text="look \x1b[2J here")),
        "items[0].note.text: character 6 is the control character U+001B",
    ),
    "bidi override": (
        P.ItemPayload(party=P.Party(names=[P.PartyName(value="abc\u202edcba")])),
        "items[0].party.names[0].value: character 4 is the control character U+202E",
    ),
    "unknown enum number on open": (
        P.ItemPayload(shipment=P.Shipment(status=42)),  # type: ignore[arg-type]
        "items[0].shipment.status: value 42 is not one of",
    ),
    "watchlist entry without cas": (
        P.ItemPayload(watchlist_entry=P.WatchlistEntry(name="x", control=P.Chemical.NATIONAL)),
        "items[0].watchlist_entry.cas_rn: is required",
    ),
    "empty payload": (P.ItemPayload(), "items[0]: exactly one payload kind is required"),
    "vessel imo check digit": (
        P.ItemPayload(shipment=P.Shipment(vessel_imo="9319467")),
        "items[0].shipment.vessel_imo: check digit is 7, expected 6",
    ),
    # A signed payload carries canonical forms only: a printed one received is an error.
    "received iban in groups": (
        P.ItemPayload(account=P.Account(iban="GB82 WEST 1234 5698 7654 32")),
        "items[0].account.iban: expected the electronic format without spaces",
    ),
    "received vessel imo with prefix": (
        P.ItemPayload(shipment=P.Shipment(vessel_imo="IMO 9319466")),
        "items[0].shipment.vessel_imo: expected an IMO number: 7 digits without the IMO prefix",
    ),
    "received dotted hs code": (
        P.ItemPayload(shipment=P.Shipment(hs_code="2933.39")),
        "items[0].shipment.hs_code: expected an HS code of 6, 8 or 10 digits without dots",
    ),
    "received one-case ethereum address": (
        P.ItemPayload(
            account=P.Account(
                wallet=P.Wallet(
                    chain=P.Wallet.ETHEREUM, address="0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"
                )
            )
        ),
        "items[0].account.wallet.address: has no EIP-55 checksum",
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_violation_names_the_field_path(name: str) -> None:
    payload, expected = CASES[name]
    found = messages(payload)
    assert any(message.startswith(expected) for message in found), found


def test_valid_payload_has_no_violations() -> None:
    payload = P.ItemPayload(
        transaction=P.Transaction(
            amount=P.Amount(value="48250.00", currency="USDT"),
            chain=P.Wallet.TRON,
            from_address="TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t",
            transaction_hash="ab" * 32,
            uetr="eb6305c9-1f7f-49de-aed0-16487c27b42d",
            value_date="2026-10-21",
        )
    )
    assert messages(payload) == []


def test_path_prefix_is_optional() -> None:
    payload = P.ItemPayload(chemical=P.Chemical(cas_rn="41661-47-5"))
    assert messages(payload, "") == ["chemical.cas_rn: check digit is 5, expected 6"]


def test_policy_rules() -> None:
    policy = statements_pb2.ReleasePolicy(
        audience=["agency-b", "AGENCY"], release=statements_pb2.ReleasePolicy.EMBARGO
    )
    found = [str(v) for v in validate_policy(policy, "items[0].policy")]
    assert (
        "items[0].policy.tlp: is required: one of CLEAR, GREEN, AMBER, AMBER+STRICT, RED, TLP:CLEAR, TLP:GREEN, TLP:AMBER, TLP:AMBER+STRICT, TLP:RED"
        in found
    )
    assert "items[0].policy.embargo_until: is required with release EMBARGO" in found
    assert any(m.startswith("items[0].policy.audience[1]: expected an agency id") for m in found)
