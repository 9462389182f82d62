"""How a plan is split across nodes: whole on each (replicate) or evenly by bytes (shard),
and each node's share into copy batches.

Shards are contiguous key ranges, cut where the running byte count crosses each node's
share, so the split streams over the plan (millions of entries, constant memory), keeps
directories together, and is the same for the same plan every time. Each node's share is
named by its own manifest digest: that is the key of the node's cache.
"""

import heapq
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from stagegate.ledger import BatchRange, NodePortion
from stagegate.transfer import Plan, SourceObject
from stagegate.transfer.manifest import ManifestDigest


@dataclass(slots=True)
class _Share:
    node: str
    digest: ManifestDigest = field(default_factory=ManifestDigest)
    files: int = 0
    bytes: int = 0
    batches: list[BatchRange] = field(default_factory=list)
    batch: list[SourceObject] = field(default_factory=list)
    batch_bytes: int = 0


def shard_of(position: int, size: int, total: int, shares: int) -> int:
    """The share an entry belongs to: by the midpoint of its bytes in the running total, so a
    big file goes to the share holding most of it."""
    if total <= 0:
        return 0
    return min(shares - 1, (2 * position + size) * shares // (2 * total))


def _close_batch(share: _Share) -> None:
    if share.batch:
        batch = share.batch
        share.batches.append(BatchRange(batch[0].key, batch[-1].key, len(batch), share.batch_bytes))
        share.batch, share.batch_bytes = [], 0


def _with_label_files(plan: Plan, entries: Iterator[SourceObject]) -> Iterator[tuple[SourceObject, bool]]:
    """The plan's entries and its label files, merged in key order; True marks a label file.
    Label files are part of every share's digest: they decide how the data is classified."""
    labels = sorted((f.object for f in plan.label_files.values()), key=lambda o: o.key)
    return heapq.merge(((o, True) for o in labels), ((o, False) for o in entries), key=lambda p: p[0].key)


def split_plan(
    plan: Plan, nodes: Sequence[str], mode: str, batch_max_bytes: int, batch_max_files: int
) -> list[NodePortion]:
    replicate = mode == "replicate"
    shares = [_Share(node) for node in ([nodes[0]] if replicate else nodes)]
    position = 0
    for obj, is_label_file in _with_label_files(plan, plan.entries()):
        if is_label_file:
            for share in shares:
                share.digest.add(obj)
            continue
        share = shares[0] if replicate else shares[shard_of(position, obj.size, plan.bytes, len(shares))]
        position += obj.size
        share.digest.add(obj)
        if share.batch and (
            len(share.batch) >= batch_max_files or share.batch_bytes + obj.size > batch_max_bytes
        ):
            _close_batch(share)
        share.batch.append(obj)
        share.batch_bytes += obj.size
        share.files += 1
        share.bytes += obj.size
    for share in shares:
        _close_batch(share)
    if replicate:
        only = shares[0]
        return [NodePortion(n, only.digest.hexdigest(), only.files, only.bytes, only.batches) for n in nodes]
    return [NodePortion(s.node, s.digest.hexdigest(), s.files, s.bytes, s.batches) for s in shares]
