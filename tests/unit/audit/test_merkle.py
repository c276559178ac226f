"""The Merkle core against RFC 9162 §2.1: published vectors, a naive reading of the RFC, and tampering.

The naive functions below transcribe the RFC's recursive definitions (MTH, PATH, PROOF/SUBPROOF)
over leaf *data*, with list slicing and no cleverness, so that the module's iterative,
subtree-source-based code is checked against a second, independent implementation.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.audit import merkle
from exchange.audit.merkle import ProofError
from exchange.errors import VerificationError

VECTOR_FILE = Path(__file__).resolve().parents[2] / "vectors" / "merkle" / "rfc6962-8-leaf.json"
VECTORS: dict[str, Any] = json.loads(VECTOR_FILE.read_text(encoding="utf-8"))
LEAF_DATA = [bytes.fromhex(x) for x in VECTORS["leaves"]]
LEAF_HASHES = [merkle.leaf_hash(d) for d in LEAF_DATA]
ROOTS = {entry["size"]: bytes.fromhex(entry["root"]) for entry in VECTORS["roots"]}
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


# --- RFC 9162 §2.1, read literally -----------------------------------------------------------------


def _k(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def naive_mth(data: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of RFC 9162 §2.1.1."""
    if not data:
        return hashlib.sha256(b"").digest()
    if len(data) == 1:
        return hashlib.sha256(b"\x00" + data[0]).digest()
    k = _k(len(data))
    return hashlib.sha256(b"\x01" + naive_mth(data[:k]) + naive_mth(data[k:])).digest()


