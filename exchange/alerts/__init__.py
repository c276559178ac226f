"""Alert drafts, payload validation and the precursor watchlist (DESIGN section 6).

Pure code: nothing here touches the network or a database.  The client parses a draft
(:class:`Draft`), which validates every identifier before anything is signed and brings those
written in a printed form to their canonical one (:class:`Normalisation`); recipients run
:func:`validate_payload` again on every item they open; :class:`Watchlist` flags listed precursors
in shipments.  Identifier validators live in :mod:`exchange.alerts.identifiers`.
"""

from __future__ import annotations

from exchange.alerts.draft import PAYLOAD_KINDS, Draft, DraftItem
from exchange.alerts.identifiers import IdentifierError
from exchange.alerts.validate import (
    Normalisation,
    normalise_draft,
    validate_draft,
    validate_payload,
    validate_policy,
)
from exchange.alerts.watchlist import (
    FlagReason,
    IgnoredChange,
    ListedSubstance,
    Watchlist,
    WatchlistFlag,
    WatchlistUpdate,
)

__all__ = [
    "PAYLOAD_KINDS",
    "Draft",
    "DraftItem",
    "FlagReason",
    "IdentifierError",
    "IgnoredChange",
    "ListedSubstance",
    "Normalisation",
    "Watchlist",
    "WatchlistFlag",
    "WatchlistUpdate",
    "normalise_draft",
    "validate_draft",
    "validate_payload",
    "validate_policy",
]
