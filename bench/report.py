"""Markdown tables for the terminal and for bench/RESULTS.md."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from bench.datasets import Dataset
from bench.measure import Run
from bench.peers import VENV_BIN, Source, Tool
from bench.scenarios import Scenario
from bench.summary import TARGETS, Ratio, Summary, Target, ratios
from stagegate.atomic_files import write_atomically

# A Python server at or above this share of one core is taken to be the limit.
SATURATED = 0.85


@dataclass(frozen=True)
class ScenarioResult:
    scenario: Scenario
    runs: list[Run]
    skipped: dict[str, str]  # tool -> why it has no (or fewer) runs
    summaries: list[Summary]


def scenario_tables(result: ScenarioResult) -> str:
    """The per-tool table, the stagegate/peer ratios, and notes on skipped tools."""
    dataset = result.scenario.dataset
    lines = [f"### {result.scenario.name}: {_describe(dataset)} from {result.scenario.kind}", ""]
    if not result.summaries:
        lines.append("No tool completed a run.")
    else:
        lines += _tool_table(result)
    found = ratios(result.summaries)
    if found:
        lines += [
            "",
            "| stagegate / peer | throughput | throughput vs peer +sync | CPU s/GiB | CPU s/file |",
            "|---|--:|--:|--:|--:|",
        ]
        lines += [
            f"| {r.stagegate} / {r.peer} | {r.throughput:.2f}x | {r.throughput_vs_synced:.2f}x "
            f"| {r.cpu_per_gib:.2f}x | {r.cpu_per_file:.2f}x |"
            for r in found
        ]
    cached = [run.source_cached for run in result.runs if run.source_cached is not None]
    if cached:
        lines += [
            "",
            f"Source in the page cache as each timer started (fincore): "
            f"{min(cached):.1%} to {max(cached):.1%} over {len(cached)} run(s).",
        ]
    if result.skipped:
        lines.append("")
        lines += [f"- **{tool}** skipped: {why}" for tool, why in result.skipped.items()]
    return "\n".join(lines)


def _tool_table(result: ScenarioResult) -> list[str]:
    lines = [
        "| tool | runs | wall s | MB/s | MB/s +sync | files/s | files/s +sync | sync after s "
        "| CPU s | CPU s/GiB | CPU ms/file | peak RSS MB | server CPU s | server busy | other CPU s |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for s in result.summaries:
        server, busy = "-", "-"
        if result.scenario.kind == "s3":
            server, busy = f"{s.server_cpu_s:.2f}", f"{s.server_cpu_s / s.wall_s:.0%}"
        lines.append(
            f"| {s.tool} | {s.runs} | {s.wall_s:.2f} | {s.mb_s:.0f} | {s.synced_mb_s:.0f} "
            f"| {s.files_s:.0f} | {s.synced_files_s:.0f} | {s.sync_s:.2f} "
            f"| {s.cpu_s:.2f} | {s.cpu_s_per_gib:.2f} | {s.cpu_ms_per_file:.2f} | {s.rss_mb:.0f} "
            f"| {server} | {busy} "
            f"| {s.other_cpu_s:.2f} |"
        )
    return lines


def targets_table(results: list[ScenarioResult]) -> str:
    lines = ["| scenario | target | stagegate | measured | met |", "|---|---|---|--:|---|"]
    for result in results:
        found = ratios(result.summaries)
        ours = [s for s in result.summaries if s.durable]
        for target in (t for t in TARGETS if t.scenario == result.scenario.name):
            if not ours:
                lines.append(f"| {target.scenario} | {target.text} | - | not measured | - |")
            for mine in ours:
                value = target.measure(mine, found)
                unit = " MB" if target.peer is None else "x"
                shown = "not measured" if value is None else f"{value:.2f}{unit}"
                if value is not None and target.peer is not None:
                    shown += f" {_peer_of(target, mine, found)}"
                met = "-" if value is None else ("yes" if target.met(value) else "**no**")
                lines.append(f"| {target.scenario} | {target.text} | {mine.tool} | {shown} | {met} |")
    return "\n".join(lines)


def _peer_of(target: Target, mine: Summary, found: list[Ratio]) -> str:
    ratio = target.against(mine, found)
    return "" if ratio is None else f"({ratio.peer})"


def limits(results: list[ScenarioResult]) -> str:
    """Which side limited each S3 scenario, read off the server's CPU during each run."""
    lines = []
    for result in (r for r in results if r.scenario.kind == "s3" and r.summaries):
        busy = ", ".join(
            f"{s.tool} server {s.server_cpu_s / s.wall_s:.0%} / client {s.cpu_s / s.wall_s:.0%}"
            for s in result.summaries
        )
        bound = [s.tool for s in result.summaries if s.server_cpu_s / s.wall_s >= SATURATED]
        verdict = (
            f"server-bound (>= {SATURATED:.0%} of a core) for: {', '.join(bound)}"
            if bound
            else "no tool drove the server to a full core"
        )
        lines.append(f"- {result.scenario.name}: CPU busy (CPU s / wall s): {busy}; {verdict}.")
    return "\n".join(lines)


