"""Delta staging's arithmetic, pure: what a new dataset adds to a node whose cached datasets
already hold some of its files, which of those must stay until it has taken them, and how many
of its bytes came from the cache once it is written.

A take is counted however it was made: a hard link shares the cached file's inode (so the
disk shows it), a reflink or a local copy does not, yet neither read the source.
"""

import dataclasses
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass

from stagegate.ledger.admission import CachedDataset
from stagegate.states import DatasetState


@dataclass(frozen=True, slots=True)
class DeltaAdmission:
    """What admitting a dataset takes on a node: ``adds`` bytes of room, with ``takes_from``
    (the ready datasets holding the rest) kept, never evicted for it."""

    adds: int
    takes_from: tuple[str, ...]


def delta_admission(
    total: int, held_by: Mapping[str, int], on_node: Iterable[CachedDataset]
) -> DeltaAdmission:
    """A dataset of ``total`` bytes, of which ``held_by`` (the worker's count of its files by the
    ready dataset it would take them from) are on the node already: only those still ready now
    count (one being evicted may be gone before the take)."""
    ready = {d.digest for d in on_node if d.state == DatasetState.READY}
    takes = {digest: n for digest, n in held_by.items() if digest in ready and n > 0}
    return DeltaAdmission(max(0, total - sum(takes.values())), tuple(sorted(takes)))


def kept_for_takes(on_node: Iterable[CachedDataset], taken_from: Set[str]) -> list[CachedDataset]:
    """``on_node`` with the datasets ``taken_from`` (a dataset being written counts on taking
    files from them) held as if pinned: evicting one would leave those bytes to the source, on
    room admitted as if they were here."""
    return [dataclasses.replace(d, pinned=True) if d.digest in taken_from else d for d in on_node]


def bytes_from_cache(total: int, unique_bytes: int | None, taken_bytes: int | None) -> int:
    """The bytes of a node's dataset (``total``) that came from the node's cache: what its copy
    batches took (``taken_bytes``, any way), or where no batch counted its takes (recorded
    before they were), all but its ``unique_bytes`` (what it links shows on the disk)."""
    if taken_bytes is not None:
        return min(total, taken_bytes)
    if unique_bytes is not None and total > unique_bytes:
        return total - unique_bytes
    return 0
