"""Peer fan-out end to end: three and four node workers on loopback, each serving its verified
batches to the others, real PostgreSQL and Redis, the loopback S3.

Reads of the dataset's objects are counted inside the S3 server, which runs in this test's
process (the workers are other processes). A peer's corrupted byte is made by changing its
file on disk after it was verified; a dying peer is a worker killed with SIGKILL mid-copy."""

import collections
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from moto.s3.responses import S3Response
from sqlalchemy import select

from integration.helpers import data_files, payload
from integration.service.cluster import Cluster, dump, free_port, wait_for
from stagegate.ledger import AuditTrail
from stagegate.ledger.models import NodeDatasetRow, TaskRow
from stagegate.ledger.usage import usage
from stagegate.policies import LABEL_FILE_NAME
from stagegate.workers.peer_paths import peer_path

pytestmark = pytest.mark.integration

SECRET = "peer-secret-for-tests-0123456789"


class Reads:
    """GETs of dataset objects (label files aside) the S3 server answered, by key."""

    def __init__(self) -> None:
        self.by_key: collections.Counter[str] = collections.Counter()

    def of(self, prefix: str) -> int:
        return sum(n for key, n in self.by_key.items() if key.startswith(prefix + "/"))


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[Reads]:
    seen = Reads()
    original = S3Response.get_object

    def counted(self: S3Response) -> Any:
        key = unquote(self.path.split("?")[0]).lstrip("/")
        if key.rsplit("/", 1)[-1] != LABEL_FILE_NAME:
            seen.by_key[key] += 1
        return original(self)

    monkeypatch.setattr(S3Response, "get_object", counted)
    yield seen


def peer_env(tmp_path: Path, port: int, bandwidth: str | None = None) -> dict[str, str]:
    secret = tmp_path / "peer-secret"
    if not secret.exists():
        secret.write_text(SECRET + "\n")
        secret.chmod(0o600)
    env = {"STAGEGATE_PEER_LISTEN": f"127.0.0.1:{port}", "STAGEGATE_PEER_SECRET_FILE": str(secret)}
    if bandwidth is not None:
        env["STAGEGATE_BANDWIDTH_LIMIT"] = env["STAGEGATE_PEER_BANDWIDTH_LIMIT"] = bandwidth
    return env


def start_peers(
    start_cluster: Any,
    tmp_path: Path,
    nodes: list[str],
    bandwidth: str | None = None,
    env: dict[str, str] | None = None,
) -> tuple[Cluster, dict[str, dict[str, str]]]:
    """A cluster whose workers serve peers; returns it and each worker's environment."""
    cluster: Cluster = start_cluster({}, env={"STAGEGATE_BATCH_MAX_FILES": "2", **(env or {})})
    envs = {node: peer_env(tmp_path, free_port(), bandwidth) for node in nodes}
    for node in nodes:
        cluster.start_worker(node, env=envs[node])
    cluster.wait_nodes_ready()
    return cluster, envs


def submit(cluster: Cluster, token: str, source: str, nodes: list[str]) -> str:
    with cluster.http(token) as http:
        response = http.post("/v1/stagings", json={"source": source, "nodes": nodes})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def completed(cluster: Cluster, job_id: str) -> dict[str, Any]:
    (event,) = [e for e in AuditTrail(cluster.ledger).query(job=job_id) if e.action == "stage.completed"]
    return dict(event.details)


def copies(cluster: Cluster, job_id: str) -> list[TaskRow]:
    with cluster.ledger.read_session() as session, session.begin():
        return list(session.scalars(select(TaskRow).where(TaskRow.job_id == job_id, TaskRow.kind == "copy")))


def dataset_dir(cluster: Cluster, node: str, job_id: str) -> Path:
    with cluster.ledger.read_session() as session, session.begin():
        row = session.scalar(
            select(NodeDatasetRow).where(NodeDatasetRow.node == node, NodeDatasetRow.writer_job == job_id)
        )
    assert row is not None
    return Path(row.path)