def write_results(
    path: Path,
    results: list[ScenarioResult],
    header: dict[str, str],
    machine: dict[str, str],
    versions: dict[str, str],
    tools: list[Tool],
) -> None:
    sections = [
        "# stagegate benchmark results",
        "",
        "Written by `python -m bench`. Every number in the tables was measured by that run; the",
        "notes on how moto serves objects come from reading its source.",
        "",
        *[f"- {key}: {value}" for key, value in header.items()],
        "",
        "## Machine",
        "",
        *[f"- {key}: {value}" for key, value in machine.items()],
        "",
        "## Tools",
        "",
        *[f"- {name}: `{version}`" for name, version in versions.items()],
        "",
        "Command lines (SRC, PREFIX, PORT and DEST filled in per run):",
        "",
        *_commands(tools),
        "",
        "## Scenarios",
        "",
        *[
            f"- {r.scenario.name}: {_describe(r.scenario.dataset)}, source on {r.scenario.kind}"
            for r in results
        ],
        "",
        METHOD,
        "",
        "## Results",
        "",
        *[scenario_tables(r) + "\n" for r in results],
        "## Targets",
        "",
        targets_table(results),
        "",
    ]
    if any(r.scenario.kind == "s3" for r in results):
        sections += ["## What limits the S3 scenarios", "", SERVER_NOTE, "", limits(results), ""]
    # A run killed while writing must not leave RESULTS.md (under version control) half written.
    write_atomically(path, ["\n".join(sections).encode()])


def _commands(tools: list[Tool]) -> list[str]:
    examples = [Source("s3", "s3://bench/PREFIX", "http://127.0.0.1:PORT"), Source("posix", "SRC")]

    def shown(tool: Tool, source: Source) -> str:
        return shlex.join(tool.argv(source, Path("DEST"))).replace(f"{VENV_BIN}/", ".venv/bin/")

    return [
        f"- {tool.name} ({source.kind}): `{shown(tool, source)}`"
        for tool in tools
        for source in examples
        if source.kind in tool.kinds
    ]


def _describe(dataset: Dataset) -> str:
    return f"{dataset.count:,} files, {dataset.total_bytes / 1e6:,.0f} MB ({dataset.name})"


METHOD = """## Method

- Each tool copies the whole dataset into a fresh, empty directory under `bench/.runs/`,
  removed after the run. Tools take turns, and the starting tool rotates every round.
  Figures are medians over the successful runs (peak RSS: the maximum).
- `sync` runs before each timer starts, so dirty pages of earlier runs are not billed.
- Peers do not make their copy durable, so each peer run is timed twice: when the tool
  exits (plain) and after a `sync` that follows it (+sync; the sync is in that wall time).
  stagegate makes its copy durable itself; its figure is its plain wall time, and
  "sync after s" shows what a trailing sync still found to flush.
- Throughput is dataset bytes / 1e6 / wall seconds; files/s is dataset files / wall seconds.
- A run counts only if the destination holds exactly the dataset's file count and bytes
  (files named like the dataset's; anything else a tool writes is not counted); otherwise
  the tool is marked failed and dropped from the scenario.
- CPU s is user+system time of the tool and every descendant it waited for (`wait4`
  rusage). Peak RSS is `ru_maxrss` of the tool as GNU time reports it (`/usr/bin/time -f %M`):
  the peak of the largest single process of the tree, not the sum of the tree. (Linux
  carries the RSS high-water mark over fork and exec, so the tool is forked from the 1 MB
  `time` rather than from the harness's 100 MB Python; about 1 MB is the floor.)
- "other CPU s" is the CPU the rest of the machine used while the tool ran (all cores'
  busy time from /proc/stat, steal included, minus the tool and the S3 server). It holds
  kernel work done for the tool (writeback, journal, loopback networking in softirq) and
  anything else running on the shared machine: a large value next to a slow run points
  at interference, not (only) at the tool.
- Caches are not dropped between runs. Before each POSIX run the harness reads the whole
  source, so it is in the page cache for every tool alike (where proactive reclaim pages
  out idle memory, see Machine, it would otherwise depend on what ran before);
  `fincore` then measures how much of it is resident as the timer starts (under each table).
- Every tool's environment has `AWS_ACCESS_KEY_ID=testing`, `AWS_SECRET_ACCESS_KEY=testing`,
  `AWS_DEFAULT_REGION=us-east-1` and `AWS_ENDPOINT_URL` set to the loopback server;
  `AWS_CA_BUNDLE` is removed (the server is plain HTTP, and rclone refuses to start with it)."""

SERVER_NOTE = """The S3 server is moto (`moto_server`), a Python process on loopback. It keeps
objects under about 5 MiB in memory and bigger ones in temporary files (in the page cache
here). The objects were uploaded with boto3's defaults, so each carries a CRC32 checksum.
"server CPU s" is its user+system CPU during each run (from /proc), and "server busy" is that
over the wall time; "client" is the tool's CPU over the wall time (200% is both cores).
A Python server cannot use much more than one core (the GIL), so near 100% means the server,
not the tool, set the pace, and the machine's other core was all the tool had.

moto 5.2.5 also reads the whole object for every GET, ranged or not, and slices the range
out afterwards (`FakeKey.value` in moto/s3/models.py, `_handle_range_header` in
moto/s3/responses.py): a tool that fetches a big object in N ranged parts costs the server
about N whole-object reads, where a single GET costs one. Server CPU in s3-big therefore
grows with the number of parts a tool splits each object into (s5cmd: 50 MiB parts, the aws
CLI: 8 MiB, stagegate: `--part-size` above `--multipart-threshold`, rclone: one GET below
its 250 MiB multi-thread cutoff); on real S3 a ranged GET costs what its range costs."""
