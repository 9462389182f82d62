"""Admission to a node's NVMe: does a dataset fit, and what must be evicted to make it fit.

Pure logic, so every rule is tested without a database: a pinned dataset is never evicted,
nor one still being written or already on its way out; the least recently used go first.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from stagegate.errors import StagegateError
from stagegate.states import DatasetState


@dataclass(frozen=True, slots=True)
class CachedDataset:
    digest: str
    bytes: int
    state: str  # writing | ready | evicting | deleting
    pinned: bool
    last_used: datetime


class NoRoomError(StagegateError):
    """The dataset cannot fit on the node even after evicting everything evictable."""


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def choose_evictions(node: str, capacity: int, held: Iterable[CachedDataset], need: int) -> list[str]:
    """The digests to evict, least recently used first, so that ``need`` more bytes fit.

    Raises :class:`NoRoomError` saying what holds the space when even evicting every unpinned
    ready dataset would not make room. Datasets being evicted still occupy the disk until
    their worker deletes them, so they count as used.
    """
    held = list(held)
    used = sum(d.bytes for d in held)
    free = capacity - used
    if need <= free:
        return []
    evictable = sorted(
        (d for d in held if d.state == DatasetState.READY and not d.pinned), key=lambda d: d.last_used
    )
    chosen: list[str] = []
    for dataset in evictable:
        chosen.append(dataset.digest)
        free += dataset.bytes
        if need <= free:
            return chosen
    pinned = sum(d.bytes for d in held if d.pinned)
    busy = sum(d.bytes for d in held if not d.pinned and d.state != DatasetState.READY)
    raise NoRoomError(
        f"node {node} cannot hold {_size(need)}: capacity {_size(capacity)}, "
        f"{_size(pinned)} pinned by running jobs, {_size(busy)} being written or evicted, "
        f"{_size(free)} free even after evicting every unpinned dataset"
    )