def test_replicate_to_three_nodes_reads_each_object_once(
    start_cluster, dataset, bucket, reads: Reads, tmp_path: Path
) -> None:
    files = {f"part-{i:02d}.bin": payload(f"r{i}", 30_000 + i) for i in range(12)}
    source = dataset("fan3", files)
    cluster, _ = start_peers(start_cluster, tmp_path, ["a", "b", "c"])
    token = cluster.token("alice", "scientist")

    job = submit(cluster, token, source, ["a", "b", "c"])
    final = cluster.wait_terminal(token, job, timeout=120)

    assert final["state"] == "ready", dump(final) + cluster.logs()
    # The target: at most 1.1x the object count read from the source (3x without fan-out).
    assert reads.of(f"{bucket}/fan3") <= 1.1 * len(files), (reads.by_key, cluster.logs())
    for node in ("a", "b", "c"):
        assert data_files(dataset_dir(cluster, node, job)) == files, node
    # The first node of the request read the source; the others copied every batch from peers.
    origins = {(t.node, t.origin) for t in copies(cluster, job)}
    assert {o for n, o in origins if n == "a"} == {"source"}, origins
    assert all(o != "source" for n, o in origins if n != "a"), origins
    story = completed(cluster, job)["copied_from"]
    total = sum(len(v) for v in files.values())
    assert story["a"] == {"source": total}, story
    assert sum(story["b"].values()) == sum(story["c"].values()) == total, story
    assert "source" not in story["b"] and "source" not in story["c"], story
    # Usage counts the bytes read from the source once; the peers' copies are their own column,
    # neither source reads nor reuse of a cache.
    (row,) = usage(cluster.ledger)
    assert (row.bytes_from_source, row.bytes_from_peers, row.bytes_from_cache) == (total, 2 * total, 0), row


def test_replicate_to_four_nodes_spreads_each_batch_as_a_tree(
    start_cluster, dataset, bucket, reads: Reads, tmp_path: Path
) -> None:
    """One copy of a batch from peers in flight per holder: the reader serves one receiver of
    each batch, that receiver the next, so some batches reach a receiver from another receiver
    and the reader serves fewer than all three."""
    files = {f"part-{i:02d}.bin": payload(f"t{i}", 20_000 + i) for i in range(12)}
    source = dataset("tree4", files)
    nodes = ["a", "b", "c", "d"]
    cluster, _ = start_peers(start_cluster, tmp_path, nodes, env={"STAGEGATE_FANOUT_PER_HOLDER": "1"})
    token = cluster.token("alice", "scientist")

    job = submit(cluster, token, source, nodes)
    final = cluster.wait_terminal(token, job, timeout=180)

    assert final["state"] == "ready", dump(final) + cluster.logs()
    assert reads.of(f"{bucket}/tree4") <= 1.1 * len(files), (reads.by_key, cluster.logs())
    for node in nodes:
        assert data_files(dataset_dir(cluster, node, job)) == files, node
    by_batch: dict[int, dict[str, str | None]] = collections.defaultdict(dict)
    for t in copies(cluster, job):
        by_batch[t.idx][t.node] = t.origin
    for idx, origins in by_batch.items():
        assert origins["a"] == "source", (idx, origins)
        # three receivers, one at a time per holder: a can have served at most two of them
        assert sum(o == "a" for o in origins.values()) <= 2, (idx, origins)
        assert {o for n, o in origins.items() if n != "a"} <= set(nodes), (idx, origins)


