"""The Merkle tree of the audit log: RFC 9162 §2.1 hashing, proofs and proof verification.

Pure functions, no I/O. Every statement and hub event is a leaf of one append-only tree (DESIGN §8);
agencies check the hub's claims about that tree with the two proofs defined here:

* an **inclusion proof** shows that a leaf is at a given index in the tree of a given size;
* a **consistency proof** shows that the tree of size ``size1`` is a prefix of the tree of size
  ``size2``, so the hub cannot rewrite history between two checkpoints without being caught.

Hashing (RFC 9162 §2.1.1): the hash of a leaf is ``SHA-256(0x00 ‖ data)``, of an interior node
``SHA-256(0x01 ‖ left ‖ right)``; the root of ``n > 1`` leaves splits them at ``k``, the largest power
of two smaller than ``n``, into a complete left subtree of ``k`` leaves and a right subtree of the
other ``n - k``. The root of the empty tree is ``SHA-256("")``.

**Subtrees and storage.** Every hash a proof carries is the root of a range ``[start, end)`` of
leaves that the recursion above produces: either a *complete aligned subtree* (``end - start`` is
``2**h`` and ``start`` is a multiple of ``2**h``) or a *right-edge subtree* ``[start, size)`` of the
tree of ``size`` leaves. The proof functions therefore do not need the leaves: they ask a
:class:`SubtreeSource` for the hash of each range. A storage layer that keeps the hash of every
complete aligned subtree answers a complete one with a single read and a right-edge one by folding
the complete aligned subtrees that :func:`aligned_subtrees` lists (at most ``log2(size)`` of them,
see :func:`hash_from_aligned_subtrees`). A proof holds at most one right-edge subtree, so an
inclusion or consistency proof costs O(log n) reads whatever the size of the log.
:func:`inclusion_proof_ranges` and :func:`consistency_proof_ranges` give the ranges up front, so a
store can fetch everything a proof needs in one query.

Verification follows RFC 9162 §2.1.3.2 and §2.1.4.2 step by step and raises :class:`ProofError` on
any failure; it never returns ``False``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from exchange.errors import VerificationError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "LeafHashSource",
    "ProofError",
    "SubtreeSource",
    "aligned_subtrees",
    "consistency_proof",
    "consistency_proof_from",
    "consistency_proof_ranges",
    "hash_from_aligned_subtrees",
    "inclusion_proof",
    "inclusion_proof_from",
    "inclusion_proof_ranges",
    "leaf_hash",
    "node_hash",
    "root",
    "root_from",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
"""Length in bytes of every hash in the tree (SHA-256)."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""Root hash of the tree with no leaves: ``SHA-256("")`` (RFC 9162 §2.1.1)."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


class ProofError(VerificationError):
    """A Merkle proof does not verify, or a proof was asked for arguments outside the tree."""

    reason = "PROOF_INVALID"


