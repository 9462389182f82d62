"""Delta staging end to end: a dataset whose files a dataset cached on the node already holds
takes them from it (a hard link of the sealed file on this ext4, which has no reflink), reads
only the rest from the source, and both datasets stay verifiable, evictable and read-only.

The API and real worker processes on loopback, real PostgreSQL and Redis, the loopback S3.
Object reads (GetObject, not tag or HEAD requests) are counted inside the S3 server, which runs
in this test's process."""

import collections
import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto.s3.responses import S3Response

from integration.helpers import payload
from integration.service.cluster import audit_actions, dump
from stagegate.ledger.models import NodeDatasetRow
from stagegate.ledger.usage import usage

pytestmark = pytest.mark.integration

SIZE = 4000
V1 = {f"shard-{i:02d}.bin": payload(f"s{i}", SIZE) for i in range(20)}
# v2: 19 of v1's 20 files, one of them changed, and one new file (95% shared).
V2 = {**{k: v for k, v in V1.items() if k != "shard-19.bin"}, "shard-07.bin": payload("s7-new", SIZE)}
V2["shard-20.bin"] = payload("s20", SIZE)
CHANGED = {"shard-07.bin", "shard-20.bin"}


class ObjectReads:
    """GetObject requests the S3 server answered, by key, and the bytes it sent."""

    def __init__(self) -> None:
        self.count: collections.Counter[str] = collections.Counter()
        self.bytes: collections.Counter[str] = collections.Counter()

    def of(self, prefix: str) -> dict[str, int]:
        """Reads of data files under ``prefix`` (label files aside)."""
        return {
            k.removeprefix(prefix + "/"): n
            for k, n in self.count.items()
            if k.startswith(prefix + "/") and not k.endswith(".classification")
        }

    def data(self) -> dict[str, int]:
        """Reads of every data file (label files aside: a hit whose shared plan has gone stale
        plans again, which reads them, and how soon that happens depends on the machine)."""
        return {k: n for k, n in self.count.items() if not k.endswith(".classification")}

    def bytes_of(self, prefix: str) -> int:
        return sum(
            n
            for k, n in self.bytes.items()
            if k.startswith(prefix + "/") and not k.endswith(".classification")
        )


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[ObjectReads]:
    seen = ObjectReads()
    original = S3Response.get_object

    def counted(self: S3Response) -> Any:
        response = original(self)
        key = self.parse_key_name()
        seen.count[key] += 1
        body = response[2] if isinstance(response, tuple) and len(response) == 3 else b""
        seen.bytes[key] += len(body) if isinstance(body, bytes | str) else 0
        return response

    monkeypatch.setattr(S3Response, "get_object", counted)
    yield seen


def stage(cluster: Any, token: str, source: str) -> dict[str, Any]:
    with cluster.http(token) as http:
        response = http.post("/v1/stagings", json={"source": source, "nodes": ["a"]})
    assert response.status_code == 202, response.text
    return dict(cluster.wait_terminal(token, response.json()["id"]))


def release(cluster: Any, token: str, staging: dict[str, Any]) -> None:
    with cluster.http(token) as http:
        assert http.delete(f"/v1/stagings/{staging['id']}").json()["state"] == "released"


def used(cluster: Any, token: str) -> int:
    with cluster.http(token) as http:
        (node,) = http.get("/v1/nodes").json()["nodes"]
    return int(node["used"])


def path_of(staging: dict[str, Any]) -> Path:
    return Path(staging["nodes"][0]["path"])


