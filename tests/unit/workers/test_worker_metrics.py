"""A worker's own metrics, read back through the text exposition Prometheus scrapes."""

import logging
import socket

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from stagegate.workers.metrics import DURATION_BUCKETS, WorkerMetrics

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def exposed(metrics: WorkerMetrics) -> Samples:
    text = generate_latest(metrics.registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_a_claimed_step_is_timed_and_counted_by_outcome() -> None:
    metrics = WorkerMetrics()
    with metrics.step("gpu-a", "copy"):
        metrics.claimed()
    with metrics.step("gpu-a", "copy"):
        metrics.claimed()
        metrics.outcome("retried")
    with metrics.step("gpu-a", "plan"):
        metrics.claimed()
        metrics.outcome("failed")

    samples = exposed(metrics)
    assert value(samples, "stagegate_worker_batch_duration_seconds_count", node="gpu-a", kind="copy") == 2
    assert value(samples, "stagegate_worker_batch_duration_seconds_count", node="gpu-a", kind="plan") == 1
    copy = {"node": "gpu-a", "kind": "copy"}
    assert value(samples, "stagegate_worker_batch_duration_seconds_bucket", **copy, le="+Inf") == 2
    assert value(samples, "stagegate_worker_batch_duration_seconds_sum", node="gpu-a", kind="copy") >= 0
    tasks = "stagegate_worker_tasks_total"
    assert value(samples, tasks, node="gpu-a", kind="copy", outcome="completed") == 1
    assert value(samples, tasks, node="gpu-a", kind="copy", outcome="retried") == 1
    assert value(samples, tasks, node="gpu-a", kind="plan", outcome="failed") == 1


def test_a_duplicate_message_that_claims_nothing_is_not_a_step() -> None:
    metrics = WorkerMetrics()
    with metrics.step("gpu-a", "copy"):
        pass  # the task was done or running elsewhere
    samples = exposed(metrics)
    assert value(samples, "stagegate_worker_batch_duration_seconds_count", node="gpu-a", kind="copy") == 0
    assert not [k for k in samples if k[0] == "stagegate_worker_tasks_total"]


def test_a_step_that_raises_is_still_timed() -> None:
    metrics = WorkerMetrics()
    with pytest.raises(RuntimeError), metrics.step("gpu-a", "finalize"):
        metrics.claimed()
        raise RuntimeError("boom")
    samples = exposed(metrics)
    assert value(samples, "stagegate_worker_batch_duration_seconds_count", node="gpu-a", kind="finalize") == 1


def test_bytes_and_evictions_add_up() -> None:
    metrics = WorkerMetrics()
    metrics.bytes_copied("gpu-a", 1000)
    metrics.bytes_copied("gpu-a", 24)
    metrics.bytes_copied("gpu-a", 0)  # a repeated batch that read nothing
    metrics.evicted("gpu-a")
    metrics.evicted("gpu-a")
    samples = exposed(metrics)
    assert value(samples, "stagegate_worker_bytes_copied_total", node="gpu-a", direction="stage") == 1024
    assert value(samples, "stagegate_worker_cache_evictions_total", node="gpu-a") == 2


def test_registries_are_per_instance() -> None:
    one, two = WorkerMetrics(), WorkerMetrics()
    one.evicted("gpu-a")
    assert value(exposed(two), "stagegate_worker_cache_evictions_total", node="gpu-a") == 0


def test_an_unknown_outcome_is_refused() -> None:
    with pytest.raises(ValueError, match="outcome"):
        WorkerMetrics().outcome("exploded")


def test_buckets_span_milliseconds_to_an_hour() -> None:
    assert list(DURATION_BUCKETS) == sorted(DURATION_BUCKETS)
    assert DURATION_BUCKETS[0] <= 0.1 and DURATION_BUCKETS[-1] >= 3600


def test_port_zero_serves_nothing_and_a_busy_port_is_logged_not_fatal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = WorkerMetrics()
    assert metrics.serve(0) is False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with caplog.at_level(logging.ERROR, logger="stagegate.workers.metrics"):
            assert metrics.serve(port, "127.0.0.1") is False
    assert "metrics not served" in caplog.text


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.mark.parametrize(("host", "other"), [(None, "127.0.0.2"), ("127.0.0.2", "127.0.0.1")])
def test_metrics_listen_only_on_the_address_asked_for(host: str | None, other: str) -> None:
    """Unauthenticated metrics listen on loopback unless told otherwise. 127.0.0.2 is loopback
    too (all of 127/8 is), so a server on every interface would answer there: one on 127.0.0.1
    alone does not."""
    metrics, port = WorkerMetrics(), _free_port()
    assert metrics.serve(port) if host is None else metrics.serve(port, host)
    assert _answers(host or "127.0.0.1", port)
    assert not _answers(other, port)


def test_the_cli_defaults_match_the_workers() -> None:
    from stagegate.client import daemon_commands
    from stagegate.workers import metrics

    assert daemon_commands.DEFAULT_METRICS_HOST == metrics.DEFAULT_METRICS_HOST
    assert daemon_commands.DEFAULT_METRICS_PORT == metrics.DEFAULT_METRICS_PORT
