"""Bulk work without the cyclic garbage collector's pauses.

Reading, canonicalising and blinding an index of 10^6 selectors allocates millions of small
objects that all stay alive until the work is done.  The cyclic collector, triggered by
allocation counts, then runs full collections over an ever-growing heap: measured on
``bench/match_bench.py``, a third of the indexing time (56.8 s of 10^6 selectors, 38.0 s with
the collector paused).  None of this work makes reference cycles worth collecting early, so
:func:`gc_paused` turns the collector off for its duration; reference counting still frees
everything as usual.  The collector is process-wide: the pause is counted, so that threads
doing bulk work at the same time turn it back on only when the last of them is done, and only
if it was on before the first began.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["gc_paused"]

_lock = threading.Lock()
_depth = 0
_was_enabled = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while the ``with`` block runs (re-entrant and safe
    across threads); the collector's earlier state is restored when the last block ends."""
    global _depth, _was_enabled
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                gc.enable()