def test_v2_takes_the_files_v1_holds_and_reads_only_the_changed_ones(start_cluster, dataset, reads) -> None:
    cluster = start_cluster({"a": "200000"})  # bytes: room for v1 and v2, not for a third beside
    token = cluster.token("alice", "scientist")
    v1_url, v2_url = dataset("ds/v1", V1), dataset("ds/v2", V2)
    v1_prefix, v2_prefix = v1_url.split("/", 3)[3], v2_url.split("/", 3)[3]

    first = stage(cluster, token, v1_url)
    assert first["state"] == "ready", dump(first) + cluster.logs()
    assert reads.of(v1_prefix) == dict.fromkeys(V1, 1)

    second = stage(cluster, token, v2_url)
    assert second["state"] == "ready", dump(second) + cluster.logs()
    # Only the changed and the new file were read from the source, once each.
    assert reads.of(v2_prefix) == dict.fromkeys(CHANGED, 1), (reads.of(v2_prefix), cluster.logs())
    assert reads.bytes_of(v2_prefix) == len(CHANGED) * SIZE
    p1, p2 = path_of(first), path_of(second)
    for name, data in V2.items():
        assert (p2 / name).read_bytes() == data, name
    shared = sorted(set(V2) - CHANGED)
    # This filesystem clones nothing: the sealed file is linked (one inode, no byte copied).
    for name in shared:
        assert (p2 / name).stat().st_ino == (p1 / name).stat().st_ino, name
    assert (p2 / "shard-07.bin").stat().st_ino != (p1 / "shard-07.bin").stat().st_ino
    assert "taken from the node's cache {'link': 18}" in cluster.logs()
    # The node's used space counts the shared files once: v1's 20 files and v2's 2 of its own.
    assert used(cluster, token) == (len(V1) + len(CHANGED)) * SIZE
    # Chargeback: v2 read its 2 files from the source and took the other 18 from the cache.
    (row,) = usage(cluster.ledger, period="all")
    assert (row.bytes_from_source, row.bytes_from_cache) == (
        (len(V1) + len(CHANGED)) * SIZE,
        (len(V2) - len(CHANGED)) * SIZE,
    ), row

    # Both stay cache hits that pass their check: the links moved only the shared files' ctimes,
    # and v1's fingerprint was brought up to date under the cache lock.
    held = [first, second]
    for url, prefix in ((v1_url, v1_prefix), (v2_url, v2_prefix)):
        before = reads.data()
        again = stage(cluster, token, url)
        held.append(again)
        assert again["state"] == "ready", dump(again) + cluster.logs()
        assert reads.data() == before, f"{prefix}: a verified hit reads no data file"
        assert "dataset.quarantined" not in audit_actions(cluster.ledger, again["id"])

    # Evicting v1 (released, least recently used) for a third dataset must not break v2.
    for staging in held:
        release(cluster, token, staging)
    rehit = stage(cluster, token, v2_url)  # v2 used last, and pinned again
    assert rehit["state"] == "ready", dump(rehit)
    # 88,000 used of 200,000: 115,000 more fit only by evicting v1, which frees only the 8,000
    # bytes of its own, and leaves v2 counting its 80,000 whole.
    third = stage(cluster, token, dataset("other", {"x.bin": payload("other", 115_000)}))
    assert third["state"] == "ready", dump(third) + cluster.logs()
    assert not p1.exists(), "v1 was evicted"
    assert used(cluster, token) == len(V2) * SIZE + 115_000
    for name, data in V2.items():
        assert (p2 / name).read_bytes() == data, name
    before = reads.data()
    last = stage(cluster, token, v2_url)
    assert last["state"] == "ready", dump(last) + cluster.logs()
    assert reads.data() == before, "v2's hit after v1's eviction is verified, no data file read again"
    assert "dataset.quarantined" not in audit_actions(cluster.ledger, last["id"])


def test_on_a_full_node_v2_is_admitted_for_its_changed_files_and_v1_is_kept_to_take_from(
    start_cluster, dataset, reads
) -> None:
    # Room for v1 and v2's 2 files of its own (88,000), not for v1 and v2 at full size (160,000).
    cluster = start_cluster({"a": "90000"})
    token = cluster.token("alice", "scientist")
    v1_url, v2_url = dataset("ds/v1", V1), dataset("ds/v2", V2)
    v2_prefix = v2_url.split("/", 3)[3]
    first = stage(cluster, token, v1_url)
    assert first["state"] == "ready", dump(first) + cluster.logs()
    release(cluster, token, first)  # unpinned: evictable, as the least recently used

    second = stage(cluster, token, v2_url)
    assert second["state"] == "ready", dump(second) + cluster.logs()
    assert path_of(first).exists(), "v1, which v2 takes from, was not evicted for it"
    assert reads.of(v2_prefix) == dict.fromkeys(CHANGED, 1), (reads.of(v2_prefix), cluster.logs())
    assert used(cluster, token) == (len(V1) + len(CHANGED)) * SIZE
    # While v2 was written, v1 was held as if pinned; once v2 is ready it is not any more.
    with cluster.ledger.read_session() as session:
        rows = {r.digest: r for r in session.query(NodeDatasetRow).all()}
    assert all(r.takes_from is None for r in rows.values())


