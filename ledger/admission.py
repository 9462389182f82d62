"""Admission to a node's NVMe: does a dataset fit, and what must be evicted to make it fit.

Pure logic, so every rule is tested without a database: a pinned dataset is never evicted,
nor one still being written or already on its way out; the least recently used go first.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from stagegate.errors import StagegateError
from stagegate.sizes import format_bytes
from stagegate.states import DatasetState


@dataclass(frozen=True, slots=True)
class CachedDataset:
    digest: str
    bytes: int
    state: str  # writing | ready | evicting | deleting
    pinned: bool
    last_used: datetime
    # Where it shares files with other datasets on the node (delta staging's hard links): the
    # bytes no older dataset holds, and the bytes no other holds. None: it shares nothing.
    unique_bytes: int | None = None
    sole_bytes: int | None = None

    @property
    def counted(self) -> int:
        """Its share of the node's used space: shared bytes count once, for the oldest holder."""
        return self.bytes if self.unique_bytes is None else self.unique_bytes

    @property
    def frees(self) -> int:
        """What evicting it alone gives back: not the files another dataset still holds."""
        return self.bytes if self.sole_bytes is None else self.sole_bytes


class NoRoomError(StagegateError):
    """The dataset cannot fit on the node even after evicting everything evictable."""


def choose_evictions(node: str, capacity: int, held: Iterable[CachedDataset], need: int) -> list[str]:
    """The digests to evict, least recently used first, so that ``need`` more bytes fit.

    Raises :class:`NoRoomError` saying what holds the space when even evicting every unpinned
    ready dataset would not make room. Datasets being evicted still occupy the disk until
    their worker deletes them, so they count as used.
    """
    held = list(held)
    used = sum(d.counted for d in held)
    free = capacity - used
    if need <= free:
        return []
    evictable = sorted(
        (d for d in held if d.state == DatasetState.READY and not d.pinned), key=lambda d: d.last_used
    )
    chosen: list[str] = []
    for dataset in evictable:
        chosen.append(dataset.digest)
        free += dataset.frees  # counted low where files are shared: never admits too much
        if need <= free:
            return chosen
    pinned = sum(d.counted for d in held if d.pinned)
    busy = sum(d.counted for d in held if not d.pinned and d.state != DatasetState.READY)
    need_, capacity_, pinned_, busy_, free_ = (
        format_bytes(n, binary=True) for n in (need, capacity, pinned, busy, free)
    )
    raise NoRoomError(
        f"node {node} cannot hold {need_}: capacity {capacity_}, {pinned_} pinned by running jobs, "
        f"{busy_} being written or evicted, {free_} free even after evicting every unpinned dataset"
    )
