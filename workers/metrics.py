"""A node worker's own metrics: what only the process doing the work can see.

Step durations, bytes actually copied and evictions happen inside the worker and leave no
countable trace in the ledger (an evicted dataset's row is deleted), so they are counted here
and served by the worker itself (``stagegate worker --metrics-port``). Figures the ledger
holds (stagings by state, queue depth, NVMe use, bytes moved per user) are the API's
``/metrics``. Counters restart at 0 with the process; Prometheus' ``rate()`` expects that.
"""

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector, start_http_server

log = logging.getLogger(__name__)

DEFAULT_METRICS_PORT = 9108
DEFAULT_METRICS_HOST = "127.0.0.1"  # unauthenticated: reachable from other hosts only when asked
# A step runs from milliseconds (a finalize, a cache-hit plan) to many minutes (a 1 GiB batch
# over a slow link).
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
OUTCOMES = ("completed", "retried", "failed", "cancelled")


class _Step(threading.local):
    claimed: bool = False
    outcome: str = "completed"


class WorkerMetrics:
    """The metrics of one worker process, on a registry of their own (never prometheus_client's
    global one, so a test can make as many as it likes)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.durations = Histogram(
            "stagegate_worker_batch_duration_seconds",
            "Time a worker spent on a step it claimed: kind=copy is one copy batch, plan a staging's "
            "listing and decision, finalize a node's manifest and READY.",
            ["node", "kind"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.copied = Counter(
            "stagegate_worker_bytes_copied",
            "Bytes this worker wrote to its node's NVMe (files already present and verified excluded).",
            ["node", "direction"],
            registry=self.registry,
        )
        self.evictions = Counter(
            "stagegate_worker_cache_evictions",
            "Cached datasets this worker deleted from its node to make room.",
            ["node"],
            registry=self.registry,
        )
        self.tasks = Counter(
            "stagegate_worker_tasks",
            "Steps this worker ran, by outcome: completed, retried (given back for a later attempt), "
            "failed (the staging failed), cancelled (released while running).",
            ["node", "kind", "outcome"],
            registry=self.registry,
        )
        self.owner_checks = Counter(
            "stagegate_worker_owner_checks",
            "Questions this worker asked the Kubernetes API about pin owners, by verdict: present, gone "
            "(the staging was released), unknown (the API could not tell; the pins were kept).",
            ["node", "verdict"],
            registry=self.registry,
        )
        self._step = _Step()
        self._process_collected = False

    @contextmanager
    def step(self, node: str, kind: str) -> Iterator[None]:
        """Time a step and count its outcome, if it claims its task (:meth:`claimed`): a
        duplicate message that finds its task done or taken is not a step run."""
        self._step.claimed, self._step.outcome = False, "completed"
        started = time.monotonic()
        try:
            yield
        finally:
            if self._step.claimed:
                self.durations.labels(node, kind).observe(time.monotonic() - started)
                self.tasks.labels(node, kind, self._step.outcome).inc()
            self._step.claimed = False

    def claimed(self) -> None:
        """The running step claimed its task: it will be timed and counted."""
        self._step.claimed = True

    def outcome(self, outcome: str) -> None:
        """How the running step ended, if not ``completed``."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, not {outcome!r}")
        self._step.outcome = outcome

    def bytes_copied(self, node: str, nbytes: int, direction: str = "stage") -> None:
        if nbytes > 0:
            self.copied.labels(node, direction).inc(nbytes)

    def evicted(self, node: str) -> None:
        self.evictions.labels(node).inc()

    def serve(self, port: int, addr: str = DEFAULT_METRICS_HOST) -> bool:
        """Serve ``/metrics`` on ``addr``:``port`` (0: not at all) from a daemon thread; True if
        serving. The endpoint has no authentication, so it listens on loopback unless the
        operator names an address Prometheus can reach (the pod IP in deploy/k8s). A port in use
        is logged and the worker goes on without metrics: staging matters more than its figures."""
        if port == 0:
            return False
        try:
            start_http_server(port, addr, registry=self.registry)
        except OSError as exc:
            log.error(
                "metrics not served: cannot listen on %s:%d (%s); pass --metrics-host/--metrics-port",
                addr,
                port,
                exc,
            )
            return False
        if not self._process_collected:  # this process's CPU, memory and file descriptors
            ProcessCollector(registry=self.registry)
            self._process_collected = True
        log.info("metrics on http://%s:%d/metrics", addr, port)
        return True
