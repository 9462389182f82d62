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


@dataclass(frozen=True)
class Target:
    scenario: str
    text: str
    peer: str | None  # None: an absolute bound on stagegate alone
    metric: str  # "throughput", "throughput_vs_synced", "cpu_per_gib" or "rss_mb"
    bound: float

    def measure(self, stagegate: Summary, found: list[Ratio]) -> float | None:
        """The measured figure for this target, or None if a side of it did not run."""
        if self.peer is None:
            return stagegate.rss_mb
        for ratio in found:
            if ratio.stagegate == stagegate.tool and ratio.peer == self.peer:
                return float(getattr(ratio, self.metric))
        return None

    def met(self, value: float) -> bool:
        # Throughput must reach the bound; CPU and memory must stay under it.
        if self.metric.startswith("throughput"):
            return value >= self.bound
        if self.metric == "rss_mb":
            return value < self.bound
        return value <= self.bound


TARGETS = [
    Target("s3-big", "throughput >= 1.0x s5cmd", "s5cmd", "throughput", 1.0),
    Target("s3-small", "throughput >= 1.0x s5cmd", "s5cmd", "throughput", 1.0),
    Target("s3-big", "CPU s/GiB <= 1.5x s5cmd", "s5cmd", "cpu_per_gib", 1.5),
    Target("s3-small", "CPU s/GiB <= 1.5x s5cmd", "s5cmd", "cpu_per_gib", 1.5),
    Target("posix-big", "throughput >= 0.9x cp -r +sync", "cp", "throughput_vs_synced", 0.9),
    Target("posix-small", "throughput >= 1.0x rclone +sync", "rclone", "throughput_vs_synced", 1.0),
    Target("rss-200k", "peak RSS < 300 MB", None, "rss_mb", 300.0),
]
