"""Draft parsing: the strict mapping, the YAML 1.2 core schema, enum spellings, printed
identifiers, explicit empty values, round trips."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from exchange.alerts import Draft, validate_draft
from exchange.errors import DraftError
from exchange.v1 import payloads_pb2, statements_pb2

BASE: dict[str, Any] = {
    "kind": "SHIPMENT",
    "grading": {"source": "A", "information": "2"},
    "title": "Mislabelled 4-piperidone",
    "items": [
        {
            "id": "s1",
            "policy": {"audience": ["agency-b"], "release": "IMMEDIATE", "tlp": "AMBER"},
            "shipment": {
                "declared_description": "Industrial cleaning agent",
                "chemicals": [{"name": "4-piperidone", "cas_rn": "41661-47-6"}],
                "origin": "CNSHA",
                "destination": "MXZLO",
            },
        }
    ],
}


def draft_with(**changes: Any) -> dict[str, Any]:
    """BASE with dotted-path changes applied, e.g. ``{"items.0.policy.tlp": "RED"}``."""
    data = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        target: Any = data
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if value is _DELETE:
            del target[last]
        else:
            target[last] = value
    return data


_DELETE = object()


def violations_of(data: object) -> list[str]:
    with pytest.raises(DraftError) as caught:
        Draft.from_dict(data)  # type: ignore[arg-type]
    return [str(v) for v in caught.value.violations]


def test_base_draft_parses() -> None:
    draft = Draft.from_dict(BASE)
    assert draft.kind == payloads_pb2.Summary.SHIPMENT
    assert draft.items[0].payload_kind == "shipment"
    assert draft.items[0].policy.tlp == statements_pb2.ReleasePolicy.TLP_AMBER
    summary = draft.summary()
    assert summary.title == "Mislabelled 4-piperidone"
    assert summary.grading.source == payloads_pb2.Grading.SOURCE_A
    assert summary.grading.information == payloads_pb2.Grading.INFORMATION_2


BAD_DRAFTS: dict[str, tuple[dict[str, Any], str]] = {
    "unknown top-level field": (draft_with(colour="red"), "colour: unknown field"),
    "camelCase field name": (
        draft_with(**{"items.0.shipment.declaredDescription": "x"}),
        "items[0].shipment.declaredDescription: unknown field",
    ),
    "unknown nested field": (
        draft_with(**{"items.0.shipment.chemicals.0.cas": "41661-47-6"}),
        "items[0].shipment.chemicals[0].cas: unknown field",
    ),
    "missing kind": (draft_with(kind=_DELETE), "kind: is required"),
    "missing title": (draft_with(title=_DELETE), "title: is required"),
    "missing items": (draft_with(items=_DELETE), "items: at least one item is required"),
    "empty items": (draft_with(items=[]), "items: at least one item is required"),
    "missing item id": (draft_with(**{"items.0.id": _DELETE}), "items[0].id: is required"),
    "missing policy": (
        draft_with(**{"items.0.policy": _DELETE}),
        "items[0].policy.release: is required",
    ),
    "missing tlp": (
        draft_with(**{"items.0.policy.tlp": _DELETE}),
        "items[0].policy.tlp: is required",
    ),
    "missing payload": (
        draft_with(**{"items.0.shipment": _DELETE}),
        "items[0]: exactly one payload kind",
    ),
    "two payloads": (
        draft_with(**{"items.0.note": {"text": "x"}}),
        "items[0].note: only one of shipment",
    ),
    "summary as item": (
        draft_with(**{"items.0.summary": {"title": "x"}}),
        "items[0].summary: not a payload kind",
    ),
    "mistyped kind": (draft_with(kind="SHIPPING"), "kind: 'SHIPPING' is not one of"),
    "lower-case tlp": (draft_with(**{"items.0.policy.tlp": "amber"}), "'amber' is not one of"),
    "tlp white (TLP 1.0)": (draft_with(**{"items.0.policy.tlp": "WHITE"}), "'WHITE' is not one of"),
    "tlp proto name": (
        draft_with(**{"items.0.policy.tlp": "TLP_AMBER"}),
        "'TLP_AMBER' is not one of",
    ),
    "release as number": (
        draft_with(**{"items.0.policy.release": 7}),
        'items[0].policy.release: expected one of "IMMEDIATE", "ON_REQUEST", "EMBARGO" as a string, got number 7',
    ),
    "release as proto number": (draft_with(**{"items.0.policy.release": 1}), "got number 1"),
    "tlp as number": (
        draft_with(**{"items.0.policy.tlp": 3}),
        "items[0].policy.tlp: expected one of",
    ),
    "grading information as number": (
        draft_with(**{"grading.information": 2}),
        "grading.information: expected one of",
    ),
    "grading source lower case": (
        draft_with(**{"grading.source": "a"}),
        "grading.source: 'a' is not one of",
    ),
    "grading information out of range": (
        draft_with(**{"grading.information": "7"}),
        "'7' is not one of",
    ),
    "grading half given": (draft_with(grading={"source": "A"}), "grading.information: is required"),
    "handling unknown": (draft_with(**{"items.0.policy.handling": ["H3"]}), "'H3' is not one of"),
    "handling duplicate": (
        draft_with(**{"items.0.policy.handling": ["H2", "H2"]}),
        "duplicate handling code",
    ),
    "audience not a list": (
        draft_with(**{"items.0.policy.audience": "agency-b"}),
        "expected a list",
    ),
    "audience bad id": (
        draft_with(**{"items.0.policy.audience": ["Agency B"]}),
        "audience[0]: expected an agency id",
    ),
    "audience duplicate": (
        draft_with(**{"items.0.policy.audience": ["agency-b", "agency-b"]}),
        "audience[1]: duplicate of",
    ),
    "number where string expected": (
        draft_with(**{"items.0.shipment.hs_code": 2933399073}),
        "items[0].shipment.hs_code: expected a string, got number 2933399073",
    ),
    "boolean where string expected": (
        draft_with(title=False),
        "title: expected a string, got boolean",
    ),
    "null where string expected": (draft_with(title=None), "title: expected a string, got null"),
    "list where string expected": (draft_with(title=["a"]), "title: expected a string, got list"),
    "string where list expected": (
        draft_with(**{"items.0.shipment.containers": "MSCU5286418"}),
        "containers: expected a list",
    ),
    "mapping expected": (
        draft_with(**{"items.0.shipment.chemicals": ["x"]}),
        "chemicals[0]: expected a mapping",
    ),
    "enum number in payload": (
        draft_with(**{"items.0.shipment.status": 2}),
        "items[0].shipment.status: expected one of",
    ),
    "bad item id": (draft_with(**{"items.0.id": "-s1"}), "items[0].id: expected an item id"),
    "embargo without time": (
        draft_with(**{"items.0.policy.release": "EMBARGO"}),
        "embargo_until: is required",
    ),
    "embargo time without embargo": (
        draft_with(**{"items.0.policy.embargo_until": "2026-12-01T08:00:00Z"}),
        "embargo_until: is only allowed with release EMBARGO",
    ),
    "timestamp without offset": (
        draft_with(**{"items.0.policy.expires_at": "2026-12-01T08:00:00"}),
        "expires_at: expected an RFC 3339 timestamp with offset",
    ),
    "timestamp as date": (draft_with(**{"items.0.policy.expires_at": "2026-12-01"}), "RFC 3339"),
    "expiry before embargo": (
        draft_with(
            **{
                "items.0.policy.release": "EMBARGO",
                "items.0.policy.embargo_until": "2026-12-01T08:00:00Z",
                "items.0.policy.expires_at": "2026-12-01T07:00:00Z",
            }
        ),
        "expires_at: must be after embargo_until",
    ),
    "invalid cas check digit": (
        draft_with(**{"items.0.shipment.chemicals.0.cas_rn": "41661-47-5"}),
        "items[0].shipment.chemicals[0].cas_rn: check digit is 5, expected 6",
    ),
    "attachment not base64": (
        draft_with(
            **{
                "items.0.shipment": _DELETE,
                "items.0.attachment": {
                    "name": "a.pdf",
                    "media_type": "application/pdf",
                    "content": "not base64!",
                },
            }
        ),
        "items[0].attachment.content: expected standard base64",
    ),
    "top level not a mapping": (draft_with(items="s1"), "items: expected a list of items"),
}


@pytest.mark.parametrize("name", sorted(BAD_DRAFTS))
def test_bad_draft_is_refused_naming_the_field(name: str) -> None:
    data, expected = BAD_DRAFTS[name]
    messages = violations_of(data)
    assert any(expected in message for message in messages), messages


def test_every_error_is_reported_at_once() -> None:
    data = draft_with(
        colour="red",
        **{
            "items.0.policy.release": 7,
            "items.0.shipment.chemicals.0.cas_rn": "41661-47-5",
            "items.0.shipment.origin": "CN-SHA",
        },
    )
    messages = violations_of(data)
    assert len(messages) == 4, messages


def test_a_field_that_failed_to_parse_is_not_also_reported_missing() -> None:
    messages = violations_of(draft_with(**{"items.0.policy.release": 7}))
    expected = (
        'items[0].policy.release: expected one of "IMMEDIATE", "ON_REQUEST", "EMBARGO" as a '
        "string, got number 7"
    )
    assert [m for m in messages if "release" in m] == [expected]


TLP_SPELLINGS = {
    "CLEAR": statements_pb2.ReleasePolicy.TLP_CLEAR,
    "GREEN": statements_pb2.ReleasePolicy.TLP_GREEN,
    "AMBER": statements_pb2.ReleasePolicy.TLP_AMBER,
    "AMBER+STRICT": statements_pb2.ReleasePolicy.TLP_AMBER_STRICT,
    "RED": statements_pb2.ReleasePolicy.TLP_RED,
    "TLP:CLEAR": statements_pb2.ReleasePolicy.TLP_CLEAR,
    "TLP:GREEN": statements_pb2.ReleasePolicy.TLP_GREEN,
    "TLP:AMBER": statements_pb2.ReleasePolicy.TLP_AMBER,
    "TLP:AMBER+STRICT": statements_pb2.ReleasePolicy.TLP_AMBER_STRICT,
    "TLP:RED": statements_pb2.ReleasePolicy.TLP_RED,
}


@pytest.mark.parametrize("spelling", sorted(TLP_SPELLINGS))
def test_tlp_spellings(spelling: str) -> None:
    draft = Draft.from_dict(draft_with(**{"items.0.policy.tlp": spelling}))
    assert draft.items[0].policy.tlp == TLP_SPELLINGS[spelling]


@pytest.mark.parametrize(
    ("source", "information"),
    [("A", "1"), ("B", "2"), ("C", "3"), ("D", "4"), ("E", "5"), ("F", "6")],
)
def test_grading_spellings(source: str, information: str) -> None:
    draft = Draft.from_dict(draft_with(grading={"source": source, "information": information}))
    assert payloads_pb2.Grading.Source.Name(draft.grading.source) == f"SOURCE_{source}"
    assert (
        payloads_pb2.Grading.Information.Name(draft.grading.information)
        == f"INFORMATION_{information}"
    )


def test_round_trip_through_to_dict() -> None:
    data = draft_with(
        operator="op-7f3a",
        **{
            "items.0.policy.release": "EMBARGO",
            "items.0.policy.embargo_until": "2026-12-01T16:00:00.25+08:00",
            "items.0.policy.tlp": "TLP:AMBER+STRICT",
            "items.0.policy.handling": ["H1", "H2"],
        },
    )
    data["items"].append(
        {
            "id": "a1",
            "policy": {"release": "ON_REQUEST", "tlp": "RED"},
            "attachment": {
                "name": "bl.pdf",
                "media_type": "application/pdf",
                "content": "JVBERi0xLjcK",
            },
        }
    )
    draft = Draft.from_dict(data)
    assert draft.items[1].payload.attachment.content == b"%PDF-1.7\n"
    as_dict = draft.to_dict()
    assert as_dict["items"][0]["policy"]["tlp"] == "AMBER+STRICT"  # type: ignore[index]
    assert as_dict["items"][0]["policy"]["embargo_until"] == "2026-12-01T08:00:00.25Z"  # type: ignore[index]
    assert as_dict["grading"] == {"source": "A", "information": "2"}
    assert Draft.from_dict(json.loads(json.dumps(as_dict))) == draft


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


YAML_DRAFT = """\
kind: SHIPMENT
grading: {{source: A, information: "2"}}
title: {title}
items:
  - id: s1
    policy: {{audience: [agency-b], release: IMMEDIATE, tlp: "TLP:AMBER+STRICT", handling: [H2]}}
    shipment:
      declared_description: {declared}
      hs_code: {hs_code}
      dispatch_date: {dispatch_date}
      chemicals:
        - {{name: 4-piperidone, cas_rn: 41661-47-6, quantity: {{value: {quantity}, unit: kg}}}}
