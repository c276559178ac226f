"""Watchlist updates this agency has received and verified, kept in its profile.

An agency publishes additions to the shared precursor watchlist as alerts of kind
``WATCHLIST``.  Each time the client opens such an alert — signature, commitments and keys all
verified — it records the visible entries here, so that every later flag (in ``show``,
``publish``, and the offline ``validate`` and ``watchlist`` commands) uses the shipped list
merged with what this agency has verified, without asking the hub.
"""

from __future__ import annotations

import base64
import json
import threading
from pathlib import Path

from exchange.alerts.watchlist import Watchlist, WatchlistUpdate
from exchange.errors import ConfigurationError, MalformedError
from exchange.statements.codec import encode, parse_canonical
from exchange.v1 import payloads_pb2
from exchange_client._internal.state import write_atomically

FILE_NAME = "watchlist-updates.json"


class WatchlistUpdates:
    """The verified updates stored in a profile's state directory."""

    def __init__(self, state_dir: Path) -> None:
        self._path = state_dir / FILE_NAME
        self._lock = threading.Lock()  # one read-modify-write of the file at a time

    def load(self) -> list[WatchlistUpdate]:
        """Every stored update (none if the file does not exist yet)."""
        if not self._path.exists():
            return []
        try:
            records = json.loads(self._path.read_text(encoding="utf-8"))
            return [
                WatchlistUpdate(
                    agency_id=record["agency_id"],
                    sequence=int(record["sequence"]),
                    reference=record["reference"],
                    entries=tuple(
                        parse_canonical(
                            payloads_pb2.WatchlistEntry,
                            base64.b64decode(entry, validate=True),
                            what="stored watchlist entry",
                        )
                        for entry in record["entries"]
                    ),
                )
                for record in records
            ]
        except (ValueError, KeyError, TypeError, MalformedError) as e:
            raise ConfigurationError(
                f"{self._path} is damaged ({e}); delete it and open the WATCHLIST alerts again"
            ) from e

    def record(self, update: WatchlistUpdate) -> None:
        """Store ``update``, replacing an earlier record of the same alert version."""
        with self._lock:
            kept = [u for u in self.load() if u.reference != update.reference]
            kept.append(update)
            records = [
                {
                    "agency_id": u.agency_id,
                    "sequence": u.sequence,
                    "reference": u.reference,
                    "entries": [base64.b64encode(encode(e)).decode("ascii") for e in u.entries],
                }
                for u in kept
            ]
            write_atomically(self._path, json.dumps(records, indent=1).encode("utf-8"))

    def merged(self) -> Watchlist:
        """The shipped watchlist with every stored update applied."""
        return Watchlist.shipped().merge(self.load())
