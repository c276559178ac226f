"""A strict mapping between plain data (parsed JSON or YAML) and protobuf messages.

``json_format`` is not used for drafts (TRAPS.md): it accepts camelCase and snake_case spellings of
the same field and keeps one silently, knows only proto enum names, takes enum numbers, and with
``ignore_unknown_fields`` drops what it does not know - a silent downgrade of a handling marking.
This walker follows the message descriptor instead and accepts exactly one spelling of everything:

- keys are the proto field names (snake_case); any other key is an error naming its path;
- a string field takes a string, never a number, boolean, list or null, and never an empty or
  whitespace-only one: proto3 cannot tell ``""`` from an absent field, so this walk, which still
  sees the value as written, reports it (``cas_rn: is empty``); an optional field is omitted;
- an enum takes one of its documented spellings as a string, never a number (see
  :data:`ENUM_SPELLINGS` for the spellings that differ from the proto names);
- ``bytes`` fields take standard base64 (RFC 4648 with padding), not empty;
- ``google.protobuf.Timestamp`` fields take an RFC 3339 timestamp with an explicit offset.

Every problem is collected as a :class:`~exchange.errors.FieldViolation`; nothing stops at the
first.  A list element that cannot be read still takes its place (as the type's zero value), so
the paths of the elements after it stay those of the document.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import cast

from google.protobuf.descriptor import EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from exchange.alerts.identifiers import IdentifierError, parse_rfc3339_timestamp
from exchange.errors import FieldViolation
from exchange.limits import beyond_limit, over_limit

MAX_STRING_LENGTH = 65_536
MAX_LIST_LENGTH = 10_000
MAX_BYTES_LENGTH = 10 * 1024 * 1024
# Every value (mapping, list, scalar) visited counts against this, so a YAML file that repeats an
# alias of a large node many times cannot make the walk expensive.
MAX_VALUES = 200_000

_TIMESTAMP = Timestamp.DESCRIPTOR.full_name
_ZERO_VALUES: dict[int, str | bytes | bool] = {
    FieldDescriptor.TYPE_STRING: "",
    FieldDescriptor.TYPE_BYTES: b"",
    FieldDescriptor.TYPE_BOOL: False,
}
_PATH_SEGMENT_RE = re.compile(r"([a-z0-9_]+)(?:\[([0-9]+)\])?")
_TLP_NAMES = {"CLEAR": 1, "GREEN": 2, "AMBER": 3, "AMBER+STRICT": 4, "RED": 5}

# Enum spellings that differ from the proto value names.  TLP 2.0 labels (FIRST) may carry the
# "TLP:" prefix; Admiralty grading is written as its letter and digit.  The digit is a string:
# a number where the draft format says string is an error (TRAPS.md), so `information: 2`
# unquoted in YAML is refused with a hint to quote it.
ENUM_SPELLINGS: dict[str, dict[str, int]] = {
    "exchange.v1.ReleasePolicy.Tlp": {
        **_TLP_NAMES,
        **{f"TLP:{name}": number for name, number in _TLP_NAMES.items()},
    },
    "exchange.v1.Grading.Source": {letter: n for n, letter in enumerate("ABCDEF", start=1)},
    "exchange.v1.Grading.Information": {str(n): n for n in range(1, 7)},
}
# The spelling written back by message_to_mapping: the first one listed for each number.
_CANONICAL_SPELLINGS: dict[str, dict[int, str]] = {
    enum_name: {number: spelling for spelling, number in reversed(list(spellings.items()))}
    for enum_name, spellings in ENUM_SPELLINGS.items()
}


def type_name(value: object) -> str:
    """How a parsed JSON/YAML value is called in an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "number"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "mapping"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, datetime.datetime | datetime.date):
        return "date"
    return type(value).__name__


def _describe(value: object) -> str:
    if isinstance(value, bool | int | float) or value is None:
        return f"{type_name(value)} {value!r}"
    return type_name(value)


def join_path(path: str, key: str) -> str:
    """``items[0]`` + ``shipment`` -> ``items[0].shipment``; a top-level key stands alone."""
    return f"{path}.{key}" if path else key


class _TooManyValues(Exception):
    """Raised inside the walk when :data:`MAX_VALUES` is exceeded; caught at the top."""


@dataclass
class MappingContext:
    """The violations found so far and the remaining value budget of one walk."""

    violations: list[FieldViolation] = field(default_factory=list)
    remaining_values: int = MAX_VALUES

    def add(self, path: str, description: str) -> None:
        self.violations.append(FieldViolation(path, description))

    def count_value(self) -> None:
        self.remaining_values -= 1
        if self.remaining_values < 0:
            raise _TooManyValues


def enum_spellings(enum: EnumDescriptor) -> dict[str, int]:
    """The accepted spellings of an enum: its documented ones, else its value names except 0."""
    special = ENUM_SPELLINGS.get(enum.full_name)
    if special is not None:
        return special
    return {value.name: value.number for value in enum.values if value.number != 0}


