"""Start-up cost of ``stagegate`` commands, two checkouts side by side (``python -m bench.startup``).

Each scenario runs the ``stagegate`` of each checkout's ``.venv`` in turn (before, after,
before, ...), so both see the same load; CPU is user+sys from ``/usr/bin/time``. Small inputs
on purpose: what is left is start-up (imports, a fresh ledger), not copying.

    python -m bench.startup --before /work/wt/h1-before --after /work/wt/h1 --runs 5
"""

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

FILES = 10
FILE_BYTES = 4096
S3_OBJECTS = 5
# argv, environment, and the exit code expected when it is not 0.
Run = tuple[list[str], dict[str, str]] | tuple[list[str], dict[str, str], int]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _timed(argv: list[str], env: dict[str, str], exit_code: int = 0) -> tuple[float, float]:
    """(user+sys CPU s, wall s) of one run, which must end with ``exit_code``."""
    with tempfile.NamedTemporaryFile("r") as out:
        done = subprocess.run(
            ["/usr/bin/time", "-o", out.name, "-f", "%U %S %e", *argv],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        if done.returncode != exit_code:
            raise RuntimeError(f"{argv} exited {done.returncode}, not {exit_code}: {done.stderr[-500:]}")
        user, sys_, wall = (float(v) for v in out.read().split()[-3:])
    return user + sys_, wall


def _dataset(root: Path) -> Path:
    root.mkdir(parents=True)
    for i in range(FILES):
        (root / f"f{i}.bin").write_bytes(os.urandom(FILE_BYTES))
    (root / ".classification").write_text("public\n")
    return root


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.startup")
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    checkouts = {"before": args.before.resolve(), "after": args.after.resolve()}
    work = Path(tempfile.mkdtemp(prefix="stagegate-startup-"))
    port = _free_port()
    moto = subprocess.Popen(
        [str(args.after / ".venv/bin/moto_server"), "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("STAGEGATE_", "AWS_"))}
        base |= {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        }
        source = _dataset(work / "src" / "ds")
        _upload(port, source)
        warm_homes = {name: work / f"warm-{name}" for name in checkouts}
        counter = iter(range(10**6))

        def stagegate(name: str) -> str:
            return str(checkouts[name] / ".venv/bin/stagegate")

        def home(path: Path) -> dict[str, str]:
            return base | {"STAGEGATE_HOME": str(path)}

        def dest() -> str:
            return str(work / "dest" / f"d{next(counter)}")

        # `status` against a port nothing listens on: the start-up of a service command up to its
        # first request, which fails (exit 1, the service could not be reached).
        refused = f"http://127.0.0.1:{_free_port()}"
        scenarios: dict[str, Callable[[str], Run]] = {
            "stagegate --help": lambda n: ([stagegate(n), "--help"], home(work / "help-home")),
            "status ID --server (refused)": lambda n: (
                [stagegate(n), "status", "00000000-0000-0000-0000-000000000000", "--server", refused],
                home(work / "status-home") | {"STAGEGATE_TOKEN": "not-a-real-token"},
                1,
            ),
            "stage 10 files, fresh home": lambda n: (
                [stagegate(n), "stage", str(source), "--to", dest()],
                home(work / f"fresh-{next(counter)}"),
            ),
            "stage 10 files, warm home": lambda n: (
                [stagegate(n), "stage", str(source), "--to", dest()],
                home(warm_homes[n]),
            ),
            f"stage s3 {S3_OBJECTS} objects, warm home": lambda n: (
                [stagegate(n), "stage", "s3://startup/ds", "--to", dest()],
                home(warm_homes[n]),
            ),
        }
        for name in checkouts:  # the warm homes' ledgers exist before any timed run
            argv, env, *_ = scenarios["stage 10 files, warm home"](name)
            _timed(argv, env)
        load_before = os.getloadavg()
        print(f"load average before: {load_before[0]:.2f} / {load_before[1]:.2f} / {load_before[2]:.2f}")
        print(
            "| command | before CPU s median (min-max) | after CPU s median (min-max) | after/before | "
            "before wall s | after wall s |"
        )
        print("|---|---|---|---|---|---|")
        for label, scenario in scenarios.items():
            cpu: dict[str, list[float]] = {n: [] for n in checkouts}
            wall: dict[str, list[float]] = {n: [] for n in checkouts}
            for _ in range(args.runs):
                for name in checkouts:
                    c, w = _timed(*scenario(name))
                    cpu[name].append(c)
                    wall[name].append(w)
            b, a = statistics.median(cpu["before"]), statistics.median(cpu["after"])
            print(
                f"| `{label}` | {b:.2f} ({min(cpu['before']):.2f}-{max(cpu['before']):.2f}) | "
                f"{a:.2f} ({min(cpu['after']):.2f}-{max(cpu['after']):.2f}) | {a / b:.2f} | "
                f"{statistics.median(wall['before']):.2f} | {statistics.median(wall['after']):.2f} |",
                flush=True,
            )
        load_after = os.getloadavg()
        print(f"load average after: {load_after[0]:.2f} / {load_after[1]:.2f} / {load_after[2]:.2f}")
    finally:
        moto.terminate()
        moto.wait()
        shutil.rmtree(work, ignore_errors=True)


def _upload(port: int, source: Path) -> None:
    """A bucket with a few small objects and their label, once moto answers."""
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    for _ in range(100):
        try:
            client.create_bucket(Bucket="startup")
            break
        except Exception:
            time.sleep(0.1)
    for i in range(S3_OBJECTS):
        client.put_object(Bucket="startup", Key=f"ds/f{i}.bin", Body=(source / f"f{i}.bin").read_bytes())
    client.put_object(Bucket="startup", Key="ds/.classification", Body=b"public\n")


if __name__ == "__main__":
    main()
