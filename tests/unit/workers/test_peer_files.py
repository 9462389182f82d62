"""What the peer server reads per file it serves (workers.peer_server.PeerFiles): the batch's
task every time, the rest once per batch; and how a receiver asks for a batch's files
(workers.peer_source.PeerSource: over kept connections to the real server, on loopback). The
ledger is a stub recording the reads: the refusals and the security model are tested end to
end in tests/integration/service/test_peer_fanout.py."""

import http.client
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import blake3
import pytest

from stagegate.ledger.fanout import Peer
from stagegate.ledger.tasks import TaskKey
from stagegate.states import TaskState
from stagegate.transfer.errors import SourceReadError
from stagegate.transfer.objects import SourceObject
from stagegate.workers.node_steps import NodeContext
from stagegate.workers.peer_paths import peer_path
from stagegate.workers.peer_server import NotServedError, PeerFiles, PeerServer
from stagegate.workers.peer_source import PeerSource


@dataclass
class Ledger:
    directory: Path
    state: str = TaskState.DONE
    reads: list[str] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)  # a key's size in the manifest, if not 3

    def get(self, key: TaskKey) -> Any:
        self.reads.append(f"task {key.job_id}/{key.idx}")
        keys = ("a.bin", "c.bin") if key.idx == 0 else ("d.bin", "d.bin")
        return SimpleNamespace(state=self.state, key_from=keys[0], key_to=keys[1])

    def job(self, job_id: str) -> Any:
        self.reads.append(f"job {job_id}")
        return SimpleNamespace(plan_job=job_id)

    def entries(self, plan_job: str, first: str, through: str) -> list[Any]:
        self.reads.append(f"manifest {first}..{through}")
        return [
            SimpleNamespace(key=k, size=self.sizes.get(k, 3))
            for k in ("a.bin", "b.bin", "c.bin", "d.bin")
            if first <= k <= through
        ]

    def dataset_dir(self, job_id: str) -> tuple[str, Path, int, int]:
        self.reads.append(f"dataset {job_id}")
        return "digest", self.directory, 4, 12


def _context(tmp_path: Path) -> tuple[NodeContext, Ledger]:
    for name in ("a.bin", "b.bin", "c.bin", "d.bin"):
        (tmp_path / name).write_bytes(b"abc")
    ledger = Ledger(tmp_path)
    ctx = SimpleNamespace(
        tasks=ledger, stagings=ledger, manifests=ledger, dataset_dir=ledger.dataset_dir,
        settings=SimpleNamespace(node="a"),
    )  # fmt: skip
    return cast(NodeContext, ctx), ledger


def _files(tmp_path: Path) -> tuple[PeerFiles, Ledger]:
    ctx, ledger = _context(tmp_path)
    return PeerFiles(ctx), ledger


def _serve(files: PeerFiles, idx: int, key: str) -> int:
    served = files.open(peer_path("job", idx, key))
    os.close(served.fd)
    return served.size


def test_the_files_of_a_batch_cost_one_task_read_each_and_the_rest_once(tmp_path: Path) -> None:
    files, ledger = _files(tmp_path)
    assert [_serve(files, 0, k) for k in ("a.bin", "b.bin", "c.bin")] == [3, 3, 3]
    assert ledger.reads == [
        "task job/0", "job job", "manifest a.bin..c.bin", "dataset job", "task job/0", "task job/0",
    ]  # fmt: skip
    ledger.reads.clear()
    assert _serve(files, 1, "d.bin") == 3  # another batch: its own manifest range
    assert ledger.reads == ["task job/1", "job job", "manifest d.bin..d.bin", "dataset job"]


def test_a_batch_no_longer_verified_is_refused_at_the_next_file(tmp_path: Path) -> None:
    files, ledger = _files(tmp_path)
    assert _serve(files, 0, "a.bin") == 3
    ledger.state = TaskState.RUNNING
    with pytest.raises(NotServedError):
        _serve(files, 0, "b.bin")


def test_a_key_of_the_range_not_in_the_manifest_is_refused(tmp_path: Path) -> None:
    files, _ = _files(tmp_path)
    (tmp_path / "bb.bin").write_bytes(b"abc")  # on disk, inside a.bin..c.bin, in no manifest
    with pytest.raises(NotServedError):
        _serve(files, 0, "bb.bin")


