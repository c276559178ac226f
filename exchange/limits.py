"""The one wording of every message about a limit, in the hub, the client and the core.

``the publish request is 9000000 bytes; the limit is 8388608 bytes``: what, its size, the limit,
in the same unit.  A field violation leaves ``what`` out, since its path names the field
(``items[0].title: is 412 characters; the limit is 300 characters``).
"""

from __future__ import annotations


def over_limit(size: int, limit: int, unit: str, *, what: str = "", verb: str = "is") -> str:
    """``WHAT VERB SIZE UNIT; the limit is LIMIT UNIT`` (``verb`` ``has`` for counts)."""
    text = f"{verb} {size} {unit}; the limit is {limit} {unit}"
    return f"{what} {text}" if what else text


def beyond_limit(limit: int, unit: str, *, what: str = "", verb: str = "is") -> str:
    """The same, when counting stopped at the limit: ``VERB more than LIMIT UNIT; ...``."""
    text = f"{verb} more than {limit} {unit}; the limit is {limit} {unit}"
    return f"{what} {text}" if what else text