def leaf_hash(data: bytes) -> bytes:
    """Hash one leaf: ``SHA-256(0x00 ‖ data)``; the prefix keeps a leaf from passing for a node."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash an interior node from its children: ``SHA-256(0x01 ‖ left ‖ right)``."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


# --- subtree ranges ------------------------------------------------------------------------------


Node = tuple[int, int]
"""A complete aligned subtree as ``(level, idx)``: the leaves
``[idx * 2**level, (idx + 1) * 2**level)``."""


class SubtreeSource(Protocol):
    """Anything that can give the root hash of a range of leaves of one tree.

    ``subtree_hash(start, end)`` returns the Merkle tree hash of leaves ``[start, end)``. The proof
    functions only ask for ranges that are complete aligned subtrees or right-edge subtrees
    ``[start, size)`` of the tree being proved (see the module docstring), never for an empty range.
    """

    def subtree_hash(self, start: int, end: int) -> bytes:
        """Return the root hash of the leaves ``[start, end)``."""
        ...


def aligned_subtrees(start: int, end: int) -> list[tuple[int, int]]:
    """Split the leaves ``[start, end)`` into complete aligned subtrees, left to right.

    Each ``(s, e)`` returned has ``e - s == 2**h`` with ``s`` a multiple of ``2**h``, taken as large
    as fits: these are the subtrees a store keeps the hashes of. For a range that is itself a
    subtree of the tree (a complete aligned subtree, or a right-edge subtree ``[start, size)`` as
    proofs need) the sizes strictly decrease, there are at most ``log2(end - start) + 1`` of them, and
    :func:`hash_from_aligned_subtrees` folds their hashes into the range's hash. For example the
    root of 13 leaves is built from ``[0, 8)``, ``[8, 12)`` and ``[12, 13)``.
    """
    if start < 0 or end < start:
        raise ProofError(f"invalid leaf range [{start}, {end})")
    pieces: list[tuple[int, int]] = []
    while start < end:
        # The largest power of two that divides start (any power when start is 0) ...
        size = start & -start if start else 1 << ((end - start).bit_length() - 1)
        # ... shrunk until the subtree fits inside the range.
        while start + size > end:
            size >>= 1
        pieces.append((start, start + size))
        start += size
    return pieces


def hash_from_aligned_subtrees(hashes: Sequence[bytes]) -> bytes:
    """Fold the hashes of a subtree's :func:`aligned_subtrees`, given left to right, into its hash.

    The tree splits off its largest complete subtree on the left at every level, so the hash of the
    whole range is ``node(h0, node(h1, ... node(h_{n-2}, h_{n-1})))``: a fold from the right.
    """
    if not hashes:
        raise ProofError("no subtree hashes to combine")
    combined = hashes[-1]
    for left in reversed(hashes[:-1]):
        combined = node_hash(left, combined)
    return combined


def _largest_power_of_two_below(n: int) -> int:
    """The ``k`` of RFC 9162 §2.1.1: the largest power of two strictly smaller than ``n > 1``."""
    return 1 << ((n - 1).bit_length() - 1)


def _check_count(value: object, what: str) -> int:
    """Return ``value`` if it is a non-negative int; a proof argument of any other kind is refused."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ProofError(f"{what} must be a non-negative integer, got {value!r}")
    return value


