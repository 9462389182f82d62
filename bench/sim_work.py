"""From a real plan to what each node must move, for :func:`bench.sim_model.simulate`.

The plan is the real planner's (``transfer/plan.py``), the shares and batches the real
splitter's (``workers/portions.py``), the requests per object the engine's part rule
(``transfer/parts.py``), and admission the ledger's own rule (``ledger/admission.py``). What
is modelled is only how long the moves take.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bench.sim_model import NodeWork, tree_hops
from stagegate.ledger import BatchRange, NodePortion
from stagegate.ledger.admission import NoRoomError, choose_evictions
from stagegate.transfer import Plan
from stagegate.transfer.engine import TransferConfig
from stagegate.transfer.parts import S3_PART_RULE, part_size_by_need, split_parts
from stagegate.workers.portions import shard_of, split_plan

MODES = ("replicate", "shard", "fan-out")
WINDOW = 2  # copy batches of one staging queued or running on a node (ledger/tasks.py WINDOW)


def gets_of(size: int, config: TransferConfig) -> int:
    """GET requests the engine sends for one object: one, or one per ranged part of an object
    above the multipart threshold (split as for a single big object in flight: the most)."""
    if size <= config.multipart_threshold:
        return 1
    part = part_size_by_need(size, 1, config.concurrency, S3_PART_RULE, config.part_size)
    return len(split_parts(size, part))


def gets_by_shard(plan: Plan, shares: int, config: TransferConfig) -> list[int]:
    """GETs of each of ``shares`` shards (cut as the splitter cuts them), in one pass over the
    plan's spill file; ``shares=1`` gives the whole plan's."""
    counts = [0] * shares
    position = 0
    for obj in plan.entries():
        counts[shard_of(position, obj.size, plan.bytes, shares)] += gets_of(obj.size, config)
        position += obj.size
    return counts


def prefix_of(key: str, depth: int) -> str:
    return "/".join(key.split("/")[:depth])


def prefixes_in_flight(batches: Sequence[BatchRange], depth: int) -> float:
    """How many prefixes a node's batches in flight touch at once, averaged over its share: the
    requests of one node (or of nodes reading the same batches in step) spread over these."""
    if not batches:
        return 1.0
    total = 0
    for i in range(len(batches)):
        window = batches[i : i + WINDOW]
        total += len({prefix_of(k, depth) for b in window for k in (b.key_from, b.key_to)})
    return total / len(batches)


def admission(portion: NodePortion, capacity: int) -> str:
    """'fits', or the ledger's own refusal, for a node holding nothing else."""
    try:
        choose_evictions(portion.node, capacity, [], portion.bytes)
    except NoRoomError as exc:
        return f"refused: {exc}"
    return "fits"


@dataclass(frozen=True, slots=True)
class ModePlan:
    mode: str
    portions: list[NodePortion]
    works: list[NodeWork]
    list_requests: int


def _work(portion: NodePortion, gets: int, depth: int, **more: object) -> NodeWork:
    batches = len(portion.batches)
    return NodeWork(
        node=portion.node,
        batches=batches,
        batch_bytes=portion.bytes / max(1, batches),
        prefixes=prefixes_in_flight(portion.batches, depth),
        **more,  # type: ignore[arg-type]
    )


def plan_modes(
    plan: Plan,
    nodes: Sequence[str],
    modes: Sequence[str],
    config: TransferConfig,
    readers: int = 1,
    fanout: int = 4,
    prefix_depth: int = 1,
) -> list[ModePlan]:
    """Each mode's shares (the real splitter) and each node's work. Fan-out splits as
    replicate does; ``readers`` nodes read the source, the rest copy from peers."""
    listed = plan.files + len(plan.label_files) + plan.directory_markers
    list_requests = -(-listed // 1000)  # ListObjectsV2 pages of 1,000 keys, on the planning node
    batch_limits = (config.batch_max_bytes, config.batch_max_files)
    out = []
    replicated: list[NodePortion] | None = None
    counts = gets_by_shard(plan, len(nodes), config)  # one pass; replicate reads them all
    for mode in modes:
        if mode in ("replicate", "fan-out"):
            if replicated is None:
                replicated = split_plan(plan, nodes, "replicate", *batch_limits)
            portions, gets = replicated, sum(counts)
            if mode == "replicate":
                works = [
                    _work(p, gets, prefix_depth, source_bytes=p.bytes, source_files=p.files,
                          source_gets=gets, group="share 0")
                    for p in portions
                ]
            else:
                works = fan_out_works(portions, gets, readers, fanout, prefix_depth)
        elif mode == "shard":
            portions = split_plan(plan, nodes, "shard", *batch_limits)
            works = [
                _work(p, g, prefix_depth, source_bytes=p.bytes, source_files=p.files, source_gets=g,
                      group=f"share {i}")
                for i, (p, g) in enumerate(zip(portions, counts, strict=True))
            ]
        else:
            raise ValueError(f"unknown mode {mode!r}: one of {', '.join(MODES)}")
        out.append(ModePlan(mode, portions, works, list_requests))
    return out


def fan_out_works(
    portions: Sequence[NodePortion], gets: int, readers: int, fanout: int, prefix_depth: int
) -> list[NodeWork]:
    """The issue's fan-out: ``readers`` nodes read every batch from the source, the others copy
    it from peers that hold it verified. Serving is spread over every node (each holder serves
    up to ``fanout`` peers, so the batch travels a tree), each node sending about as much as
    it receives."""
    n = len(portions)
    readers = max(1, min(readers, n))
    receivers = n - readers
    hops = tree_hops(n, readers, fanout)
    works = []
    for i, p in enumerate(portions):
        served = p.bytes * receivers // n
        if i < readers:
            more = {"source_bytes": p.bytes, "source_files": p.files, "source_gets": gets}
        else:
            lead = portions[i % readers].node
            more = {"peer_bytes": p.bytes, "peer_files": p.files, "lead": lead, "hops": hops}
        works.append(_work(p, gets, prefix_depth, served_bytes=served, group="share 0", **more))
    return works
