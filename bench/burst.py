"""Many identical stagings of one cached dataset, as a big job's init containers send them:
``python -m bench.burst``.

Each variant runs a whole service on loopback, started as a user starts it: a private
redis-server, a fresh PostgreSQL database, moto's S3 server, ``stagegate serve`` and one
``stagegate worker`` per node. ``--code`` names other checkouts to run the same scenario
with (``before=/tmp/main``: that tree's ``stagegate`` package comes first on PYTHONPATH, run
with this virtualenv's interpreter), so before and after are measured in the same run.

Scenarios:
- burst: one warm staging (the dataset cached on both nodes), then ``--stagings`` more,
  ``--parallel`` submissions in flight at a time; wall time until all are terminal, submit
  latency (the POST, which waits up to STAGEGATE_DECISION_WAIT for the decision) p50/p95,
  states, and the audit story of each request.
- big-hit: a dataset of ``--objects`` objects staged once, then hit: seconds from submit to
  ready, twice (the first no sooner than ``--hit-after`` seconds after the first staging was
  submitted, so after the first plan's freshness window when that is longer than the window;
  the second right after it); ``rechecks_s``: how long each background re-listing of the plan
  took (``workers.plan_recheck``). ``--env`` sets the service's settings (the window).
  ``--seed-in-server`` makes its dataset inside the S3 server (:mod:`bench.moto_seeded`) instead
  of uploading it, which a count of 100,000 needs on this machine; ``--profile DIR`` samples
  every service process with py-spy during ``--profiled-hits`` more hits.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from bench.moto_seeded import Seed, seed_objects
from bench.s3server import BUCKET, CREDENTIALS, S3Server

PG_ADMIN = os.environ.get("STAGEGATE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TERMINAL = ("ready", "failed", "denied", "released")
# How long a service process may take to start: a Python start-up took 29 s at load 20 here.
START_S = 300.0
# workers.plan_recheck's lines: re-verified (listed in N s) or not kept warm (took N s).
RECHECK_LINE = re.compile(
    r"plan of staging \S+ (?:re-verified|not kept warm).*?(?:listed in|took) ([\d.]+) s"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(what: str, check: Any, timeout: float = 60.0, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if result := check():
                return result
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(every)
    raise RuntimeError(f"timed out waiting for {what}")


@contextmanager
def _database() -> Iterator[str]:
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    name = f"sg_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def _redis(workdir: Path) -> Iterator[str]:
    port = _free_port()
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(args, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait("redis", lambda: _answers(port))
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.kill()
        process.wait()


def service_env(workdir: Path, db: str, broker: str, s3_url: str) -> dict[str, str]:
    """The environment of a loopback service's processes: this one's, less its own
    ``STAGEGATE_`` settings, with the database, broker, S3 server and a home under ``workdir``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STAGEGATE_")}
    env.update(CREDENTIALS)
    env.update(
        {
            "AWS_ENDPOINT_URL": s3_url,
            "STAGEGATE_DATABASE_URL": db,
            "STAGEGATE_BROKER_URL": broker,
            "STAGEGATE_HOME": str(workdir / "home"),
            "STAGEGATE_RECONCILE_SECONDS": "2",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


@contextmanager
def loopback_cluster(name: str, s3_url: str) -> Iterator[tuple[Path, str, dict[str, str]]]:
    """What one loopback service runs on: a scratch directory, a fresh PostgreSQL database (its
    URL) and a private redis-server, with the environment of its processes (:func:`service_env`)."""
    with (
        tempfile.TemporaryDirectory(prefix=f"sg-{name}-") as tmp,
        _database() as db,
        _redis(Path(tmp)) as broker,
    ):
        yield Path(tmp), db, service_env(Path(tmp), db, broker, s3_url)


class Service:
    """The API and node workers of one code tree, on loopback."""

    def __init__(self, code: Path | None, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.env = dict(env)
        if code is not None:
            self.env["PYTHONPATH"] = str(code)
        self.processes: list[subprocess.Popen[bytes]] = []
        self.url = ""

    def _cli(self, *args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{args[0]}-{len(self.processes)}.log").open("ab")
        cmd = [sys.executable, "-c", "import sys; from stagegate.client.cli import main; sys.exit(main())"]
        process = subprocess.Popen(
            [*cmd, *args],
            env={**self.env, **(env or {})},
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        return process

    def python(self, code: str) -> str:
        out = subprocess.run(
            [sys.executable, "-c", code],
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()

    def start(
        self,
        nodes: tuple[str, ...],
        node_env: Mapping[str, Mapping[str, str]] | None = None,
        timeout: float = START_S,
    ) -> None:
        """The workers of ``nodes`` (each with its own ``node_env`` settings, if any), then the
        API; ``timeout`` seconds for each to answer (a loaded machine imports slowly)."""
        # Migrate once, before the processes race to.
        self.python("from stagegate.ledger import open_ledger; open_ledger().close()")
        for node in nodes:
            root = self.workdir / f"node-{node}"
            self._cli(
                "worker", "--node", node, "--root", str(root), "--concurrency", "4", "--metrics-port", "0",
                env=(node_env or {}).get(node),
            )  # fmt: skip
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        self._cli("serve", "--port", str(port))
        _wait("the API", lambda: httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200, timeout)
        _wait("the nodes", lambda: self._nodes(nodes), timeout)

    def _nodes(self, nodes: tuple[str, ...]) -> bool:
        logs = "".join(p.read_text(errors="replace") for p in self.workdir.glob("worker-*.log"))
        return all(f"{n}@" in logs for n in nodes) and logs.count(" ready.") >= len(nodes)

    def token(self, user: str) -> str:
        return self.python(
            "from stagegate.ledger import open_ledger, Tokens; "
            f"print(Tokens(open_ledger()).create({user!r}, 'scientist').token)"
        )

    def audit_counts(self) -> dict[str, int]:
        out = self.python(
            "import json, collections; from stagegate.ledger import open_ledger, AuditTrail; "
            "print(json.dumps(collections.Counter(e.action for e in AuditTrail(open_ledger()).query())))"
        )
        return dict(json.loads(out))

    def cpu_seconds(self) -> dict[str, float]:
        """User and system CPU seconds each service process has used, by its log's name
        (``worker-0``, ``serve-2``...), from /proc (Linux)."""
        ticks = os.sysconf("SC_CLK_TCK")
        used = {}
        for i, process in enumerate(self.processes):
            fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            name = str(process.args[3] if isinstance(process.args, list) else "process")
            used[f"{name}-{i}"] = (int(fields[11]) + int(fields[12])) / ticks
        return used

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _submit(http: httpx.Client, source: str, nodes: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    response = http.post("/v1/stagings", json={"source": source, "nodes": nodes})
    took = time.perf_counter() - started
    response.raise_for_status()
    return took, str(response.json()["id"])


def _until_terminal(http: httpx.Client, ids: list[str], timeout: float) -> dict[str, str]:
    """The terminal state of each of ``ids`` (those that reached one within ``timeout``). A
    few are read one by one; many through the list (one request each 0.2 s: one by one, 500
    stagings took a pass of 7-10 s here, which the burst's wall time then measured)."""
    states: dict[str, str] = {}
    wanted = set(ids)
    deadline = time.monotonic() + timeout
    while len(states) < len(ids) and time.monotonic() < deadline:
        if len(ids) > 10:
            listed = http.get("/v1/stagings", params={"limit": 1000}).json()["stagings"]
            seen = {s["id"]: s["state"] for s in listed if s["id"] in wanted}
            if len(seen) < len(wanted) - len(states) and len(listed) >= 1000:
                raise RuntimeError("more than 1,000 stagings listed: the list cannot show them all")
        else:
            seen = {i: http.get(f"/v1/stagings/{i}").json()["state"] for i in ids if i not in states}
        states.update({i: state for i, state in seen.items() if state in TERMINAL})
        if len(states) < len(ids):
            time.sleep(0.2)
    return states


def _put_dataset(s3: Any, seed: Seed) -> None:
    def put(item: tuple[str, bytes]) -> None:
        s3.put_object(Bucket=BUCKET, Key=item[0], Body=item[1])

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, seed_objects(seed)))


def run_variant(name: str, code: Path | None, args: argparse.Namespace, s3_url: str) -> dict[str, Any]:
    nodes = ("a", "b")
    with loopback_cluster(f"burst-{name}", s3_url) as (workdir, _, env):
        env.update(args.env)
        service = Service(code, workdir, env)
        result: dict[str, Any] = {"variant": name}
        try:
            service.start(nodes)
            token = service.token("bench")
            with httpx.Client(
                base_url=service.url, headers={"Authorization": f"Bearer {token}"}, timeout=120
            ) as http:
                if "burst" in args.scenarios:
                    with profiled(service.processes, args.profile) if args.profile else nullcontext():
                        result["burst"] = _burst(http, service, args)
                if "big-hit" in args.scenarios:
                    result["big_hit"] = _big_hit(http, service, args)
                    result["big_hit"]["rechecks_s"] = _recheck_times(workdir)
        finally:
            service.stop()
        return result


def _burst(http: httpx.Client, service: Service, args: argparse.Namespace) -> dict[str, Any]:
    source = f"s3://{BUCKET}/burst-small"  # uploaded once, before the variants
    _, warm = _submit(http, source, ["a", "b"])
    if _until_terminal(http, [warm], 120) != {warm: "ready"}:
        raise RuntimeError("the warm-up staging did not end ready")
    before = service.audit_counts()
    cpu_before = service.cpu_seconds()
    started = time.perf_counter()
    with ThreadPoolExecutor(args.parallel) as pool:
        submitted = list(pool.map(lambda _: _submit(http, source, ["a", "b"]), range(args.stagings)))
    submit_done = time.perf_counter() - started
    ids = [i for _, i in submitted]
    states = _until_terminal(http, ids, args.timeout)
    wall = time.perf_counter() - started
    cpu = {k: round(v - cpu_before.get(k, 0.0), 2) for k, v in service.cpu_seconds().items()}
    after = service.audit_counts()
    latencies = sorted(t for t, _ in submitted)
    stories = {
        k: after.get(k, 0) - before.get(k, 0)
        for k in ("stage.requested", "policy.allowed", "stage.completed")
    }
    return {
        "stagings": args.stagings,
        "parallel": args.parallel,
        "wall_s": round(wall, 2),
        "submitted_s": round(submit_done, 2),
        "submit_p50_s": round(statistics.median(latencies), 3),
        "submit_p95_s": round(latencies[int(0.95 * (len(latencies) - 1))], 3),
        "submit_max_s": round(latencies[-1], 3),
        "states": dict(sorted((s, list(states.values()).count(s)) for s in set(states.values()))),
        "not_terminal": len(ids) - len(states),
        "audit": stories,
        # CPU seconds each service process spent from the first submission to the last ready
        # (the bench's own polling included in the API's), and per staging, in milliseconds.
        "cpu_s": cpu,
        "cpu_ms_per_staging": {k: round(1000 * v / args.stagings, 1) for k, v in cpu.items()},
    }


def _recheck_times(workdir: Path) -> list[float]:
    """How long each background re-listing of a kept-warm plan took (workers.plan_recheck's
    log lines), to set beside the freshness window: a listing must end within it."""
    times = []
    for log in sorted(workdir.glob("worker-*.log")):
        for line in log.read_text(errors="replace").splitlines():
            if found := RECHECK_LINE.search(line):
                times.append(float(found.group(1)))
    return times


def _big_hit(http: httpx.Client, service: Service, args: argparse.Namespace) -> dict[str, Any]:
    source = f"s3://{BUCKET}/big"
    started = time.perf_counter()
    _, first = _submit(http, source, ["a"])
    if _until_terminal(http, [first], args.timeout) != {first: "ready"}:
        raise RuntimeError("the big staging did not end ready")
    copied = time.perf_counter() - started
    # The first staging's plan was made at its start: past this, only a re-check keeps it fresh.
    time.sleep(max(0.0, args.hit_after - copied))
    result = {
        "objects": args.objects,
        "first_staging_s": round(copied, 1),
        "first_hit_after_s": round(max(copied, args.hit_after), 1),
        "hits": [_hit(http, source, args.timeout) for _ in range(2)],
    }
    if args.profile is not None:
        # Apart from the hits above: the sampler costs the processes it samples some CPU.
        with profiled(service.processes, args.profile):
            result["profiled_hits"] = [_hit(http, source, args.timeout) for _ in range(args.profiled_hits)]
    return result


def _hit(http: httpx.Client, source: str, timeout: float) -> tuple[float, str | None]:
    started = time.perf_counter()
    _, hit = _submit(http, source, ["a"])
    state = _until_terminal(http, [hit], timeout).get(hit)
    return round(time.perf_counter() - started, 3), state


@contextmanager
def profiled(processes: list[subprocess.Popen[bytes]], out: Path) -> Iterator[None]:
    """py-spy sampling each of ``processes`` and the processes it forks (a worker's pool)
    while the body runs; each one's stacks, with their sample counts, in ``out/<pid>.txt``
    (py-spy's raw format: one line per stack, frames from the root, the count last)."""
    out.mkdir(parents=True, exist_ok=True)
    spy = str(Path(sys.executable).parent / "py-spy")
    samplers = [
        subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(p.pid),
                "--subprocesses",
                "--format",
                "raw",
                "--rate",
                "200",
                "--output",
                str(out / f"{p.pid}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=(out / f"{p.pid}.log").open("wb"),
        )
        for p in processes
    ]
    try:
        time.sleep(2)  # py-spy attaches
        yield
    finally:
        for sampler in samplers:
            sampler.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        for sampler in samplers:
            sampler.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.burst", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--code", action="append", default=[], metavar="NAME=PATH", help="another checkout to run"
    )
    parser.add_argument("--scenarios", default="burst", help="comma-separated: burst, big-hit")
    parser.add_argument("--stagings", type=int, default=500)
    parser.add_argument("--parallel", type=int, default=50)
    parser.add_argument("--objects", type=int, default=10_000, help="objects of the big-hit dataset")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--rounds", type=int, default=1, help="variants alternate, round after round")
    parser.add_argument("--out", type=Path, default=None, help="append each result as a JSON line")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for the service, e.g. STAGEGATE_PLAN_FRESH_SECONDS=120 (repeatable)",
    )
    parser.add_argument(
        "--seed-in-server",
        action="store_true",
        help="big-hit: make the dataset inside the S3 server (bench.moto_seeded: moto, seeded by its "
        "backend, with a listing that does not walk every key per page) instead of uploading it",
    )
    parser.add_argument(
        "--profile", type=Path, default=None, metavar="DIR",
        help="big-hit: after the two hits, --profiled-hits more with py-spy sampling every service process",
    )  # fmt: skip
    parser.add_argument("--profiled-hits", type=int, default=5)
    parser.add_argument("--no-this", action="store_true", help="run only the --code checkouts")
    parser.add_argument(
        "--hit-after",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="big-hit: the first hit no sooner than this after the first staging was submitted",
    )
    args = parser.parse_args(argv)
    args.scenarios = set(args.scenarios.split(","))
    args.env = dict(spec.partition("=")[::2] for spec in args.env)
    variants: list[tuple[str, Path | None]] = [] if args.no_this else [("this", None)]
    for spec in args.code:
        name, _, path = spec.partition("=")
        variants.append((name, Path(path).resolve()))
    big = Seed("big", args.objects, 256) if "big-hit" in args.scenarios else None
    seeds = [big] if big is not None and args.seed_in_server else []
    started = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="sg-burst-s3-") as tmp,
        S3Server(Path(tmp) / "moto.log", seeds, ready_s=START_S + args.objects / 100) as server,
    ):
        s3 = s3_client(server.url)
        _put_dataset(s3, Seed("burst-small", 20, 4096))
        if big is not None:
            if not seeds:
                _put_dataset(s3, big)
            how = "seeded in the server" if seeds else "uploaded"
            print(f"{how}: {args.objects} objects in {time.perf_counter() - started:.0f} s", flush=True)
        for round_ in range(args.rounds):
            order = variants if round_ % 2 == 0 else list(reversed(variants))
            for name, code in order:
                result = run_variant(name, code, args, server.url)
                result["round"] = round_
                line = json.dumps(result, sort_keys=True)
                print(line, flush=True)
                if args.out:
                    with args.out.open("a") as out:
                        out.write(line + "\n")


def _answers(port: int) -> bool:
    socket.create_connection(("127.0.0.1", port), timeout=1).close()
    return True


def s3_client(endpoint_url: str) -> Any:
    """A boto3 S3 client of the bench's S3 server (its fixed credentials)."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
    )


def _boto_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "region_name": CREDENTIALS["AWS_DEFAULT_REGION"],
    }


if __name__ == "__main__":
    main()