def inclusion_proof_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose hashes make up the inclusion proof of leaf ``index`` in a tree of ``size``.

    In proof order (RFC 9162 §2.1.3.1 ``PATH``): the sibling nearest the leaf first, the sibling of the
    root's child last. At most one range is a right-edge subtree; the others are complete aligned.
    """
    index = _check_count(index, "leaf index")
    size = _check_count(size, "tree size")
    if index >= size:
        raise ProofError(f"leaf index {index} is not in a tree of size {size}")
    siblings: list[tuple[int, int]] = []
    start, end = 0, size
    while end - start > 1:
        split = start + _largest_power_of_two_below(end - start)
        if index < split:
            siblings.append((split, end))
            end = split
        else:
            siblings.append((start, split))
            start = split
    siblings.reverse()
    return siblings


def consistency_proof_ranges(size1: int, size2: int) -> list[tuple[int, int]]:
    """The leaf ranges whose hashes make up the consistency proof from ``size1`` to ``size2``.

    In proof order (RFC 9162 §2.1.4.1 ``PROOF``/``SUBPROOF``). Empty when the sizes are equal; a
    tree of size 0 has no consistency proof (there is nothing to be consistent with).
    """
    size1 = _check_count(size1, "first tree size")
    size2 = _check_count(size2, "second tree size")
    if size1 == 0:
        raise ProofError("a consistency proof needs a first tree size of at least 1")
    if size1 > size2:
        raise ProofError(f"first tree size {size1} is larger than second tree size {size2}")
    ranges: list[tuple[int, int]] = []
    start, end = 0, size2
    old_tree_is_whole_subtree = True  # SUBPROOF's flag b
    while end != size1:
        split = start + _largest_power_of_two_below(end - start)
        if size1 <= split:
            ranges.append((split, end))
            end = split
        else:
            ranges.append((start, split))
            start = split
            old_tree_is_whole_subtree = False
    if not old_tree_is_whole_subtree:
        ranges.append((start, end))
    ranges.reverse()
    return ranges


# --- computing roots and proofs --------------------------------------------------------------------


class LeafHashSource:
    """A :class:`SubtreeSource` over leaf hashes held in memory, computing every hash from them."""

    def __init__(self, leaf_hashes: Sequence[bytes]) -> None:
        """Keep ``leaf_hashes`` (each 32 bytes; checked here so a bad one is named)."""
        for position, value in enumerate(leaf_hashes):
            if not isinstance(value, bytes) or len(value) != HASH_SIZE:
                raise ProofError(f"leaf hash {position} is not a {HASH_SIZE}-byte hash")
        self._leaf_hashes = leaf_hashes

    def __len__(self) -> int:
        """The number of leaves held."""
        return len(self._leaf_hashes)

    def subtree_hash(self, start: int, end: int) -> bytes:
        """Hash the leaves ``[start, end)``: each aligned piece bottom-up, then fold the pieces."""
        if not 0 <= start < end <= len(self._leaf_hashes):
            raise ProofError(f"leaf range [{start}, {end}) is outside the {len(self)} leaves held")
        return hash_from_aligned_subtrees(
            [self._complete_subtree_hash(s, e) for s, e in aligned_subtrees(start, end)]
        )

    def _complete_subtree_hash(self, start: int, end: int) -> bytes:
        level = list(self._leaf_hashes[start:end])
        while len(level) > 1:
            level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
        return level[0]


def _source_for(leaf_hashes: Sequence[bytes], size: int) -> LeafHashSource:
    if len(leaf_hashes) < size:
        raise ProofError(f"tree size {size} is larger than the {len(leaf_hashes)} leaves given")
    return LeafHashSource(leaf_hashes)


def root_from(source: SubtreeSource, size: int) -> bytes:
    """The root hash of the first ``size`` leaves of ``source`` (``SHA-256("")`` for none)."""
    size = _check_count(size, "tree size")
    return source.subtree_hash(0, size) if size else EMPTY_ROOT


def inclusion_proof_from(source: SubtreeSource, index: int, size: int) -> list[bytes]:
    """The inclusion proof of leaf ``index`` in the tree of ``size`` leaves held by ``source``."""
    return [source.subtree_hash(s, e) for s, e in inclusion_proof_ranges(index, size)]


def consistency_proof_from(source: SubtreeSource, size1: int, size2: int) -> list[bytes]:
    """The consistency proof from the tree of ``size1`` leaves to that of ``size2`` in ``source``."""
    return [source.subtree_hash(s, e) for s, e in consistency_proof_ranges(size1, size2)]


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """The root hash of a tree with these leaf hashes (``SHA-256("")`` when there are none)."""
    return root_from(LeafHashSource(leaf_hashes), len(leaf_hashes))


def inclusion_proof(index: int, size: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """The inclusion proof of leaf ``index`` in the tree of the first ``size`` of ``leaf_hashes``."""
    size = _check_count(size, "tree size")
    return inclusion_proof_from(_source_for(leaf_hashes, size), index, size)


def consistency_proof(size1: int, size2: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """The consistency proof between the trees of the first ``size1`` and ``size2`` leaf hashes."""
    size2 = _check_count(size2, "second tree size")
    return consistency_proof_from(_source_for(leaf_hashes, size2), size1, size2)


# --- verification (RFC 9162 §2.1.3.2 and §2.1.4.2) ---------------------------------------------------


def _check_hash(value: object, what: str) -> bytes:
    if not isinstance(value, bytes | bytearray):
        raise ProofError(f"{what} is not bytes but {type(value).__name__}")
    if len(value) != HASH_SIZE:
        raise ProofError(f"{what} is {len(value)} bytes, not a {HASH_SIZE}-byte hash")
    return bytes(value)


def _check_proof(proof: Sequence[bytes], expected_length: int) -> list[bytes]:
    hashes = [_check_hash(value, f"proof element {i}") for i, value in enumerate(proof)]
    if len(hashes) != expected_length:
        raise ProofError(f"proof has {len(hashes)} hashes, expected {expected_length}")
    return hashes


def _shift_until(fn: int, sn: int, stop: Callable[[int], bool]) -> tuple[int, int]:
    """Right-shift ``fn`` and ``sn`` together until ``stop(fn)`` holds."""
    while not stop(fn):
        fn >>= 1
        sn >>= 1
    return fn, sn


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` leaves with ``root``.

    Raises :class:`ProofError` if the index is outside the tree, a hash is not 32 bytes, the proof
    has the wrong length, or the hashes do not lead to ``root`` (RFC 9162 §2.1.3.2).
    """
    index = _check_count(index, "leaf index")
    size = _check_count(size, "tree size")
    if index >= size:
        raise ProofError(f"leaf index {index} is not in a tree of size {size}")
    leaf = _check_hash(leaf_hash, "leaf hash")
    expected_root = _check_hash(root, "root hash")
    path = _check_proof(proof, len(inclusion_proof_ranges(index, size)))

    fn, sn = index, size - 1
    computed = leaf
    for sibling in path:
        if sn == 0:
            raise ProofError("inclusion proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            computed = node_hash(sibling, computed)
            if not fn & 1:
                fn, sn = _shift_until(fn, sn, lambda f: f & 1 == 1 or f == 0)
        else:
            computed = node_hash(computed, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the path to the root")
    if computed != expected_root:
        raise ProofError(
            f"inclusion proof of leaf {index} leads to root {computed.hex()}, "
            f"not {expected_root.hex()}"
        )


def verify_consistency(
    size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of ``size1`` leaves with ``root1`` is a prefix of ``size2`` with ``root2``.

    Equal sizes need an empty proof and equal roots. Raises :class:`ProofError` if ``size1`` is 0 or
    larger than ``size2``, a hash is not 32 bytes, the proof has the wrong length, or the hashes do
    not lead to both roots (RFC 9162 §2.1.4.2).
    """
    size1 = _check_count(size1, "first tree size")
    size2 = _check_count(size2, "second tree size")
    if size1 == 0:
        raise ProofError("consistency with an empty tree proves nothing: first tree size is 0")
    if size1 > size2:
        raise ProofError(f"first tree size {size1} is larger than second tree size {size2}")
    first_root = _check_hash(root1, "first root hash")
    second_root = _check_hash(root2, "second root hash")
    path = _check_proof(proof, len(consistency_proof_ranges(size1, size2)))

    if size1 == size2:
        if first_root != second_root:
            raise ProofError(f"two different roots for the same tree size {size1}")
        return

    # Step 1: a proof between different sizes is never empty.
    if not path:
        raise ProofError("consistency proof is empty")
    # Step 2: when the old tree is a complete subtree its root is the proof's implicit first hash.
    if size1 & (size1 - 1) == 0:
        path = [first_root, *path]
    # Steps 3 and 4.
    fn, sn = size1 - 1, size2 - 1
    if fn & 1:
        fn, sn = _shift_until(fn, sn, lambda f: f & 1 == 0)
    # Step 5.
    first_computed = second_computed = path[0]
    # Step 6.
    for sibling in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            first_computed = node_hash(sibling, first_computed)
            second_computed = node_hash(sibling, second_computed)
            if not fn & 1:
                fn, sn = _shift_until(fn, sn, lambda f: f & 1 == 1 or f == 0)
        else:
            second_computed = node_hash(second_computed, sibling)
        fn >>= 1
        sn >>= 1
    # Step 7.
    if sn != 0:
        raise ProofError("consistency proof is shorter than the path to the root")
    if first_computed != first_root:
        raise ProofError(
            f"consistency proof leads to first root {first_computed.hex()}, not {first_root.hex()}"
        )
    if second_computed != second_root:
        raise ProofError(
            f"consistency proof leads to second root {second_computed.hex()}, "
            f"not {second_root.hex()}"
        )


def subtrees_added(
    old_size: int, frontier: Mapping[Node, bytes], new_leaf_hashes: Sequence[bytes]
) -> dict[Node, bytes]:
    """The complete aligned subtrees that appending ``new_leaf_hashes`` to ``old_size`` leaves adds.

    ``frontier`` holds the hashes of the old tree's :func:`aligned_subtrees`
    (one per set bit of ``old_size``): the only old hashes a new subtree can be built on.
    """
    added: dict[Node, bytes] = {
        (0, old_size + offset): value for offset, value in enumerate(new_leaf_hashes)
    }
    new_size = old_size + len(new_leaf_hashes)

    def hash_of(node: Node) -> bytes:
        found = added.get(node)
        return found if found is not None else frontier[node]

    level = 1
    while 1 << level <= new_size:
        for idx in range(old_size >> level, new_size >> level):
            added[(level, idx)] = node_hash(
                hash_of((level - 1, 2 * idx)), hash_of((level - 1, 2 * idx + 1))
            )
        level += 1
    return added
