"""Private hit/no-hit matching: canonical selectors, blinding keys and tokens, index files.

Pure functions and classes only (no database, no network): the client builds its local index
and its queries with them, and the hub never sees anything but tokens and their digests.
"""

from __future__ import annotations

from exchange.match.blinding import BlindingKey, PairKeys, token_digest
from exchange.match.index_file import IndexFileError, IndexRow, parse_index_text, read_index_file
from exchange.match.selectors import KINDS, Selector, SelectorError, parse_selector

__all__ = [
    "KINDS",
    "BlindingKey",
    "IndexFileError",
    "IndexRow",
    "PairKeys",
    "Selector",
    "SelectorError",
    "parse_index_text",
    "parse_selector",
    "read_index_file",
    "token_digest",
]
