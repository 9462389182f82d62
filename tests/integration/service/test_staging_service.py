"""End to end: stagings through the API, copied by two node workers, from S3 on loopback."""

import hashlib
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from integration.helpers import payload
from integration.service.cluster import audit_actions, dump, iter_files
from stagegate.ledger import Tasks
from stagegate.transfer.layout import state_dir_of

pytestmark = pytest.mark.integration

FILES = {f"shard-{i // 4}/part-{i:03d}.bin": payload(f"f{i}", 50_000 + 7_919 * i) for i in range(12)}


def relative_files(dataset_path: str) -> dict[str, str]:
    root = Path(dataset_path)
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in iter_files(root)
    }


def expected(files: dict[str, bytes]) -> dict[str, str]:
    return {k: hashlib.sha256(v).hexdigest() for k, v in files.items()}


def submit(cluster: Any, token: str, **body: Any) -> tuple[int, dict[str, Any]]:
    with cluster.http(token) as http:
        response = http.post("/v1/stagings", json=body)
        return response.status_code, response.json()


def test_replicate_lands_byte_identical_on_both_nodes(start_cluster, dataset) -> None:
    cluster = start_cluster({"a": None, "b": None}, env={"STAGEGATE_BATCH_MAX_FILES": "5"})
    source = dataset("train", FILES)
    token = cluster.token("alice", "scientist", "vision")

    status, body = submit(cluster, token, source=source, nodes=["a", "b"], mode="replicate", job="run-1")
    assert status == 202, body
    final = cluster.wait_terminal(token, body["id"])

    assert final["state"] == "ready", dump(final) + cluster.logs()
    assert [n["state"] for n in final["nodes"]] == ["ready", "ready"]
    for node in final["nodes"]:
        assert Path(node["path"]).is_relative_to(cluster.roots[node["node"]])
        assert relative_files(node["path"]) == expected(FILES)
        assert (state_dir_of(node["path"]) / "READY").is_file()
    assert final["progress"]["files_done"] == final["progress"]["files_total"] == 2 * len(FILES)
    copies = [t for t in Tasks(cluster.ledger, 60).of_job(body["id"]) if t.key.kind == "copy"]
    assert len(copies) == 2 * 3  # 12 files in batches of 5, on each node
    assert audit_actions(cluster.ledger, body["id"]) == [
        "stage.requested",
        "policy.allowed",
        "stage.completed",
    ]


def test_shard_splits_the_files_between_the_nodes(start_cluster, dataset) -> None:
    cluster = start_cluster({"a": None, "b": None}, env={"STAGEGATE_BATCH_MAX_FILES": "3"})
    source = dataset("shards", FILES)
    token = cluster.token("bob", "job")

    status, body = submit(cluster, token, source=source, nodes=["a", "b"], mode="shard")
    assert status == 202, body
    final = cluster.wait_terminal(token, body["id"])

    assert final["state"] == "ready", dump(final) + cluster.logs()
    on_a = relative_files(final["nodes"][0]["path"])
    on_b = relative_files(final["nodes"][1]["path"])
    assert on_a and on_b, "each node holds a share"
    assert not set(on_a) & set(on_b), "no file on both nodes"
    assert {**on_a, **on_b} == expected(FILES), "none missing, every byte right"
    share_a = sum(len(FILES[k]) for k in on_a)
    assert abs(2 * share_a - sum(map(len, FILES.values()))) <= 2 * max(map(len, FILES.values()))


def test_the_same_dataset_again_is_a_cache_hit(start_cluster, dataset) -> None:
    cluster = start_cluster({"a": None, "b": None})
    source = dataset("cached", FILES)
    alice, bob = cluster.token("alice", "scientist"), cluster.token("bob", "job")
    _, first = submit(cluster, alice, source=source, nodes=["a", "b"])
    first_final = cluster.wait_terminal(alice, first["id"])
    assert first_final["state"] == "ready", cluster.logs()
    before = {p: p.stat().st_mtime_ns for n in first_final["nodes"] for p in iter_files(Path(n["path"]))}

    started = time.monotonic()
    status, second = submit(cluster, bob, source=source, nodes=["a", "b"])
    answered = time.monotonic() - started

    # The submission follows the first one's fresh plan itself (both nodes hold the copy), the
    # nodes check their copies, and the POST's decision wait sees it ready.
    assert status == 202 and second["state"] == "ready", dump(second)
    print(f"cache hit answered ready in {answered:.3f}s")
    assert [n["cache_hit"] for n in second["nodes"]] == [True, True]
    assert [n["path"] for n in second["nodes"]] == [n["path"] for n in first_final["nodes"]]
    # Nothing was copied: each node only checked its copy against its fingerprint (a verify
    # task), no plan or copy task exists for the second staging, no file was rewritten.
    assert [t.key.kind for t in Tasks(cluster.ledger, 60).of_job(second["id"])] == ["verify", "verify"]
    assert {p: p.stat().st_mtime_ns for p in before} == before


def test_a_denied_staging_answers_403_with_reasons_and_moves_nothing(start_cluster, dataset) -> None:
    cluster = start_cluster({"a": None})
    source = dataset("secret", {"x.bin": b"x" * 10}, label="confidential")
    token = cluster.token("carol", "scientist")

    status, body = submit(cluster, token, source=source, nodes=["a"])

    assert status == 403, body
    assert body["detail"]["reasons"], body
    assert body["detail"]["staging"]["state"] == "denied"
    assert not list((cluster.roots["a"] / "datasets").iterdir())
    staging_id = body["detail"]["staging"]["id"]
    assert audit_actions(cluster.ledger, staging_id) == ["stage.requested", "policy.denied"]


def test_the_same_idempotency_key_is_one_staging(start_cluster, dataset) -> None:
    cluster = start_cluster({"a": None})
    source = dataset("idem", {"a.bin": b"a" * 100})
    token = cluster.token("dave", "job")

    statuses, ids = [], []
    for _ in range(2):
        status, body = submit(cluster, token, source=source, nodes=["a"], idempotency_key="job-42-attempt-1")
        statuses.append(status)
        ids.append(body["id"])

    assert statuses[0] == 202 and statuses[1] == 200
    assert ids[0] == ids[1]
    with cluster.http(token) as http:
        mine = http.get("/v1/stagings").json()["stagings"]
    assert [s["id"] for s in mine] == [ids[0]]
    assert Counter(audit_actions(cluster.ledger, ids[0]))["stage.requested"] == 1