def test_only_a_bounded_number_of_batches_is_kept(tmp_path: Path) -> None:
    files, _ = _files(tmp_path)
    for job in range(PeerFiles.KEPT_BATCHES + 10):
        files._batch(f"job-{job}", 0, "a.bin", "c.bin")
    assert len(files._kept) == PeerFiles.KEPT_BATCHES
    assert ("job-0", 0, "a.bin", "c.bin") not in files._kept


SECRET = "peer-secret"


@contextmanager
def _receiving(ctx: NodeContext, contents: dict[str, bytes]) -> Iterator[PeerSource]:
    """The real peer server over ``ctx``, and a receiver of batch 0 expecting ``contents``."""
    server = PeerServer(ctx, "127.0.0.1", 0, SECRET).start()
    expected = {k: blake3.blake3(data).hexdigest() for k, data in contents.items()}
    source = PeerSource(Peer("a", f"http://127.0.0.1:{server.port}"), "job", 0, SECRET, expected)
    try:
        yield source
    finally:
        source.close()
        server.stop()


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[tuple[PeerSource, Ledger]]:
    ctx, ledger = _context(tmp_path)
    with _receiving(ctx, dict.fromkeys(("a.bin", "b.bin", "c.bin"), b"abc")) as source:
        yield source, ledger


def _read(source: PeerSource, key: str) -> bytes:
    reader = source.open(SourceObject(key, 3))
    try:
        return reader.read(10)
    finally:
        reader.close()


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the TCP connections receivers open (the real ``connect``, counted)."""
    made: list[int] = []
    connect = http.client.HTTPConnection.connect

    def counted(self: http.client.HTTPConnection) -> None:
        made.append(1)
        connect(self)

    monkeypatch.setattr(http.client.HTTPConnection, "connect", counted)
    return made


def test_a_receiver_asks_for_the_files_of_a_batch_over_one_kept_connection(
    peer: tuple[PeerSource, Ledger], connects: list[int]
) -> None:
    source, _ = peer
    assert [_read(source, k) for k in ("a.bin", "b.bin", "c.bin")] == [b"abc"] * 3
    assert len(connects) == 1


def test_an_empty_file_is_served_and_its_connection_kept(tmp_path: Path, connects: list[int]) -> None:
    ctx, ledger = _context(tmp_path)
    (tmp_path / "b.bin").write_bytes(b"")
    ledger.sizes = {"b.bin": 0}
    with _receiving(ctx, {"a.bin": b"abc", "b.bin": b""}) as source:
        reader = source.open(SourceObject("b.bin", 0))
        assert reader.read(10) == b""
        reader.close()
        assert _read(source, "a.bin") == b"abc"
    assert len(connects) == 1


def test_a_kept_connection_that_died_is_replaced_by_a_new_one(
    peer: tuple[PeerSource, Ledger], connects: list[int]
) -> None:
    source, _ = peer
    assert _read(source, "a.bin") == b"abc"
    (kept,) = source._idle
    assert kept.sock is not None
    kept.sock.shutdown(socket.SHUT_RDWR)  # as when the peer's idle timeout closed it
    assert _read(source, "b.bin") == b"abc"
    assert len(connects) == 2


def test_a_refusal_closes_its_connection_and_the_next_file_is_asked_anew(
    peer: tuple[PeerSource, Ledger], connects: list[int]
) -> None:
    source, ledger = peer
    ledger.state = TaskState.RUNNING
    with pytest.raises(SourceReadError, match="answered 404"):
        _read(source, "a.bin")
    ledger.state = TaskState.DONE
    assert _read(source, "b.bin") == b"abc"
    assert len(connects) == 2
    assert len(source._idle) == 1


def test_a_closed_source_keeps_no_connection(peer: tuple[PeerSource, Ledger]) -> None:
    source, _ = peer
    assert _read(source, "a.bin") == b"abc"
    (kept,) = source._idle
    source.close()
    assert source._idle == [] and kept.sock is None
