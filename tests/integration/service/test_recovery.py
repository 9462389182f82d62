"""A worker killed with SIGKILL mid-batch, or Redis restarted mid-staging, delays a staging
but never loses it: the ledger's leases run out and the reconciler sends the work again."""

import hashlib
import time
from collections import Counter
from pathlib import Path

import pytest

from integration.helpers import payload
from integration.service.cluster import audit_actions, dump, iter_files, wait_for
from stagegate.ledger import Tasks
from stagegate.transfer.layout import state_dir_of

pytestmark = pytest.mark.integration

FILES = {f"part-{i}.bin": payload(f"slow{i}", 400_000) for i in range(8)}
# About 4 s per three-file batch: slow enough to be caught in the middle of one.
SLOW = {"STAGEGATE_BANDWIDTH_LIMIT": "300000", "STAGEGATE_BATCH_MAX_FILES": "3"}


def submit(cluster, token: str, source: str, nodes: list[str]) -> str:  # type: ignore[no-untyped-def]
    with cluster.http(token) as http:
        response = http.post("/v1/stagings", json={"source": source, "nodes": nodes})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def assert_complete(cluster, final: dict) -> None:  # type: ignore[no-untyped-def,type-arg]
    assert final["state"] == "ready", dump(final) + cluster.logs()
    for node in final["nodes"]:
        root = Path(node["path"])
        got = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in iter_files(root)}
        assert got == {k: hashlib.sha256(v).hexdigest() for k, v in FILES.items()}
        assert not list((state_dir_of(root) / "tmp").glob("*")), "no temporary file left"
    assert Counter(audit_actions(cluster.ledger, final["id"]))["stage.completed"] == 1


def running_batch(cluster, staging_id: str, node: str):  # type: ignore[no-untyped-def]
    """A copy batch a worker on ``node`` has claimed and not finished: it is copying now."""
    tasks = Tasks(cluster.ledger, 60).of_job(staging_id)
    return [t for t in tasks if t.key.node == node and t.key.kind == "copy" and t.state == "running"]


def test_kill_9_of_a_worker_mid_batch_then_restart_completes_the_staging(start_cluster, dataset) -> None:
    cluster = start_cluster({"a": None, "b": None}, env=SLOW)
    source = dataset("killed", FILES)
    token = cluster.token("erin", "job")
    staging_id = submit(cluster, token, source, ["a", "b"])

    (batch,) = wait_for("a batch in flight on a", lambda: running_batch(cluster, staging_id, "a"), timeout=60)
    time.sleep(1)  # into the batch's bytes
    cluster.kill_worker("a")
    time.sleep(1)
    cluster.start_worker("a")

    final = cluster.wait_terminal(token, staging_id, timeout=120)
    assert_complete(cluster, final)
    again = Tasks(cluster.ledger, 60).get(batch.key)
    assert again is not None and again.state == "done" and again.attempts >= 2, "the killed batch ran again"


def test_a_redis_restart_mid_staging_delays_but_does_not_lose_it(start_cluster, dataset) -> None:
    cluster = start_cluster({"a": None, "b": None}, env=SLOW)
    source = dataset("redis", FILES)
    token = cluster.token("frank", "job")
    staging_id = submit(cluster, token, source, ["a", "b"])

    wait_for("a batch in flight", lambda: running_batch(cluster, staging_id, "b"), timeout=60)
    cluster.redis.stop()  # SIGKILL: every queued message is gone
    time.sleep(2)
    cluster.redis.start()

    final = cluster.wait_terminal(token, staging_id, timeout=120)
    assert_complete(cluster, final)
