"""Medians per tool, stagegate/peer ratios, and the targets they are held to."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from bench.measure import Run

GiB = 1 << 30


@dataclass(frozen=True)
class Summary:
    """One tool on one scenario: medians over its successful runs (peak RSS: the maximum)."""

    tool: str
    durable: bool  # stagegate and its variants: their plain wall time already includes durability
    runs: int
    wall_s: float
    synced_wall_s: float  # the tool followed by `sync`
    sync_s: float  # the `sync` alone: what the tool left unflushed
    mb_s: float
    synced_mb_s: float
    files_s: float
    synced_files_s: float
    cpu_s: float
    cpu_s_per_gib: float
    cpu_ms_per_file: float
    rss_mb: float
    server_cpu_s: float
    other_cpu_s: float


def summarise(runs: list[Run], durable: dict[str, bool]) -> list[Summary]:
    """A summary per tool that has at least one successful run, in first-run order."""
    summaries = []
    for tool in dict.fromkeys(run.tool for run in runs):
        good = [run for run in runs if run.tool == tool and run.ok]
        if not good:
            continue
        size, files = good[0].bytes, good[0].files
        wall = statistics.median(run.wall_s for run in good)
        synced = statistics.median(run.wall_s + run.sync_s for run in good)
        cpu = statistics.median(run.cpu_s for run in good)
        summaries.append(
            Summary(
                tool=tool,
                durable=durable[tool],
                runs=len(good),
                wall_s=wall,
                synced_wall_s=synced,
                sync_s=statistics.median(run.sync_s for run in good),
                mb_s=size / 1e6 / wall,
                synced_mb_s=size / 1e6 / synced,
                files_s=files / wall,
                synced_files_s=files / synced,
                cpu_s=cpu,
                cpu_s_per_gib=cpu / (size / GiB),
                cpu_ms_per_file=1000 * cpu / files if files else 0.0,
                rss_mb=max(run.maxrss_mb for run in good),
                server_cpu_s=statistics.median(run.server_cpu_s for run in good),
                other_cpu_s=statistics.median(run.other_cpu_s for run in good),
            )
        )
    return summaries


@dataclass(frozen=True)
class Ratio:
    stagegate: str
    peer: str
    throughput: float  # stagegate MB/s over the peer's plain MB/s: above 1 is stagegate faster
    throughput_vs_synced: float  # ... over the peer's MB/s including its trailing sync
    cpu_per_gib: float  # stagegate CPU s/GiB over the peer's: below 1 is stagegate cheaper
    cpu_per_file: float  # the same per file (equal to cpu_per_gib when both copied the same set)


def ratios(summaries: list[Summary]) -> list[Ratio]:
    """Every stagegate variant against every peer. stagegate's own figure is always its plain
    wall time, because it makes the copy durable before it exits."""
    ours = [s for s in summaries if s.durable]
    peers = [s for s in summaries if not s.durable]
    return [
        Ratio(
            stagegate=mine.tool,
            peer=peer.tool,
            throughput=mine.mb_s / peer.mb_s,
            throughput_vs_synced=mine.mb_s / peer.synced_mb_s,
            cpu_per_gib=mine.cpu_s_per_gib / peer.cpu_s_per_gib,
            cpu_per_file=mine.cpu_ms_per_file / peer.cpu_ms_per_file if peer.cpu_ms_per_file else 0.0,
        )
        for mine in ours
        for peer in peers
    ]


# A target's peer: a tool's name, or the best peer of the run (the one stagegate's +sync
# throughput ratio is lowest against), or None for a bound on stagegate alone.
BEST_PEER = "best peer"


@dataclass(frozen=True)
class Target:
    scenario: str
    text: str
    peer: str | None  # a tool, BEST_PEER, or None: an absolute bound on stagegate alone
    metric: str  # a Ratio field ("throughput_vs_synced", "cpu_per_gib", ...) or "rss_mb"
    bound: float

    def against(self, stagegate: Summary, found: list[Ratio]) -> Ratio | None:
        """The ratio this target reads: stagegate's against its peer (None if either did not run)."""
        mine = [r for r in found if r.stagegate == stagegate.tool]
        if self.peer == BEST_PEER:
            # The best peer by throughput with +sync, since stagegate's own copy is durable.
            return min(mine, key=lambda r: r.throughput_vs_synced, default=None)
        return next((r for r in mine if r.peer == self.peer), None)

    def measure(self, stagegate: Summary, found: list[Ratio]) -> float | None:
        """The measured figure for this target, or None if a side of it did not run."""
        if self.peer is None:
            return stagegate.rss_mb
        ratio = self.against(stagegate, found)
        return None if ratio is None else float(getattr(ratio, self.metric))

    def met(self, value: float) -> bool:
        # Throughput must reach the bound; CPU and memory must stay under it.
        if self.metric.startswith("throughput"):
            return value >= self.bound
        if self.metric == "rss_mb":
            return value < self.bound
        return value <= self.bound


# Issue 11's targets: every scenario at least the best peer's throughput with +sync; S3 client
# CPU at most the best peer's, per GiB for big objects and per file for small ones; POSIX CPU
# at most 1.5x cp's; 200,000 files staged in under 300 MB.
TARGETS = [
    *(
        Target(name, "throughput >= 1.0x the best peer +sync", BEST_PEER, "throughput_vs_synced", 1.0)
        for name in ("posix-big", "posix-small", "s3-big", "s3-small")
    ),
    Target("s3-big", "CPU s/GiB <= 1.0x the best peer's", BEST_PEER, "cpu_per_gib", 1.0),
    Target("s3-small", "CPU s/file <= 1.0x the best peer's", BEST_PEER, "cpu_per_file", 1.0),
    Target("posix-big", "CPU s/GiB <= 1.5x cp's", "cp", "cpu_per_gib", 1.5),
    Target("posix-small", "CPU s/file <= 1.5x cp's", "cp", "cpu_per_file", 1.5),
    Target("rss-200k", "peak RSS < 300 MB", None, "rss_mb", 300.0),
]
