"""``python -m bench.sim_calibrate``: the simulator against real loopback clusters.

Each run starts a whole service as :mod:`bench.burst` does (a private redis-server, a fresh
PostgreSQL database, ``stagegate serve``, one ``stagegate worker`` per node) over one moto S3
server, each worker capped with ``STAGEGATE_BANDWIDTH_LIMIT`` (standing in for a slower
link), and times one staging from submit to ready. The prediction for it comes from the
same code as ``python -m bench.sim``: the real planner over the very listing the cluster
reads, the real splitter, and :func:`bench.sim_model.simulate` with the loopback's resources
(every node and the S3 server share this machine's cores), plus the fixed cost of a staging
on that cluster, measured by a one-object staging just before.

A ``fan-out`` case is a replicated staging whose workers serve peers as :mod:`bench.fanout`
sets them up (each its own loopback ``STAGEGATE_PEER_LISTEN``, the credential file,
``STAGEGATE_FANOUT_READERS`` left at 1): the first node reads the source, the others copy each
batch from it once it is verified there. Its batches are ``STAGEGATE_BATCH_MAX_BYTES`` (16 MiB,
as in :mod:`bench.fanout`) so the copy pipelines, and the model is given the same.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx

from bench.burst import (
    Service,
    _database,
    _put_dataset,
    _redis,
    _until_terminal,
    s3_client,
    service_env,
)
from bench.fanout import peer_env
from bench.moto_seeded import Seed
from bench.peer_cpu import _cpu_of
from bench.s3server import BUCKET, CREDENTIALS, S3Server
from bench.sim_model import GIB, Resources, simulate
from bench.sim_work import plan_modes
from stagegate.sizes import format_bytes, parse_size
from stagegate.transfer.engine import TransferConfig
from stagegate.transfer.plan import plan_dataset
from stagegate.transfer.sources import open_source

CONCURRENCY = 4  # bench.burst's workers run with --concurrency 4
DATASETS = {"big": (40, 4 << 20), "small": (1500, 64 << 10), "warm": (1, 4096), "tiny": (1, 4096)}


@dataclass(frozen=True, slots=True)
class Case:
    dataset: str
    mode: str
    nodes: int
    cap: str | None  # STAGEGATE_BANDWIDTH_LIMIT of every worker (a copy from the source)
    batch_bytes: int | None = None  # STAGEGATE_BATCH_MAX_BYTES (None: the default, 1 GiB)

    @property
    def name(self) -> str:
        batches = f" {format_bytes(self.batch_bytes)} batches" if self.batch_bytes else ""
        return f"{self.dataset} {self.mode} x{self.nodes} {self.cap or 'uncapped'}{batches}"

    @property
    def staged_as(self) -> str:
        """The mode the staging is submitted with: fan-out is a replicated staging whose
        workers serve peers."""
        return "replicate" if self.mode == "fan-out" else self.mode


CASES = (
    Case("big", "replicate", 3, "4MiB"),
    Case("big", "shard", 4, "2MiB"),
    Case("small", "replicate", 3, "4MiB"),
    Case("small", "shard", 3, "1MiB"),
    Case("big", "replicate", 4, None),
    Case("big", "fan-out", 3, "4MiB", 16 << 20),
    Case("big", "fan-out", 4, None, 16 << 20),
    Case("small", "fan-out", 4, "4MiB", 16 << 20),
    # replicate with fan-out's small batches, no peers: tells the per-batch cost from fan-out's
    Case("big", "replicate", 4, None, 16 << 20),
)

# This machine as the model sees it (bench/RESULTS.md, 2026-12-01 data-path table): the
# engine's CPU per file and per GiB on the CRT path (whole objects up to 8 MiB); two cores
# shared by every node and the server; loopback has no NIC limit. moto's CPU per GET and per
# GiB are measured by each run (ServerProbe).
# A copy from a peer (the copy step reading a PeerSource) and serving one (the peer server's
# handler) are Resources' defaults, measured on this machine with `python -m bench.peer_cpu`
# (2026-12-02 12:58 UTC, load 5.6: 128 x 16 MiB and 4,000 x 16 KiB, solved per file and GiB).
LOOPBACK = Resources(
    s3_connection_bps=math.inf,
    s3_aggregate_bps=None,
    prefix_gets_per_s=math.inf,
    connections_per_node=CONCURRENCY,
    nic_bps=1e12,
    nvme_write_bps=1e12,
    cpu_ms_per_file=1.86,
    cpu_s_per_gib=3.59,
    shared_cores=2.0,
)


PROBE_KEY = "cal-probe/big.bin"
PROBE_BYTES = 4 << 20  # the size of the big datasets' objects


@dataclass(frozen=True, slots=True)
class ServerProbe:
    """The S3 server (one Python process) as it runs now, read from its own CPU counters while
    four threads of GETs keep it busy: its CPU per GET (of tiny objects) and per GiB (of 4 MiB
    ones, less their GETs), and the share of a core it got. The machine's speed drifts by
    more than the model's error allows within an hour (bench/RESULTS.md), so each run measures
    what the server costs then instead of a figure measured on another day. The share is what
    it, and each node's worker (one process, its GIL), can have while other work loads the
    cores; capped at one core."""

    ms_per_get: float
    s_per_gib: float
    share: float


def _gets(s3: Any, key: str, seconds: float) -> tuple[int, float]:
    """GETs of ``key`` by four threads for ``seconds``: how many, and the wall time taken."""
    s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    deadline = time.perf_counter() + seconds

    def reads() -> int:
        n = 0
        while time.perf_counter() < deadline:
            s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
            n += 1
        return n

    started = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        gets = sum(pool.map(lambda _: reads(), range(4)))
    return gets, time.perf_counter() - started


def probe_server(server: S3Server, seconds: float = 2.0) -> ServerProbe:
    """:class:`ServerProbe` of ``server`` now: ``seconds`` of tiny GETs, then of 4 MiB ones."""
    s3 = s3_client(server.url)
    s3.put_object(Bucket=BUCKET, Key=PROBE_KEY, Body=os.urandom(PROBE_BYTES))
    before = server.cpu_seconds()
    tiny, tiny_s = _gets(s3, f"cal-tiny/f/{0:07d}.bin", seconds)
    middle = server.cpu_seconds()
    big, big_s = _gets(s3, PROBE_KEY, seconds)
    tiny_cpu, big_cpu = middle - before, server.cpu_seconds() - middle
    # A server too slow to answer one GET in the window counts as one: never a division by 0.
    ms_per_get = tiny_cpu / max(tiny, 1) * 1e3
    s_per_gib = max(0.0, big_cpu - big * ms_per_get / 1e3) / (max(big, 1) * PROBE_BYTES / GIB)
    return ServerProbe(ms_per_get, s_per_gib, min(1.0, max(tiny_cpu / tiny_s, big_cpu / big_s)))


def predict(case: Case, s3_url: str, fixed_s: float, server: ServerProbe) -> dict[str, Any]:
    """The model's wall time for ``case``: the fixed cost measured on the cluster, the real
    planner over the real listing (timed here), and the modelled copy with the S3 server as
    probed."""
    nodes = [f"n{i}" for i in range(case.nodes)]
    cap = parse_size(case.cap) if case.cap else None
    config = TransferConfig(concurrency=CONCURRENCY, bandwidth_limit=cap)
    if case.batch_bytes:
        config = replace(config, batch_max_bytes=case.batch_bytes)
    os.environ.update({**CREDENTIALS, "AWS_ENDPOINT_URL": s3_url})
    source = open_source(f"s3://{BUCKET}/cal-{case.dataset}")
    with tempfile.TemporaryDirectory(prefix="stagegate-cal-") as scratch:
        started = time.perf_counter()
        plan = plan_dataset(source, Path(scratch) / "plan.jsonl", ".classification")
        plan_s = time.perf_counter() - started
        (mode_plan,) = plan_modes(plan, nodes, [case.mode], config)
    resources = replace(
        LOOPBACK,
        node_cap_bps=cap,
        cores_per_node=server.share,
        server_cores=server.share,
        server_ms_per_get=server.ms_per_get,
        server_s_per_gib=server.s_per_gib,
    )
    etas = simulate(mode_plan.works, resources)
    last = max(etas, key=lambda e: e.seconds)
    return {
        "fixed_s": fixed_s,
        "cpu_share": server.share,
        "server_ms_per_get": round(server.ms_per_get, 3),
        "server_s_per_gib": round(server.s_per_gib, 3),
        "plan_s": plan_s,
        "copy_s": last.seconds,
        "binds": last.bottleneck,
        "predicted_s": fixed_s + plan_s + max(e.seconds for e in etas),
    }


def _stage(http: httpx.Client, source: str, nodes: list[str], mode: str, timeout: float) -> float:
    started = time.perf_counter()
    response = http.post("/v1/stagings", json={"source": source, "nodes": nodes, "mode": mode})
    response.raise_for_status()
    staging = str(response.json()["id"])
    state = _until_terminal(http, [staging], timeout).get(staging)
    if state != "ready":
        raise RuntimeError(f"staging of {source} ended {state}")
    return time.perf_counter() - started


def measure(case: Case, server: S3Server, timeout: float, keep: Path | None = None) -> dict[str, Any]:
    """One fresh cluster: two one-object stagings (warm-up, then the fixed cost), the S3
    server probed, then the case's staging."""
    s3_url = server.url
    nodes = tuple(f"n{i}" for i in range(case.nodes))
    with tempfile.TemporaryDirectory(prefix="sg-cal-") as tmp, _database() as db, _redis(Path(tmp)) as broker:
        env = service_env(Path(tmp), db, broker, s3_url)
        if case.cap:
            env["STAGEGATE_BANDWIDTH_LIMIT"] = case.cap
        if case.batch_bytes:
            env["STAGEGATE_BATCH_MAX_BYTES"] = str(case.batch_bytes)
        nodes_env = peer_env(Path(tmp), None, nodes) if case.mode == "fan-out" else None
        service = Service(None, Path(tmp), env)
        try:
            service.start(nodes, nodes_env)
            token = service.token("calibrate")
            headers = {"Authorization": f"Bearer {token}"}
            with httpx.Client(base_url=service.url, headers=headers, timeout=120) as http:
                # The first staging of a fresh cluster pays its warm-up (connections, imports):
                # a second, of another one-object dataset, is the fixed cost of a staging.
                mode = case.staged_as
                _stage(http, f"s3://{BUCKET}/cal-warm", list(nodes), mode, timeout)
                fixed = _stage(http, f"s3://{BUCKET}/cal-tiny", list(nodes), mode, timeout)
                # The workers' CPU while idle (heartbeats, the background threads), measured
                # across the server's probe, to tell it from what the staging costs them.
                workers = service.processes[: len(nodes)]  # started first, in the order of nodes
                idle0, idle_t = [_cpu_of(p.pid) for p in workers], time.perf_counter()
                load, probe = os.getloadavg()[0], probe_server(server)
                idle_s = time.perf_counter() - idle_t
                before = [_cpu_of(p.pid) for p in workers]
                idle = {n: round((b - a) / idle_s, 3) for n, a, b in zip(nodes, idle0, before, strict=True)}
                wall = _stage(http, f"s3://{BUCKET}/cal-{case.dataset}", list(nodes), mode, timeout)
                cpu = {
                    n: round(_cpu_of(p.pid) - b, 2) for n, p, b in zip(nodes, workers, before, strict=True)
                }
        finally:
            service.stop()
        if keep is not None:  # the service's and workers' logs, to see why a prediction missed
            keep.mkdir(parents=True, exist_ok=True)
            for log in Path(tmp).glob("*.log"):
                (keep / log.name).write_bytes(log.read_bytes())
    return {
        "fixed_s": fixed,
        "wall_s": wall,
        "load": load,
        "server": probe,
        "worker_cpu_s": cpu,
        "worker_idle_cores": idle,
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| case | bytes a node | runs | measured wall s (median; each) | load avg | core share "
        "| predicted s "
        "(fixed + plan + copy) | binds | error |",
        "|---|--:|--:|---|--:|--:|---|---|--:|",
    ]
    for r in rows:
        each = ", ".join(f"{w:.1f}" for w in r["walls"])
        p = r["prediction"]
        lines.append(
            f"| {r['case']} | {r['node_bytes']} | {len(r['walls'])} | {r['measured_s']:.1f} ({each}) "
            f"| {r['load']:.0f} | {p['cpu_share']:.2f} | {p['predicted_s']:.1f} ({p['fixed_s']:.1f} + "
            f"{p['plan_s']:.1f} + {p['copy_s']:.1f}) | {p['binds']} | {r['error']:+.0%} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    description = __doc__.splitlines()[0]
    parser = argparse.ArgumentParser(prog="python -m bench.sim_calibrate", description=description)
    parser.add_argument("--runs", type=int, default=2, help="runs of each case (the median is taken)")
    parser.add_argument("--cases", default="all", help="comma-separated case numbers (1-based), or all")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--out", type=Path, default=None, help="append each case's result as a JSON line")
    parser.add_argument(
        "--logs", type=Path, default=None, help="keep each run's service and worker logs here"
    )
    args = parser.parse_args(argv)
    chosen = CASES if args.cases == "all" else tuple(CASES[int(i) - 1] for i in args.cases.split(","))
    rows = []
    with tempfile.TemporaryDirectory(prefix="sg-cal-s3-") as tmp, S3Server(Path(tmp) / "moto.log") as server:
        s3 = s3_client(server.url)
        for name, (objects, size) in DATASETS.items():
            _put_dataset(s3, Seed(f"cal-{name}", objects, size))
        for case in chosen:
            runs = [
                measure(
                    case,
                    server,
                    args.timeout,
                    args.logs / f"case{CASES.index(case) + 1}-run{i}" if args.logs else None,
                )
                for i in range(args.runs)
            ]
            walls = [r["wall_s"] for r in runs]
            fixed = statistics.median(r["fixed_s"] for r in runs)
            probes = [r["server"] for r in runs]
            probe = ServerProbe(
                statistics.median(p.ms_per_get for p in probes),
                statistics.median(p.s_per_gib for p in probes),
                statistics.median(p.share for p in probes),
            )
            prediction = predict(case, server.url, fixed, probe)
            measured = statistics.median(walls)
            objects, size = DATASETS[case.dataset]
            share = objects * size // (case.nodes if case.mode == "shard" else 1)
            row = {
                "case": case.name,
                "worker_cpu_s": [r["worker_cpu_s"] for r in runs],
                "worker_idle_cores": [r["worker_idle_cores"] for r in runs],
                "node_bytes": format_bytes(share),
                "walls": walls,
                "measured_s": measured,
                "load": statistics.median(r["load"] for r in runs),
                "prediction": prediction,
                "error": prediction["predicted_s"] / measured - 1,
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.out:
                with args.out.open("a") as out:
                    out.write(json.dumps(row) + "\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