def test_a_corrupted_byte_served_by_a_peer_is_caught_and_fetched_again(
    start_cluster, dataset, bucket, reads: Reads, tmp_path: Path
) -> None:
    files = {f"part-{i:02d}.bin": payload(f"c{i}", 20_000 + i) for i in range(6)}
    source = dataset("fanbad", files)
    # The scrub off: it would find a's changed file first and quarantine a's copy, and a
    # quarantined copy is served to no one (the peer server's 404), which is not this test.
    scrub_off = {"STAGEGATE_SCRUB_RATE": "0"}
    cluster, envs = start_peers(start_cluster, tmp_path, ["a", "b", "c"], env=scrub_off)
    token = cluster.token("alice", "scientist")
    # b and c stay away until a has verified every batch, so it is a's copy they are sent to.
    for node in ("b", "c"):
        process = cluster.workers.pop(node)
        process.terminate()
        process.wait()

    job = submit(cluster, token, source, ["a", "b", "c"])
    wait_for(
        "a's batches verified",
        lambda: (
            (t := [c for c in copies(cluster, job) if c.node == "a"]) and all(c.state == "done" for c in t)
        ),
        timeout=60,
    )
    target = dataset_dir(cluster, "a", job) / "part-03.bin"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit, size unchanged: only the hash can tell
    target.chmod(0o644)
    target.write_bytes(bytes(data))
    before = reads.by_key[f"{bucket}/fanbad/part-03.bin"]
    for node in ("b", "c"):
        cluster.start_worker(node, env=envs[node])
    final = cluster.wait_terminal(token, job, timeout=120)

    assert final["state"] == "ready", dump(final) + cluster.logs()
    for node in ("b", "c"):
        assert data_files(dataset_dir(cluster, node, job)) == files, node
    # The corrupted file was fetched again (from the source: no other peer had it verified),
    # the rest of the dataset came from the peer: one read per object, plus the re-fetches.
    refetched = reads.by_key[f"{bucket}/fanbad/part-03.bin"] - before
    assert 1 <= refetched <= 2, (reads.by_key, cluster.logs())
    assert reads.of(f"{bucket}/fanbad") <= len(files) + 2, reads.by_key
    assert "from peer a failed" in cluster.logs(), cluster.logs()


def test_a_peer_killed_mid_copy_is_replaced_and_the_staging_completes(
    start_cluster, dataset, bucket, reads: Reads, tmp_path: Path
) -> None:
    files = {f"part-{i:02d}.bin": payload(f"k{i}", 200_000 + i) for i in range(16)}
    source = dataset("fankill", files)
    # Slow links (400 KB/s a node, from the source and from peers), so the kill lands while
    # the others copy from the peer.
    cluster, envs = start_peers(start_cluster, tmp_path, ["a", "b", "c", "d"], bandwidth="400KB")
    token = cluster.token("alice", "scientist")

    job = submit(cluster, token, source, ["a", "b", "c", "d"])
    wait_for(
        "a batch copied from peer a",
        lambda: any(t.origin == "a" for t in copies(cluster, job)),
        timeout=90,
        every=0.05,
    )
    cluster.kill_worker("a")
    unfinished = [t for t in copies(cluster, job) if t.state != "done"]
    assert any(t.node == "a" for t in unfinished) and any(t.node != "a" for t in unfinished), dump(
        [(t.node, t.idx, t.state) for t in copies(cluster, job)]
    )
    # The others go on without it (another peer, or the source), then a comes back for its own copy.
    wait_for(
        "the others to finish without a",
        lambda: all(t.state == "done" for t in copies(cluster, job) if t.node != "a"),
        timeout=120,
        every=0.2,
    )
    cluster.start_worker("a", env=envs["a"])
    final = cluster.wait_terminal(token, job, timeout=120)

    assert final["state"] == "ready", dump(final) + cluster.logs()
    for node in ("a", "b", "c", "d"):
        assert data_files(dataset_dir(cluster, node, job)) == files, node
    # Every node's bytes are accounted for by origin; some came from a before it died, and the
    # rest from another peer or the source (either may replace a dead peer).
    story = completed(cluster, job)["copied_from"]
    tasks = sorted((t.node, t.idx, t.origin) for t in copies(cluster, job))
    total = sum(len(v) for v in files.values())
    assert all(sum(story[n].values()) == total for n in ("a", "b", "c", "d")), (story, tasks)
    assert any("a" in story[n] for n in ("b", "c", "d")), (story, tasks)
    # The source is read about once more, not three times more: a node whose copy from a broke
    # off reads the rest of that batch from the source (or another peer), and the node that
    # took over reading for a reads the batches a had not verified.
    assert reads.of(f"{bucket}/fankill") <= 2 * len(files), (reads.by_key, tasks)


