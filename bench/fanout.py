"""``python -m bench.fanout``: replicate with peer fan-out against replicate without, the
source capped below the fabric.

Each run starts a whole service on loopback as :mod:`bench.burst` does (a private
redis-server, a fresh PostgreSQL database, ``stagegate serve``, one ``stagegate worker`` per
node) over one moto S3 server, every worker's reads of the source capped with
``STAGEGATE_BANDWIDTH_LIMIT`` (``--source-cap``; the cap is per copy batch, and a node runs
two batches at once). Two variants, alternated run by run:

- ``replicate``: today's replicate, no worker serves peers, so every node reads the source;
- ``fanout``: every worker serves peers on its own loopback port (``STAGEGATE_PEER_LISTEN``,
  a credential file), copies from peers capped by ``--fabric-cap`` (none: loopback), and one
  node per batch reads the source (``STAGEGATE_FANOUT_READERS``, 1).

Each run stages a one-object dataset first (connections, imports: the warm-up), then the
dataset, and reports the wall time from submit to ready, the GETs of the dataset's objects
the S3 server answered (counted in its request log), where each node's bytes came from
(``stage.completed``'s ``copied_from``), and the tail: how long after the source readers'
last batch was done the last node's last batch was.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from bench.burst import (
    Service,
    _free_port,
    _put_dataset,
    _submit,
    _until_terminal,
    loopback_cluster,
    s3_client,
)
from bench.moto_seeded import Seed
from bench.s3server import BUCKET, S3Server
from stagegate.ledger import AuditTrail, open_ledger
from stagegate.ledger.fanout import SOURCE
from stagegate.ledger.models import TaskRow
from stagegate.sizes import parse_size

NODES = ("a", "b", "c")
VARIANTS = ("replicate", "fanout")
WARM = "fan-warm"
SECRET = "bench-peer-credential-0123456789abcdef"


def object_gets(log: str, prefix: str) -> int:
    """GETs of ``prefix``'s objects (its label file aside) in a moto request log."""
    pattern = re.compile(rf'"GET /{BUCKET}/{re.escape(prefix)}/f/\S* HTTP')
    return sum(1 for line in log.splitlines() if pattern.search(line))


def peer_env(
    workdir: Path, fabric_cap: str | None, nodes: tuple[str, ...] = NODES
) -> dict[str, dict[str, str]]:
    """Each node's own settings for serving peers: a loopback port and the credential file."""
    secret = workdir / "peer-secret"
    secret.write_text(SECRET + "\n")
    secret.chmod(0o600)
    envs = {}
    for node in nodes:
        env = {
            "STAGEGATE_PEER_LISTEN": f"127.0.0.1:{_free_port()}",
            "STAGEGATE_PEER_SECRET_FILE": str(secret),
        }
        if fabric_cap:
            env["STAGEGATE_PEER_BANDWIDTH_LIMIT"] = fabric_cap
        envs[node] = env
    return envs


def ledger_facts(db: str, staging: str) -> dict[str, Any]:
    """``copied_from`` of the staging's ``stage.completed``, and the tail of its copy batches:
    seconds from the source readers' last batch done to the last batch done on any node."""
    ledger = open_ledger(db)
    try:
        (completed,) = [
            e.details for e in AuditTrail(ledger).query(job=staging) if e.action == "stage.completed"
        ]
        with ledger.read_session() as session, session.begin():
            batches = session.execute(
                select(TaskRow.origin, TaskRow.updated_at).where(
                    TaskRow.job_id == staging, TaskRow.kind == "copy"
                )
            ).all()
    finally:
        ledger.close()
    from_source = [at for origin, at in batches if origin in (None, SOURCE)]
    tail = (max(at for _, at in batches) - max(from_source)).total_seconds()
    return {"copied_from": completed.get("copied_from"), "tail_s": round(tail, 2), "batches": len(batches)}


