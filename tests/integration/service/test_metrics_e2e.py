"""Metrics end to end: a real worker serving --metrics-port, the API's /metrics, after real
stagings from S3 on loopback (one copied, one a cache hit, one that evicts)."""

from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from integration.helpers import payload
from integration.service.cluster import dump, free_port, wait_for

pytestmark = pytest.mark.integration

FILES = {f"part-{i:02d}.bin": payload(f"m{i}", 40_000 + 1_000 * i) for i in range(6)}
BYTES = sum(len(v) for v in FILES.values())


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(url, timeout=5)
    assert response.status_code == 200, response.text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def stage(cluster: Any, token: str, source: str) -> dict[str, Any]:
    with cluster.http(token) as http:
        response = http.post("/v1/stagings", json={"source": source, "nodes": ["a"]})
    assert response.status_code in (200, 202), response.text
    return cluster.wait_terminal(token, response.json()["id"])


def test_worker_and_api_metrics_after_stagings(start_cluster, dataset) -> None:  # type: ignore[no-untyped-def]
    cluster = start_cluster({}, env={"STAGEGATE_BATCH_MAX_FILES": "4"})
    port = free_port()
    cluster.start_worker("a", capacity=str(BYTES + BYTES // 2), metrics_port=port)
    cluster.wait_nodes_ready()
    worker_url = f"http://127.0.0.1:{port}/metrics"
    token = cluster.token("alice", "scientist", "vision")

    first = stage(cluster, token, dataset("m1", FILES))
    assert first["state"] == "ready", dump(first) + cluster.logs()
    again = stage(cluster, token, dataset("m1", FILES))
    assert again["state"] == "ready" and again["nodes"][0]["cache_hit"], dump(again)

    worker = scrape(worker_url)
    copies = value(worker, "stagegate_worker_batch_duration_seconds_count", node="a", kind="copy")
    assert copies == 2, "6 files in batches of 4"
    # One plan: the second request follows the first's, fresh and cached, at submission.
    assert value(worker, "stagegate_worker_batch_duration_seconds_count", node="a", kind="plan") == 1
    assert value(worker, "stagegate_worker_batch_duration_seconds_count", node="a", kind="finalize") == 1
    assert value(worker, "stagegate_worker_bytes_copied_total", node="a", direction="stage") == BYTES
    assert value(worker, "stagegate_worker_tasks_total", node="a", kind="copy", outcome="completed") == 2
    assert value(worker, "stagegate_worker_cache_evictions_total", node="a") == 0
    assert value(worker, "process_resident_memory_bytes") > 0

    # Both released, another dataset that only fits once the first is gone: one eviction.
    with cluster.http(token) as http:
        for staging in (first, again):
            assert http.delete(f"/v1/stagings/{staging['id']}").status_code == 200
    other = stage(cluster, token, dataset("m2", {k: v[::-1] for k, v in FILES.items()}))
    assert other["state"] == "ready", dump(other) + cluster.logs()
    wait_for(
        "the eviction to be counted",
        lambda: value(scrape(worker_url), "stagegate_worker_cache_evictions_total", node="a") == 1,
        timeout=10,
    )

    api = scrape(f"{cluster.api_url}/metrics")
    assert value(api, "stagegate_ledger_up") == 1
    assert value(api, "stagegate_stagings", state="released") == 2
    assert value(api, "stagegate_stagings", state="ready") == 1
    moved = {"direction": "stage", "user": "alice", "project": "vision"}
    assert value(api, "stagegate_bytes_moved_total", **moved) == 3 * BYTES, "dataset bytes, the cache hit too"
    assert value(api, "stagegate_cache_hits_total", node="a") == 1
    assert value(api, "stagegate_node_used_bytes", node="a") == BYTES
    assert value(api, "stagegate_node_pinned_bytes", node="a") == BYTES
    assert value(api, "stagegate_node_capacity_bytes", node="a") == BYTES + BYTES // 2
