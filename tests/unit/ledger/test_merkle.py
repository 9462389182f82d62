"""ledger.merkle against RFC 6962 written straight from its definitions (recursive MTH, PATH,
PROOF): roots, stored-subtree ranges, proofs that verify for any size and fail on any change."""

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stagegate.ledger.merkle import (
    EMPTY_ROOT,
    CompactRange,
    RangeHasher,
    consistency_ranges,
    inclusion_ranges,
    leaf_hash,
    node_hash,
    range_hash,
    verify_consistency,
    verify_inclusion,
)


def mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 2.1: MTH over already-hashed leaves."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def path(m: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 6962 2.1.1 PATH(m, D[n])."""
    if len(leaves) <= 1:
        return []
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    if m < k:
        return [*path(m, leaves[:k]), mth(leaves[k:])]
    return [*path(m - k, leaves[k:]), mth(leaves[:k])]


def subproof(m: int, leaves: list[bytes], whole: bool) -> list[bytes]:
    """RFC 6962 2.1.2 SUBPROOF(m, D[n], b)."""
    n = len(leaves)
    if m == n:
        return [] if whole else [mth(leaves)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*subproof(m, leaves[:k], whole), mth(leaves[k:])]
    return [*subproof(m - k, leaves[k:], False), mth(leaves[:k])]


def leaves_of(n: int) -> list[bytes]:
    return [leaf_hash(f"event {i}".encode()) for i in range(n)]


class Store:
    """Every perfect subtree a CompactRange reported, by (level, index)."""

    def __init__(self, leaves: list[bytes]) -> None:
        self.nodes: dict[tuple[int, int], bytes] = {}
        self.range = CompactRange()
        for leaf in leaves:
            for made in self.range.append(leaf):
                self.nodes[made.level, made.index] = made.hash

    def get(self, level: int, index: int) -> bytes:
        return self.nodes[level, index]


def flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8 % len(out)] ^= 1 << (bit % 8)
    return bytes(out)


def test_known_shapes() -> None:
    a, b, c = leaves_of(3)
    assert CompactRange().root() == EMPTY_ROOT
    assert mth([a, b, c]) == node_hash(node_hash(a, b), c)
    assert inclusion_ranges(2, 3) == [(0, 2)]
    assert inclusion_ranges(0, 3) == [(1, 2), (2, 3)]
    assert consistency_ranges(3, 7) == [
        (2, 3),
        (3, 4),
        (0, 2),
        (4, 7),
    ]  # RFC 6962 2.1.3's example, d, c, g, l
    assert consistency_ranges(4, 7) == [(4, 7)]
    assert consistency_ranges(6, 7) == [(4, 6), (6, 7), (0, 4)]


def test_a_compact_range_needs_one_hash_per_set_bit() -> None:
    with pytest.raises(ValueError, match="3 hashes"):
        CompactRange(7, [b"x" * 32])


@given(st.integers(min_value=0, max_value=300))
def test_compact_range_root_is_mth_and_reports_every_subtree(n: int) -> None:
    leaves = leaves_of(n)
    store = Store(leaves)
    assert store.range.root() == mth(leaves)
    assert len(store.nodes) == max(0, 2 * n - n.bit_count())  # every perfect subtree, once
    # Restarting from the stored subtrees of the compact range gives the same tree.
    restarted = CompactRange(n, [store.get(lv, ix) for lv, ix in CompactRange.subtrees_of(n)])
    assert restarted.root() == mth(leaves)
    extra = leaf_hash(b"one more")
    restarted.append(extra)
    assert restarted.root() == mth([*leaves, extra])