def naive_path(m: int, data: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 §2.1.3.1."""
    if len(data) == 1:
        return []
    k = _k(len(data))
    if m < k:
        return naive_path(m, data[:k]) + [naive_mth(data[k:])]
    return naive_path(m - k, data[k:]) + [naive_mth(data[:k])]


def naive_subproof(m: int, data: Sequence[bytes], whole: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) of RFC 9162 §2.1.4.1."""
    if m == len(data):
        return [] if whole else [naive_mth(data)]
    k = _k(len(data))
    if m <= k:
        return naive_subproof(m, data[:k], whole) + [naive_mth(data[k:])]
    return naive_subproof(m - k, data[k:], False) + [naive_mth(data[:k])]


def naive_proof(m: int, data: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 9162 §2.1.4.1."""
    return naive_subproof(m, data, True)


def sample_data(n: int) -> list[bytes]:
    return [i.to_bytes(2, "big") + b"exchange" for i in range(n)]


def hexes(values: Sequence[bytes]) -> list[str]:
    return [v.hex() for v in values]


def unhex(values: Sequence[str]) -> list[bytes]:
    return [bytes.fromhex(v) for v in values]


INCLUSION_VECTORS = VECTORS["inclusion"]
CONSISTENCY_VECTORS = VECTORS["consistency"]
NONTRIVIAL_CONSISTENCY_VECTORS = [v for v in CONSISTENCY_VECTORS if v["size1"] != v["size2"]]


def _name(vector: dict[str, Any]) -> str:
    return str(vector["name"]) + (" (published)" if vector["published"] else "")


# --- hashing and roots -------------------------------------------------------------------------------


def test_leaf_and_node_hashes_carry_their_domain_prefixes() -> None:
    assert merkle.leaf_hash(b"") == hashlib.sha256(b"\x00").digest() == ROOTS[1]
    left, right = LEAF_HASHES[0], LEAF_HASHES[1]
    assert merkle.node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()
    assert merkle.node_hash(left, right) == ROOTS[2]


def test_the_empty_tree_has_the_hash_of_the_empty_string() -> None:
    assert merkle.root([]) == merkle.EMPTY_ROOT == hashlib.sha256(b"").digest() == ROOTS[0]


@pytest.mark.parametrize("size", sorted(ROOTS), ids=lambda s: f"size {s}")
def test_roots_match_the_reference_tree(size: int) -> None:
    assert merkle.root(LEAF_HASHES[:size]) == ROOTS[size]
    assert naive_mth(LEAF_DATA[:size]) == ROOTS[size]


def test_the_vector_file_is_what_the_rfc_definitions_give() -> None:
    """Every stored proof, published or derived, is reproduced by the literal RFC reading."""
    for vector in INCLUSION_VECTORS:
        data = LEAF_DATA[: vector["size"]]
        assert hexes(naive_path(vector["index"], data)) == vector["proof"], vector["name"]
    for vector in CONSISTENCY_VECTORS:
        data = LEAF_DATA[: vector["size2"]]
        assert hexes(naive_proof(vector["size1"], data)) == vector["proof"], vector["name"]
    published = [v for v in INCLUSION_VECTORS + CONSISTENCY_VECTORS if v["published"]]
    assert len(published) == 10


# --- the vectors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("vector", INCLUSION_VECTORS, ids=_name)
def test_inclusion_vector(vector: dict[str, Any]) -> None:
    index, size, proof = vector["index"], vector["size"], unhex(vector["proof"])
    assert merkle.inclusion_proof(index, size, LEAF_HASHES) == proof
    merkle.verify_inclusion(LEAF_HASHES[index], index, size, proof, ROOTS[size])


@pytest.mark.parametrize("vector", CONSISTENCY_VECTORS, ids=_name)
def test_consistency_vector(vector: dict[str, Any]) -> None:
    size1, size2, proof = vector["size1"], vector["size2"], unhex(vector["proof"])
    assert merkle.consistency_proof(size1, size2, LEAF_HASHES) == proof
    merkle.verify_consistency(size1, size2, ROOTS[size1], ROOTS[size2], proof)


# --- a brute-force cross-check with the literal RFC ---------------------------------------------------

BRUTE_FORCE_MAX_SIZE = 70


def test_every_inclusion_proof_up_to_70_leaves_matches_the_rfc() -> None:
    data = sample_data(BRUTE_FORCE_MAX_SIZE)
    hashes = [merkle.leaf_hash(d) for d in data]
    for size in range(1, BRUTE_FORCE_MAX_SIZE + 1):
        tree_root = merkle.root(hashes[:size])
        assert tree_root == naive_mth(data[:size]), f"root of {size}"
        for index in range(size):
            proof = merkle.inclusion_proof(index, size, hashes)
            assert proof == naive_path(index, data[:size]), f"leaf {index} of {size}"
            merkle.verify_inclusion(hashes[index], index, size, proof, tree_root)


def test_every_consistency_proof_up_to_70_leaves_matches_the_rfc() -> None:
    data = sample_data(BRUTE_FORCE_MAX_SIZE)
    hashes = [merkle.leaf_hash(d) for d in data]
    roots = [merkle.root(hashes[:n]) for n in range(BRUTE_FORCE_MAX_SIZE + 1)]
    for size2 in range(1, BRUTE_FORCE_MAX_SIZE + 1):
        for size1 in range(1, size2 + 1):
            proof = merkle.consistency_proof(size1, size2, hashes)
            assert proof == naive_proof(size1, data[:size2]), f"{size1} to {size2}"
            merkle.verify_consistency(size1, size2, roots[size1], roots[size2], proof)


def test_a_proof_for_one_size_never_passes_for_a_neighbouring_size() -> None:
    data = sample_data(40)
    hashes = [merkle.leaf_hash(d) for d in data]
    roots = [merkle.root(hashes[:n]) for n in range(41)]
    for size in range(2, 40):
        for index in range(size):
            proof = merkle.inclusion_proof(index, size, hashes)
            for other_size in (size - 1, size + 1):
                if index < other_size:
                    with pytest.raises(ProofError):
                        merkle.verify_inclusion(
                            hashes[index], index, other_size, proof, roots[other_size]
                        )


# --- tampering -------------------------------------------------------------------------------------


def _corruptions(proof: list[bytes]) -> list[tuple[str, list[bytes]]]:
    """Every single-byte change of every proof element (low and high bit of each byte)."""
    changed = []
    for position, element in enumerate(proof):
        for offset in range(len(element)):
            for mask in (0x01, 0x80):
                corrupted = bytearray(element)
                corrupted[offset] ^= mask
                altered = list(proof)
                altered[position] = bytes(corrupted)
                changed.append((f"proof[{position}] byte {offset} ^ {mask:#04x}", altered))
    return changed


def _inclusion_accepted(
    leaf: bytes, index: int, size: int, proof: list[bytes], tree_root: bytes
) -> bool:
    try:
        merkle.verify_inclusion(leaf, index, size, proof, tree_root)
    except ProofError:
        return False
    return True


def _consistency_accepted(
    size1: int, size2: int, root1: bytes, root2: bytes, proof: list[bytes]
) -> bool:
    try:
        merkle.verify_consistency(size1, size2, root1, root2, proof)
    except ProofError:
        return False
    return True


@pytest.mark.parametrize("vector", INCLUSION_VECTORS, ids=_name)
def test_every_single_byte_corruption_of_an_inclusion_proof_is_rejected(
    vector: dict[str, Any],
) -> None:
    index, size, proof = vector["index"], vector["size"], unhex(vector["proof"])
    leaf, tree_root = LEAF_HASHES[index], ROOTS[size]
    accepted = [
        description
        for description, altered in _corruptions(proof)
        if _inclusion_accepted(leaf, index, size, altered, tree_root)
    ]
    accepted += [
        f"leaf {description}"
        for description, (altered_leaf,) in _corruptions([leaf])
        if _inclusion_accepted(altered_leaf, index, size, proof, tree_root)
    ]
    accepted += [
        f"root {description}"
        for description, (altered_root,) in _corruptions([tree_root])
        if _inclusion_accepted(leaf, index, size, proof, altered_root)
    ]
    assert accepted == []


@pytest.mark.parametrize("vector", NONTRIVIAL_CONSISTENCY_VECTORS, ids=_name)
def test_every_single_byte_corruption_of_a_consistency_proof_is_rejected(
    vector: dict[str, Any],
) -> None:
    size1, size2, proof = vector["size1"], vector["size2"], unhex(vector["proof"])
    root1, root2 = ROOTS[size1], ROOTS[size2]
    accepted = [
        description
        for description, altered in _corruptions(proof)
        if _consistency_accepted(size1, size2, root1, root2, altered)
    ]
    accepted += [
        f"root1 {description}"
        for description, (altered_root,) in _corruptions([root1])
        if _consistency_accepted(size1, size2, altered_root, root2, proof)
    ]
    accepted += [
        f"root2 {description}"
        for description, (altered_root,) in _corruptions([root2])
        if _consistency_accepted(size1, size2, root1, altered_root, proof)
    ]
    assert accepted == []


@dataclass(frozen=True)
class InclusionCase:
    """One call of verify_inclusion that must fail, as a change to a valid proof of leaf 5 of 8."""

    name: str
    index: int = 5
    size: int = 8
    leaf: bytes | None = None
    root: bytes | None = None
    proof: list[bytes] | None = None


_PROOF_5_OF_8 = merkle.inclusion_proof(5, 8, LEAF_HASHES)

BAD_INCLUSION_CASES = [
    InclusionCase("index equals size", index=8),
    InclusionCase("index beyond size", index=9),
    InclusionCase("negative index", index=-1),
    InclusionCase("size zero", index=0, size=0, proof=[]),
    InclusionCase("negative size", size=-8),
    InclusionCase("index - 1", index=4),
    InclusionCase("index + 1", index=6),
    InclusionCase("index ^ 2", index=7),
    InclusionCase("size * 2", size=16),
    InclusionCase("size / 2", size=4),
    InclusionCase("wrong leaf", leaf=LEAF_HASHES[4]),
    InclusionCase("leaf data instead of leaf hash", leaf=LEAF_DATA[5]),
    InclusionCase("short leaf hash", leaf=LEAF_HASHES[5][:31]),
    InclusionCase("long leaf hash", leaf=LEAF_HASHES[5] + b"\x00"),
    InclusionCase("empty root", root=merkle.EMPTY_ROOT),
    InclusionCase("random root", root=SOME_HASH),
    InclusionCase("short root", root=ROOTS[8][:31]),
    InclusionCase("empty proof", proof=[]),
    InclusionCase("missing last element", proof=_PROOF_5_OF_8[:-1]),
    InclusionCase("missing first element", proof=_PROOF_5_OF_8[1:]),
    InclusionCase("trailing root", proof=[*_PROOF_5_OF_8, ROOTS[8]]),
    InclusionCase("trailing empty element", proof=[*_PROOF_5_OF_8, b""]),
    InclusionCase("preceding root", proof=[ROOTS[8], *_PROOF_5_OF_8]),
    InclusionCase("preceding empty element", proof=[b"", *_PROOF_5_OF_8]),
    InclusionCase("inserted element", proof=[_PROOF_5_OF_8[0], SOME_HASH, *_PROOF_5_OF_8[1:]]),
    InclusionCase("elements swapped", proof=[_PROOF_5_OF_8[1], _PROOF_5_OF_8[0], _PROOF_5_OF_8[2]]),
    InclusionCase("short element", proof=[_PROOF_5_OF_8[0][:31], *_PROOF_5_OF_8[1:]]),
    InclusionCase("long element", proof=[_PROOF_5_OF_8[0] + b"\x00", *_PROOF_5_OF_8[1:]]),
    InclusionCase("element is text", proof=[_PROOF_5_OF_8[0].hex(), *_PROOF_5_OF_8[1:]]),  # type: ignore[list-item]
]


@pytest.mark.parametrize("case", BAD_INCLUSION_CASES, ids=lambda c: c.name)
def test_verify_inclusion_rejects(case: InclusionCase) -> None:
    leaf = LEAF_HASHES[5] if case.leaf is None else case.leaf
    tree_root = ROOTS[8] if case.root is None else case.root
    proof = _PROOF_5_OF_8 if case.proof is None else case.proof
    with pytest.raises(ProofError) as raised:
        merkle.verify_inclusion(leaf, case.index, case.size, proof, tree_root)
    assert isinstance(raised.value, VerificationError)
    assert raised.value.reason == "PROOF_INVALID"


def test_single_leaf_tree_needs_an_empty_proof_and_the_leaf_as_root() -> None:
    leaf = merkle.leaf_hash(b"data")
    merkle.verify_inclusion(leaf, 0, 1, [], leaf)
    with pytest.raises(ProofError):
        merkle.verify_inclusion(leaf, 0, 1, [leaf], leaf)
    with pytest.raises(ProofError):
        merkle.verify_inclusion(leaf, 0, 1, [], SOME_HASH)
    with pytest.raises(ProofError):
        merkle.verify_inclusion(b"", 0, 1, [], b"")


@dataclass(frozen=True)
class ConsistencyCase:
    """One call of verify_consistency that must fail, as a change to the valid proof from 6 to 8."""

    name: str
    size1: int = 6
    size2: int = 8
    root1: bytes = field(default_factory=lambda: ROOTS[6])
    root2: bytes = field(default_factory=lambda: ROOTS[8])
    proof: list[bytes] | None = None


_PROOF_6_TO_8 = merkle.consistency_proof(6, 8, LEAF_HASHES)

BAD_CONSISTENCY_CASES = [
    ConsistencyCase("first size zero", size1=0, root1=merkle.EMPTY_ROOT, proof=[]),
    ConsistencyCase("first size zero with a proof", size1=0, root1=merkle.EMPTY_ROOT),
    ConsistencyCase("both sizes zero", size1=0, size2=0, root1=ROOTS[0], root2=ROOTS[0], proof=[]),
    ConsistencyCase("first size larger", size1=8, size2=6, root1=ROOTS[8], root2=ROOTS[6]),
    ConsistencyCase("negative first size", size1=-6),
    ConsistencyCase("size1 - 1", size1=5),
    ConsistencyCase("size1 + 1", size1=7),
    ConsistencyCase("size1 ^ 2", size1=4),
    ConsistencyCase("size2 * 2", size2=16),
    ConsistencyCase("size2 / 2", size2=4),
    ConsistencyCase("wrong first root", root1=ROOTS[5]),
    ConsistencyCase("wrong second root", root2=ROOTS[7]),
    ConsistencyCase("swapped roots", root1=ROOTS[8], root2=ROOTS[6]),
    ConsistencyCase("short first root", root1=ROOTS[6][:31]),
    ConsistencyCase("long second root", root2=ROOTS[8] + b"\x00"),
    ConsistencyCase("empty proof", proof=[]),
    ConsistencyCase("truncated proof", proof=_PROOF_6_TO_8[:-1]),
    ConsistencyCase("missing first element", proof=_PROOF_6_TO_8[1:]),
    ConsistencyCase("trailing first root", proof=[*_PROOF_6_TO_8, ROOTS[6]]),
    ConsistencyCase("trailing second root", proof=[*_PROOF_6_TO_8, ROOTS[8]]),
    ConsistencyCase("trailing empty element", proof=[*_PROOF_6_TO_8, b""]),
    ConsistencyCase("preceding first root", proof=[ROOTS[6], *_PROOF_6_TO_8]),
    ConsistencyCase("preceding second root", proof=[ROOTS[8], *_PROOF_6_TO_8]),
    ConsistencyCase("preceding proof[0]", proof=[_PROOF_6_TO_8[0], *_PROOF_6_TO_8]),
    ConsistencyCase("short element", proof=[_PROOF_6_TO_8[0][:31], *_PROOF_6_TO_8[1:]]),
    ConsistencyCase("same size, different roots", size1=8, root1=ROOTS[7], proof=[]),
    ConsistencyCase("same size, equal roots, non-empty proof", size1=8, root1=ROOTS[8]),
    ConsistencyCase(
        "same size, equal roots, one hash", size1=8, root1=ROOTS[8], proof=[merkle.EMPTY_ROOT]
    ),
]


@pytest.mark.parametrize("case", BAD_CONSISTENCY_CASES, ids=lambda c: c.name)
def test_verify_consistency_rejects(case: ConsistencyCase) -> None:
    proof = _PROOF_6_TO_8 if case.proof is None else case.proof
    with pytest.raises(ProofError):
        merkle.verify_consistency(case.size1, case.size2, case.root1, case.root2, proof)


def test_equal_sizes_are_consistent_with_an_empty_proof_and_equal_roots() -> None:
    for size in range(1, 9):
        merkle.verify_consistency(size, size, ROOTS[size], ROOTS[size], [])


# --- building proofs: arguments outside the tree --------------------------------------------------


@pytest.mark.parametrize(
    ("index", "size", "leaves"),
    [
        pytest.param(8, 8, 8, id="index equals size"),
        pytest.param(0, 0, 8, id="empty tree"),
        pytest.param(-1, 8, 8, id="negative index"),
        pytest.param(0, -1, 8, id="negative size"),
        pytest.param(3, 9, 8, id="size beyond the leaves given"),
    ],
)
def test_inclusion_proof_refuses_arguments_outside_the_tree(
    index: int, size: int, leaves: int
) -> None:
    with pytest.raises(ProofError):
        merkle.inclusion_proof(index, size, LEAF_HASHES[:leaves])


@pytest.mark.parametrize(
    ("size1", "size2", "leaves"),
    [
        pytest.param(0, 8, 8, id="first size zero"),
        pytest.param(0, 0, 8, id="both sizes zero"),
        pytest.param(5, 4, 8, id="first size larger"),
        pytest.param(-1, 4, 8, id="negative first size"),
        pytest.param(2, 9, 8, id="second size beyond the leaves given"),
    ],
)
def test_consistency_proof_refuses_arguments_outside_the_tree(
    size1: int, size2: int, leaves: int
) -> None:
    with pytest.raises(ProofError):
        merkle.consistency_proof(size1, size2, LEAF_HASHES[:leaves])


def test_leaf_hashes_that_are_not_hashes_are_refused_by_position() -> None:
    with pytest.raises(ProofError, match="leaf hash 2"):
        merkle.root([LEAF_HASHES[0], LEAF_HASHES[1], b"short"])


def test_proofs_are_built_from_a_prefix_of_a_longer_list() -> None:
    assert merkle.inclusion_proof(1, 5, LEAF_HASHES) == unhex(
        next(v for v in INCLUSION_VECTORS if v["index"] == 1 and v["size"] == 5)["proof"]
    )


# --- aligned subtrees and subtree sources -------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "pieces"),
    [
        pytest.param(0, 0, [], id="empty"),
        pytest.param(0, 1, [(0, 1)], id="one leaf"),
        pytest.param(0, 8, [(0, 8)], id="complete tree"),
        pytest.param(0, 13, [(0, 8), (8, 12), (12, 13)], id="root of 13"),
        pytest.param(8, 13, [(8, 12), (12, 13)], id="right edge of 13"),
        pytest.param(3, 13, [(3, 4), (4, 8), (8, 12), (12, 13)], id="unaligned start"),
        pytest.param(5, 6, [(5, 6)], id="single inner leaf"),
        pytest.param(
            1 << 20,
            (1 << 20) + 7,
            [
                (1 << 20, (1 << 20) + 4),
                ((1 << 20) + 4, (1 << 20) + 6),
                ((1 << 20) + 6, (1 << 20) + 7),
            ],
            id="far right edge",
        ),
    ],
)
def test_aligned_subtrees(start: int, end: int, pieces: list[tuple[int, int]]) -> None:
    assert merkle.aligned_subtrees(start, end) == pieces


@pytest.mark.parametrize(("start", "end"), [(-1, 3), (5, 4)], ids=["negative start", "reversed"])
def test_aligned_subtrees_refuses_invalid_ranges(start: int, end: int) -> None:
    with pytest.raises(ProofError):
        merkle.aligned_subtrees(start, end)


@given(st.integers(0, 1 << 40), st.integers(0, 1 << 12))
def test_aligned_subtrees_tile_the_range_with_aligned_powers_of_two(
    start: int, length: int
) -> None:
    pieces = merkle.aligned_subtrees(start, start + length)
    position = start
    for piece_start, piece_end in pieces:
        size = piece_end - piece_start
        assert piece_start == position
        assert size > 0 and size & (size - 1) == 0
        assert piece_start % size == 0
        position = piece_end
    assert position == start + length


class AlignedSubtreeStore:
    """A stand-in for the storage layer: only complete aligned subtree hashes, with reads counted."""

    def __init__(self, leaf_hashes: Sequence[bytes]) -> None:
        self.hashes: dict[tuple[int, int], bytes] = {}
        level = [(i, i + 1, h) for i, h in enumerate(leaf_hashes)]
        while level:
            for start, end, value in level:
                self.hashes[(start, end)] = value
            level = [
                (level[i][0], level[i + 1][1], merkle.node_hash(level[i][2], level[i + 1][2]))
                for i in range(0, len(level) - 1, 2)
            ]
        self.reads: list[tuple[int, int]] = []

    def subtree_hash(self, start: int, end: int) -> bytes:
        pieces = merkle.aligned_subtrees(start, end)
        self.reads.extend(pieces)
        return merkle.hash_from_aligned_subtrees([self.hashes[p] for p in pieces])


def test_a_store_of_aligned_subtrees_gives_the_same_proofs_in_logarithmic_reads() -> None:
    size = 1000
    hashes = [merkle.leaf_hash(d) for d in sample_data(size)]
    store = AlignedSubtreeStore(hashes)
    in_memory = merkle.LeafHashSource(hashes)
    log_size = size.bit_length()
    assert merkle.root_from(store, size) == merkle.root(hashes)
    for tree_size in (1, 2, 3, 7, 64, 65, 511, 999, 1000):
        tree_root = merkle.root_from(store, tree_size)
        for index in {0, tree_size // 2, tree_size - 1}:
            store.reads.clear()
            proof = merkle.inclusion_proof_from(store, index, tree_size)
            assert proof == merkle.inclusion_proof_from(in_memory, index, tree_size)
            assert len(store.reads) <= 2 * log_size
            merkle.verify_inclusion(hashes[index], index, tree_size, proof, tree_root)
        for old_size in {1, tree_size // 3 or 1, tree_size - 1 or 1}:
            store.reads.clear()
            proof = merkle.consistency_proof_from(store, old_size, tree_size)
            assert proof == merkle.consistency_proof_from(in_memory, old_size, tree_size)
            assert len(store.reads) <= 2 * log_size
            merkle.verify_consistency(
                old_size, tree_size, merkle.root_from(store, old_size), tree_root, proof
            )


class UniformTreeStore:
    """A log of a million identical leaves, whose aligned subtree hashes need no leaves to compute."""

    def __init__(self, leaf: bytes) -> None:
        self.by_height = [leaf]
        for _ in range(64):
            self.by_height.append(merkle.node_hash(self.by_height[-1], self.by_height[-1]))
        self.reads = 0

    def subtree_hash(self, start: int, end: int) -> bytes:
        pieces = merkle.aligned_subtrees(start, end)
        self.reads += len(pieces)
        return merkle.hash_from_aligned_subtrees(
            [self.by_height[(e - s).bit_length() - 1] for s, e in pieces]
        )


@pytest.mark.parametrize("size", [10**4, 10**5, 10**6, 10**6 + 12345])
def test_a_proof_at_a_million_entries_costs_a_handful_of_reads(size: int) -> None:
    leaf = merkle.leaf_hash(b"entry")
    store = UniformTreeStore(leaf)
    tree_root = merkle.root_from(store, size)
    for index in (0, size // 3, size - 1):
        store.reads = 0
        proof = merkle.inclusion_proof_from(store, index, size)
        assert store.reads <= 2 * size.bit_length()
        merkle.verify_inclusion(leaf, index, size, proof, tree_root)
    old_size = size // 2 + 1
    store.reads = 0
    proof = merkle.consistency_proof_from(store, old_size, size)
    assert store.reads <= 2 * size.bit_length()
    merkle.verify_consistency(old_size, size, merkle.root_from(store, old_size), tree_root, proof)


def test_proof_ranges_hold_at_most_one_right_edge_subtree() -> None:
    for size in range(1, 130):
        for index in range(size):
            ranges = merkle.inclusion_proof_ranges(index, size)
            assert sum(1 for s, e in ranges if len(merkle.aligned_subtrees(s, e)) > 1) <= 1
        for size1 in range(1, size + 1):
            ranges = merkle.consistency_proof_ranges(size1, size)
            assert sum(1 for s, e in ranges if len(merkle.aligned_subtrees(s, e)) > 1) <= 1


def test_combining_nothing_is_refused() -> None:
    with pytest.raises(ProofError):
        merkle.hash_from_aligned_subtrees([])


# --- properties --------------------------------------------------------------------------------------

_PROPERTY_LEAVES = [merkle.leaf_hash(d) for d in sample_data(300)]
_PROPERTY_ROOTS = [merkle.root(_PROPERTY_LEAVES[:n]) for n in range(301)]


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_inclusion_proofs_verify_and_any_bit_flip_breaks_them(data: st.DataObject) -> None:
    size = data.draw(st.integers(1, 300), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    proof = merkle.inclusion_proof(index, size, _PROPERTY_LEAVES)
    merkle.verify_inclusion(_PROPERTY_LEAVES[index], index, size, proof, _PROPERTY_ROOTS[size])
    if proof:
        position = data.draw(st.integers(0, len(proof) - 1), label="element")
        bit = data.draw(st.integers(0, 8 * merkle.HASH_SIZE - 1), label="bit")
        corrupted = bytearray(proof[position])
        corrupted[bit // 8] ^= 1 << (bit % 8)
        altered = [*proof[:position], bytes(corrupted), *proof[position + 1 :]]
        with pytest.raises(ProofError):
            merkle.verify_inclusion(
                _PROPERTY_LEAVES[index], index, size, altered, _PROPERTY_ROOTS[size]
            )


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_consistency_proofs_verify_and_a_rewritten_leaf_is_caught(data: st.DataObject) -> None:
    size2 = data.draw(st.integers(1, 300), label="size2")
    size1 = data.draw(st.integers(1, size2), label="size1")
    proof = merkle.consistency_proof(size1, size2, _PROPERTY_LEAVES)
    merkle.verify_consistency(size1, size2, _PROPERTY_ROOTS[size1], _PROPERTY_ROOTS[size2], proof)
    rewritten = data.draw(st.integers(0, size1 - 1), label="rewritten leaf")
    forked = list(_PROPERTY_LEAVES[:size2])
    forked[rewritten] = merkle.leaf_hash(b"rewritten history")
    forked_root = merkle.root(forked)
    assert not _consistency_accepted(size1, size2, _PROPERTY_ROOTS[size1], forked_root, proof)
    forked_proof = merkle.consistency_proof(size1, size2, forked)
    assert not _consistency_accepted(
        size1, size2, _PROPERTY_ROOTS[size1], forked_root, forked_proof
    )