def test_the_peer_server_serves_only_verified_files_of_its_batches_to_workers(
    start_cluster, dataset, bucket, tmp_path: Path
) -> None:
    files = {"part-00.bin": payload("h0", 5000), "part-01.bin": payload("h1", 5001)}
    files |= {"sub/part-02.bin": payload("h2", 5002), "sub/part-03.bin": payload("h3", 5003)}
    other_files = {"secret.bin": payload("other", 4000)}
    cluster, envs = start_peers(start_cluster, tmp_path, ["a", "b"])
    token = cluster.token("alice", "scientist")
    job = submit(cluster, token, dataset("host", files), ["a"])
    other = submit(cluster, token, dataset("other", other_files), ["a"])
    for staging in (job, other):
        assert cluster.wait_terminal(token, staging)["state"] == "ready", cluster.logs()
    base = f"http://{envs['a']['STAGEGATE_PEER_LISTEN']}"
    good = {"Authorization": f"Bearer {SECRET}"}
    batches = sorted(copies(cluster, job), key=lambda t: t.idx)
    assert [(t.key_from, t.key_to) for t in batches] == [
        ("part-00.bin", "part-01.bin"),
        ("sub/part-02.bin", "sub/part-03.bin"),
    ]

    def get(path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return httpx.get(base + path, headers=headers if headers is not None else good, timeout=10)

    assert get(peer_path(job, 0, "part-01.bin")).content == files["part-01.bin"]
    assert get(peer_path(job, 1, "sub/part-02.bin")).content == files["sub/part-02.bin"]
    # No credential, a wrong one, the right one spelled another way: refused before anything.
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": SECRET}):
        assert get(peer_path(job, 0, "part-00.bin"), headers).status_code == 401
    refused = [
        peer_path(job, 0, "../../../etc/passwd"),
        peer_path(job, 0, "sub/../part-00.bin"),
        f"/v1/peer/{job}/0/..%2F..%2F..%2Fetc%2Fpasswd",
        f"/v1/peer/{job}/0/../../../../etc/passwd",
        peer_path(job, 0, "/etc/passwd"),
        peer_path(job, 0, "sub/part-02.bin"),  # in the manifest, but another batch's
        peer_path(job, 7, "part-00.bin"),  # no such batch
        peer_path(job, 0, "secret.bin"),  # another dataset's key
        peer_path(other, 0, "part-00.bin"),  # this dataset's key under another staging
        peer_path("no-such-job", 0, "part-00.bin"),
        peer_path(job, 0, "part-00.bin") + "?x=1",
    ]
    for path in refused:
        assert get(path).status_code == 404, path
    # Links planted in the dataset are not followed: a file, and a directory on the way.
    directory = dataset_dir(cluster, "a", job)
    directory.chmod(0o755)
    (directory / "part-00.bin").unlink()
    (directory / "part-00.bin").symlink_to(dataset_dir(cluster, "a", other) / "secret.bin")
    assert get(peer_path(job, 0, "part-00.bin")).status_code == 404
    (directory / "sub").rename(directory / "sub.real")
    (directory / "sub").symlink_to(directory / "sub.real")
    assert get(peer_path(job, 1, "sub/part-02.bin")).status_code == 404
    # A batch not (or no longer) verified on this node is not served.
    with cluster.ledger.sessions.begin() as session:
        row = session.scalar(
            select(TaskRow).where(TaskRow.job_id == job, TaskRow.kind == "copy", TaskRow.idx == 0)
        )
        assert row is not None
        row.state = "running"
    assert get(peer_path(job, 0, "part-01.bin")).status_code == 404
    time.sleep(0.2)
    assert SECRET not in cluster.logs()
