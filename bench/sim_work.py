"""From a real plan to what each node must move, for :func:`bench.sim_model.simulate`.

The plan is the real planner's (``transfer/plan.py``), the shares and batches the real
splitter's (``workers/portions.py``), the requests per object the engine's part rule
(``transfer/parts.py``), and admission the ledger's own rule (``ledger/admission.py``). What
is modelled is only how long the moves take.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from bench.sim_model import NodeWork, tree_hops
from stagegate.ledger import BatchRange, NodePortion
from stagegate.ledger.admission import NoRoomError, choose_evictions
from stagegate.transfer import Plan
from stagegate.transfer.engine import TransferConfig
from stagegate.transfer.parts import S3_PART_RULE, part_size_by_need, split_parts
from stagegate.workers.portions import shard_of, split_plan

MODES = ("replicate", "shard", "fan-out", "fan-out-fixed")
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


def _work(portion: NodePortion, depth: int, **more: object) -> NodeWork:
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
    """Each mode's shares (the real splitter) and each node's work; fan-out is derived from
    replicate's (:func:`fan_out`)."""
    listed = plan.files + len(plan.label_files) + plan.directory_markers
    list_requests = -(-listed // 1000)  # ListObjectsV2 pages of 1,000 keys, on the planning node
    batch_limits = (config.batch_max_bytes, config.batch_max_files)
    counts = gets_by_shard(plan, len(nodes), config)  # one pass; replicate reads them all
    made: dict[str, ModePlan] = {}
    for mode in modes:
        if mode == "shard":
            portions = split_plan(plan, nodes, "shard", *batch_limits)
            works = [
                _work(p, prefix_depth, source_bytes=p.bytes, source_files=p.files, source_gets=g,
                      group=f"share {i}")
                for i, (p, g) in enumerate(zip(portions, counts, strict=True))
            ]
            made[mode] = ModePlan(mode, portions, works, list_requests)
        elif mode in MODES:
            if "replicate" not in made:
                portions = split_plan(plan, nodes, "replicate", *batch_limits)
                works = [
                    _work(p, prefix_depth, source_bytes=p.bytes, source_files=p.files,
                          source_gets=sum(counts), group="share 0")
                    for p in portions
                ]
                made["replicate"] = ModePlan("replicate", portions, works, list_requests)
            if mode != "replicate":
                made[mode] = fan_out(made["replicate"], mode, readers, fanout)
        else:
            raise ValueError(f"unknown mode {mode!r}: one of {', '.join(MODES)}")
    return [made[m] for m in modes]


def fan_out(replicated: ModePlan, mode: str, readers: int, fanout: int) -> ModePlan:
    """Fan-out, from replicate's shares (it splits as replicate does). ``fan-out``: each batch
    is read from the source by ``readers`` nodes, taking turns over all nodes, and copied by
    the others from peers holding it verified; ``fan-out-fixed``: the same ``readers`` nodes
    read every batch. Serving is spread over every node (each holder serves up to ``fanout``
    peers, so a batch travels a tree), each node sending about what it receives."""
    works = replicated.works
    n = len(works)
    readers = max(1, min(readers, n))
    hops = tree_hops(n, readers, fanout)
    out = []
    for i, w in enumerate(works):
        served = w.bytes * (n - readers) // n
        if mode == "fan-out":  # a share of every batch's source reads, the rest from peers
            part = readers / n
            source_bytes, files = round(w.source_bytes * part), round(w.source_files * part)
            out.append(
                replace(
                    w,
                    source_bytes=source_bytes,
                    source_files=files,
                    source_gets=round(w.source_gets * part),
                    peer_bytes=w.source_bytes - source_bytes,
                    peer_files=w.source_files - files,
                    served_bytes=served,
                    hops=hops,
                )
            )
        elif i < readers:
            out.append(replace(w, served_bytes=served))
        else:
            peer = {"peer_bytes": w.source_bytes, "peer_files": w.source_files, "served_bytes": served}
            lead = works[i % readers].node
            none = {"source_bytes": 0, "source_files": 0, "source_gets": 0}
            out.append(replace(w, lead=lead, hops=hops, **none, **peer))
    return ModePlan(mode, replicated.portions, out, replicated.list_requests)
