"""`python -m bench.datapath`: the S3 data path chosen by measurement (README, "Data path").

Stages the same objects from a loopback moto server through the real engine (``stage``) with
the S3 source's two data paths, boto3's GET and the CRT's client, each in 1 process and in 2
processes (each staging half of the objects), alternating path and process count round by
round. Reports medians and spread of wall time, files/s or MB/s, client CPU per file and per
GiB (user+sys of the staging processes, from wait4), and the server's CPU.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench import datasets
from bench.datasets import Dataset
from bench.s3server import BUCKET, S3Server

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
PATHS = ("boto3", "crt")
CHILD = [sys.executable, "-m", "bench.datapath", "--child"]


@dataclass(frozen=True)
class Sample:
    path: str
    processes: int
    wall_s: float
    cpu_s: float
    server_cpu_s: float


def child(url: str, dest: str, data_path: str) -> None:
    """One staging process: the real engine, with the data path forced ("idle": start, import
    and make both clients, stage nothing: the start-up CPU subtracted from every run)."""
    from stagegate.transfer import TransferConfig, stage
    from stagegate.transfer.sources.s3 import S3Source

    if data_path == "idle":
        S3Source(url)._crt()
        return
    stage(S3Source(url, data_path=data_path), Path(dest), TransferConfig())


def startup_cpu(server: S3Server) -> float:
    """Median CPU seconds of a child that starts and stages nothing."""
    env = {**os.environ, **server.env}
    used = []
    for _ in range(3):
        proc = subprocess.Popen([*CHILD, f"s3://{BUCKET}/none/", "/nonexistent", "idle"], env=env)
        _pid, _status, usage = os.wait4(proc.pid, 0)
        used.append(usage.ru_utime + usage.ru_stime)
    return statistics.median(used)


def run(server: S3Server, urls: list[str], data_path: str, scratch: Path) -> tuple[float, float, float]:
    """Stage every URL at once, one process each; (wall, client CPU, server CPU)."""
    env = {**os.environ, **server.env, "STAGEGATE_HOME": str(scratch / "home")}
    # A directory of its own for every staging: the home's ledger remembers which dataset each
    # destination held and refuses another one there (transfer.dataset_source).
    dests = [Path(tempfile.mkdtemp(prefix="dest-", dir=scratch)) / "data" for _ in urls]
    os.sync()
    server_before = server.cpu_seconds()
    started = time.perf_counter()
    pairs = zip(urls, dests, strict=True)
    procs = [subprocess.Popen([*CHILD, url, str(dest), data_path], env=env) for url, dest in pairs]
    cpu = 0.0
    for proc in procs:
        _pid, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            raise RuntimeError(f"{data_path}: a staging exited {proc.returncode}")
        cpu += usage.ru_utime + usage.ru_stime
    wall = time.perf_counter() - started
    for dest in dests:
        shutil.rmtree(dest.parent, ignore_errors=True)
    return wall, cpu, server.cpu_seconds() - server_before


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.datapath", description=__doc__)
    parser.add_argument("--child", nargs=3, metavar=("URL", "DEST", "PATH"), help=argparse.SUPPRESS)
    parser.add_argument("--files", type=int, default=2000, help="small objects (16-64 KiB), default 2000")
    parser.add_argument("--big-mib", type=int, default=256, help="size of each of 2 big objects")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], args.child[1], args.child[2])
        return 0
    scratch = Path(tempfile.mkdtemp(prefix="stagegate-datapath-"))
    try:
        with S3Server(scratch / "moto.log") as server:
            startup = startup_cpu(server)
            print(f"start-up CPU of one staging process: {startup:.2f} s, subtracted below")
            sets = {
                "small": (Dataset(args.files, 16 * KiB, 64 * KiB), args.files),
                "big": (Dataset(2, args.big_mib * MiB, args.big_mib * MiB), 2),
            }
            for name, (dataset, count) in sets.items():
                halves = _upload_halves(server, dataset, name)
                total = dataset.total_bytes
                samples: list[Sample] = []
                for _round in range(args.runs):
                    for data_path in PATHS if _round % 2 == 0 else reversed(PATHS):
                        for processes in (1, 2):
                            urls = [f"s3://{BUCKET}/{name}/"] if processes == 1 else halves
                            wall, cpu, server_cpu = run(server, urls, data_path, scratch)
                            cpu -= processes * startup
                            samples.append(Sample(data_path, processes, wall, cpu, server_cpu))
                _report(name, samples, count, total)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"load average now: {' / '.join(f'{x:.2f}' for x in os.getloadavg())} (2 cores, shared)")
    return 0


def _upload_halves(server: S3Server, dataset: Dataset, name: str) -> list[str]:
    """Upload the dataset as two halves under one prefix: 1 process stages the prefix, 2
    processes a half each."""
    root = datasets.ensure(dataset)
    client = server._client()

    def put(item: tuple[int, tuple[str, int]]) -> None:
        index, (relative, _size) = item
        key = f"{name}/h{index % 2}/{relative}"
        client.put_object(Bucket=BUCKET, Key=key, Body=(root / relative).read_bytes())

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, enumerate(dataset.files())))
    return [f"s3://{BUCKET}/{name}/h0/", f"s3://{BUCKET}/{name}/h1/"]


def _report(name: str, samples: list[Sample], count: int, total: int) -> None:
    runs = len(samples) // 4
    print(f"\n{name}: {count} objects, {total / MiB:.0f} MiB; medians (min-max) of {runs} runs")
    print(
        "| data path | processes | wall s | files/s | MB/s | client CPU s | ms/file | s/GiB | server CPU s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for path in PATHS:
        for processes in (1, 2):
            mine = [s for s in samples if s.path == path and s.processes == processes]
            walls = [s.wall_s for s in mine]
            cpus = [s.cpu_s for s in mine]
            print(
                f"| {path} | {processes} | {spread(walls)} | {count / statistics.median(walls):.0f} "
                f"| {total / 1e6 / statistics.median(walls):.0f} | {spread(cpus)} "
                f"| {1000 * statistics.median(cpus) / count:.2f} "
                f"| {statistics.median(cpus) / (total / GiB):.2f} "
                f"| {statistics.median(s.server_cpu_s for s in mine):.2f} |"
            )


if __name__ == "__main__":
    sys.exit(main())
