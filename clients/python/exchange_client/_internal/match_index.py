"""The agency's local match index: its selectors, for whom each is published, and the digests
of the tokens the hub holds, in one SQLite file in the profile's state directory.

The file (``state/match-index.sqlite``, mode 0600) holds plaintext selectors: it is as secret as
the agency's own case files and never leaves the agency.  Its tables:

``entries``
    ``id``, ``selector`` (canonical ``KIND:VALUE``, unique), ``note``, ``added_at`` (RFC 3339).
``entry_partners``
    one row per (entry, partner) the entry is published for, with ``digest``, the
    :func:`~exchange.match.blinding.token_digest` of the token the hub holds, by which the hits
    the hub reports are mapped back to entries.
``blindings``
    per partner, the encryption key ids (``own_key_id``, ``partner_key_id``) the partner's tokens
    are blinded under: when either differs from the current keys the index is re-blinded.
``state``
    ``format`` (the file's format version) and ``hits_cursor`` (the last hit read from the hub).

Every change runs in one transaction (:meth:`LocalIndex.transaction`) that the caller commits
only after the hub has accepted the matching token update, so the file and the hub never
disagree about a change that failed.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Self

from exchange.errors import ConfigurationError
from exchange.match.blinding import PairKeys
from exchange.match.selectors import Selector

INDEX_FILE_NAME = "match-index.sqlite"
_LOOKUP_BATCH = 500
FORMAT_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY,
    selector TEXT NOT NULL UNIQUE,
    note TEXT NOT NULL DEFAULT '',
    added_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS entry_partners (
    entry_id INTEGER NOT NULL REFERENCES entries(id) ON DELETE CASCADE,
    partner TEXT NOT NULL,
    digest BLOB NOT NULL,
    PRIMARY KEY (entry_id, partner)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entry_partners_digest ON entry_partners (partner, digest);
CREATE TABLE IF NOT EXISTS blindings (
    partner TEXT PRIMARY KEY,
    own_key_id TEXT NOT NULL,
    partner_key_id TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class IndexEntry:
    """One selector of the index, the partners it is published for, and its note."""

    selector: Selector
    note: str
    added_at: str
    partners: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "selector": str(self.selector),
            "note": self.note,
            "added_at": self.added_at,
            "partners": list(self.partners),
        }


class LocalIndex:
    """The index file of one profile; open it with :meth:`open`, use it as a context manager."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self.path = path

    @classmethod
    def open(cls, state_dir: Path) -> LocalIndex:
        """Open (or create, mode 0600) the index file in ``state_dir``."""
        path = Path(state_dir) / INDEX_FILE_NAME
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not path.exists():
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
            connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA foreign_keys=ON")
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            # 64 MiB of page cache: a million entries' indexes stay in memory while written.
            connection.execute("PRAGMA cache_size=-65536")
            connection.executescript(_SCHEMA)
            found = connection.execute("SELECT value FROM state WHERE key='format'").fetchone()
            if found is None:
                connection.execute("INSERT INTO state VALUES ('format', ?)", (FORMAT_VERSION,))
            elif found[0] != FORMAT_VERSION:
                raise ConfigurationError(
                    f"{path}: match index format {found[0]}, this client reads {FORMAT_VERSION}"
                )
        except sqlite3.Error as e:
            raise ConfigurationError(f"{path}: cannot open the match index: {e}") from e
        return cls(connection, path)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction: committed when the block ends, rolled back if it raises."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # --- reading ---------------------------------------------------------------------------

    def count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM entries").fetchone()[0])

    def entries(
        self, *, partner: str | None = None, kind: str | None = None, limit: int | None = None
    ) -> Iterator[IndexEntry]:
        """The entries in the order they were added, optionally only those for ``partner`` or
        of ``kind``."""
        query = (
            "SELECT e.selector, e.note, e.added_at, group_concat(p.partner, ' ') "
            "FROM entries e LEFT JOIN entry_partners p ON p.entry_id = e.id"
        )
        where, parameters = [], []
        if kind is not None:
            where.append("e.selector >= ? AND e.selector < ?")
            parameters += [f"{kind}:", f"{kind};"]
        query += (" WHERE " + " AND ".join(where) if where else "") + " GROUP BY e.id"
        if partner is not None:
            query += " HAVING sum(p.partner = ?) > 0"
            parameters.append(partner)
        query += " ORDER BY e.id"
        if limit is not None:
            query += " LIMIT ?"
            parameters.append(str(limit))
        for text, note, added_at, partners in self._db.execute(query, parameters):
            kind_name, _, value = text.partition(":")
            yield IndexEntry(
                selector=Selector(kind_name, value),
                note=note,
                added_at=added_at,
                partners=tuple(sorted((partners or "").split())),
            )

    def published_for(self, partner: str) -> Iterator[Selector]:
        """Every selector published for ``partner``."""
        rows = self._db.execute(
            "SELECT e.selector FROM entries e JOIN entry_partners p ON p.entry_id = e.id "
            "WHERE p.partner = ? ORDER BY e.id",
            (partner,),
        )
        for (text,) in rows:
            kind, _, value = text.partition(":")
            yield Selector(kind, value)

    def partners_of(self, selectors: Iterable[Selector]) -> dict[str, set[str]]:
        """For each selector in the index (by its text), the partners it is published for."""
        texts = [str(selector) for selector in selectors]
        found: dict[str, set[str]] = {}
        for start in range(0, len(texts), _LOOKUP_BATCH):
            batch = texts[start : start + _LOOKUP_BATCH]
            rows = self._db.execute(
                "SELECT e.selector, p.partner FROM entries e LEFT JOIN entry_partners p "
                f"ON p.entry_id = e.id WHERE e.selector IN ({','.join('?' * len(batch))})",
                batch,
            )
            for text, partner in rows:
                partners = found.setdefault(text, set())
                if partner is not None:
                    partners.add(partner)
        return found

    def partner_counts(self) -> dict[str, int]:
        """How many entries are published for each partner."""
        rows = self._db.execute(
            "SELECT partner, count(*) FROM entry_partners GROUP BY partner ORDER BY partner"
        )
        return {partner: int(count) for partner, count in rows}

    def entries_by_digest(self, partner: str, digests: Sequence[bytes]) -> dict[bytes, IndexEntry]:
        """The entries published for ``partner`` whose token digests are among ``digests``."""
        found: dict[bytes, IndexEntry] = {}
        for digest in digests:
            row = self._db.execute(
                "SELECT e.selector, e.note, e.added_at FROM entry_partners p "
                "JOIN entries e ON e.id = p.entry_id WHERE p.partner = ? AND p.digest = ?",
                (partner, digest),
            ).fetchone()
            if row is not None:
                kind, _, value = row[0].partition(":")
                found[digest] = IndexEntry(Selector(kind, value), row[1], row[2], (partner,))
        return found

    def blinding(self, partner: str) -> tuple[str, str] | None:
        """The (own, partner) encryption key ids ``partner``'s tokens are blinded under."""
        row = self._db.execute(
            "SELECT own_key_id, partner_key_id FROM blindings WHERE partner = ?", (partner,)
        ).fetchone()
        return None if row is None else (row[0], row[1])

    def hits_cursor(self) -> int:
        row = self._db.execute("SELECT value FROM state WHERE key = 'hits_cursor'").fetchone()
        return 0 if row is None else int(row[0])

    # --- writing (inside a transaction) --------------------------------------------------------

    def add_entries(self, entries: Sequence[tuple[Selector, str]], *, now: datetime) -> list[int]:
        """Add ``entries`` (selector, note), or give an entry already present a new note if one
        is given; returns each entry's id, in order."""
        texts = [str(selector) for selector, _ in entries]
        self._db.executemany(
            "INSERT INTO entries (selector, note, added_at) VALUES (?, ?, ?) "
            "ON CONFLICT (selector) DO UPDATE SET note = excluded.note WHERE excluded.note != ''",
            [(text, note, now.isoformat()) for text, (_, note) in zip(texts, entries, strict=True)],
        )
        ids: dict[str, int] = {}
        for start in range(0, len(texts), _LOOKUP_BATCH):
            batch = texts[start : start + _LOOKUP_BATCH]
            rows = self._db.execute(
                f"SELECT selector, id FROM entries WHERE selector IN ({','.join('?' * len(batch))})",
                batch,
            )
            ids.update(rows)
        return [ids[text] for text in texts]

    def publish(self, partner: str, digests: Iterable[tuple[int, bytes]]) -> None:
        """Record entries (by id) as published for ``partner`` under these token digests."""
        self._db.executemany(
            "INSERT OR REPLACE INTO entry_partners (entry_id, partner, digest) VALUES (?, ?, ?)",
            [(entry_id, partner, digest) for entry_id, digest in digests],
        )

    def remove(self, selectors: Iterable[Selector], *, partners: Iterable[str] | None) -> None:
        """Stop publishing ``selectors`` for ``partners`` (every partner: remove the entries)."""
        texts = [(str(selector),) for selector in selectors]
        if partners is None:
            self._db.executemany("DELETE FROM entries WHERE selector = ?", texts)
            return
        for partner in partners:
            self._db.executemany(
                "DELETE FROM entry_partners WHERE partner = ? AND entry_id = "
                "(SELECT id FROM entries WHERE selector = ?)",
                [(partner, text) for (text,) in texts],
            )
        # An entry published for nobody is no longer in the index.
        self._db.execute(
            "DELETE FROM entries WHERE id NOT IN (SELECT entry_id FROM entry_partners)"
        )

    def replace_digests(self, partner: str, digests: Iterable[tuple[Selector, bytes]]) -> None:
        """New digests for ``partner`` after re-blinding."""
        self._db.executemany(
            "UPDATE entry_partners SET digest = ? WHERE partner = ? AND entry_id = "
            "(SELECT id FROM entries WHERE selector = ?)",
            [(digest, partner, str(selector)) for selector, digest in digests],
        )

    def record_blinding(self, pair: PairKeys) -> None:
        """Note the key ids the holder's tokens for ``pair.querier`` are now blinded under."""
        self._db.execute(
            "INSERT OR REPLACE INTO blindings VALUES (?, ?, ?)",
            (pair.querier, pair.holder_key_id, pair.querier_key_id),
        )

    def forget_blinding(self, partner: str) -> None:
        self._db.execute("DELETE FROM blindings WHERE partner = ?", (partner,))

    def set_hits_cursor(self, cursor: int) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO state VALUES ('hits_cursor', ?)", (str(cursor),)
        )

