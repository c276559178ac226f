"""Validation of item payloads and drafts: every identifier, at its field path.

The client runs this before anything is signed (the hub cannot: it never sees plaintext) and the
recipient runs :func:`validate_payload` again on every item it opens.  Each problem becomes a
:class:`~exchange.errors.FieldViolation` whose field is the full path
(``items[2].shipment.chemicals[0].cas_rn``) and whose description says what was expected
(``check digit is 5, expected 1``).  Nothing stops at the first problem.

Signed payloads carry identifiers in their canonical form only, so :func:`validate_payload` and
:func:`validate_draft` accept nothing else.  :func:`normalise_draft` is the drafting step before
them: it accepts the printed forms of :data:`~exchange.alerts.identifiers.NORMALISERS` and says,
as one :class:`Normalisation` per field, which canonical form each printed one becomes.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from google.protobuf.descriptor import EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

from exchange.alerts import identifiers as ids
from exchange.alerts._message_mapping import enum_spellings, join_path
from exchange.errors import FieldViolation
from exchange.limits import over_limit
from exchange.v1 import payloads_pb2, statements_pb2


class DraftItemFields(Protocol):
    """What :func:`validate_draft` reads of a :class:`~exchange.alerts.draft.DraftItem`."""

    @property
    def id(self) -> str: ...
    @property
    def policy(self) -> statements_pb2.ReleasePolicy: ...
    @property
    def payload(self) -> payloads_pb2.ItemPayload: ...


class DraftFields(Protocol):
    """What :func:`validate_draft` reads of a draft (a :class:`~exchange.alerts.draft.Draft`):
    validation needs no import of the draft module, which imports it."""

    @property
    def items(self) -> Sequence[DraftItemFields]: ...
    def summary(self) -> payloads_pb2.Summary: ...

__all__ = [
    "MAX_ITEMS",
    "Normalisation",
    "normalise_draft",
    "validate_draft",
    "validate_payload",
    "validate_policy",
]

MAX_ITEMS = 200
MAX_TITLE_LENGTH = 300
MAX_CASE_NOTE_LENGTH = 8000
HASH_BYTES = 32
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024

Validator = ids.Validator

# Characters that can hide or reorder what an operator reads: C0/C1 controls (terminal escapes
# included) and the Unicode bidirectional overrides used in "Trojan Source" spoofing.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")
_ALLOWED_CONTROLS = frozenset("\t\n\r")


def _enum_names(enum: EnumDescriptor) -> str:
    return ", ".join(enum_spellings(enum))


@dataclass(frozen=True)
class Normalisation:
    """A printed identifier in a draft and the canonical form that is stored and signed instead:
    ``items[0].account.iban: normalised "GB82 WEST 1234 5698 7654 32" to "GB82WEST..."``."""

    field: str
    original: str
    canonical: str

    @property
    def description(self) -> str:
        return f'normalised "{self.original}" to "{self.canonical}"'

    def __str__(self) -> str:
        return f"{self.field}: {self.description}"


class _Findings:
    """Collects violations for one validation run; its methods keep the checks one line each.

    With ``printed_forms``, an identifier with a normaliser may be in a printed form: it is
    checked in its canonical form, and :attr:`normalisations` records each one that differed.
    """

    def __init__(self, *, printed_forms: bool = False) -> None:
        self.violations: list[FieldViolation] = []
        self.normalisations: list[Normalisation] = []
        self._printed_forms = printed_forms

    def add(self, path: str, description: str) -> None:
        self.violations.append(FieldViolation(path, description))

    def _canonical(self, path: str, value: str, validator: Validator) -> str | None:
        """``value`` in its canonical form, or None once its violation is recorded."""
        normaliser = ids.NORMALISERS.get(validator) if self._printed_forms else None
        try:
            if normaliser is None:
                validator(value)
                return value
            canonical = normaliser(value)
        except ids.IdentifierError as e:
            self.add(path, e.message)
            return None
        if canonical != value:
            self.normalisations.append(Normalisation(path, value, canonical))
        return canonical

    def check(self, path: str, value: str, validator: Validator) -> None:
        """Apply ``validator`` to ``value`` unless it is empty (absent in proto3)."""
        if value:
            self._canonical(path, value, validator)

    def require(self, path: str, value: object, what: str = "is required") -> bool:
        if value:
            return True
        self.add(path, what)
        return False

    def check_each(self, path: str, values: Sequence[str], validator: Validator) -> None:
        """Check each element; two that are one identifier once canonical are duplicates."""
        seen: dict[str, int] = {}
        for index, value in enumerate(values):
            element_path = f"{path}[{index}]"
            if not value:
                self.add(element_path, "is empty")
                continue
            canonical = self._canonical(element_path, value, validator)
            if canonical is None:
                continue
            if canonical in seen:
                self.add(element_path, f"duplicate of {path}[{seen[canonical]}]")
                continue
            seen[canonical] = index

    def max_length(self, path: str, value: str, limit: int) -> None:
        if len(value) > limit:
            self.add(path, over_limit(len(value), limit, "characters"))


# --- generic checks over every field ---------------------------------------------------------------


def _check_all_fields(message: Message, path: str, findings: _Findings) -> None:
    """Checks that apply to every field of every message: no control or bidi-override
    characters in any string, and no enum number outside the enum (possible only in a payload
    received from elsewhere, since proto3 enums are open)."""
    for field, value in message.ListFields():
        field_path = join_path(path, field.name)
        values = list(value) if field.is_repeated else [value]
        for index, element in enumerate(values):
            element_path = f"{field_path}[{index}]" if field.is_repeated else field_path
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                _check_all_fields(element, element_path, findings)
            elif field.type == FieldDescriptor.TYPE_STRING:
                _check_characters(element, element_path, findings)
            elif field.type == FieldDescriptor.TYPE_ENUM:
                enum = field.enum_type
                if enum is not None and (element == 0 or element not in enum.values_by_number):
                    findings.add(
                        element_path,
                        f"value {element} is not one of {', '.join(enum_spellings(enum))}",
                    )


def _check_characters(text: str, path: str, findings: _Findings) -> None:
    for position, char in enumerate(text, start=1):
        if char in _BIDI_CONTROLS or (
            unicodedata.category(char) == "Cc" and char not in _ALLOWED_CONTROLS
        ):
            findings.add(
                path,
                f"character {position} is the control character U+{ord(char):04X}, "
                "which can hide or reorder what a reader sees",
            )
            return


# --- one function per message -----------------------------------------------------------------------


def _check_quantity(quantity: payloads_pb2.Quantity, path: str, findings: _Findings) -> None:
    if findings.require(join_path(path, "value"), quantity.value, "is required with a unit"):
        findings.check(join_path(path, "value"), quantity.value, ids.validate_decimal)
    if findings.require(join_path(path, "unit"), quantity.unit, "is required with a value"):
        findings.check(join_path(path, "unit"), quantity.unit, ids.validate_quantity_unit)


def _check_chemical(chemical: payloads_pb2.Chemical, path: str, findings: _Findings) -> None:
    if not chemical.name and not chemical.cas_rn:
        findings.add(path, "a chemical needs a name or a CAS RN")
    findings.max_length(join_path(path, "name"), chemical.name, 500)
    findings.check(join_path(path, "cas_rn"), chemical.cas_rn, ids.validate_cas_rn)
    if chemical.HasField("quantity"):
        _check_quantity(chemical.quantity, join_path(path, "quantity"), findings)


def _check_party(party: payloads_pb2.Party, path: str, findings: _Findings) -> None:
    if not party.names and not party.registration_numbers:
        findings.add(path, "a party needs at least one name or registration number")
    for index, name in enumerate(party.names):
        name_path = f"{join_path(path, 'names')}[{index}]"
        findings.require(join_path(name_path, "value"), name.value)
        findings.max_length(join_path(name_path, "value"), name.value, 500)
        findings.check(join_path(name_path, "language"), name.language, ids.validate_language_tag)
    findings.check(join_path(path, "country"), party.country, ids.validate_country_code)
    for index, registration in enumerate(party.registration_numbers):
        _check_registration(
            registration, f"{join_path(path, 'registration_numbers')}[{index}]", findings
        )
    for index, address in enumerate(party.addresses):
        address_path = f"{join_path(path, 'addresses')}[{index}]"
        findings.check(
            join_path(address_path, "country"), address.country, ids.validate_country_code
        )
        findings.check(
            join_path(address_path, "language"), address.language, ids.validate_language_tag
        )
    for index, contact in enumerate(party.contacts):
        contact_path = f"{join_path(path, 'contacts')}[{index}]"
        findings.check(join_path(contact_path, "phone"), contact.phone, ids.validate_phone_e164)
        findings.check(join_path(contact_path, "email"), contact.email, ids.validate_email)
        findings.check(join_path(contact_path, "website"), contact.website, ids.validate_website)
    if party.date_of_birth:
        if party.kind == payloads_pb2.Party.COMPANY:
            findings.add(join_path(path, "date_of_birth"), "is for persons, not companies")
        findings.check(join_path(path, "date_of_birth"), party.date_of_birth, ids.validate_iso_date)


_REGISTRATION_VALIDATORS: dict[int, Validator] = {
    payloads_pb2.RegistrationNumber.CN_USCC: ids.validate_cn_uscc,
    payloads_pb2.RegistrationNumber.US_EIN: ids.validate_us_ein,
    payloads_pb2.RegistrationNumber.LEI: ids.validate_lei,
}


def _check_registration(
    registration: payloads_pb2.RegistrationNumber, path: str, findings: _Findings
) -> None:
    if registration.scheme == payloads_pb2.RegistrationNumber.SCHEME_UNSPECIFIED:
        findings.add(
            join_path(path, "scheme"),
            f"is required: one of {_enum_names(payloads_pb2.RegistrationNumber.Scheme.DESCRIPTOR)}",
        )
    value_path = join_path(path, "value")
    if not findings.require(value_path, registration.value):
        return
    validator = _REGISTRATION_VALIDATORS.get(registration.scheme)
    if validator is not None:
        findings.check(value_path, registration.value, validator)
    else:
        findings.max_length(value_path, registration.value, 64)


_ADDRESS_VALIDATORS: dict[int, Validator] = {
    payloads_pb2.Wallet.BITCOIN: ids.validate_bitcoin_address,
    payloads_pb2.Wallet.ETHEREUM: ids.validate_ethereum_address,
    payloads_pb2.Wallet.TRON: ids.validate_tron_address,
}
_TRANSACTION_HASH_VALIDATORS: dict[int, Validator] = {
    payloads_pb2.Wallet.BITCOIN: ids.validate_bitcoin_transaction_hash,
    payloads_pb2.Wallet.ETHEREUM: ids.validate_ethereum_transaction_hash,
    payloads_pb2.Wallet.TRON: ids.validate_tron_transaction_hash,
}


def _check_on_chain(
    chain: int,
    values: Sequence[tuple[str, str, dict[int, Validator]]],
    chain_path: str,
    findings: _Findings,
) -> None:
    """Validate addresses and hashes by their chain; any of them set requires the chain."""
    present = [(path, value, table) for path, value, table in values if value]
    if not present:
        return
    if chain == payloads_pb2.Wallet.CHAIN_UNSPECIFIED:
        findings.add(
            chain_path,
            f"is required with {', '.join(path.rsplit('.', 1)[-1] for path, _, _ in present)}: "
            f"one of {_enum_names(payloads_pb2.Wallet.Chain.DESCRIPTOR)}",
        )
        return
    for path, value, table in present:
        validator = table.get(chain)
        if validator is not None:
            findings.check(path, value, validator)


def _check_wallet(wallet: payloads_pb2.Wallet, path: str, findings: _Findings) -> None:
    address_path = join_path(path, "address")
    if wallet.chain != payloads_pb2.Wallet.CHAIN_UNSPECIFIED:
        findings.require(address_path, wallet.address, "is required with a chain")
    _check_on_chain(
        wallet.chain,
        [(address_path, wallet.address, _ADDRESS_VALIDATORS)],
        join_path(path, "chain"),
        findings,
    )


def _check_account(account: payloads_pb2.Account, path: str, findings: _Findings) -> None:
    if not account.iban and not account.domestic_number and not account.HasField("wallet"):
        findings.add(path, "an account needs an IBAN, a domestic number or a wallet")
    findings.check(join_path(path, "iban"), account.iban, ids.validate_iban)
    findings.check(join_path(path, "bic"), account.bic, ids.validate_bic)
    findings.max_length(join_path(path, "domestic_number"), account.domestic_number, 64)
    findings.check(join_path(path, "country"), account.country, ids.validate_country_code)
    if account.HasField("holder"):
        _check_party(account.holder, join_path(path, "holder"), findings)
    if account.HasField("wallet"):
        _check_wallet(account.wallet, join_path(path, "wallet"), findings)


def _check_transaction(
    transaction: payloads_pb2.Transaction, path: str, findings: _Findings
) -> None:
    if transaction.HasField("amount"):
        amount_path = join_path(path, "amount")
        amount = transaction.amount
        if findings.require(join_path(amount_path, "value"), amount.value):
            findings.check(join_path(amount_path, "value"), amount.value, ids.validate_decimal)
        if findings.require(join_path(amount_path, "currency"), amount.currency):
            findings.check(
                join_path(amount_path, "currency"),
                amount.currency,
                ids.validate_currency_or_asset_code,
            )
    if transaction.HasField("debtor"):
        _check_party(transaction.debtor, join_path(path, "debtor"), findings)
    if transaction.HasField("creditor"):
        _check_party(transaction.creditor, join_path(path, "creditor"), findings)
    if transaction.HasField("debtor_account"):
        _check_account(transaction.debtor_account, join_path(path, "debtor_account"), findings)
    if transaction.HasField("creditor_account"):
        _check_account(transaction.creditor_account, join_path(path, "creditor_account"), findings)
    findings.check(join_path(path, "debtor_agent"), transaction.debtor_agent, ids.validate_bic)
    findings.check(join_path(path, "creditor_agent"), transaction.creditor_agent, ids.validate_bic)
    findings.check(join_path(path, "value_date"), transaction.value_date, ids.validate_iso_date)
    findings.check(join_path(path, "uetr"), transaction.uetr, ids.validate_uetr)
    # ISO 20022 Max35Text and Max140Text.
    findings.max_length(join_path(path, "end_to_end_id"), transaction.end_to_end_id, 35)
    findings.max_length(
        join_path(path, "remittance_information"), transaction.remittance_information, 140
    )
    _check_on_chain(
        transaction.chain,
        [
            (join_path(path, "from_address"), transaction.from_address, _ADDRESS_VALIDATORS),
            (join_path(path, "to_address"), transaction.to_address, _ADDRESS_VALIDATORS),
            (
                join_path(path, "transaction_hash"),
                transaction.transaction_hash,
                _TRANSACTION_HASH_VALIDATORS,
            ),
        ],
        join_path(path, "chain"),
        findings,
    )
    findings.check(
        join_path(path, "linked_shipment"), transaction.linked_shipment, ids.validate_item_id
    )


def _check_shipment(shipment: payloads_pb2.Shipment, path: str, findings: _Findings) -> None:
    findings.check(join_path(path, "hs_code"), shipment.hs_code, ids.validate_hs_code)
    for index, chemical in enumerate(shipment.chemicals):
        _check_chemical(chemical, f"{join_path(path, 'chemicals')}[{index}]", findings)
    if shipment.HasField("quantity"):
        _check_quantity(shipment.quantity, join_path(path, "quantity"), findings)
    findings.check_each(
        join_path(path, "containers"), shipment.containers, ids.validate_container_number
    )
    findings.check(
        join_path(path, "bill_of_lading"), shipment.bill_of_lading, ids.validate_bill_of_lading
    )
    findings.check(join_path(path, "air_waybill"), shipment.air_waybill, ids.validate_air_waybill)
    findings.check(join_path(path, "vessel_imo"), shipment.vessel_imo, ids.validate_imo_number)
    for name in ("origin", "destination", "point_of_entry"):
        findings.check(join_path(path, name), getattr(shipment, name), ids.validate_un_locode)
    findings.check_each(join_path(path, "route"), shipment.route, ids.validate_un_locode)
    findings.check(join_path(path, "dispatch_date"), shipment.dispatch_date, ids.validate_iso_date)
    findings.check(join_path(path, "arrival_date"), shipment.arrival_date, ids.validate_iso_date)
    if (
        shipment.dispatch_date
        and shipment.arrival_date
        and _is_iso_date(shipment.dispatch_date)
        and _is_iso_date(shipment.arrival_date)
        and shipment.arrival_date < shipment.dispatch_date
    ):
        findings.add(
            join_path(path, "arrival_date"),
            f"is before dispatch_date {shipment.dispatch_date}",
        )
    for role in ("exporter", "importer", "consignee"):
        if shipment.HasField(role):
            _check_party(getattr(shipment, role), join_path(path, role), findings)
    for index, party in enumerate(shipment.parties):
        _check_party(party, f"{join_path(path, 'parties')}[{index}]", findings)


def _is_iso_date(value: str) -> bool:
    try:
        ids.validate_iso_date(value)
    except ids.IdentifierError:
        return False
    return True


def _check_attachment(attachment: payloads_pb2.Attachment, path: str, findings: _Findings) -> None:
    name_path = join_path(path, "name")
    if findings.require(name_path, attachment.name):
        findings.max_length(name_path, attachment.name, 255)
        if any(separator in attachment.name for separator in "/\\") or attachment.name in (
            ".",
            "..",
        ):
            findings.add(name_path, "is a file name, without directories")
    if findings.require(join_path(path, "media_type"), attachment.media_type):
        findings.check(
            join_path(path, "media_type"), attachment.media_type, ids.validate_media_type
        )
    content_present = findings.require(join_path(path, "content"), attachment.content)
    if content_present and len(attachment.content) > MAX_ATTACHMENT_BYTES:
        findings.add(
            join_path(path, "content"),
            over_limit(len(attachment.content), MAX_ATTACHMENT_BYTES, "bytes"),
        )


def _check_note(note: payloads_pb2.Note, path: str, findings: _Findings) -> None:
    findings.require(join_path(path, "text"), note.text)
    findings.check(join_path(path, "language"), note.language, ids.validate_language_tag)


def _check_watchlist_entry(
    entry: payloads_pb2.WatchlistEntry, path: str, findings: _Findings
) -> None:
    findings.require(join_path(path, "name"), entry.name)
    if findings.require(
        join_path(path, "cas_rn"),
        entry.cas_rn,
        "is required: a watchlist entry is keyed by its CAS RN",
    ):
        findings.check(join_path(path, "cas_rn"), entry.cas_rn, ids.validate_cas_rn)
    if not entry.withdrawn and entry.control == payloads_pb2.Chemical.CONTROL_UNSPECIFIED:
        findings.add(
            join_path(path, "control"),
            f"is required: one of {_enum_names(payloads_pb2.Chemical.Control.DESCRIPTOR)}",
        )


def _check_summary(summary: payloads_pb2.Summary, path: str, findings: _Findings) -> None:
    if summary.kind == payloads_pb2.Summary.KIND_UNSPECIFIED:
        findings.add(
            join_path(path, "kind"),
            f"is required: one of {_enum_names(payloads_pb2.Summary.Kind.DESCRIPTOR)}",
        )
    if findings.require(join_path(path, "title"), summary.title):
        findings.max_length(join_path(path, "title"), summary.title, MAX_TITLE_LENGTH)
    findings.check(join_path(path, "operator"), summary.operator, ids.validate_item_id)
    grading = summary.grading
    if grading.source or grading.information:
        grading_path = join_path(path, "grading")
        if not grading.source:
            findings.add(
                join_path(grading_path, "source"),
                f"is required with information: one of {_enum_names(payloads_pb2.Grading.Source.DESCRIPTOR)}",
            )
        if not grading.information:
            findings.add(
                join_path(grading_path, "information"),
                f"is required with source: one of {_enum_names(payloads_pb2.Grading.Information.DESCRIPTOR)}",
            )


def _check_alert_link(link: payloads_pb2.AlertLink, path: str, findings: _Findings) -> None:
    if findings.require(join_path(path, "originator"), link.originator):
        findings.check(join_path(path, "originator"), link.originator, ids.validate_agency_id)
    if findings.require(join_path(path, "alert_id"), link.alert_id):
        findings.check(join_path(path, "alert_id"), link.alert_id, ids.validate_alert_id)
    findings.require(join_path(path, "version"), link.version)
    if len(link.manifest_hash) != HASH_BYTES:
        findings.add(join_path(path, "manifest_hash"), f"is not {HASH_BYTES} bytes")


def _check_case_record(record: payloads_pb2.CaseRecord, path: str, findings: _Findings) -> None:
    members_path = join_path(path, "members")
    if len(record.members) < 2:
        findings.add(members_path, "a joint case has at least two members")
    findings.check_each(members_path, record.members, ids.validate_agency_id)


def _check_case_entry(entry: payloads_pb2.CaseEntry, path: str, findings: _Findings) -> None:
    if findings.require(join_path(path, "case_originator"), entry.case_originator):
        findings.check(
            join_path(path, "case_originator"), entry.case_originator, ids.validate_agency_id
        )
    if findings.require(join_path(path, "case_id"), entry.case_id):
        findings.check(join_path(path, "case_id"), entry.case_id, ids.validate_alert_id)
    if len(entry.case_manifest_hash) != HASH_BYTES:
        findings.add(join_path(path, "case_manifest_hash"), f"is not {HASH_BYTES} bytes")
    for index, link in enumerate(entry.links):
        _check_alert_link(link, f"{join_path(path, 'links')}[{index}]", findings)
    findings.max_length(join_path(path, "note"), entry.note, MAX_CASE_NOTE_LENGTH)
    if not (entry.links or entry.note.strip() or entry.outcome):
        findings.add(path, "links alerts, adds a note or closes the case")


_PAYLOAD_CHECKS: dict[str, Callable[[Message, str, _Findings], None]] = {
    "summary": _check_summary,  # type: ignore[dict-item]
    "shipment": _check_shipment,  # type: ignore[dict-item]
    "chemical": _check_chemical,  # type: ignore[dict-item]
    "party": _check_party,  # type: ignore[dict-item]
    "account": _check_account,  # type: ignore[dict-item]
    "transaction": _check_transaction,  # type: ignore[dict-item]
    "attachment": _check_attachment,  # type: ignore[dict-item]
    "note": _check_note,  # type: ignore[dict-item]
    "watchlist_entry": _check_watchlist_entry,  # type: ignore[dict-item]
    "case_record": _check_case_record,  # type: ignore[dict-item]
    "case_entry": _check_case_entry,  # type: ignore[dict-item]
}


def validate_payload(payload: payloads_pb2.ItemPayload, path: str) -> list[FieldViolation]:
    """Validate every identifier in one item payload.

    ``path`` is where the payload sits, such as ``items[2]``; violations are named below it with
    the payload kind (``items[2].shipment.chemicals[0].cas_rn``).  Used on drafts and again on
    every item a recipient opens.  Returns an empty list when the payload is valid.
    """
    findings = _Findings()
    _check_payload(payload, path, findings)
    return findings.violations


def _check_payload(payload: payloads_pb2.ItemPayload, path: str, findings: _Findings) -> None:
    kind = payload.WhichOneof("body")
    if kind is None:
        findings.add(
            path,
            "exactly one payload kind is required: one of "
            + ", ".join(name for name in _PAYLOAD_CHECKS if name != "summary"),
        )
        return
    kind_path = join_path(path, kind)
    body = getattr(payload, kind)
    _check_all_fields(body, kind_path, findings)
    _PAYLOAD_CHECKS[kind](body, kind_path, findings)


def validate_policy(policy: statements_pb2.ReleasePolicy, path: str) -> list[FieldViolation]:
    """Validate one item's release policy (DESIGN section 5).

    Release mode and TLP are required; audience entries are agency ids, without duplicates; an
    embargo needs ``embargo_until`` and only an embargo may have one; an item cannot expire
    before its embargo ends.
    """
    findings = _Findings()
    release_path, tlp_path = join_path(path, "release"), join_path(path, "tlp")
    if policy.release == statements_pb2.ReleasePolicy.RELEASE_UNSPECIFIED:
        findings.add(
            release_path,
            f"is required: one of {_enum_names(statements_pb2.ReleasePolicy.Release.DESCRIPTOR)}",
        )
    if policy.tlp == statements_pb2.ReleasePolicy.TLP_UNSPECIFIED:
        findings.add(
            tlp_path,
            f"is required: one of {_enum_names(statements_pb2.ReleasePolicy.Tlp.DESCRIPTOR)}",
        )
    _check_all_fields(policy, path, findings)
    findings.check_each(join_path(path, "audience"), policy.audience, ids.validate_agency_id)
    seen_handling: set[int] = set()
    for index, code in enumerate(policy.handling):
        if code in seen_handling:
            findings.add(f"{join_path(path, 'handling')}[{index}]", "duplicate handling code")
        seen_handling.add(code)
    is_embargo = policy.release == statements_pb2.ReleasePolicy.EMBARGO
    has_embargo_time = policy.HasField("embargo_until")
    if is_embargo and not has_embargo_time:
        findings.add(join_path(path, "embargo_until"), "is required with release EMBARGO")
    if has_embargo_time and not is_embargo:
        findings.add(join_path(path, "embargo_until"), "is only allowed with release EMBARGO")
    if has_embargo_time and policy.HasField("expires_at"):
        embargo, expiry = policy.embargo_until, policy.expires_at
        if (expiry.seconds, expiry.nanos) <= (embargo.seconds, embargo.nanos):
            findings.add(join_path(path, "expires_at"), "must be after embargo_until")
    return findings.violations


def validate_draft(draft: DraftFields) -> list[FieldViolation]:
    """Validate a whole draft: its summary fields, every item's id, policy and payload, and
    references between items (a transaction's ``linked_shipment`` must name a shipment item).

    Returns every violation found, each named by its path; an empty list means the draft may be
    signed.
    """
    findings = _Findings()
    _check_draft(draft, findings)
    return findings.violations


def normalise_draft(draft: DraftFields) -> tuple[list[FieldViolation], list[Normalisation]]:
    """Validate a draft as :func:`validate_draft` does, accepting the printed forms of
    identifiers: returns the violations and, for each identifier given in a printed form, the
    canonical form to store and sign instead.  A printed identifier that is valid once canonical
    is no violation; the draft with every normalisation applied passes :func:`validate_draft`.
    """
    findings = _Findings(printed_forms=True)
    _check_draft(draft, findings)
    return findings.violations, findings.normalisations


def _check_draft(draft: DraftFields, findings: _Findings) -> None:
    summary = draft.summary()
    _check_all_fields(summary, "", findings)
    _check_summary(summary, "", findings)
    if not draft.items:
        findings.add("items", "at least one item is required")
    if len(draft.items) > MAX_ITEMS:
        findings.add("items", over_limit(len(draft.items), MAX_ITEMS, "items", verb="has"))
    first_index_of: dict[str, int] = {}
    shipment_ids: set[str] = set()
    for index, item in enumerate(draft.items):
        path = f"items[{index}]"
        id_path = join_path(path, "id")
        if findings.require(id_path, item.id):
            if item.id in first_index_of:
                findings.add(id_path, f"duplicate of items[{first_index_of[item.id]}].id")
            else:
                first_index_of[item.id] = index
            findings.check(id_path, item.id, ids.validate_item_id)
        if item.payload.WhichOneof("body") == "shipment":
            shipment_ids.add(item.id)
        findings.violations.extend(validate_policy(item.policy, join_path(path, "policy")))
        if item.payload.WhichOneof("body") == "summary":
            findings.add(
                join_path(path, "summary"),
                "an item cannot be a summary: it is made from the draft's kind, grading, "
                "title and operator",
            )
            continue
        _check_payload(item.payload, path, findings)
    for index, item in enumerate(draft.items):
        if item.payload.WhichOneof("body") != "transaction":
            continue
        linked = item.payload.transaction.linked_shipment
        if linked and linked not in shipment_ids:
            findings.add(
                f"items[{index}].transaction.linked_shipment",
                f"names no shipment item of this draft: {linked!r}",
            )