def test_a_tampered_cached_file_is_read_from_the_source_not_passed_on(start_cluster, dataset, reads) -> None:
    # The scrub off: it would find the tamper too (it re-hashes), and quarantine v1 first.
    cluster = start_cluster({"a": None}, env={"STAGEGATE_SCRUB_RATE": "0"})
    token = cluster.token("alice", "scientist")
    v1_url, v2_url = dataset("ds/v1", V1), dataset("ds/v2", V2)
    v2_prefix = v2_url.split("/", 3)[3]
    first = stage(cluster, token, v1_url)
    assert first["state"] == "ready", dump(first) + cluster.logs()
    p1 = path_of(first)

    # Root rewrites one sealed file in place (0444 stops no root), same size, mtime put back.
    # Its ctime moved, which nobody can set back: v1 no longer matches its seal, and a link
    # (verified by the seal, not re-hashed) is never made of any of its files.
    target = p1 / "shard-03.bin"
    st = target.stat()
    with target.open("r+b") as f:
        f.write(b"EVIL")
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))

    second = stage(cluster, token, v2_url)
    assert second["state"] == "ready", dump(second) + cluster.logs()
    p2 = path_of(second)
    assert (p2 / "shard-03.bin").read_bytes() == V2["shard-03.bin"], (
        "the source's bytes, not the tampered ones"
    )
    v1_inodes = {(p1 / name).stat().st_ino for name in V1}
    assert not {(p2 / name).stat().st_ino for name in V2} & v1_inodes, "nothing linked from v1"
    assert reads.of(v2_prefix) == dict.fromkeys(V2, 1), reads.of(v2_prefix)
    assert "is not as sealed: nothing is shared from it" in cluster.logs()


def _reachable_by_others(path: Path) -> contextlib.AbstractContextManager[None]:
    """Let other users traverse the directories down to ``path`` (pytest makes its temporary
    directories 0700), restoring the modes after."""

    @contextlib.contextmanager
    def opened() -> Iterator[None]:
        changed = []
        for parent in reversed(path.parents):
            mode = parent.stat().st_mode & 0o7777
            if not mode & 0o001:
                parent.chmod(mode | 0o001)
                changed.append((parent, mode))
        try:
            yield
        finally:
            for parent, mode in reversed(changed):
                parent.chmod(mode)

    return opened()


JOB = """
import os, sys
path = sys.argv[1]
with open(path, "rb") as f:
    f.read(1)  # a job reads its data...
failures = 0
beside = os.path.join(os.path.dirname(path), "new")
for attempt in (lambda: open(path, "r+b"), lambda: open(path, "ab"), lambda: os.unlink(path),
                lambda: os.chmod(path, 0o666), lambda: open(beside, "wb")):
    try:
        attempt()
    except PermissionError:
        failures += 1
print(failures)
"""


# The job's interpreter: one any user may run (the test's own lies below root's home).
SYSTEM_PYTHON = "/usr/bin/python3"
NOBODY = 65534


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run the job as another user")
def test_a_job_cannot_write_into_a_cached_file_it_shares(start_cluster, dataset, reads) -> None:
    cluster = start_cluster({"a": None})
    token = cluster.token("alice", "scientist")
    first = stage(cluster, token, dataset("ds/v1", V1))
    second = stage(cluster, token, dataset("ds/v2", V2))
    assert first["state"] == second["state"] == "ready", dump([first, second]) + cluster.logs()
    shared = path_of(second) / "shard-00.bin"
    assert shared.stat().st_nlink == 2, "shared with v1 by a hard link"
    with _reachable_by_others(shared):
        # A training job runs as another user than the worker (here: nobody).
        done = subprocess.run(
            [SYSTEM_PYTHON, "-c", JOB, str(shared)],
            user=NOBODY,
            group=NOBODY,
            extra_groups=[],  # root's group would keep the group bits' say
            cwd="/",
            capture_output=True,
            text=True,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "5", "every write, unlink, chmod and create was refused"
    assert (path_of(first) / "shard-00.bin").read_bytes() == V1["shard-00.bin"]
