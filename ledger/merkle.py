"""RFC 6962 Merkle trees over the audit events: hashes, compact ranges, proofs and their checks.

Pure: no I/O. A tree of ``n`` leaves is never held whole. :class:`CompactRange` folds leaves
in one pass keeping one hash per level (and reports each perfect subtree it completes, so a
store can keep them); proofs are built from the *ranges* they need (:func:`inclusion_ranges`,
:func:`consistency_ranges`), whose hashes a caller fetches however it likes: O(log n) reads
of stored subtrees, or one streaming pass (:class:`RangeHasher`). Verification follows
RFC 9162 section 2.1.3.2 and 2.1.4.2 (the same algorithms as RFC 6962's proofs).
"""

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(size: int) -> int:
    """The largest power of two below ``size`` (> 1): where RFC 6962 splits a tree."""
    return 1 << ((size - 1).bit_length() - 1)


@dataclass(frozen=True, slots=True)
class Subtree:
    """A perfect subtree: leaves ``[index << level, (index + 1) << level)``."""

    level: int
    index: int
    hash: bytes


def perfect_subtrees(start: int, end: int) -> list[tuple[int, int]]:
    """The (level, index) of the perfect subtrees whose concatenation is ``[start, end)``, left
    to right, for a range that is a node of a tree (``start`` a multiple of a power of two at
    least ``end - start``), as every range a proof names is."""
    out = []
    while start < end:
        size = end - start
        block = size if size & (size - 1) == 0 else split_point(size)
        level = block.bit_length() - 1
        if start % block:
            raise ValueError(f"[{start}, {end}) is not a node of a Merkle tree")
        out.append((level, start >> level))
        start += block
    return out


def fold(hashes: Sequence[bytes]) -> bytes:
    """The root over perfect subtrees given left to right in falling size: RFC 6962 joins
    the rightmost pair first."""
    if not hashes:
        return EMPTY_ROOT
    root = hashes[-1]
    for left in reversed(hashes[:-1]):
        root = node_hash(left, root)
    return root


class CompactRange:
    """The perfect subtrees of the first ``size`` leaves: enough to extend the tree and to
    compute its root, in O(log n) memory."""

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if len(hashes) != size.bit_count():
            raise ValueError(
                f"a compact range of {size} leaves has {size.bit_count()} hashes, not {len(hashes)}"
            )
        self.size = size
        self._hashes = list(hashes)

    @staticmethod
    def subtrees_of(size: int) -> list[tuple[int, int]]:
        """The (level, index) of the hashes a compact range of ``size`` leaves holds."""
        return perfect_subtrees(0, size) if size else []

    @property
    def hashes(self) -> tuple[bytes, ...]:
        return tuple(self._hashes)

    def append(self, leaf: bytes) -> list[Subtree]:
        """Add the next leaf (its hash); returns every perfect subtree it completed, the leaf
        itself first."""
        index = self.size
        made = [Subtree(0, index, leaf)]
        digest, level = leaf, 0
        while (index >> level) & 1:  # a left sibling of the same height is waiting
            digest = node_hash(self._hashes.pop(), digest)
            level += 1
            made.append(Subtree(level, index >> level, digest))
        self._hashes.append(digest)
        self.size += 1
        return made

    def root(self) -> bytes:
        return fold(self._hashes)


def range_hash(start: int, end: int, subtree: Callable[[int, int], bytes]) -> bytes:
    """The hash of the node ``[start, end)`` from stored perfect subtrees ``subtree(level, index)``."""
    return fold([subtree(level, index) for level, index in perfect_subtrees(start, end)])


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The nodes whose hashes prove leaf ``index`` is in a tree of ``size`` (RFC 6962 PATH),
    the leaf's sibling first."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size}")
    out: list[tuple[int, int]] = []
    start = 0
    while size > 1:
        k = split_point(size)
        if index < k:
            out.append((start + k, start + size))
            size = k
        else:
            out.append((start, start + k))
            index, start, size = index - k, start + k, size - k
    return out[::-1]


def consistency_ranges(old: int, new: int) -> list[tuple[int, int]]:
    """The nodes whose hashes prove a tree of ``old`` leaves is a prefix of one of ``new``
    (RFC 6962 PROOF); none when either is 0 or they are equal."""
    if not 0 <= old <= new:
        raise ValueError(f"no consistency proof from {old} leaves to {new}")
    if old in (0, new):
        return []
    out: list[tuple[int, int]] = []
    start, m, n, whole = 0, old, new, True
    while m != n:
        k = split_point(n)
        if m <= k:
            out.append((start + k, start + n))
            n = k
        else:
            out.append((start, start + k))
            start, m, n, whole = start + k, m - k, n - k, False
    if not whole:
        out.append((start, start + m))
    return out[::-1]


class RangeHasher:
    """Hashes of given disjoint nodes, computed from the leaves streamed in order once."""

    def __init__(self, ranges: Iterable[tuple[int, int]]) -> None:
        self._ranges = sorted(set(ranges))
        for (_, end), (start, _) in zip(self._ranges, self._ranges[1:], strict=False):
            if start < end:
                raise ValueError("the ranges of a proof never overlap")
        self._ranges_left = list(self._ranges)
        self._partial: dict[tuple[int, int], CompactRange] = {}
        self._next = 0

    def add(self, leaf: bytes) -> None:
        index = self._next
        self._next += 1
        while self._ranges_left and self._ranges_left[0][1] <= index:
            self._ranges_left.pop(0)
        if self._ranges_left and self._ranges_left[0][0] <= index:
            self._partial.setdefault(self._ranges_left[0], CompactRange()).append(leaf)

    def hashes(self, ranges: Iterable[tuple[int, int]]) -> list[bytes]:
        out = []
        for start, end in ranges:
            partial = self._partial.get((start, end))
            if partial is None or partial.size != end - start:
                raise ValueError(f"leaves [{start}, {end}) were not all seen")
            out.append(partial.root())
        return out


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes | None:
    """The root that ``proof`` yields for ``leaf`` at ``index`` in a tree of ``size``; None when
    the proof has the wrong shape for that position (RFC 9162 2.1.3.2)."""
    if not 0 <= index < size:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0 or len(p) != HASH_SIZE:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> bool:
    return root_from_inclusion(index, size, leaf, proof) == root


def verify_consistency(old: int, new: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> bool:
    """Whether ``proof`` shows the tree (``old``, ``old_root``) is a prefix of (``new``,
    ``new_root``) (RFC 9162 2.1.4.2). A tree of 0 leaves is a prefix of any; equal sizes need
    an empty proof and equal roots."""
    if not 0 <= old <= new or any(len(p) != HASH_SIZE for p in proof):
        return False
    if old == 0:
        return not proof
    if old == new:
        return not proof and old_root == new_root
    if not proof:
        return False
    path = list(proof)
    if old & (old - 1) == 0:  # a power of two: the old root is itself a node of the new tree
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root
