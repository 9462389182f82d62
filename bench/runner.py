"""Run every tool on one scenario, round-robin, each into a fresh directory."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from bench import pagecache
from bench.measure import Run, run_once
from bench.peers import Source, Tool
from bench.scenarios import Scenario

RUNS_ROOT = Path(__file__).resolve().parent / ".runs"


def run_scenario(
    scenario: Scenario,
    tools: list[Tool],
    source: Source,
    env: dict[str, str],
    runs: int,
    server_cpu: Callable[[], float] | None,
    timeout_s: float,
) -> tuple[list[Run], dict[str, str]]:
    """All runs of all tools, and a note for every tool that was skipped or dropped.

    The starting tool rotates each round so no tool always runs first (or last) against a
    cache or server state the others shaped. A tool that fails once is dropped from the
    scenario: its note says why, and the others go on.
    """
    expected = (scenario.dataset.count, scenario.dataset.total_bytes)
    skipped = {tool.name: "not installed" for tool in tools if not tool.available()}
    active = [tool for tool in tools if tool.name not in skipped]
    results: list[Run] = []
    for round_ in range(runs):
        shift = round_ % len(active) if active else 0
        for tool in active[shift:] + active[:shift]:
            if tool.name in skipped:
                continue
            dest = RUNS_ROOT / f"{scenario.name}-{tool.name}"
            cached = None
            if source.kind == "posix":
                pagecache.warm(scenario.dataset.path)
                cached = pagecache.cached_fraction(scenario.dataset.path)
            run = run_once(
                tool.name,
                round_,
                tool.argv(source, dest),
                env,
                dest,
                expected,
                server_cpu,
                timeout_s,
            )
            run.source_cached = cached
            results.append(run)
            _progress(scenario, run)
            if not run.ok:
                skipped[tool.name] = f"failed in round {round_ + 1}: {run.note}"
    return results, skipped


def _progress(scenario: Scenario, run: Run) -> None:
    status = f"{run.wall_s:7.2f} s  +sync {run.sync_s:5.2f} s" if run.ok else f"FAILED {run.note}"
    print(f"  [{scenario.name}] round {run.round + 1} {run.tool:<12} {status}", file=sys.stderr)