def run(variant: str, args: argparse.Namespace, s3_url: str, s3_log: Path) -> dict[str, Any]:
    """One fresh cluster of ``NODES``, the warm-up staging, then the dataset's."""
    with loopback_cluster(f"fan-{variant}", s3_url) as (workdir, db, env):
        env["STAGEGATE_BANDWIDTH_LIMIT"] = source_cap(variant, args)
        env["STAGEGATE_BATCH_MAX_BYTES"] = str(args.batch_bytes)
        nodes_env = peer_env(workdir, args.fabric_cap) if variant == "fanout" else {}
        service = Service(None, workdir, env)
        try:
            service.start(NODES, nodes_env, timeout=args.timeout)
            token = service.token("fanout")
            headers = {"Authorization": f"Bearer {token}"}
            with httpx.Client(base_url=service.url, headers=headers, timeout=120) as http:
                staged(http, f"s3://{BUCKET}/{WARM}", args.timeout)
                before = s3_log.stat().st_size
                load = os.getloadavg()
                staging, wall = staged(http, f"s3://{BUCKET}/{args.prefix}", args.timeout)
                with s3_log.open("rb") as log:
                    log.seek(before)
                    requests = log.read().decode(errors="replace")
            facts = ledger_facts(db, staging)
        finally:
            service.stop()
    return {
        "variant": variant,
        "wall_s": round(wall, 2),
        "gets": object_gets(requests, args.prefix),
        "objects": args.objects,
        "load_1m": round(load[0], 1),
        "source_cap": source_cap(variant, args),
        **facts,
    }


def source_cap(variant: str, args: argparse.Namespace) -> str:
    """Each worker's cap on reading the source. Per node by default (every node's own path to
    the source is that slow: the hardest case for fan-out); with ``--source-split`` the cap is
    the source's own, shared by the nodes that read it: each of the three in ``replicate``
    gets a third, fan-out's one reader all of it."""
    if not args.source_split or variant == "fanout":
        return str(args.source_cap)
    return str(parse_size(args.source_cap) // len(NODES))


def staged(http: httpx.Client, source: str, timeout: float) -> tuple[str, float]:
    """The id of a staging of ``source`` on every node, and its seconds from submit to ready."""
    started = time.perf_counter()
    _, staging = _submit(http, source, list(NODES))
    state = _until_terminal(http, [staging], timeout).get(staging)
    if state != "ready":
        raise RuntimeError(f"staging of {source} ended {state}")
    return staging, time.perf_counter() - started


def summary(results: list[dict[str, Any]]) -> str:
    lines = [
        "| variant | runs | wall s median (min-max) | each | GETs / objects | load 1m (each) |",
        "|---|--:|---|---|--:|---|",
    ]
    medians = {}
    for variant in VARIANTS:
        rs = [r for r in results if r["variant"] == variant]
        if not rs:
            continue
        walls = [r["wall_s"] for r in rs]
        medians[variant] = statistics.median(walls)
        gets = statistics.median(r["gets"] / r["objects"] for r in rs)
        lines.append(
            f"| {variant} | {len(rs)} | {medians[variant]:.1f} ({min(walls):.1f}-{max(walls):.1f}) "
            f"| {', '.join(f'{w:.1f}' for w in walls)} | {gets:.2f}x "
            f"| {', '.join(str(r['load_1m']) for r in rs)} |"
        )
    if len(medians) == 2:
        lines.append("")
        lines.append(
            f"fan-out / replicate wall time (medians): {medians['fanout'] / medians['replicate']:.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fanout", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each variant, alternated")
    parser.add_argument("--objects", type=int, default=48)
    parser.add_argument("--size", default="4MiB", help="bytes of each object")
    parser.add_argument("--source-cap", default="4MiB", help="STAGEGATE_BANDWIDTH_LIMIT of every worker")
    parser.add_argument(
        "--source-split",
        action="store_true",
        help="--source-cap is the source's total, split among the nodes that read it",
    )
    parser.add_argument("--fabric-cap", default=None, help="STAGEGATE_PEER_BANDWIDTH_LIMIT (none: loopback)")
    parser.add_argument("--batch-bytes", type=int, default=16 << 20, help="STAGEGATE_BATCH_MAX_BYTES")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--out", type=Path, default=None, help="append each run as a JSON line")
    args = parser.parse_args(argv)
    args.prefix = f"fan-{args.objects}x{args.size}"
    results = []
    with (
        tempfile.TemporaryDirectory(prefix="sg-fan-s3-") as tmp,
        S3Server(s3_log := Path(tmp) / "moto.log") as server,
    ):
        s3 = s3_client(server.url)
        _put_dataset(s3, Seed(WARM, 1, 4096))
        _put_dataset(s3, Seed(args.prefix, args.objects, parse_size(args.size)))
        for i in range(args.runs):
            order = VARIANTS if i % 2 == 0 else VARIANTS[::-1]
            for variant in order:
                result = run(variant, args, server.url, s3_log)
                result["round"] = i
                print(json.dumps(result, sort_keys=True), flush=True)
                results.append(result)
                if args.out:
                    with args.out.open("a") as out:
                        out.write(json.dumps(result, sort_keys=True) + "\n")
    print(summary(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
