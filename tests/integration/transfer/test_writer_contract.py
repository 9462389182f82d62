"""One contract, every writer: the node-local dataset, a confined egress directory and S3
(on the loopback server). Nothing is visible under a final name before ``commit``; a discarded
temporary object leaves nothing; a writer that reads back refuses a wrong checksum and leaves
nothing at the name."""

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from integration.helpers import MiB, payload
from stagegate.transfer.checksums import new_local_hasher, new_source_hasher
from stagegate.transfer.endpoints.path import ConfinedDir
from stagegate.transfer.endpoints.s3 import S3Writer
from stagegate.transfer.errors import ChecksumMismatchError
from stagegate.transfer.sink import DatasetDir
from stagegate.transfer.sources.s3 import make_client

pytestmark = pytest.mark.integration

PARTS = ("ckpt", "weights.bin")
PART_SIZE = 5 * MiB

Reader = Callable[[], bytes | None]  # what is at the final name now (None: nothing)


@pytest.fixture(params=["dataset", "path", "s3"])
def writer(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Any, Reader]]:
    if request.param == "s3":
        s3_client = request.getfixturevalue("s3_client")
        bucket = request.getfixturevalue("bucket")
        s3 = S3Writer(f"s3://{bucket}/out", buffers=2, client=make_client(8))

        def in_s3() -> bytes | None:
            try:
                return s3_client.get_object(Bucket=bucket, Key="out/ckpt/weights.bin")["Body"].read()  # type: ignore[no-any-return]
            except s3_client.exceptions.NoSuchKey:
                return None

        yield s3, in_s3
        assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
        s3.close()
        return
    root = tmp_path / "out"
    opened = DatasetDir(root) if request.param == "dataset" else ConfinedDir(str(root))

    def on_disk() -> bytes | None:
        path = root.joinpath(*PARTS)
        return path.read_bytes() if path.exists() else None

    yield opened, on_disk
    opened.close()


def _checksum(writer: Any, data: bytes) -> str | None:
    algorithm = writer.read_back_algorithm
    if algorithm is None:
        return None
    hasher = new_local_hasher() if algorithm == "blake3" else new_source_hasher(algorithm)
    hasher.update(data)
    return hasher.hexdigest()


def _fill(writer: Any, data: bytes) -> Any:
    temp = writer.open_temp(PARTS, len(data), PART_SIZE)
    for offset in range(0, len(data), MiB):
        temp.write(data[offset : offset + MiB])
    return temp


@pytest.mark.parametrize("size", [0, 3000, 12 * MiB + 7])
def test_nothing_is_visible_until_commit_and_then_exactly_the_bytes(
    writer: tuple[Any, Reader], size: int
) -> None:
    w, at_final_name = writer
    data = payload(f"w{size}", size)
    temp = _fill(w, data)
    assert at_final_name() is None

    w.commit(temp, PARTS, _checksum(w, data))

    assert at_final_name() == data


def test_a_discarded_object_leaves_nothing(writer: tuple[Any, Reader], tmp_path: Path) -> None:
    w, at_final_name = writer
    temp = _fill(w, payload("gone", 12 * MiB))

    w.discard(temp)

    assert at_final_name() is None
    if isinstance(w, (DatasetDir, ConfinedDir)):
        tmp = w.state_path / "tmp" if isinstance(w, DatasetDir) else tmp_path / "out" / ".stagegate" / "tmp"
        assert os.listdir(tmp) == []


# The node-local dataset reads nothing back (read_back_algorithm None): its bytes were checked
# against the source's checksum on the way in.
@pytest.mark.parametrize("writer", ["path", "s3"], indirect=True)
def test_a_writer_that_reads_back_refuses_a_wrong_checksum(writer: tuple[Any, Reader]) -> None:
    w, at_final_name = writer
    assert w.read_back_algorithm is not None
    data = payload("wrong", 7 * MiB)
    temp = _fill(w, data)
    wrong = _checksum(w, data + b"!")

    with pytest.raises(ChecksumMismatchError):
        w.commit(temp, PARTS, wrong)
    w.discard(temp)

    assert at_final_name() is None
