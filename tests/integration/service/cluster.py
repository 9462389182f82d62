"""A whole stagegate service on loopback, as the tests' one machine can hold it: a private
redis-server, a PostgreSQL database of its own, the API (``stagegate serve``) and one node
worker process (``stagegate worker``) per node, all started as a user would start them."""

import json
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from integration.helpers import STAGEGATE
from stagegate.ledger import Ledger, Tokens

TERMINAL = ("ready", "failed", "denied", "released")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# How long a process started here may take to answer: a Python start-up on a shared 2-core
# machine under load 20 took 29 s (an upper bound on readiness, not a measure of speed).
START_S = 120.0


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (httpx.HTTPError, OSError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class RedisServer:
    """A redis-server of this test's own, so stopping it disturbs nothing else."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            cwd=self._workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for("redis-server", self._answers, timeout=10)

    def _answers(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()  # like a crash: whatever it held in memory is gone
            self.process.wait()
            self.process = None

    def llen(self, queue: str) -> int:
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            s.sendall(f"LLEN {queue}\r\n".encode())
            return int(s.recv(64).decode().strip().lstrip(":"))


@dataclass
class Cluster:
    workdir: Path
    env: dict[str, str]
    ledger: Ledger
    redis: RedisServer
    api_url: str = ""
    api: subprocess.Popen[bytes] | None = None
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    roots: dict[str, Path] = field(default_factory=dict)

    def _log(self, name: str) -> Any:
        return (self.workdir / f"{name}.log").open("ab")

    def start_api(self) -> None:
        port = free_port()
        self.api_url = f"http://127.0.0.1:{port}"
        self.api = subprocess.Popen(
            [STAGEGATE, "serve", "--port", str(port)],
            env=self.env,
            stdout=self._log("api"),
            stderr=subprocess.STDOUT,
        )
        # A bound on a start, not a speed check: seven sessions on two cores took over 30 s to
        # import and migrate. An API that exits stops the wait at once.
        wait_for("the API", self._api_answers, timeout=START_S)

    def _api_answers(self) -> bool:
        assert self.api is not None
        if (code := self.api.poll()) is not None:
            raise AssertionError(f"the API exited with {code}:\n{self.logs()}")
        return httpx.get(f"{self.api_url}/healthz", timeout=1).status_code == 200

    def start_worker(
        self, node: str, capacity: str | None = None, env: dict[str, str] | None = None, metrics_port: int = 0
    ) -> None:
        """Start ``node``'s worker; its metrics on ``metrics_port`` (0, the default here: none, so
        workers on one machine do not contend for the default port)."""
        root = self.roots.setdefault(node, self.workdir / f"node-{node}")
        args = [STAGEGATE, "worker", "--node", node, "--root", str(root), "--concurrency", "4"]
        args += ["--metrics-port", str(metrics_port)]
        if capacity is not None:
            args += ["--capacity", capacity]
        self.workers[node] = subprocess.Popen(
            args,
            env={**self.env, **(env or {})},
            stdout=self._log(f"worker-{node}"),
            stderr=subprocess.STDOUT,
        )

    def wait_nodes_ready(self) -> None:
        """Every worker registered and consuming (its Celery consumer logs 'ready')."""
        for node in self.workers:
            log = self.workdir / f"worker-{node}.log"
            wait_for(
                f"worker {node}",
                lambda log=log, node=node: f"{node}@" in log.read_text() and " ready." in log.read_text(),
                timeout=START_S,  # a bound on a start, as for the API (over 30 s at load 40)
            )

    def kill_worker(self, node: str) -> None:
        process = self.workers.pop(node)
        process.send_signal(signal.SIGKILL)
        process.wait()

    def token(self, user: str, role: str, project: str | None = None) -> str:
        return Tokens(self.ledger).create(user, role, project).token

    def http(self, token: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.api_url, headers=headers, timeout=30)

    def wait_terminal(self, token: str, staging_id: str, timeout: float = 60) -> dict[str, Any]:
        with self.http(token) as http:

            def done() -> dict[str, Any] | None:
                body: dict[str, Any] = http.get(f"/v1/stagings/{staging_id}").json()
                return body if body["state"] in TERMINAL else None

            result: dict[str, Any] = wait_for(f"staging {staging_id}", done, timeout=timeout, every=0.2)
            return result

    def cli(
        self, *args: str, token: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        env = {**self.env, "STAGEGATE_URL": self.api_url}
        if token:
            env["STAGEGATE_TOKEN"] = token
        return subprocess.run([STAGEGATE, *args], env=env, capture_output=True, text=True, timeout=timeout)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-4000:]}" for p in sorted(self.workdir.glob("*.log")))

    def _processes(self) -> list[subprocess.Popen[bytes]]:
        return [*self.workers.values(), *([self.api] if self.api else [])]

    def stop(self) -> None:
        """Stop the API and workers as an operator does (SIGTERM, a warm shutdown), then Redis."""
        for process in self._processes():
            process.terminate()
        for process in self._processes():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.workers.clear()
        self.redis.stop()

    def discard(self) -> None:
        """The test is over: kill everything (a Celery warm shutdown takes seconds per worker,
        and nothing after it is looked at)."""
        for process in self._processes():
            process.kill()
        for process in self._processes():
            process.wait()
        self.workers.clear()
        self.redis.stop()


def audit_actions(ledger: Ledger, job_id: str) -> list[str]:
    from stagegate.ledger import AuditTrail

    return [e.action for e in AuditTrail(ledger).query(job=job_id)]


def dump(value: Any) -> str:
    return json.dumps(value, indent=2, default=str)


def env_for(base: dict[str, str], db_url: str, broker_url: str, home: Path) -> dict[str, str]:
    env = {k: v for k, v in base.items() if not k.startswith("STAGEGATE_")}
    env.update(
        {
            "STAGEGATE_DATABASE_URL": db_url,
            "STAGEGATE_BROKER_URL": broker_url,
            "STAGEGATE_HOME": str(home),
            # Short leases and reconcile periods, so recovery from a kill takes seconds, not minutes.
            "STAGEGATE_LEASE_SECONDS": "4",
            "STAGEGATE_RECONCILE_SECONDS": "1",
            "STAGEGATE_DECISION_WAIT": "10",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def iter_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file():  # the state lies beside the dataset: all inside is data
            yield path
