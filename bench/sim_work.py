"""From a real plan to what each node must move, for :func:`bench.sim_model.simulate`.

The plan is the real planner's (``transfer/plan.py``), the shares and batches the real
splitter's (``workers/portions.py``), the requests per object the engine's part rule
(``transfer/parts.py``), and admission the ledger's own rule (``ledger/admission.py``). What
is modelled is only how long the moves take.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from bench.sim_model import NodeWork
from stagegate.ledger import BatchRange, NodePortion
from stagegate.ledger.admission import NoRoomError, choose_evictions
from stagegate.ledger.fanout import Peer, least_served_first, source_readers
from stagegate.settings import DEFAULT_FANOUT_PER_HOLDER
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
    prefix_depth: int = 1,
    per_holder: int = DEFAULT_FANOUT_PER_HOLDER,
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
                _work(
                    p,
                    prefix_depth,
                    source_bytes=p.bytes,
                    source_files=p.files,
                    source_gets=g,
                    group=f"share {i}",
                )
                for i, (p, g) in enumerate(zip(portions, counts, strict=True))
            ]
            made[mode] = ModePlan(mode, portions, works, list_requests)
        elif mode in MODES:
            if "replicate" not in made:
                portions = split_plan(plan, nodes, "replicate", *batch_limits)
                works = [
                    _work(
                        p,
                        prefix_depth,
                        source_bytes=p.bytes,
                        source_files=p.files,
                        source_gets=sum(counts),
                        group="share 0",
                    )
                    for p in portions
                ]
                made["replicate"] = ModePlan("replicate", portions, works, list_requests)
            if mode != "replicate":
                made[mode] = fan_out(made["replicate"], readers, per_holder)
        else:
            raise ValueError(f"unknown mode {mode!r}: one of {', '.join(MODES)}")
    return [made[m] for m in modes]


def fan_out(replicated: ModePlan, readers: int = 1, per_holder: int = DEFAULT_FANOUT_PER_HOLDER) -> ModePlan:
    """Fan-out as built, from replicate's shares (it splits as replicate does): the source
    readers are the ledger's own choice (:func:`ledger.fanout.source_readers`: the first
    ``readers`` nodes, ``STAGEGATE_FANOUT_READERS``) and read every batch from the source.
    The others get each batch in rounds, as :func:`ledger.fanout.released` lets them go: the
    first ``per_holder`` per reader copy it from a reader, then as many per node holding it
    from those nodes, and so on (a tree); each receiver copies from the holder it asks first
    (:func:`ledger.fanout.least_served_first` over the holders of its round, by the copies
    each served in the rounds before) and ends as many batches after the readers as its
    round's number (``hops``). The rounds are taken in the request's
    order of nodes, where the ledger takes the order the waiting batches come in."""
    works = replicated.works
    names = [w.node for w in works]
    chosen = source_readers(names, set(names), readers)
    if len(chosen) == len(names):  # fan-out off, or a single node: replicate
        return ModePlan("fan-out", replicated.portions, list(works), replicated.list_requests)
    by_node = {w.node: w for w in works}
    turn_of = {n: i for i, n in enumerate(sorted(names))}  # as the ledger turns: by name
    holders = [n for n in names if n in chosen]
    waiting = [n for n in names if n not in chosen]
    receivers: dict[str, NodeWork] = {}
    served: dict[str, int] = {}  # copies each holder has served, as the ledger counts them
    hops = 0
    while waiting:
        hops += 1
        now, waiting = waiting[: len(holders) * per_holder], waiting[len(holders) * per_holder :]
        peers = [Peer(n, "") for n in holders]
        for node in now:
            w = by_node[node]
            lead = least_served_first(peers, turn_of[node], served)[0].node
            receivers[node] = replace(
                w,
                source_bytes=0,
                source_files=0,
                source_gets=0,
                peer_bytes=w.source_bytes,
                peer_files=w.source_files,
                lead=lead,
                hops=hops,
            )
        for r in (receivers[n] for n in now):  # a round's receivers all ask before any is done
            if r.lead is not None:
                served[r.lead] = served.get(r.lead, 0) + 1
        holders += now
    out = []
    for w in works:
        serves = sum(r.peer_bytes for r in receivers.values() if r.lead == w.node)
        out.append(replace(receivers.get(w.node, w), served_bytes=serves))
    return ModePlan("fan-out", replicated.portions, out, replicated.list_requests)