"""


def yaml_draft(**fields: str) -> str:
    values = {
        "title": "Relabelled precursor",
        "declared": "NO",
        "hs_code": '"2933399073"',
        "dispatch_date": "2026-11-03",
        "quantity": '"1.50"',
    }
    values.update(fields)
    return YAML_DRAFT.format(**values)


def test_yaml_12_core_schema_keeps_no_and_dates_as_strings(tmp_path: Path) -> None:
    draft = Draft.from_file(write(tmp_path, "d.yaml", yaml_draft()))
    shipment = draft.items[0].payload.shipment
    assert shipment.declared_description == "NO"
    assert shipment.dispatch_date == "2026-11-03"
    assert shipment.hs_code == "2933399073"
    assert shipment.chemicals[0].quantity.value == "1.50"
    assert draft.items[0].policy.tlp == statements_pb2.ReleasePolicy.TLP_AMBER_STRICT


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        (
            "hs_code",
            "2933399073",
            "items[0].shipment.hs_code: expected a string, got number 2933399073",
        ),
        ("hs_code", "0123", "items[0].shipment.hs_code: expected a string, got number 123"),
        ("quantity", "1.50", "quantity.value: expected a string, got number 1.5"),
        ("declared", "true", "declared_description: expected a string, got boolean True"),
        ("declared", "~", "declared_description: expected a string, got null"),
    ],
)
def test_yaml_number_where_string_expected_names_the_field(
    tmp_path: Path, field: str, value: str, expected: str
) -> None:
    path = write(tmp_path, "d.yml", yaml_draft(**{field: value}))
    with pytest.raises(DraftError) as caught:
        Draft.from_file(path)
    assert any(expected in str(v) for v in caught.value.violations), caught.value.violations


def test_yaml_11_directive_does_not_bring_back_yaml_11_booleans(tmp_path: Path) -> None:
    draft = Draft.from_file(
        write(tmp_path, "d.yaml", "%YAML 1.1\n---\n" + yaml_draft(declared="yes"))
    )
    assert draft.items[0].payload.shipment.declared_description == "yes"


def test_yaml_duplicate_key_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "d.yaml", yaml_draft() + "title: again\n")
    with pytest.raises(DraftError, match="not valid YAML"):
        Draft.from_file(path)


def test_json_duplicate_key_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "d.json", '{"title": "a", "title": "b"}')
    with pytest.raises(DraftError) as caught:
        Draft.from_file(path)
    assert "title: duplicate key" in str(caught.value)


def test_json_nan_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "d.json", '{"title": NaN}')
    with pytest.raises(DraftError, match="not valid JSON"):
        Draft.from_file(path)


def test_json_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "d.json", '{\n  "title": ,\n}')
    with pytest.raises(DraftError) as caught:
        Draft.from_file(path)
    assert "line 2" in str(caught.value)


def test_unsupported_extension(tmp_path: Path) -> None:
    with pytest.raises(DraftError, match=r"\.json, \.yaml or \.yml"):
        Draft.from_file(write(tmp_path, "d.txt", "{}"))


def test_document_that_is_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(DraftError, match="a draft is a mapping"):
        Draft.from_file(write(tmp_path, "d.yaml", "- a\n- b\n"))


def test_yaml_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    lines = ['a0: &a0 {name: x, cas_rn: "41661-47-6"}']
    for level in range(1, 12):
        previous = f"*a{level - 1}"
        lines.append(f"a{level}: &a{level} [{', '.join([previous] * 10)}]")
    text = "\n".join(lines) + "\nkind: SHIPMENT\ntitle: t\nitems: *a11\n"
    with pytest.raises(DraftError):
        Draft.from_file(write(tmp_path, "bomb.yaml", text))


def test_deeply_nested_json_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DraftError):
        Draft.from_file(write(tmp_path, "deep.json", "[" * 100_000 + "]" * 100_000))


def test_non_utf8_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_bytes(b'{"title": "\xff"}')
    with pytest.raises(DraftError, match="not UTF-8"):
        Draft.from_file(path)


def value_at(data: object, path: str) -> object:
    """The value at a violation-style path (``items[0].shipment.containers[1]``) in plain data."""
    for name, index in re.findall(r"([a-z_0-9]+)(?:\[(\d+)\])?", path):
        assert isinstance(data, dict)
        data = data[name]
        if index:
            assert isinstance(data, list)
            data = data[int(index)]
    return data


_ACCOUNT = {"items.0.shipment": _DELETE}
_TRANSACTION = {"items.0.shipment": _DELETE}

# Identifiers as documents print them: (changes to BASE, field path, printed, canonical).
PRINTED_DRAFTS: dict[str, tuple[dict[str, Any], str, str, str]] = {
    "container with spaces and hyphen": (
        {"items.0.shipment.containers": ["CSQU3054383", "MSCU 528641-8"]},
        "items[0].shipment.containers[1]",
        "MSCU 528641-8",
        "MSCU5286418",
    ),
    "cas with stray spaces": (
        {"items.0.shipment.chemicals.0.cas_rn": " 41661 - 47 - 6 "},
        "items[0].shipment.chemicals[0].cas_rn",
        " 41661 - 47 - 6 ",
        "41661-47-6",
    ),
    "dotted hs code": (
        {"items.0.shipment.hs_code": "2933.39.90"},
        "items[0].shipment.hs_code",
        "2933.39.90",
        "29333990",
    ),
    "locode with space": (
        {"items.0.shipment.origin": "CN SHA"},
        "items[0].shipment.origin",
        "CN SHA",
        "CNSHA",
    ),
    "route locode with space": (
        {"items.0.shipment.route": ["CNSHA", "KR PUS"]},
        "items[0].shipment.route[1]",
        "KR PUS",
        "KRPUS",
    ),
    "vessel imo with prefix": (
        {"items.0.shipment.vessel_imo": "IMO 9319466"},
        "items[0].shipment.vessel_imo",
        "IMO 9319466",
        "9319466",
    ),
    "air waybill spaced": (
        {"items.0.shipment.air_waybill": "784 1234 5675"},
        "items[0].shipment.air_waybill",
        "784 1234 5675",
        "784-12345675",
    ),
    "uscc with hyphen": (
        {
            "items.0.shipment.exporter": {
                "names": [{"value": "Chenghong"}],
                "registration_numbers": [{"scheme": "CN_USCC", "value": "91310000-MA1FL4TR8R"}],
            }
        },
        "items[0].shipment.exporter.registration_numbers[0].value",
        "91310000-MA1FL4TR8R",
        "91310000MA1FL4TR8R",
    ),
    "ein with hyphen": (
        {
            "items.0.shipment.importer": {
                "names": [{"value": "Importer"}],
                "registration_numbers": [{"scheme": "US_EIN", "value": "12-3456789"}],
            }
        },
        "items[0].shipment.importer.registration_numbers[0].value",
        "12-3456789",
        "123456789",
    ),
    "phone as written": (
        {
            "items.0.shipment.exporter": {
                "names": [{"value": "Chenghong"}],
                "contacts": [
                    {"phone": "+86 139 1234 5678", "email": "sales@chenghong-chem.example.cn"}
                ],
            }
        },
        "items[0].shipment.exporter.contacts[0].phone",
        "+86 139 1234 5678",
        "+8613912345678",
    ),
    "email with upper-case domain": (
        {
            "items.0.shipment.exporter": {
                "names": [{"value": "Chenghong"}],
                "contacts": [{"email": "Li.Wei@Chenghong-Chem.Example.CN"}],
            }
        },
        "items[0].shipment.exporter.contacts[0].email",
        "Li.Wei@Chenghong-Chem.Example.CN",
        "Li.Wei@chenghong-chem.example.cn",
    ),
    "iban in groups of four": (
        {**_ACCOUNT, "items.0.account": {"iban": "GB82 WEST 1234 5698 7654 32", "bic": "NWBKGB2L"}},
        "items[0].account.iban",
        "GB82 WEST 1234 5698 7654 32",
        "GB82WEST12345698765432",
    ),
    "bic in lower case": (
        {**_ACCOUNT, "items.0.account": {"iban": "DE89370400440532013000", "bic": "cobadeffxxx"}},
        "items[0].account.bic",
        "cobadeffxxx",
        "COBADEFFXXX",
    ),
    "ethereum wallet in lower case": (
        {
            **_ACCOUNT,
            "items.0.account": {
                "wallet": {
                    "chain": "ETHEREUM",
                    "address": "0xfb6916095ca1df60bb79ce92ce3ea74c37c5d359",
                }
            },
        },
        "items[0].account.wallet.address",
        "0xfb6916095ca1df60bb79ce92ce3ea74c37c5d359",
        "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
    ),
    "uetr in upper case": (
        {**_TRANSACTION, "items.0.transaction": {"uetr": "7BCEC9B8-650B-4E46-811F-B6DD2A694051"}},
        "items[0].transaction.uetr",
        "7BCEC9B8-650B-4E46-811F-B6DD2A694051",
        "7bcec9b8-650b-4e46-811f-b6dd2a694051",
    ),
    "creditor's bank bic with spaces": (
        {**_TRANSACTION, "items.0.transaction": {"creditor_agent": "BKCH CN BJ 300"}},
        "items[0].transaction.creditor_agent",
        "BKCH CN BJ 300",
        "BKCHCNBJ300",
    ),
    "transaction hash in upper case": (
        {
            **_TRANSACTION,
            "items.0.transaction": {
                "chain": "TRON",
                "to_address": "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t",
                "transaction_hash": "AB" * 32,
            },
        },
        "items[0].transaction.transaction_hash",
        "AB" * 32,
        "ab" * 32,
    ),
}


@pytest.mark.parametrize("name", sorted(PRINTED_DRAFTS))
def test_printed_identifier_is_stored_in_its_canonical_form(name: str) -> None:
    changes, path, printed, canonical = PRINTED_DRAFTS[name]
    draft = Draft.from_dict(draft_with(**changes))
    assert f'{path}: normalised "{printed}" to "{canonical}"' in [
        str(n) for n in draft.normalisations
    ]
    assert value_at(draft.to_dict(), path) == canonical
    assert validate_draft(draft) == []
    again = Draft.from_dict(draft.to_dict())
    assert again == draft and again.normalisations == ()


def test_canonical_identifiers_give_no_notices() -> None:
    assert Draft.from_dict(BASE).normalisations == ()


def test_two_spellings_of_one_container_are_duplicates() -> None:
    messages = violations_of(
        draft_with(**{"items.0.shipment.containers": ["MSCU5286418", "mscu 528641-8"]})
    )
    assert messages == [
        "items[0].shipment.containers[1]: duplicate of items[0].shipment.containers[0]"
    ]


def test_a_printed_form_of_an_invalid_identifier_is_an_error() -> None:
    messages = violations_of(draft_with(**{"items.0.shipment.containers": ["MSCU 528641-9"]}))
    assert messages == ["items[0].shipment.containers[0]: check digit is 9, expected 8"]


def test_an_unknown_form_is_an_error_with_its_path() -> None:
    messages = violations_of(draft_with(**{"items.0.shipment.chemicals.0.cas_rn": "41661/47/6"}))
    assert len(messages) == 1
    assert messages[0].startswith("items[0].shipment.chemicals[0].cas_rn: expected a CAS RN")


def test_full_width_digits_stay_an_error() -> None:
    messages = violations_of(
        draft_with(**{"items.0.shipment.chemicals.0.cas_rn": "４１６６１-47-6"})
    )
    assert messages == [
        (
            "items[0].shipment.chemicals[0].cas_rn: character 1 is FULLWIDTH DIGIT FOUR "
            "(U+FF14); identifiers must be plain ASCII"
        )
    ]


_NOTE = {"items.0.shipment": _DELETE, "items.0.note": {"text": "x", "language": "en"}}
_WATCHLIST = {
    "items.0.shipment": _DELETE,
    "items.0.watchlist_entry": {
        "name": "4-piperidone",
        "cas_rn": "41661-47-6",
        "control": "TABLE_I",
    },
}

# An explicit empty or whitespace-only value: (changes to BASE, the field reported empty).
EMPTY_VALUES: dict[str, tuple[dict[str, Any], str]] = {
    "cas rn": (
        {"items.0.shipment.chemicals.0.cas_rn": ""},
        "items[0].shipment.chemicals[0].cas_rn",
    ),
    "cas rn of spaces": (
        {"items.0.shipment.chemicals.0.cas_rn": "   "},
        "items[0].shipment.chemicals[0].cas_rn",
    ),
    "chemical name": (
        {"items.0.shipment.chemicals.0.name": ""},
        "items[0].shipment.chemicals[0].name",
    ),
    "title": ({"title": ""}, "title"),
    "title of whitespace": ({"title": " \t\n"}, "title"),
    "operator": ({"operator": ""}, "operator"),
    "item id": ({"items.0.id": ""}, "items[0].id"),
    "item id of spaces": ({"items.0.id": "  "}, "items[0].id"),
    "origin": ({"items.0.shipment.origin": ""}, "items[0].shipment.origin"),
    "optional free text": (
        {"items.0.shipment.declared_description": "  "},
        "items[0].shipment.declared_description",
    ),
    "hs code": ({"items.0.shipment.hs_code": ""}, "items[0].shipment.hs_code"),
    "container in a list": (
        {"items.0.shipment.containers": ["CSQU3054383", ""]},
        "items[0].shipment.containers[1]",
    ),
    "synonym in a list": (
        {"items.0.shipment.chemicals.0.synonyms": ["  "]},
        "items[0].shipment.chemicals[0].synonyms[0]",
    ),
    "party name": (
        {"items.0.shipment.exporter": {"names": [{"value": " "}], "country": "CN"}},
        "items[0].shipment.exporter.names[0].value",
    ),
    "registration number": (
        {
            "items.0.shipment.exporter": {
                "names": [{"value": "x"}],
                "registration_numbers": [{"scheme": "OTHER", "value": ""}],
            }
        },
        "items[0].shipment.exporter.registration_numbers[0].value",
    ),
    "audience member": ({"items.0.policy.audience": [""]}, "items[0].policy.audience[0]"),
    "embargo time": (
        {"items.0.policy.release": "EMBARGO", "items.0.policy.embargo_until": ""},
        "items[0].policy.embargo_until",
    ),
    "note text": ({**_NOTE, "items.0.note.text": ""}, "items[0].note.text"),
    "note language": ({**_NOTE, "items.0.note.language": ""}, "items[0].note.language"),
    "watchlist cas rn": (
        {**_WATCHLIST, "items.0.watchlist_entry.cas_rn": ""},
        "items[0].watchlist_entry.cas_rn",
    ),
    "attachment content": (
        {
            "items.0.shipment": _DELETE,
            "items.0.attachment": {"name": "a.pdf", "media_type": "application/pdf", "content": ""},
        },
        "items[0].attachment.content",
    ),
}


@pytest.mark.parametrize("name", sorted(EMPTY_VALUES))
def test_an_explicit_empty_value_is_an_error(name: str) -> None:
    changes, path = EMPTY_VALUES[name]
    messages = violations_of(draft_with(**changes))
    assert [m for m in messages if m.startswith(f"{path}:")] == [f"{path}: is empty"], messages


def test_omitted_optional_fields_are_allowed() -> None:
    draft = Draft.from_dict(
        draft_with(**{"items.0.shipment": {"chemicals": [{"name": "4-piperidone"}]}})
    )
    assert draft.items[0].payload.shipment.chemicals[0].cas_rn == ""
    assert draft.normalisations == ()


def test_an_unreadable_list_element_keeps_the_paths_of_the_next_ones() -> None:
    messages = violations_of(
        draft_with(**{"items.0.shipment.containers": ["", 7, "MSCU 528641-9"]})
    )
    assert messages == [
        "items[0].shipment.containers[0]: is empty",
        "items[0].shipment.containers[1]: expected a string, got number 7 (quote it in YAML)",
        "items[0].shipment.containers[2]: check digit is 9, expected 8",
    ]
