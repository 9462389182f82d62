"""``GET /metrics``: the service's figures in the Prometheus text format.

A custom collector asks the ledger at scrape time (see :mod:`ledger.metrics_queries`), so
every API replica reports the same figures and nothing is kept in step by hand. The registry
is the app's own, not prometheus_client's global one: two apps in one process (the tests)
never collide.

No authentication, as with other exporters: the figures name users, projects and nodes, so
the endpoint belongs on a network only Prometheus reaches (a NetworkPolicy, or a proxy rule
that keeps /metrics internal).
"""

import logging
import threading
from collections.abc import Iterator

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from stagegate.ledger import Ledger, Nodes
from stagegate.ledger.metrics_queries import (
    QUEUE_STATES,
    STAGING_STATES,
    EventTotals,
    catch_up,
    jobs_by_state,
    queue_depth,
)
from stagegate.ledger.redact import redact_text
from stagegate.queues import PLAN_QUEUE, node_queue

log = logging.getLogger(__name__)
router = APIRouter(tags=["metrics"])


def _bytes_moved() -> CounterMetricFamily:
    return CounterMetricFamily(
        "stagegate_bytes_moved",
        "Bytes of completed stagings (dataset bytes, cache hits included) and egresses (checkpoint "
        "bytes), by direction, user and project.",
        labels=["direction", "user", "project"],
    )


def _cache_hits() -> CounterMetricFamily:
    return CounterMetricFamily(
        "stagegate_cache_hits",
        "Node shares of admitted stagings that the node already held (no byte copied).",
        labels=["node"],
    )


def _denials() -> CounterMetricFamily:
    return CounterMetricFamily(
        "stagegate_policy_denials",
        "Stagings and egresses the policy denied, by zone (staging|egress) and reason: the highest "
        "label refused, or 'unlabelled' (no label and no lineage, or no egress rule for the destination).",
        labels=["zone", "reason"],
    )


def _ledger_up() -> GaugeMetricFamily:
    return GaugeMetricFamily("stagegate_ledger_up", "1 if this scrape could read the ledger, else 0.")


def _stagings() -> GaugeMetricFamily:
    return GaugeMetricFamily("stagegate_stagings", "Service stagings by state.", labels=["state"])


def _egresses() -> GaugeMetricFamily:
    return GaugeMetricFamily("stagegate_egresses", "Checkpoint egresses by state.", labels=["state"])


def _queue_depth() -> GaugeMetricFamily:
    return GaugeMetricFamily(
        "stagegate_queue_depth",
        "Tasks not started, by queue, node ('' for plans, which any node takes) and state "
        "(queued: sent to the broker; waiting: not yet sent, beyond the window of batches in flight).",
        labels=["queue", "node", "state"],
    )


def _node_gauge(what: str, help_text: str) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"stagegate_node_{what}", help_text, labels=["node"])


NODE_GAUGES = {
    "capacity_bytes": "Bytes the node's cache may hold (--capacity).",
    "used_bytes": "Bytes the node's cached datasets occupy, being written or evicted included.",
    "pinned_bytes": "Bytes of the node's datasets pinned by stagings not yet released.",
    "alive": "1 if the node's worker heartbeated within the liveness window (15 s), else 0.",
}


class LedgerCollector(Collector):
    """Reads the ledger at each scrape. Thread-safe: FastAPI runs scrapes in its threadpool."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._nodes = Nodes(ledger)
        self._totals = EventTotals()
        self._lock = threading.Lock()

    def describe(self) -> Iterator[Metric]:
        # Names only, so registering the collector does not query the ledger.
        yield from (_ledger_up(), _stagings(), _egresses(), _queue_depth())
        yield from (_node_gauge(what, text) for what, text in NODE_GAUGES.items())
        yield from (_bytes_moved(), _cache_hits(), _denials())

    def collect(self) -> Iterator[Metric]:
        up = _ledger_up()
        try:
            gauges = self._gauges()
            with self._lock:
                self._totals = catch_up(self._ledger, self._totals)
        except Exception as exc:  # the ledger is away: say so, and keep serving what is known
            log.warning("metrics: the ledger could not be read: %s", redact_text(str(exc)))
            up.add_metric([], 0)
            yield up
            yield from self._counters()
            return
        up.add_metric([], 1)
        yield up
        yield from gauges
        yield from self._counters()

    def _gauges(self) -> list[Metric]:
        stagings, egresses, queue = _stagings(), _egresses(), _queue_depth()
        by_state = jobs_by_state(self._ledger, "stage")
        for state in sorted({*STAGING_STATES, *by_state}):
            stagings.add_metric([state], by_state.get(state, 0))
        for state, count in sorted(jobs_by_state(self._ledger, "egress").items()):
            egresses.add_metric([state], count)
        nodes = self._nodes.all()
        depth = queue_depth(self._ledger)
        # Every registered node and the plan queue, at 0 when idle, so series do not come and go.
        for node in sorted({"", *(n.name for n in nodes), *(node for node, _ in depth)}):
            for state in QUEUE_STATES:
                queue.add_metric(
                    [node_queue(node) if node else PLAN_QUEUE, node, state], depth.get((node, state), 0)
                )
        families = {what: _node_gauge(what, text) for what, text in NODE_GAUGES.items()}
        for n in nodes:
            families["capacity_bytes"].add_metric([n.name], n.capacity)
            families["used_bytes"].add_metric([n.name], n.used)
            families["pinned_bytes"].add_metric([n.name], n.pinned)
            families["alive"].add_metric([n.name], 1 if n.alive else 0)
        return [stagings, egresses, queue, *families.values()]

    def _counters(self) -> list[Metric]:
        with self._lock:
            totals = self._totals
            moved, hits, denials = _bytes_moved(), _cache_hits(), _denials()
            for moved_labels, value in sorted(totals.bytes_moved.items()):
                moved.add_metric(list(moved_labels), value)
            for node, count in sorted(totals.cache_hits.items()):
                hits.add_metric([node], count)
            for denial_labels, count in sorted(totals.denials.items()):
                denials.add_metric(list(denial_labels), count)
        return [moved, hits, denials]


def build_registry(ledger: Ledger) -> CollectorRegistry:
    """The app's registry: the ledger's figures and this process's CPU, memory and file descriptors."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(LedgerCollector(ledger))
    ProcessCollector(registry=registry)
    return registry


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "The text exposition format."}},
)
def metrics(request: Request) -> Response:
    """The service's figures for Prometheus; no authentication, so keep it on an internal network."""
    registry: CollectorRegistry = request.app.state.metrics_registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
