"""Index files: the selectors an agency adds to its match index, as CSV or JSON lines.

CSV has the header ``kind,value`` or ``kind,value,note``; JSON lines hold one object per line
with the string fields ``kind``, ``value`` and optionally ``note``.  Blank lines are skipped.
Rows are numbered as an editor or a spreadsheet numbers them (the CSV header is row 1, the first
JSON line row 1).  Every bad row is reported, naming its row and field, and a file with any bad
row is refused whole: nothing of it is indexed.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from exchange.errors import FieldViolation, InvalidInputError
from exchange.match.selectors import Selector, SelectorError, parse_selector

__all__ = [
    "MAX_NOTE_LENGTH",
    "IndexFileError",
    "IndexRow",
    "parse_index_text",
    "read_index_file",
]

MAX_NOTE_LENGTH = 1000
MAX_REPORTED_ERRORS = 50
PROGRESS_ROWS = 10_000
_FIELDS = ("kind", "value", "note")


class IndexFileError(InvalidInputError):
    """An index file that cannot be read or has bad rows; each violation names row and field."""

    reason = "INDEX_FILE_INVALID"


@dataclass(frozen=True)
class IndexRow:
    """One row of an index file: its number, its canonical selector and its note."""

    row: int
    selector: Selector
    note: str


def read_index_file(
    path: Path, *, progress: Callable[[int, int], None] | None = None
) -> list[IndexRow]:
    """The rows of the CSV or JSON-lines file at ``path``; raises :class:`IndexFileError`.

    ``progress(rows done, rows expected)`` is called as rows are read (see
    :func:`parse_index_text`).
    """
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise IndexFileError(f"{path}: cannot read the file: {e.strerror or e}") from e
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise IndexFileError(f"{path}: not UTF-8 (byte {e.start + 1} is not valid)") from e
    return parse_index_text(text, source=str(path), progress=progress)


def parse_index_text(
    text: str,
    *,
    source: str = "index file",
    progress: Callable[[int, int], None] | None = None,
) -> list[IndexRow]:
    """The rows of an index file's text: JSON lines if its first character (after blanks) is
    ``{``, CSV otherwise.  ``progress(rows done, rows expected)`` is called every
    :data:`PROGRESS_ROWS` rows (rows expected: the text's line count)."""
    rows: list[IndexRow] = []
    violations: list[FieldViolation] = []
    count = 0
    expected = text.count("\n") if progress is not None else 0
    lines = _json_lines(text) if text.lstrip().startswith("{") else _csv_rows(text, source)
    for row, fields in lines:
        count += 1
        if progress is not None and count % PROGRESS_ROWS == 0:
            progress(count, max(expected, count))
        if isinstance(fields, FieldViolation):
            violations.append(fields)
            continue
        parsed = _row(row, fields, violations)
        if parsed is not None:
            rows.append(parsed)
    if progress is not None:
        progress(count, count)
    if violations:
        shown = violations[:MAX_REPORTED_ERRORS]
        more = len(violations) - len(shown)
        raise IndexFileError(
            f"{source}: {len(violations)} bad row{'s' if len(violations) != 1 else ''} of "
            f"{count}; nothing was indexed" + (f" ({more} more not shown)" if more else ""),
            violations=shown,
        )
    if not rows:
        raise IndexFileError(f"{source}: no rows to index")
    return rows


def _row(row: int, fields: dict[str, str], violations: list[FieldViolation]) -> IndexRow | None:
    note = fields.get("note", "")
    if len(note) > MAX_NOTE_LENGTH:
        violations.append(
            FieldViolation(
                f"row {row}: note", f"is {len(note)} characters long, at most {MAX_NOTE_LENGTH}"
            )
        )
        return None
    for name in ("kind", "value"):
        if name not in fields or not fields[name].strip():
            problem = "is missing" if name not in fields else "is empty"
            violations.append(FieldViolation(f"row {row}: {name}", problem))
            return None
    kind, value = fields["kind"], fields["value"]
    try:
        selector = parse_selector(value, kind=kind)
    except SelectorError as e:
        violations.append(FieldViolation(f"row {row}: {e.part}", e.message))
        return None
    return IndexRow(row, selector, note)


_Line = tuple[int, dict[str, str] | FieldViolation]


def _csv_rows(text: str, source: str) -> Iterator[_Line]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as e:
        raise IndexFileError(f"{source}: row 1: not CSV ({e})") from e
    names = [name.strip().lower() for name in header or []]
    if names not in (["kind", "value"], ["kind", "value", "note"]):
        raise IndexFileError(
            f"{source}: row 1: expected the header kind,value or kind,value,note, got "
            f"{','.join(header or [])!r}"
        )
    while True:
        start = reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            yield start, FieldViolation(f"row {start}", f"not CSV: {e}")
            return
        if not record or all(not cell.strip() for cell in record):
            continue
        if len(record) != len(names):
            yield start, FieldViolation(
                f"row {start}",
                f"has {len(record)} fields, expected {len(names)} ({','.join(names)})",
            )
            continue
        yield start, dict(zip(names, record))


def _json_lines(text: str) -> Iterator[_Line]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            document = json.loads(line)
        except json.JSONDecodeError as e:
            yield number, FieldViolation(f"row {number}", f"not JSON: {e.msg} at column {e.colno}")
            continue
        if not isinstance(document, dict):
            yield number, FieldViolation(f"row {number}", "expected a JSON object")
            continue
        unknown = sorted(set(document) - set(_FIELDS))
        if unknown:
            yield number, FieldViolation(
                f"row {number}: {unknown[0]}", "unknown field; expected kind, value and note"
            )
            continue
        bad = next(
            (name for name in _FIELDS if name in document and not isinstance(document[name], str)),
            None,
        )
        if bad is not None:
            yield number, FieldViolation(
                f"row {number}: {bad}", f"expected a string, got {type(document[bad]).__name__}"
            )
            continue
        yield number, {name: document[name] for name in _FIELDS if name in document}
