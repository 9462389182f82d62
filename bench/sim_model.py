"""The pure model behind ``python -m bench.sim``: modelled resources, what each node must move,
and when each node is done, found by max-min fair sharing of every resource (a fluid model).

No I/O and no clock: :mod:`bench.sim` builds the work from the real planner's and splitter's
output, :mod:`bench.sim_calibrate` from a loopback cluster's; both call :func:`simulate`.

How a node's copy is timed: every node moves its bytes (from the source, or from peers) at a
rate; each resource (a node's CPU, NIC, NVMe, its S3 connections, the S3 aggregate, a
prefix's request rate, the fabric, a loopback host's cores) is shared by the nodes using it,
all nodes' rates rising together until one resource is full (progressive filling, the
textbook max-min fair allocation: TCP-fair flows on shared links). When a node finishes, the
rest share again.

Fan-out is modelled as built (``ledger/fanout.py``, ``workers/batch_origins.py``): the source
readers read every batch from the source; every other node (a receiver) copies each batch
from a reader as soon as the batch is verified there, so a receiver's bytes use the reader's
outgoing NIC and the reader's CPU for serving (shared with the reader's own copy and with
its other receivers: no limit on peers served at once), besides its own NIC, NVMe and CPU. A
receiver is never ahead of its reader and ends one batch after it (it can only copy a batch
the reader has verified).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

GIB = 1 << 30
# Serving peers, measured here with `python -m bench.peer_cpu --big 128 --small 4000`
# (2026-12-04 03:10 UTC, quiet, load 1.2-1.9, three runs: 0.23 ms per file each, 0.17-0.21 s
# per GiB): the real peer server's handler in a process of its own serving 16 MiB and 16 KiB
# files over loopback to the copy step, its user + system CPU solved per file and per GiB; on
# kept connections with sendfile (before them, 2026-12-02 at load 5.6: 1.29 ms and 0.78 s).
# The handler's ledger lookup is stubbed there: in a worker each file served also reads the
# batch's task from the ledger (PeerFiles.open).
SERVE_CPU_MS_PER_FILE = 0.23
SERVE_CPU_S_PER_GIB = 0.19


@dataclass(frozen=True, slots=True)
class Resources:
    """The modelled machine. Defaults: a 64-node GPU cluster reading from S3 (see README,
    "The plan for 64 nodes", for where each figure comes from)."""

    # S3 (or any object store): per connection, in all, and requests per second per prefix
    s3_connection_bps: float = 90e6
    s3_aggregate_bps: float | None = 100e9
    prefix_gets_per_s: float = 5500.0
    connections_per_node: int = 16  # the engine's concurrency (transfer/engine.py)
    # each node: NIC (full duplex, each way), NVMe write, cores the copy can use
    nic_bps: float = 25e9
    nvme_write_bps: float = 6e9
    cores_per_node: float = 1.0  # one worker process a node, Celery's solo pool
    fabric_bps: float | None = None  # the peer network's aggregate; None: non-blocking
    # the engine's CPU, measured here on 2026-12-04 03:10-03:15 UTC, quiet: from the source
    # (`python -m bench.datapath --runs 3`: per file the CRT's path for small objects, per
    # GiB boto3's for big ones, medians), from a peer (the copy step reading a PeerSource:
    # `python -m bench.peer_cpu`, the median of three runs: 0.50-0.92 ms, 1.42-2.28 s/GiB)
    cpu_ms_per_file: float = 1.91
    cpu_s_per_gib: float = 1.21
    peer_cpu_ms_per_file: float = 0.68
    peer_cpu_s_per_gib: float = 1.87
    # the peer server (workers/peer_server.py, a thread of the worker's process), per file
    # and per GiB it serves: measured with `python -m bench.peer_cpu` (README, "The plan for
    # 64 nodes")
    serve_cpu_ms_per_file: float = SERVE_CPU_MS_PER_FILE
    serve_cpu_s_per_gib: float = SERVE_CPU_S_PER_GIB
    batch_overhead_s: float = 0.2  # claim, manifest read, syncfs, batch record: per batch, serial
    # a loopback rehearsal: every node's cap (STAGEGATE_BANDWIDTH_LIMIT), the host's cores
    # shared by all nodes and the S3 server, and that server's CPU (one Python process)
    node_cap_bps: float | None = None
    shared_cores: float | None = None
    server_ms_per_get: float = 0.0
    server_s_per_gib: float = 0.0
    server_cores: float = 1.0
    peer_cap_bps: float | None = None  # STAGEGATE_PEER_BANDWIDTH_LIMIT: a node's copies from peers


@dataclass(frozen=True, slots=True)
class NodeWork:
    """What one node moves. ``group``: the nodes reading the same share from the source at the
    same time, so on the same prefix (replicate: all of them); ``prefixes``: how many prefixes
    such a group's batches in flight touch at once; ``lead``: the source reader a fan-out
    receiver copies from (None: it reads the source); ``served_bytes``: what a reader serves
    its receivers (shown, the receivers' demands charge it); ``hops``: batches a receiver
    ends after its lead (1: it copies each batch once the reader verified it)."""

    node: str
    source_bytes: int = 0
    source_files: int = 0
    source_gets: int = 0
    peer_bytes: int = 0
    peer_files: int = 0
    served_bytes: int = 0
    batches: int = 0
    batch_bytes: float = 0.0
    group: str = ""
    prefixes: float = 1.0
    lead: str | None = None
    hops: int = 0

    @property
    def bytes(self) -> int:
        return self.source_bytes + self.peer_bytes


@dataclass(frozen=True, slots=True)
class NodeEta:
    node: str
    seconds: float  # from the first byte moved to the node's last batch verified
    bottleneck: str  # the resource that bound it longest
    source_bytes: int
    source_gets: int


def cpu_seconds(work: NodeWork, r: Resources) -> float:
    """CPU a node's own copy costs: per file and per GiB, from the source and from peers."""
    return (
        work.source_files * r.cpu_ms_per_file / 1e3
        + work.source_bytes / GIB * r.cpu_s_per_gib
        + work.peer_files * r.peer_cpu_ms_per_file / 1e3
        + work.peer_bytes / GIB * r.peer_cpu_s_per_gib
    )


def serve_seconds(work: NodeWork, r: Resources) -> float:
    """CPU the peer a receiver copies from spends serving it its files."""
    return work.peer_files * r.serve_cpu_ms_per_file / 1e3 + work.peer_bytes / GIB * r.serve_cpu_s_per_gib


def server_seconds(work: NodeWork, r: Resources) -> float:
    """CPU the (loopback) S3 server spends on a node's reads."""
    return work.source_gets * r.server_ms_per_get / 1e3 + work.source_bytes / GIB * r.server_s_per_gib


def capped_bytes(moved: int, work: NodeWork, cap_bps: float) -> float:
    """The bytes of ``moved`` that wait for a cap. Each copy batch has a limiter of its own
    (``transfer.throttle.BandwidthLimiter``, made by each batch's engine), which starts with one
    second of burst: the first ``cap_bps`` bytes of every batch pass at once."""
    if not moved or not work.batches:
        return float(moved)
    return max(0.0, moved - work.batches * min(cap_bps, moved / work.batches))


def demands(work: NodeWork, r: Resources) -> dict[str, float]:
    """Each resource a node's copy uses and how much of it the whole copy takes: a receiver's
    also uses its lead's outgoing NIC and the lead's CPU for serving."""
    n = work.node
    need: dict[str, float] = {
        f"nic-in {n}": float(work.bytes),
        f"nvme {n}": float(work.bytes),
    }
    need[f"cpu {n}"] = cpu_seconds(work, r)
    serving = serve_seconds(work, r) if work.lead is not None else 0.0
    if work.lead is not None and work.peer_bytes:
        need[f"nic-out {work.lead}"] = float(work.peer_bytes)
        need[f"cpu {work.lead}"] = serving
    if r.shared_cores is not None:
        need["host cores"] = need[f"cpu {n}"] + serving + server_seconds(work, r)
    if work.source_bytes or work.source_gets:
        need[f"s3 connections {n}"] = float(work.source_bytes)
        need["s3 aggregate"] = float(work.source_bytes)
        need[f"prefix {work.group}"] = float(work.source_gets)
        if r.server_ms_per_get or r.server_s_per_gib:
            need["s3 server cpu"] = server_seconds(work, r)
    if work.peer_bytes:
        need["fabric"] = float(work.peer_bytes)
    if r.node_cap_bps is not None:
        need[f"cap {n}"] = capped_bytes(work.source_bytes, work, r.node_cap_bps)
    if r.peer_cap_bps is not None:
        need[f"peer cap {n}"] = capped_bytes(work.peer_bytes, work, r.peer_cap_bps)
    return {k: v for k, v in need.items() if v > 0}


def capacities(works: Sequence[NodeWork], r: Resources) -> dict[str, float]:
    """What each resource can do per second."""
    caps: dict[str, float] = {"s3 aggregate": r.s3_aggregate_bps or math.inf, "s3 server cpu": r.server_cores}
    caps["fabric"] = r.fabric_bps if r.fabric_bps is not None else len(works) * r.nic_bps
    if r.shared_cores is not None:
        caps["host cores"] = r.shared_cores
    for w in works:
        n = w.node
        caps[f"nic-in {n}"] = caps[f"nic-out {n}"] = r.nic_bps
        caps[f"nvme {n}"] = r.nvme_write_bps
        caps[f"cpu {n}"] = r.cores_per_node
        caps[f"s3 connections {n}"] = r.connections_per_node * r.s3_connection_bps
        caps[f"prefix {w.group}"] = r.prefix_gets_per_s * w.prefixes
        if r.node_cap_bps is not None:
            caps[f"cap {n}"] = r.node_cap_bps
        if r.peer_cap_bps is not None:
            caps[f"peer cap {n}"] = r.peer_cap_bps
    return caps


@dataclass(slots=True)
class _Flow:
    work: NodeWork
    per_byte: dict[str, float]  # resource use per byte moved
    left: float  # bytes still to move
    rate: float = 0.0
    limit: str = ""
    bound: dict[str, float] = field(default_factory=dict)  # seconds spent bound by each resource


def fair_rates(
    flows: Sequence[_Flow], caps: Mapping[str, float], followers: Mapping[str, Sequence[_Flow]] | None = None
) -> None:
    """Max-min fair bytes/s for ``flows`` (progressive filling): every unfrozen flow's rate
    rises alike until a resource is full; the flows using it freeze there. ``followers``: per
    node, the flows that may not be faster than that node's (fan-out receivers caught up with
    their reader), frozen with it."""
    for f in flows:
        f.rate, f.limit = 0.0, ""
    open_ = list(flows)
    used: dict[str, float] = dict.fromkeys(caps, 0.0)

    def freeze(f: _Flow, level: float, limit: str) -> None:
        f.rate, f.limit = level, limit
        open_.remove(f)
        for resource, per in f.per_byte.items():
            used[resource] += per * level
        for g in (followers or {}).get(f.work.node, ()):
            if g in open_:
                freeze(g, level, f"lead {f.work.node}")

    while open_:
        best, best_resource = math.inf, ""
        for resource in {name for f in open_ for name in f.per_byte}:
            users = sum(f.per_byte.get(resource, 0.0) for f in open_)
            if users > 0:
                level = max(0.0, caps[resource] - used[resource]) / users
                if level < best:
                    best, best_resource = level, resource
        if best_resource == "":  # nothing limits: cannot happen while a node has a NIC
            raise ValueError("a flow uses no bounded resource")
        for f in [f for f in open_ if f.per_byte.get(best_resource, 0.0) > 0]:
            if f in open_:
                freeze(f, best, best_resource)


def simulate(works: Sequence[NodeWork], r: Resources) -> list[NodeEta]:
    """Each node's ETA from the moment copying starts, in the order of ``works``."""
    caps = capacities(works, r)
    flows = {}
    for w in works:
        need = demands(w, r)
        flows[w.node] = _Flow(w, {k: v / w.bytes for k, v in need.items()} if w.bytes else {}, float(w.bytes))
    finished: dict[str, float] = {n: 0.0 for n, f in flows.items() if f.left <= 0}
    now = 0.0
    while len(finished) < len(flows):
        active = [f for n, f in flows.items() if n not in finished]
        # a receiver is never ahead of its lead: it copies only what the lead verified
        followers: dict[str, list[_Flow]] = {}
        for f in active:
            lead = flows.get(f.work.lead) if f.work.lead else None
            if lead is not None and lead.work.node not in finished and f.left <= lead.left * (1 + 1e-9):
                followers.setdefault(lead.work.node, []).append(f)
        fair_rates(active, caps, followers)
        step = min(f.left / f.rate for f in active if f.rate > 0)
        now += step
        for f in active:
            f.left -= f.rate * step
            lead = flows.get(f.work.lead) if f.work.lead else None
            if lead is not None and lead.work.node not in finished:
                f.left = max(f.left, lead.left)  # caught up within the step: no further
            f.bound[f.limit] = f.bound.get(f.limit, 0.0) + step
            if f.left <= 1e-6 * max(1.0, f.work.bytes):
                finished[f.work.node] = now
    etas = []
    for w in works:
        f = flows[w.node]
        seconds = finished[w.node] + w.batches * r.batch_overhead_s
        if w.hops:  # the pipeline's tail: the lead's last batch is copied once it is verified
            last = max(finished[w.lead] if w.lead else 0.0, finished[w.node])
            seconds = last + w.hops * w.batch_bytes / max(f.rate, 1.0) + w.batches * r.batch_overhead_s
        bottleneck = max(f.bound, key=lambda k: f.bound[k]) if f.bound else "-"
        if bottleneck.startswith("lead ") and w.lead is not None:  # what held the lead back
            held = flows[w.lead]
            bottleneck += f" ({max(held.bound, key=lambda k: held.bound[k]) if held.bound else '-'})"
        etas.append(NodeEta(w.node, seconds, bottleneck, w.source_bytes, w.source_gets))
    return etas
