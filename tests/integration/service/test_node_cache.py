"""Admission and eviction on a node with a small capacity, end to end."""

import os
from pathlib import Path

import pytest

from integration.helpers import payload
from integration.service.cluster import dump
from stagegate.transfer.layout import state_dir_of

pytestmark = pytest.mark.integration


def stage(cluster, token: str, source: str) -> dict:  # type: ignore[no-untyped-def]
    with cluster.http(token) as http:
        response = http.post("/v1/stagings", json={"source": source, "nodes": ["a"]})
    assert response.status_code == 202, response.text
    return cluster.wait_terminal(token, response.json()["id"])


def test_eviction_takes_unpinned_datasets_never_pinned_ones_and_refuses_what_cannot_fit(
    start_cluster, dataset
) -> None:
    cluster = start_cluster({"a": "300000"})  # bytes
    token = cluster.token("alice", "scientist")
    d1 = dataset("d1", {"x.bin": payload("d1", 120_000)})
    d2 = dataset("d2", {"x.bin": payload("d2", 120_000)})
    d3 = dataset("d3", {"x.bin": payload("d3", 150_000)})
    d4 = dataset("d4", {"x.bin": payload("d4", 200_000)})

    first, second = stage(cluster, token, d1), stage(cluster, token, d2)
    assert first["state"] == second["state"] == "ready", cluster.logs()
    path1, path2 = Path(first["nodes"][0]["path"]), Path(second["nodes"][0]["path"])

    # Both pinned: 150,000 more bytes do not fit in the 60,000 left, and nothing may go.
    refused = stage(cluster, token, d3)
    assert refused["state"] == "failed", dump(refused)
    assert "node a cannot hold" in refused["errors"][0] and "pinned" in refused["errors"][0]
    assert path1.is_dir() and path2.is_dir()

    # Released, the first becomes evictable: the next staging evicts it and only it.
    with cluster.http(token) as http:
        assert http.delete(f"/v1/stagings/{first['id']}").json()["state"] == "released"
    third = stage(cluster, token, d3)
    assert third["state"] == "ready", dump(third) + cluster.logs()
    assert not path1.exists(), "the unpinned dataset was evicted"
    assert (path2 / "x.bin").read_bytes() == payload("d2", 120_000), "the pinned one is untouched"
    # Each dataset's state lies beside it, and an evicted one's goes with it.
    path3 = Path(third["nodes"][0]["path"])
    assert sorted(os.listdir(path3.parent)) == sorted(
        p.name for d in (path2, path3) for p in (d, state_dir_of(d))
    ), "an evicted dataset's state left behind"

    with cluster.http(token) as http:
        nodes = http.get("/v1/nodes").json()["nodes"]
    (node,) = nodes
    assert node["used"] == 270_000 and node["pinned"] == 270_000
    assert sorted(d["bytes"] for d in node["datasets"]) == [120_000, 150_000]

    fourth = stage(cluster, token, d4)
    assert fourth["state"] == "failed" and "cannot hold" in fourth["errors"][0]