def enum_spelling(enum: EnumDescriptor, number: int) -> str:
    """The canonical draft spelling of an enum value (``AMBER+STRICT``, ``A``, ``IMMEDIATE``)."""
    special = _CANONICAL_SPELLINGS.get(enum.full_name)
    if special is not None and number in special:
        return special[number]
    value = enum.values_by_number.get(number)
    return value.name if value is not None else str(number)


def _allowed(spellings: Mapping[str, int]) -> str:
    return ", ".join(f'"{spelling}"' for spelling in spellings)


def fill_message(
    message: Message,
    value: object,
    path: str,
    context: MappingContext,
    *,
    skip_keys: frozenset[str] = frozenset(),
    refused_keys: Mapping[str, str] | None = None,
) -> None:
    """Set the fields of ``message`` from the mapping ``value``, recording violations.

    ``skip_keys`` are keys the caller handles itself; ``refused_keys`` maps field names that exist
    in the message but may not be written in a draft to the reason given.
    """
    context.count_value()
    if not isinstance(value, Mapping):
        context.add(path, f"expected a mapping, got {_describe(value)}")
        return
    descriptor = message.DESCRIPTOR
    oneof_seen: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            context.add(path, f"key {key!r} is not a string")
            continue
        if key in skip_keys:
            continue
        field_path = join_path(path, key)
        if refused_keys is not None and key in refused_keys:
            context.add(field_path, refused_keys[key])
            continue
        field_descriptor = descriptor.fields_by_name.get(key)
        if field_descriptor is None:
            known = sorted(
                set(descriptor.fields_by_name) - set(refused_keys or ()) | set(skip_keys)
            )
            context.add(field_path, f"unknown field; expected one of: {', '.join(known)}")
            continue
        oneof = field_descriptor.containing_oneof
        if oneof is not None:
            if oneof.name in oneof_seen:
                members = [
                    member.name
                    for member in oneof.fields
                    if member.name not in (refused_keys or {})
                ]
                context.add(
                    field_path,
                    f"only one of {', '.join(members)} may be set; "
                    f"{oneof_seen[oneof.name]} is already",
                )
                continue
            oneof_seen[oneof.name] = key
        _fill_field(message, cast(FieldDescriptor, field_descriptor), item, field_path, context)


def _is_timestamp(field_descriptor: FieldDescriptor) -> bool:
    message_type = field_descriptor.message_type
    return message_type is not None and message_type.full_name == _TIMESTAMP


def _enum_type(field_descriptor: FieldDescriptor) -> EnumDescriptor:
    enum_type = field_descriptor.enum_type
    if enum_type is None:
        raise TypeError(f"{field_descriptor.full_name} is not an enum field")
    return enum_type


def _fill_field(
    message: Message,
    field_descriptor: FieldDescriptor,
    value: object,
    path: str,
    context: MappingContext,
) -> None:
    name = field_descriptor.name
    if field_descriptor.is_repeated:
        context.count_value()
        if not isinstance(value, list):
            context.add(path, f"expected a list, got {_describe(value)}")
            return
        if len(value) > MAX_LIST_LENGTH:
            context.add(path, over_limit(len(value), MAX_LIST_LENGTH, "entries", verb="has"))
            return
        container = getattr(message, name)
        for index, element in enumerate(value):
            element_path = f"{path}[{index}]"
            if field_descriptor.type == FieldDescriptor.TYPE_MESSAGE:
                if _is_timestamp(field_descriptor):
                    timestamp = _parse_timestamp(element, element_path, context)
                    container.add().CopyFrom(timestamp if timestamp is not None else Timestamp())
                else:
                    fill_message(container.add(), element, element_path, context)
            else:
                scalar = _convert_scalar(field_descriptor, element, element_path, context)
                if scalar is None:
                    scalar = _ZERO_VALUES.get(field_descriptor.type, 0)
                container.append(scalar)
        return
    if field_descriptor.type == FieldDescriptor.TYPE_MESSAGE:
        if _is_timestamp(field_descriptor):
            timestamp = _parse_timestamp(value, path, context)
            if timestamp is not None:
                getattr(message, name).CopyFrom(timestamp)
            return
        submessage = getattr(message, name)
        submessage.SetInParent()
        fill_message(submessage, value, path, context)
        return
    scalar = _convert_scalar(field_descriptor, value, path, context)
    if scalar is not None:
        setattr(message, name, scalar)


def _parse_timestamp(value: object, path: str, context: MappingContext) -> Timestamp | None:
    context.count_value()
    if not isinstance(value, str):
        context.add(path, f"expected an RFC 3339 timestamp string, got {_describe(value)}")
        return None
    try:
        seconds, nanos = parse_rfc3339_timestamp(value)
    except IdentifierError as e:
        context.add(path, e.message)
        return None
    return Timestamp(seconds=seconds, nanos=nanos)


