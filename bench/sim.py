"""``python -m bench.sim``: the plan for 64 nodes. The real planner, splitter and admission rule
over a generated listing (nothing uploaded, nothing copied), then the modelled resources of
:mod:`bench.sim_model`: per-node ETA, total time, S3 requests and bytes read from the source,
for replicate, shard and fan-out, and a plot (PNG).

Default: 100 TB in 10 million files (10 MB on average, 5-15 MB) onto 64 nodes. Memory stays
bounded: the listing is generated as it is read, the plan lives in its spill file, and a
share is held as its batch ranges only.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from bench.plan_scale import GeneratedSource
from bench.sim_model import NodeEta, NodeWork, Resources, simulate
from bench.sim_work import MODES, ModePlan, admission, fan_out, plan_modes
from stagegate.ledger import NodePortion
from stagegate.settings import DEFAULT_FANOUT_PER_HOLDER
from stagegate.sizes import format_bytes, parse_size
from stagegate.transfer.engine import TransferConfig
from stagegate.transfer.plan import plan_dataset

FINALIZE_US_PER_FILE = 22.0  # seal (a chmod) and fingerprint (an lstat, 11 us measured) per file


@dataclass(frozen=True, slots=True)
class Outcome:
    mode: str
    cores: float
    fits: str
    plan_s: float
    etas: list[NodeEta]
    total_s: float
    gets: int
    list_requests: int
    source_bytes: int


def plan_seconds(files: int, list_requests: int, planner_cpu_s: float, args: argparse.Namespace) -> float:
    """The plan step on one worker: the listing's pages one after the other, or the planner's
    CPU if slower, then the manifest rows into the ledger."""
    page_s, rows_per_s = float(args.list_page_s), float(args.manifest_rows_per_s)
    return max(list_requests * page_s, planner_cpu_s) + files / rows_per_s


def outcome(mode_plan: ModePlan, r: Resources, plan_s: float, capacity: int) -> Outcome:
    etas = simulate(mode_plan.works, r)
    verdicts = {admission(p, capacity) for p in mode_plan.portions}
    fits = "fits" if verdicts == {"fits"} else sorted(verdicts - {"fits"})[0]
    finalize = max(p.files for p in mode_plan.portions) * FINALIZE_US_PER_FILE / 1e6
    return Outcome(
        mode_plan.mode,
        r.cores_per_node,
        fits,
        plan_s,
        etas,
        plan_s + max(e.seconds for e in etas) + finalize,
        sum(e.source_gets for e in etas),
        mode_plan.list_requests,
        sum(e.source_bytes for e in etas),
    )


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def summary_table(outcomes: list[Outcome]) -> str:
    lines = [
        "| mode | cores/node | admission (NVMe) | plan | per-node ETA min / median / max | total "
        "| S3 GET + LIST requests | read from source | binds longest |",
        "|---|--:|---|--:|---|--:|--:|--:|---|",
    ]
    for o in outcomes:
        seconds = [e.seconds for e in o.etas]
        binds = statistics.mode(e.bottleneck for e in o.etas)
        lines.append(
            f"| {o.mode} | {o.cores:g} | {'fits' if o.fits == 'fits' else 'refused'} | {hours(o.plan_s)} "
            f"| {hours(min(seconds))} / {hours(statistics.median(seconds))} / {hours(max(seconds))} "
            f"| {hours(o.total_s)} | {o.gets:,} + {o.list_requests:,} | {format_bytes(o.source_bytes)} "
            f"| {binds} |"
        )
    return "\n".join(lines)


def per_node_lines(o: Outcome) -> str:
    """Per-node ETAs, runs of equal ones collapsed (``node-00..node-62``)."""
    runs: list[tuple[str, str, str]] = []
    for e in o.etas:
        shown = hours(e.seconds)
        if runs and runs[-1][2] == shown:
            runs[-1] = (runs[-1][0], e.node, shown)
        else:
            runs.append((e.node, e.node, shown))
    parts = [f"{a}..{b} {t}" if a != b else f"{a} {t}" for a, b, t in runs]
    return f"{o.mode} ({o.cores:g} cores/node): " + ", ".join(parts)


def plot(outcomes: list[Outcome], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cores = sorted({o.cores for o in outcomes})
    fig, axes = plt.subplots(1, len(cores), figsize=(6 * len(cores), 4.2), squeeze=False, sharey=True)
    for ax, c in zip(axes[0], cores, strict=True):
        for o in (o for o in outcomes if o.cores == c):
            label = f"{o.mode} (total {hours(o.total_s)}{'' if o.fits == 'fits' else ', does not fit'})"
            ax.plot(range(len(o.etas)), [e.seconds / 3600 for e in o.etas], marker=".", label=label)
        ax.set_yscale("log")
        ax.set_xlabel("node")
        ax.set_title(f"{c:g} core(s) per node")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="center right", framealpha=0.9)
    axes[0][0].set_ylabel("ETA after the plan, hours (log)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@dataclass(frozen=True, slots=True)
class Planned:
    """What the real planner and splitter made of the listing, kept so the model can be run
    again without planning 10 million entries again."""

    files: int
    bytes: int
    planner_cpu_s: float
    split_s: float
    modes: list[ModePlan]

    def save(self, path: Path) -> None:
        modes = [
            {
                "mode": m.mode,
                "list_requests": m.list_requests,
                "portions": [[p.node, p.digest, p.files, p.bytes] for p in m.portions],
                "works": [asdict(w) for w in m.works],
            }
            for m in self.modes
        ]
        fields = {"files": self.files, "bytes": self.bytes, "planner_cpu_s": self.planner_cpu_s}
        path.write_text(json.dumps({**fields, "split_s": self.split_s, "modes": modes}))

    def fanned_out(self, modes: list[str], readers: int, per_holder: int) -> Planned:
        """``modes`` from what was planned, fan-out derived afresh from replicate (so the
        fan-out settings apply without planning again; a work file kept before fan-out was
        modelled as built may hold other fan-out modes: they are dropped)."""
        kept = {m.mode: m for m in self.modes if not m.mode.startswith("fan-out")}
        chosen = [kept[m] if m in kept else fan_out(kept["replicate"], readers, per_holder) for m in modes]
        return replace(self, modes=chosen)

    @classmethod
    def load(cls, path: Path) -> Planned:
        d = json.loads(path.read_text())
        modes = [
            ModePlan(
                m["mode"],
                [NodePortion(node, digest, files, size, []) for node, digest, files, size in m["portions"]],
                [NodeWork(**w) for w in m["works"]],
                m["list_requests"],
            )
            for m in d["modes"]
        ]
        return cls(d["files"], d["bytes"], d["planner_cpu_s"], d["split_s"], modes)


def plan_generated(args: argparse.Namespace, nodes: list[str], modes: list[str]) -> Planned:
    """The real planner over the generated listing, then each mode's split."""
    source = GeneratedSource(args.files, mean_size=args.total // args.files)
    with tempfile.TemporaryDirectory(prefix="stagegate-sim-") as scratch:
        started, cpu0 = time.perf_counter(), time.process_time()
        plan = plan_dataset(source, Path(scratch) / "plan.jsonl", ".classification")  # type: ignore[arg-type]
        planner_cpu = time.process_time() - cpu0
        print(
            f"planned {plan.files:,} files, {format_bytes(plan.bytes)} with the real planner: "
            f"{time.perf_counter() - started:.0f} s wall, {planner_cpu:.0f} s CPU here",
            flush=True,
        )
        mode_plans = plan_modes(
            plan, nodes, modes, TransferConfig(), args.readers, per_holder=args.per_holder
        )
    return Planned(plan.files, plan.bytes, planner_cpu, time.perf_counter() - started, mode_plans)


def resources_from(args: argparse.Namespace) -> Resources:
    return Resources(
        s3_connection_bps=args.s3_connection_bps,
        s3_aggregate_bps=args.s3_aggregate_bps,
        prefix_gets_per_s=args.prefix_gets_per_s,
        nic_bps=args.nic_bps,
        nvme_write_bps=args.nvme_write_bps,
        fabric_bps=args.fabric_bps,
    )


def _rate(text: str) -> float:
    """``200Gb/s`` (bits) or ``6GB/s``/``6GiB`` (bytes) as bytes per second."""
    text = text.strip().removesuffix("/s")
    if text.endswith("b") and not text.endswith("ib"):
        return parse_size(text[:-1] + "B") / 8
    return float(parse_size(text))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.sim", description=__doc__.splitlines()[0])
    p.add_argument("--files", type=int, default=10_000_000)
    p.add_argument("--total", type=parse_size, default=parse_size("100TB"))
    p.add_argument("--nodes", type=int, default=64)
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--cores", default="1,16", help="cores per node a copy can use, comma-separated")
    p.add_argument(
        "--readers",
        type=int,
        default=1,
        help="fan-out: nodes reading every batch from the source (STAGEGATE_FANOUT_READERS)",
    )
    p.add_argument(
        "--per-holder",
        type=int,
        default=DEFAULT_FANOUT_PER_HOLDER,
        help="fan-out: copies of a batch in flight per node holding it (STAGEGATE_FANOUT_PER_HOLDER)",
    )
    p.add_argument("--s3-connection-bps", type=_rate, default=_rate("90MB/s"))
    p.add_argument("--s3-aggregate-bps", type=_rate, default=_rate("800Gb/s"))
    p.add_argument("--prefix-gets-per-s", type=float, default=5500.0)
    p.add_argument("--nic-bps", type=_rate, default=_rate("200Gb/s"))
    p.add_argument("--nvme-write-bps", type=_rate, default=_rate("12GB/s"))
    p.add_argument("--nvme-capacity", type=parse_size, default=parse_size("30.72TB"))
    p.add_argument("--fabric-bps", type=_rate, default=None, help="peer network in all (N x NIC)")
    p.add_argument("--list-page-s", type=float, default=0.05, help="seconds per ListObjectsV2 page")
    p.add_argument("--manifest-rows-per-s", type=float, default=50_000.0)
    p.add_argument("--plot", type=Path, default=Path("bench/sim-64-nodes.png"))
    p.add_argument("--json", type=Path, default=None, help="also write every node's ETA as JSON")
    p.add_argument("--work", type=Path, default=None, help="keep the planned work here; reuse it if present")
    args = p.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    nodes = [f"node-{i:02d}" for i in range(args.nodes)]
    if args.work is not None and args.work.exists():
        planned = Planned.load(args.work).fanned_out(modes, args.readers, args.per_holder)
        print(f"planned work read from {args.work} (planned in {planned.split_s:.0f} s)")
    else:
        planned = plan_generated(args, nodes, modes)
        if args.work is not None:
            planned.save(args.work)
    base = resources_from(args)
    outcomes = []
    for cores in (float(c) for c in args.cores.split(",")):
        r = replace(base, cores_per_node=cores)
        for mp in planned.modes:
            plan_s = plan_seconds(planned.files, mp.list_requests, planned.planner_cpu_s, args)
            outcomes.append(outcome(mp, r, plan_s, args.nvme_capacity))
    title = f"{format_bytes(planned.bytes)}, {planned.files:,} files onto {args.nodes} nodes"
    print(f"\n### {title}\n")
    print(summary_table(outcomes))
    print()
    for o in outcomes:
        print(per_node_lines(o))
        if o.fits != "fits":
            print(f"  admission ({o.mode}): {o.fits}")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nplanning and splitting: {planned.split_s:.0f} s wall; peak RSS {peak_mb:.0f} MB")
    if args.plot:
        plot(outcomes, args.plot, title)
        print(f"plot: {args.plot}")
    if args.json:
        rows = [
            {
                "mode": o.mode,
                "cores": o.cores,
                "fits": o.fits == "fits",
                "total_s": o.total_s,
                "plan_s": o.plan_s,
                "gets": o.gets,
                "list_requests": o.list_requests,
                "source_bytes": o.source_bytes,
                "etas": [e.seconds for e in o.etas],
            }
            for o in outcomes
        ]
        args.json.write_text(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
