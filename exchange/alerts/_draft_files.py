"""Reading draft files: JSON, or YAML under the YAML 1.2 core schema.

YAML 1.1 loaders turn ``NO`` into ``False``, ``0123`` into 83 and unquoted dates into date objects
(TRAPS.md).  ruamel.yaml's safe loader follows YAML 1.2 for booleans and octals but still resolves
timestamps, ``1_000``, ``0b101`` and ``<<`` merge keys, and switches to 1.1 rules when a document
says ``%YAML 1.1``.  :class:`_CoreSchemaResolver` pins the resolution to exactly the core schema
of YAML 1.2.2 (section 10.3.2): ``null``, ``true``/``false``, decimal, ``0o`` octal and ``0x`` hex
integers, and floats; every other plain scalar is a string.  A number where the draft format wants
a string (``hs_code: 2933399073``) then stays a number and the mapping layer reports it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.resolver import VersionedResolver

from exchange.errors import DraftError, FieldViolation
from exchange.limits import beyond_limit

MAX_DRAFT_FILE_BYTES = 32 * 1024 * 1024

_CORE_SCHEMA = (
    ("tag:yaml.org,2002:null", r"null|Null|NULL|~|", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:bool", r"true|True|TRUE|false|False|FALSE", list("tTfF")),
    ("tag:yaml.org,2002:int", r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+", list("-+0123456789")),
    (
        "tag:yaml.org,2002:float",
        (
            r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
            r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)"
        ),
        list("-+0123456789."),
    ),
)


def _core_schema_by_first_char() -> dict[str, list[tuple[str, re.Pattern[str]]]]:
    by_first_char: dict[str, list[tuple[str, re.Pattern[str]]]] = {}
    for tag, pattern, first_chars in _CORE_SCHEMA:
        for char in first_chars:
            by_first_char.setdefault(char, []).append((tag, re.compile(f"^(?:{pattern})$")))
    return by_first_char


_CORE_SCHEMA_BY_FIRST_CHAR = _core_schema_by_first_char()


class _CoreSchemaResolver(VersionedResolver):
    """Resolves plain scalars by the YAML 1.2 core schema only, whatever the document says."""

    @property
    def versioned_resolver(self) -> Any:
        return _CORE_SCHEMA_BY_FIRST_CHAR

    @property
    def processing_version(self) -> Any:
        return (1, 2)


def _yaml_loader() -> YAML:
    loader = YAML(typ="safe", pure=True)
    loader.Resolver = _CoreSchemaResolver
    return loader


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise DraftError(
                "draft file is not valid JSON", violations=[FieldViolation(key, "duplicate key")]
            )
        result[key] = value
    return result


def _reject_constant(name: str) -> None:
    raise DraftError(
        "draft file is not valid JSON",
        violations=[FieldViolation("", f"{name} is not allowed: decimals are strings")],
    )


def parse_json(text: str) -> object:
    """Parse JSON, refusing duplicate keys and NaN/Infinity."""
    try:
        return json.loads(
            text, object_pairs_hook=_reject_duplicate_keys, parse_constant=_reject_constant
        )
    except json.JSONDecodeError as e:
        raise DraftError(
            "draft file is not valid JSON",
            violations=[FieldViolation("", f"line {e.lineno}, column {e.colno}: {e.msg}")],
        ) from e
    except RecursionError as e:
        raise DraftError("draft file is nested too deeply") from e


def parse_yaml(text: str) -> object:
    """Parse one YAML document under the YAML 1.2 core schema; duplicate keys are errors."""
    try:
        return _yaml_loader().load(text)
    except YAMLError as e:
        # ruamel appends advice on how to switch its checks off; the problem is what comes before.
        detail = str(e).split("To suppress this check", 1)[0].strip()
        raise DraftError(
            "draft file is not valid YAML", violations=[FieldViolation("", detail)]
        ) from e
    except RecursionError as e:
        raise DraftError("draft file is nested too deeply") from e


def load_draft_file(path: str | Path) -> object:
    """Read and parse a draft file: ``.json`` as JSON, ``.yaml``/``.yml`` as YAML."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".json", ".yaml", ".yml"):
        raise DraftError(f"{path.name}: a draft file must end in .json, .yaml or .yml")
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_DRAFT_FILE_BYTES + 1)
    except OSError as e:
        raise DraftError(f"cannot read {path}: {e.strerror or e}") from e
    if len(raw) > MAX_DRAFT_FILE_BYTES:
        raise DraftError(beyond_limit(MAX_DRAFT_FILE_BYTES, "bytes", what=path.name))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DraftError(f"{path.name} is not UTF-8 text: byte {e.start} is invalid") from e
    text = text.removeprefix("\ufeff")
    return parse_json(text) if suffix == ".json" else parse_yaml(text)