def _convert_scalar(
    field_descriptor: FieldDescriptor, value: object, path: str, context: MappingContext
) -> str | bytes | bool | int | None:
    context.count_value()
    kind = field_descriptor.type
    if kind == FieldDescriptor.TYPE_STRING:
        if not isinstance(value, str):
            hint = " (quote it in YAML)" if isinstance(value, bool | int | float) else ""
            context.add(path, f"expected a string, got {_describe(value)}{hint}")
            return None
        if len(value) > MAX_STRING_LENGTH:
            context.add(path, over_limit(len(value), MAX_STRING_LENGTH, "characters"))
            return None
        if not value.strip():
            context.add(path, "is empty")
            return None
        return value
    if kind == FieldDescriptor.TYPE_ENUM:
        spellings = enum_spellings(_enum_type(field_descriptor))
        if not isinstance(value, str):
            context.add(
                path, f"expected one of {_allowed(spellings)} as a string, got {_describe(value)}"
            )
            return None
        number = spellings.get(value)
        if number is None:
            shown = value if len(value) <= 40 else value[:40] + "..."
            context.add(path, f"{shown!r} is not one of {_allowed(spellings)}")
            return None
        return number
    if kind == FieldDescriptor.TYPE_BYTES:
        if not isinstance(value, str):
            context.add(path, f"expected base64 text, got {_describe(value)}")
            return None
        if len(value) > MAX_BYTES_LENGTH * 4 // 3 + 4:
            context.add(path, beyond_limit(MAX_BYTES_LENGTH, "bytes", verb="decodes to"))
            return None
        try:
            decoded = base64.b64decode(value.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            context.add(path, "expected standard base64 (A-Z, a-z, 0-9, +, /, = padding)")
            return None
        if not decoded:
            context.add(path, "is empty")
            return None
        return decoded
    if kind == FieldDescriptor.TYPE_BOOL:
        if not isinstance(value, bool):
            context.add(path, f"expected true or false, got {_describe(value)}")
            return None
        return value
    context.add(path, "this field cannot be written in a draft")
    return None


def set_string_at(message: Message, path: str, value: str) -> None:
    """Set the string field at ``path`` below ``message``, a path as violations name fields
    (``shipment.containers[1]``, ``transaction.debtor_account.iban``)."""
    *parents, last = (_PATH_SEGMENT_RE.fullmatch(segment) for segment in path.split("."))
    for segment in parents:
        if segment is None:
            raise ValueError(f"{path!r} is not a field path")
        name, index = segment.groups()
        message = getattr(message, name) if index is None else getattr(message, name)[int(index)]
    if last is None:
        raise ValueError(f"{path!r} is not a field path")
    name, index = last.groups()
    if index is None:
        setattr(message, name, value)
    else:
        getattr(message, name)[int(index)] = value


def message_to_mapping(message: Message) -> dict[str, object]:
    """The draft form of ``message``: set fields only, in field-number order, with the same
    spellings :func:`fill_message` accepts, so the two round-trip."""
    result: dict[str, object] = {}
    for field_descriptor, value in message.ListFields():
        if field_descriptor.is_repeated:
            result[field_descriptor.name] = [
                _value_to_plain(field_descriptor, element) for element in value
            ]
        else:
            result[field_descriptor.name] = _value_to_plain(field_descriptor, value)
    return result


def format_timestamp(timestamp: Timestamp) -> str:
    """RFC 3339 in UTC with ``Z``, nanoseconds kept when present."""
    moment = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(
        seconds=timestamp.seconds
    )
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if timestamp.nanos:
        text += "." + f"{timestamp.nanos:09d}".rstrip("0")
    return text + "Z"


def _value_to_plain(field_descriptor: FieldDescriptor, value: object) -> object:
    if field_descriptor.type == FieldDescriptor.TYPE_MESSAGE:
        assert isinstance(value, Message)
        if _is_timestamp(field_descriptor):
            assert isinstance(value, Timestamp)
            return format_timestamp(value)
        return message_to_mapping(value)
    if field_descriptor.type == FieldDescriptor.TYPE_ENUM:
        assert isinstance(value, int)
        return enum_spelling(_enum_type(field_descriptor), value)
    if field_descriptor.type == FieldDescriptor.TYPE_BYTES:
        assert isinstance(value, bytes)
        return base64.b64encode(value).decode("ascii")
    return value


def walk(
    message: Message,
    value: object,
    path: str,
    *,
    skip_keys: frozenset[str] = frozenset(),
    refused_keys: Mapping[str, str] | None = None,
    context: MappingContext | None = None,
) -> MappingContext:
    """Run :func:`fill_message` with a fresh (or given) context and the value budget enforced."""
    context = context if context is not None else MappingContext()
    if context.remaining_values < 0:
        return context
    try:
        fill_message(message, value, path, context, skip_keys=skip_keys, refused_keys=refused_keys)
    except _TooManyValues:
        context.add(path, beyond_limit(MAX_VALUES, "values", verb="has"))
    return context
