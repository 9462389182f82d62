"""`python -m bench`: stagegate against its peers on generated data; writes bench/RESULTS.md."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from bench import datasets, machine, measure, peers, report, scenarios
from bench.runner import RUNS_ROOT, run_scenario
from bench.s3server import CREDENTIALS, S3Server
from bench.summary import summarise
from stagegate.atomic_files import write_atomically

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
BASE_TOOLS = ["stagegate", *(tool.name for tool in peers.PEERS)]
DEFAULT_SCENARIOS = [name for name in scenarios.NAMES if name != scenarios.RSS.name]
EGRESS_RSS = "egress-rss"  # bench.egress_rss: an egress's peak memory, beside aws and s5cmd
# bench.plan_scale: the planner over 10 million generated listing entries (1 million with --quick)
PLAN_SCALE = "plan-10m"
PLAN_RESULTS = Path(__file__).resolve().parent / "RESULTS-plan.md"
EXTRA = [EGRESS_RSS, PLAN_SCALE]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark `stagegate stage` against s5cmd, rclone, the aws CLI and cp "
        "on generated data (POSIX and a loopback moto S3 server). Prints tables and writes "
        "bench/RESULTS.md.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small datasets and 3 runs: about 3 minutes on 2 cores"
    )
    parser.add_argument(
        "--scenarios",
        type=_names([*scenarios.NAMES, *EXTRA]),
        default=DEFAULT_SCENARIOS,
        help=f"comma-separated subset of {','.join([*scenarios.NAMES, *EXTRA])} "
        f"(default: {','.join(DEFAULT_SCENARIOS)}; rss-200k, egress-rss and plan-10m run only if "
        "named; egress-rss writes bench/RESULTS-egress.md, plan-10m bench/RESULTS-plan.md)",
    )
    parser.add_argument(
        "--runs",
        type=int,
        help="runs per tool and scenario (default: 5, or 3 with --quick; rss-200k always runs once)",
    )
    parser.add_argument(
        "--tools",
        type=_names(BASE_TOOLS),
        default=BASE_TOOLS,
        help=f"comma-separated subset of {','.join(BASE_TOOLS)} (variants always run)",
    )
    parser.add_argument(
        "--stagegate-args",
        default="",
        metavar="ARGS",
        help='extra flags for the "stagegate" tool, e.g. "--durability file" '
        "(a single flag without a space needs --stagegate-args=--flag)",
    )
    parser.add_argument(
        "--processes",
        type=_counts,
        default=[],
        metavar="N,M",
        help="run stagegate once per count with --processes N (copy processes for small files), "
        "alternating with the other tools: the first count as the tool \"stagegate\", the others "
        "as \"stagegate-Np\" (default: stagegate's own default)",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=ARGS",
        help="also run stagegate with ARGS as a tool called NAME (repeatable), "
        'e.g. --variant file="--durability file"',
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=RESULTS,
        metavar="PATH",
        help="where to write the report (default: bench/RESULTS.md)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="kill a run that takes longer (default: 60 for --quick scenarios, else 600)",
    )
    args = parser.parse_args(argv)
    if args.runs is not None and args.runs < 1:
        parser.error("--runs must be at least 1")
    names = [variant.partition("=")[0] for variant in args.variant]
    for variant, name in zip(args.variant, names, strict=True):
        if "=" not in variant or not name:
            parser.error(f"--variant wants NAME=ARGS, got {variant!r}")
        if name in BASE_TOOLS or names.count(name) > 1:
            parser.error(f"--variant name {name!r} is taken: each tool needs its own name")
    return args


def _names(allowed: list[str]) -> Callable[[str], list[str]]:
    """An argparse type for a comma-separated subset of `allowed`."""

    def parse(text: str) -> list[str]:
        names = [name.strip() for name in text.split(",") if name.strip()]
        unknown = sorted(set(names) - set(allowed))
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown: {', '.join(unknown)}")
        return names

    return parse


def _counts(text: str) -> list[int]:
    """An argparse type for comma-separated positive counts."""
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"want counts such as 1,2, not {text!r}")
    return counts


def build_tools(args: argparse.Namespace) -> list[peers.Tool]:
    tools = []
    if "stagegate" in args.tools:
        counts = args.processes or [None]
        for i, count in enumerate(counts):
            flag = "" if count is None else f"--processes {count} "
            name = "stagegate" if i == 0 else f"stagegate-{count}p"
            tools.append(peers.stagegate(name=name, extra_args=flag + args.stagegate_args))
    for variant in args.variant:
        name, extra = variant.split("=", 1)
        tools.append(peers.stagegate(name=name, extra_args=extra))
    return tools + [tool for tool in peers.PEERS if tool.name in args.tools]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if EGRESS_RSS in args.scenarios:
        from bench import egress_rss

        args.scenarios = [name for name in args.scenarios if name != EGRESS_RSS]
        failed = egress_rss.main(["--runs", str(args.runs or 3)])
        if failed or not args.scenarios:
            return failed
    if PLAN_SCALE in args.scenarios:
        args.scenarios = [name for name in args.scenarios if name != PLAN_SCALE]
        plan_scale_report(args.quick, args.runs or 1)
        if not args.scenarios:
            return 0
    # Turn `kill` into an exit that unwinds: the running tool and the S3 server get stopped.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(128 + signal.SIGTERM))
    if not os.access(measure.GNU_TIME, os.X_OK):
        _log(f"bench needs GNU time at {measure.GNU_TIME} (Debian package `time`) for peak RSS")
        return 2
    began = time.monotonic()
    load_before = os.getloadavg()
    chosen = scenarios.select(args.scenarios, quick=args.quick)
    runs = args.runs or (3 if args.quick else 5)
    tools = build_tools(args)

    for dataset in dict.fromkeys(scenario.dataset for scenario in chosen):
        started = time.monotonic()
        datasets.ensure(dataset)
        _log(f"dataset {dataset.name} ready in {time.monotonic() - started:.1f} s")
    results = run_all(chosen, tools, runs, args.timeout)

    elapsed = time.monotonic() - began
    print(report.targets_table(results))
    header = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "mode": f"{'--quick' if args.quick else 'full'}, {runs} runs per tool (rss-200k: 1)",
        "invocation": "python -m bench " + " ".join(sys.argv[1:] if argv is None else argv),
        "total time": f"{elapsed:.0f} s, data generation and upload included",
        # Anything else running on the machine competes for its 2 cores: on record.
        "load average (1, 5, 15 min)": f"{_load(load_before)} before, {_load(os.getloadavg())} after",
    }
    versions = {t.name: t.version() for t in tools if t.available()}
    report.write_results(args.output, results, header, machine.describe(RUNS_ROOT), versions, tools)
    runs = [asdict(run) for result in results for run in result.runs]
    write_atomically(RUNS_ROOT / "results.json", [json.dumps(runs, indent=1).encode()])
    _log(f"done in {elapsed:.0f} s; wrote {args.output} and {RUNS_ROOT / 'results.json'}")
    return 0


def plan_scale_report(quick: bool, runs: int) -> None:
    """The planning scenario, printed and written to bench/RESULTS-plan.md."""
    from bench import plan_scale

    load = os.getloadavg()
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC (start)")
    table = plan_scale.table(1_000_000 if quick else 10_000_000, runs)
    note = f"{when}; load average {_load(load)} before, {_load(os.getloadavg())} after (2 cores)"
    print(table)
    write_atomically(PLAN_RESULTS, [f"# Planning at scale\n\n{note}\n\n{table}\n".encode()])


def run_all(
    chosen: list[scenarios.Scenario], tools: list[peers.Tool], runs: int, timeout_s: float | None
) -> list[report.ScenarioResult]:
    """Every scenario in turn; the S3 server lives while any S3 scenario needs it."""
    # The server is plain HTTP on loopback: no CA bundle is needed, and rclone fails with one.
    env = {key: value for key, value in os.environ.items() if key != "AWS_CA_BUNDLE"}
    env.update(CREDENTIALS)
    # stagegate records every staging in its embedded ledger: keep the bench's out of the user's.
    env["STAGEGATE_HOME"] = str(RUNS_ROOT / "stagegate-home")
    env.pop("STAGEGATE_DATABASE_URL", None)
    results = []
    with contextlib.ExitStack() as stack:
        server = None
        if any(scenario.kind == "s3" for scenario in chosen):
            server = stack.enter_context(S3Server(RUNS_ROOT / "moto.log"))
            env.update(server.env)
        uploaded: dict[datasets.Dataset, str] = {}
        for scenario in chosen:
            if server is not None and scenario.kind == "s3":
                if scenario.dataset not in uploaded:
                    started = time.monotonic()
                    uploaded[scenario.dataset] = server.upload(scenario.dataset)
                    _log(f"uploaded {scenario.dataset.name} in {time.monotonic() - started:.1f} s")
                source = peers.Source("s3", uploaded[scenario.dataset], server.url)
                server_cpu = server.cpu_seconds
            else:
                source, server_cpu = peers.Source("posix", str(scenario.dataset.path)), None
            contenders = [
                t for t in tools if scenario.kind in t.kinds and (t.durable or not scenario.stagegate_only)
            ]
            _log(f"scenario {scenario.name}: {', '.join(t.name for t in contenders)}")
            done, skipped = run_scenario(
                scenario,
                contenders,
                source,
                env,
                runs=1 if scenario.stagegate_only else runs,
                server_cpu=server_cpu,
                timeout_s=timeout_s or scenario.timeout_s,
            )
            summaries = summarise(done, {t.name: t.durable for t in tools})
            results.append(report.ScenarioResult(scenario, done, skipped, summaries))
            print(report.scenario_tables(results[-1]) + "\n", flush=True)
    return results


def _load(averages: tuple[float, float, float]) -> str:
    return " / ".join(f"{average:.2f}" for average in averages)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
