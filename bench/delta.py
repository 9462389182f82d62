"""Delta staging: version 2 of a dataset sharing most files with a cached version 1:
``python -m bench.delta``.

A whole service on loopback (as :mod:`bench.burst` runs it: private redis-server, a fresh
PostgreSQL database, moto's S3 server, ``stagegate serve``, one ``stagegate worker``), one
node. Stages v1 (``--files`` objects of ``--size`` bytes), then v2 (the same keys under another
prefix, ``--changed`` of them with new bytes), each from submit to ready; the S3 server's
request log says which objects were read (GetObject; HEAD and tag requests apart).
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from bench.burst import Service, _database, _redis, _submit, _until_terminal, s3_client
from bench.s3server import BUCKET, CREDENTIALS, S3Server

# werkzeug's request line: "GET /bench/dv2/f/0000001.bin HTTP/1.1" (a query string after '?').
_REQUEST = re.compile(r'"(GET|HEAD) (/[^ ?"]*)(\?[^ "]*)? HTTP')


def _put(s3: Any, prefix: str, files: int, size: int, changed: set[int], seed: bytes) -> str:
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/.classification", Body=b"public\n")

    def put(i: int) -> None:
        # The same bytes for a key in both versions, unless it changed: the same ETag.
        body = (seed if i in changed else b"") + i.to_bytes(8, "big")
        data = (body * (size // len(body) + 1))[:size]
        s3.put_object(Bucket=BUCKET, Key=f"{prefix}/f/{i:07d}.bin", Body=data)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, range(files)))
    return f"s3://{BUCKET}/{prefix}"


def _requests(log: Path, prefix: str) -> collections.Counter[str]:
    """Requests of the server's log for data objects under ``prefix``, by kind."""
    seen: collections.Counter[str] = collections.Counter()
    for m in _REQUEST.finditer(log.read_text(errors="replace")):
        method, path, query = m.group(1), m.group(2), m.group(3) or ""
        if not path.startswith(f"/{BUCKET}/{prefix}/f/"):
            continue
        seen["tagging" if "tagging" in query else method] += 1
    return seen


def _worker_log(workdir: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in sorted(workdir.glob("worker-*.log")))


def _steps(log: str) -> list[tuple[str, float]]:
    """Each task the worker ran, and its seconds, in order."""
    found = re.finditer(r"Task stagegate\.(\w+)\[[^]]*\] succeeded in ([0-9.]+)s", log)
    return [(m.group(1), round(float(m.group(2)), 2)) for m in found]


def _stage(http: httpx.Client, source: str, timeout: float) -> float:
    started = time.perf_counter()
    _, staging = _submit(http, source, ["a"])
    states = _until_terminal(http, [staging], timeout)
    if states != {staging: "ready"}:
        raise RuntimeError(f"staging of {source} ended {states}")
    return time.perf_counter() - started


def run(args: argparse.Namespace) -> dict[str, Any]:
    changed = set(range(0, args.files, max(1, args.files // max(1, args.changed))))
    changed = set(sorted(changed)[: args.changed])
    with (
        tempfile.TemporaryDirectory(prefix="sg-delta-") as tmp,
        S3Server(Path(tmp) / "moto.log") as server,
        _database() as db,
        _redis(Path(tmp)) as broker,
    ):
        s3 = s3_client(server.url)
        v1 = _put(s3, "dv1", args.files, args.size, set(), b"")
        v2 = _put(s3, "dv2", args.files, args.size, changed, b"v2")
        workdir = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("STAGEGATE_")}
        env.update(CREDENTIALS)
        env.update(
            {
                "AWS_ENDPOINT_URL": server.url,
                "STAGEGATE_DATABASE_URL": db,
                "STAGEGATE_BROKER_URL": broker,
                "STAGEGATE_HOME": str(workdir / "home"),
                "PYTHONUNBUFFERED": "1",
            }
        )
        if args.bandwidth:
            env["STAGEGATE_BANDWIDTH_LIMIT"] = args.bandwidth  # the source's link, slower than the disk
        service = Service(None, workdir, env)
        try:
            service.start(("a",))
            token = service.token("bench")
            with httpx.Client(
                base_url=service.url, headers={"Authorization": f"Bearer {token}"}, timeout=120
            ) as http:
                v1_seconds = _stage(http, v1, args.timeout)
                v1_log_end = len(_worker_log(workdir))
                v2_seconds = _stage(http, v2, args.timeout)
        finally:
            service.stop()
        log = Path(tmp) / "moto.log"
        if args.logs is not None:
            args.logs.mkdir(parents=True, exist_ok=True)
            for f in [log, *workdir.glob("*.log")]:
                (args.logs / f.name).write_bytes(f.read_bytes())
        worker_log = _worker_log(workdir)
        taken = re.findall(r"taken from the node's cache (\{[^}]*\})", worker_log)
        return {
            "files": args.files,
            "size": args.size,
            "changed": len(changed),
            "v1_seconds": round(v1_seconds, 2),
            "v2_seconds": round(v2_seconds, 2),
            "v2_over_v1": round(v2_seconds / v1_seconds, 3),
            "v1_requests": dict(_requests(log, "dv1")),
            "v2_requests": dict(_requests(log, "dv2")),
            "v2_taken_by_batch": taken,
            "bandwidth": args.bandwidth,
            "v1_steps": _steps(worker_log[:v1_log_end]),
            "v2_steps": _steps(worker_log[v1_log_end:]),
        }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.delta", description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--size", type=int, default=256 << 10)
    parser.add_argument("--changed", type=int, default=50, help="files of v2 with new bytes (5%%)")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--bandwidth", default=None, help="the worker's cap on source reads, e.g. 100MiB")
    parser.add_argument("--logs", type=Path, default=None, help="copy the service's logs here")
    args = parser.parse_args(argv)
    print(json.dumps(run(args), sort_keys=True), flush=True)


if __name__ == "__main__":
    main()
