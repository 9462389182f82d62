"""`python -m bench.plan_scale`: the real planner (transfer/plan.py) over 10 million listing
entries from a generated source, nothing uploaded: peak RSS and seconds.

The source yields :class:`SourceObject`s in ascending key order, shaped like an S3 listing
(ETag, mtime, a checksum algorithm) in a tree of 1,000 files a directory, so every check the
planner makes runs as on a real listing; generating an entry costs a fraction of planning
it (measured by the "listing only" line). Run in a child under GNU time, as every tool of
the bench is, so the peak RSS is the planner's own. Target (issue 11): under 500 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.measure import run_timed
from stagegate.transfer.objects import SourceObject

TARGET_MB = 500
FILES_PER_DIR = 1000


class GeneratedSource:
    """A listing of ``count`` objects made up as it is read; never holds it. Sizes are 16-80
    KiB, or with ``mean_size`` spread evenly over half to one and a half times it."""

    prefers_ranged_reads = True
    labels_listed = True

    def __init__(self, count: int, mean_size: int | None = None) -> None:
        self.count = count
        self.mean_size = mean_size
        self.url = f"generated://{count}"

    def size_of(self, index: int) -> int:
        if self.mean_size is None:
            return 16384 + index % 65536
        # a multiplicative hash spreads neighbouring keys over the range, the mean exact
        return self.mean_size // 2 + (index * 2654435761) % self.mean_size

    def list(self) -> Iterator[SourceObject]:
        for index in range(self.count):
            leaf = index // FILES_PER_DIR
            yield SourceObject(
                key=f"p{leaf // 100:05d}/d{leaf % 100:02d}/f{index:09d}.bin",
                size=self.size_of(index),
                revision=f"{index:032x}",
                mtime=1.7e9 + index,
                checksum_algorithm="crc32",
            )

    def label_files_above(self, name: str) -> tuple[()]:
        return ()  # nothing above a made-up listing; its planning reads no label file

    def open(self, obj: SourceObject, offset: int = 0, length: int | None = None) -> object:
        raise AssertionError("planning reads no object but label files, and this source has none")


def child(count: int, listing_only: bool) -> None:
    from stagegate.transfer.plan import plan_dataset

    source = GeneratedSource(count)
    started = time.perf_counter()
    if listing_only:
        files = sum(1 for _ in source.list())
    else:
        with tempfile.TemporaryDirectory(prefix="stagegate-plan-") as scratch:
            files = plan_dataset(source, Path(scratch) / "plan.jsonl", ".classification").files  # type: ignore[arg-type]
    print(json.dumps({"files": files, "seconds": time.perf_counter() - started}))


def measure(count: int, listing_only: bool = False) -> dict[str, float]:
    """Run one child under GNU time, as the bench runs every tool: its seconds (in-process),
    CPU and peak RSS."""
    argv = [sys.executable, "-m", "bench.plan_scale", "--child", str(count)]
    done = run_timed(argv + (["--listing-only"] if listing_only else []), dict(os.environ), 3600)
    if done.code != 0:
        raise RuntimeError(f"planning {count:,} entries failed: {done.stderr[-500:]}")
    result = json.loads(done.stdout)
    return {
        "files": result["files"],
        "seconds": result["seconds"],
        "cpu_s": done.cpu_s,
        "peak_rss_mb": done.maxrss_kib * 1024 / 1e6,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.plan_scale", description=__doc__)
    parser.add_argument("--entries", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--listing-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        child(args.child, args.listing_only)
        return 0
    print(table(args.entries, args.runs))
    return 0


def table(entries: int, runs: int) -> str:
    """Markdown: the listing alone, then the planner over it, ``runs`` times each."""
    lines = [
        f"### plan-{_short(entries)}: the planner over {entries:,} generated listing entries",
        "",
        "| run | what | entries | seconds | entries/s | CPU s | CPU us/entry "
        f"| peak RSS MB (< {TARGET_MB}) |",
        "|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    for run in range(1, runs + 1):
        for listing_only in (True, False):
            got = measure(entries, listing_only)
            what = "listing only" if listing_only else "plan_dataset"
            met = "" if listing_only or got["peak_rss_mb"] < TARGET_MB else " **over**"
            lines.append(
                f"| {run} | {what} | {got['files']:,} | {got['seconds']:.1f} "
                f"| {got['files'] / got['seconds']:,.0f} | {got['cpu_s']:.1f} "
                f"| {1e6 * got['cpu_s'] / got['files']:.1f} | {got['peak_rss_mb']:.0f}{met} |"
            )
    return "\n".join(lines)


def _short(entries: int) -> str:
    for unit, size in (("m", 1_000_000), ("k", 1000)):
        if entries >= size and entries % size == 0:
            return f"{entries // size}{unit}"
    return str(entries)


if __name__ == "__main__":
    sys.exit(main())