@given(st.integers(min_value=1, max_value=200), st.data())
def test_inclusion_proofs_match_the_rfc_and_verify(n: int, data: st.DataObject) -> None:
    leaves = leaves_of(n)
    store = Store(leaves)
    index = data.draw(st.integers(min_value=0, max_value=n - 1))
    ranges = inclusion_ranges(index, n)
    proof = [range_hash(s, e, store.get) for s, e in ranges]
    assert proof == path(index, leaves)
    streamed = RangeHasher(ranges)
    for leaf in leaves:
        streamed.add(leaf)
    assert streamed.hashes(ranges) == proof
    root = mth(leaves)
    assert verify_inclusion(index, n, leaves[index], proof, root)
    assert not verify_inclusion(index, n, leaves[index], proof, mth(leaves_of(n + 1)))
    if n > 1:
        assert not verify_inclusion((index + 1) % n, n, leaves[index], proof, root)
        assert not verify_inclusion(index, n, leaves[index], proof[:-1], root)


@given(st.integers(min_value=1, max_value=64), st.data())
def test_any_bit_flip_breaks_an_inclusion_proof(n: int, data: st.DataObject) -> None:
    leaves = leaves_of(n)
    index = data.draw(st.integers(min_value=0, max_value=n - 1))
    proof, root = path(index, leaves), mth(leaves)
    bit = data.draw(st.integers(min_value=0, max_value=256 * (len(proof) + 2) - 1))
    which, at = divmod(bit, 256)
    if which < len(proof):
        proof = [flip(p, at) if i == which else p for i, p in enumerate(proof)]
        assert not verify_inclusion(index, n, leaves[index], proof, root)
    elif which == len(proof):
        assert not verify_inclusion(index, n, flip(leaves[index], at), proof, root)
    else:
        assert not verify_inclusion(index, n, leaves[index], proof, flip(root, at))


@given(st.integers(min_value=1, max_value=200), st.data())
def test_consistency_proofs_match_the_rfc_and_verify(n: int, data: st.DataObject) -> None:
    leaves = leaves_of(n)
    store = Store(leaves)
    m = data.draw(st.integers(min_value=0, max_value=n))
    ranges = consistency_ranges(m, n)
    proof = [range_hash(s, e, store.get) for s, e in ranges]
    assert proof == (subproof(m, leaves, True) if 0 < m < n else [])
    streamed = RangeHasher(ranges)
    for leaf in leaves:
        streamed.add(leaf)
    assert streamed.hashes(ranges) == proof
    old_root, new_root = mth(leaves[:m]), mth(leaves)
    assert verify_consistency(m, n, old_root, new_root, proof)
    if 0 < m < n:
        other = leaves_of(m)
        other[-1] = leaf_hash(b"rewritten")  # a rewritten history has another old root
        assert not verify_consistency(m, n, mth(other), new_root, proof)
        assert not verify_consistency(m, n, old_root, mth(leaves_of(n + 1)), proof)
        assert not verify_consistency(m, n, old_root, new_root, proof[:-1])


@given(st.integers(min_value=2, max_value=64), st.data())
def test_any_bit_flip_breaks_a_consistency_proof(n: int, data: st.DataObject) -> None:
    leaves = leaves_of(n)
    m = data.draw(st.integers(min_value=1, max_value=n - 1))
    proof, old_root, new_root = subproof(m, leaves, True), mth(leaves[:m]), mth(leaves)
    bit = data.draw(st.integers(min_value=0, max_value=256 * (len(proof) + 2) - 1))
    which, at = divmod(bit, 256)
    if which < len(proof):
        proof = [flip(p, at) if i == which else p for i, p in enumerate(proof)]
    elif which == len(proof):
        old_root = flip(old_root, at)
    else:
        new_root = flip(new_root, at)
    assert not verify_consistency(m, n, old_root, new_root, proof)


def test_equal_and_empty_trees() -> None:
    leaves = leaves_of(5)
    root = mth(leaves)
    assert verify_consistency(5, 5, root, root, [])
    assert not verify_consistency(5, 5, root, mth(leaves_of(4)), [])
    assert verify_consistency(0, 5, EMPTY_ROOT, root, [])
    assert not verify_consistency(0, 5, EMPTY_ROOT, root, [root])
    assert not verify_consistency(6, 5, root, root, [])


def test_a_range_that_is_no_node_is_refused() -> None:
    with pytest.raises(ValueError, match="not a node"):
        range_hash(1, 3, Store(leaves_of(4)).get)
