"""`python -m bench.egress_rss`: peak RSS of `stagegate egress` to S3, beside the AWS CLI and s5cmd.

Four 96 MiB checkpoint files (one Hugging Face style checkpoint, labelled public) go to a
moto server on loopback, each tool run as a user runs it, under GNU time (peak RSS of the
largest process, wall time, CPU). Every upload goes to its own prefix and is checked for
size afterwards. The numbers are printed and appended to bench/RESULTS-egress.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench import measure
from bench.datasets import LABEL, LABEL_FILE
from bench.peers import VENV_BIN
from bench.runner import RUNS_ROOT
from bench.s3server import BUCKET, S3Server

MiB = 1 << 20
RESULTS = Path(__file__).resolve().parent / "RESULTS-egress.md"
CHECKPOINT = "checkpoint-1000"


def make_run(root: Path, files: int, size: int) -> Path:
    """A run directory with one checkpoint of ``files`` files of ``size`` random bytes (kept
    between invocations: random bytes are slow to make)."""
    checkpoint = root / "run" / CHECKPOINT
    checkpoint.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        path = checkpoint / f"model-{i:05d}-of-{files:05d}.safetensors"
        if not path.exists() or path.stat().st_size != size:
            with open(path, "wb") as out:
                for _ in range(size // MiB):
                    out.write(os.urandom(MiB))
                out.write(os.urandom(size % MiB))
    (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": 1000}))
    (checkpoint / LABEL_FILE).write_bytes(LABEL)
    return root / "run"


def tools(run: Path, endpoint: str, prefix: str) -> dict[str, list[str]]:
    checkpoint = run / CHECKPOINT
    return {
        "stagegate": [
            str(VENV_BIN / "stagegate"), "egress", str(run), "--to", f"s3://{BUCKET}/{prefix}/stagegate",
            "--name", CHECKPOINT, "--json", "--no-progress",
        ],
        "aws": [
            str(VENV_BIN / "aws"), "s3", "cp", "--recursive", "--only-show-errors",
            "--endpoint-url", endpoint, str(checkpoint), f"s3://{BUCKET}/{prefix}/aws/{CHECKPOINT}/",
        ],
        "s5cmd": [
            str(VENV_BIN / "s5cmd"), "--log", "error", "--endpoint-url", endpoint, "cp",
            f"{checkpoint}/*", f"s3://{BUCKET}/{prefix}/s5cmd/{CHECKPOINT}/",
        ],
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.egress_rss", description=__doc__)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--size-mib", type=int, default=96)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    root = RUNS_ROOT / "egress-rss"
    run = make_run(root, args.files, args.size_mib * MiB)
    expected = sum(p.stat().st_size for p in (run / CHECKPOINT).iterdir() if p.is_file())
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_CA_BUNDLE", "STAGEGATE_DATABASE_URL")}
    env["STAGEGATE_HOME"] = str(root / "stagegate-home")
    rows: list[tuple[str, int, float, float, float]] = []
    with S3Server(root / "moto.log") as server:
        env.update(server.env)
        client = server._client()
        for round_ in range(args.runs):
            for name, argv_ in tools(run, server.url, f"r{round_}").items():
                done = measure.run_timed(argv_, env, timeout_s=600)
                if done.code != 0:
                    print(f"{name} failed (exit {done.code}): {done.stderr[-400:]}", file=sys.stderr)
                    return 1
                listed = client.list_objects_v2(Bucket=BUCKET, Prefix=f"r{round_}/{name}/")
                got = sum(o["Size"] for o in listed.get("Contents", []))
                if got != expected:
                    print(f"{name} uploaded {got} bytes, expected {expected}", file=sys.stderr)
                    return 1
                rows.append((name, round_, done.maxrss_kib * 1024 / 1e6, done.wall_s, done.cpu_s))
                print(f"  round {round_ + 1} {name:<10} peak RSS {rows[-1][2]:6.1f} MB  "
                      f"{done.wall_s:6.2f} s  cpu {done.cpu_s:5.2f} s", file=sys.stderr)  # fmt: skip
    lines = [
        f"## egress-rss, {datetime.now(UTC):%Y-%m-%d %H:%M UTC}",
        "",
        f"{args.files} x {args.size_mib} MiB files (one checkpoint) to moto on loopback, {args.runs} runs; "
        "peak RSS of the largest process (GNU time %M), median over runs.",
        "",
        "| tool | peak RSS MB (median, max) | wall s (median) | CPU s (median) |",
        "| --- | --- | --- | --- |",
    ]
    for name in ("stagegate", "aws", "s5cmd"):
        mine = [r for r in rows if r[0] == name]
        rss = sorted(r[2] for r in mine)
        wall = sorted(r[3] for r in mine)
        cpu = sorted(r[4] for r in mine)
        mid = len(mine) // 2
        lines.append(f"| {name} | {rss[mid]:.1f}, {rss[-1]:.1f} | {wall[mid]:.2f} | {cpu[mid]:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    with open(args.output, "a") as out:
        out.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
