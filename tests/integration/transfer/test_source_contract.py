"""One contract for every source: the same tests against fsspec's memory://, a local
directory, and a real S3 server."""

import os
import time
import uuid
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import fsspec
import pytest

from integration.helpers import MiB, payload, put_objects, write_tree
from stagegate.transfer import SourceObject, open_source
from stagegate.transfer.errors import SourceChangedError, SourceNotFoundError

pytestmark = pytest.mark.integration

FILES = {
    "B": b"upper case sorts first",
    "a-c": b"dash",
    "a.txt": b"dot",
    "a/b": b"slash",
    "a/b2/deep/er.bin": payload("deep", 4096),
    "a0": b"zero",
    "empty": b"",
    "range.bin": payload("range", 100_000),
    "big.bin": payload("big", 3 * MiB + 3),
    "z\u00e9": b"non-ascii sorts last",
}


class MemoryBackend:
    name = "memory"

    def __init__(self) -> None:
        self.fs = fsspec.filesystem("memory")
        self.root = f"/sg-{uuid.uuid4().hex}"

    def make(self, files: Mapping[str, bytes]) -> str:
        for key, data in files.items():
            self.fs.pipe_file(f"{self.root}/data/{key}", data)
        return f"memory:/{self.root}/data"

    def modify(self, key: str, data: bytes) -> None:
        self.fs.pipe_file(f"{self.root}/data/{key}", data)

    def delete(self, key: str) -> None:
        self.fs.rm_file(f"{self.root}/data/{key}")

    def missing_urls(self) -> list[str]:
        return [f"memory:/{self.root}/no-such-dir"]

    def close(self) -> None:
        if self.fs.exists(self.root):
            self.fs.rm(self.root, recursive=True)


class LocalBackend:
    name = "local"

    def __init__(self, tmp_path: Path) -> None:
        self.root = tmp_path / "src"

    def make(self, files: Mapping[str, bytes]) -> str:
        write_tree(self.root, files)
        return str(self.root)

    def modify(self, key: str, data: bytes) -> None:
        (self.root / key).write_bytes(data)

    def delete(self, key: str) -> None:
        (self.root / key).unlink()

    def missing_urls(self) -> list[str]:
        return [str(self.root.parent / "no-such-dir"), (self.root.parent / "nope").as_uri()]

    def close(self) -> None:
        pass


class S3Backend:
    name = "s3"

    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    def make(self, files: Mapping[str, bytes]) -> str:
        put_objects(self.client, self.bucket, {f"ds/{k}": v for k, v in files.items()})
        return f"s3://{self.bucket}/ds"

    def modify(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=f"ds/{key}", Body=data)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=f"ds/{key}")

    def missing_urls(self) -> list[str]:
        return [f"s3://{self.bucket}/no-such-prefix", f"s3://sg-no-such-{uuid.uuid4().hex[:12]}/x"]

    def close(self) -> None:
        pass


@pytest.fixture(params=["memory", "local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "memory":
        b: Any = MemoryBackend()
    elif request.param == "local":
        b = LocalBackend(tmp_path)
    else:
        b = S3Backend(request.getfixturevalue("s3_client"), request.getfixturevalue("bucket"))
    yield b
    b.close()


def _read_all(reader: Any, chunk: int = 65_537) -> bytes:
    out = bytearray()
    try:
        while data := reader.read(chunk):
            out += data
    finally:
        reader.close()
    return bytes(out)


def _listed(url: str) -> tuple[Any, dict[str, SourceObject]]:
    source = open_source(url)
    return source, {o.key: o for o in source.list()}


class TestSourceContract:
    def test_list_ascends_by_key_with_sizes(self, backend):
        source = open_source(backend.make(FILES))
        objects = list(source.list())
        keys = [o.key for o in objects]
        # ascending by UTF-8 bytes, which is code point order
        assert keys == sorted(FILES, key=lambda k: k.encode())
        assert {o.key: o.size for o in objects} == {k: len(v) for k, v in FILES.items()}
        assert all(isinstance(o, SourceObject) for o in objects)

    def test_open_streams_exact_bytes(self, backend):
        source, objects = _listed(backend.make(FILES))
        for key, data in FILES.items():
            assert _read_all(source.open(objects[key])) == data, key

    @pytest.mark.parametrize(
        ("offset", "length"),
        [(0, 1), (1, 99_999), (12_345, 6_789), (99_999, 1), (50_000, None), (0, 100_000), (777, 0)],
    )
    def test_open_range_returns_exactly_the_range(self, backend, offset, length):
        source, objects = _listed(backend.make(FILES))
        data = FILES["range.bin"]
        got = _read_all(source.open(objects["range.bin"], offset, length), chunk=4096)
        end = len(data) if length is None else offset + length
        assert got == data[offset:end]

    def test_published_checksum_if_any_is_right(self, backend):
        source, objects = _listed(backend.make(FILES))
        for key in ("range.bin", "big.bin", "empty"):
            published = source.published_checksum(objects[key])
            if published is None:
                continue
            assert published.algorithm == "crc32"  # what boto3 sends by default
            assert published.hexdigest == f"{zlib.crc32(FILES[key]):08x}"

    def test_missing_source_raises_not_found(self, backend):
        backend.make({"exists": b"x"})
        for url in backend.missing_urls():
            with pytest.raises(SourceNotFoundError):
                list(open_source(url).list())

    @pytest.mark.parametrize("same_size", [False, True], ids=["resized", "same-size"])
    def test_object_changed_after_listing_raises(self, backend, same_size):
        source, objects = _listed(backend.make(FILES))
        old = FILES["range.bin"]
        new = bytes(b ^ 0xFF for b in old) if same_size else old + b"more"
        time.sleep(0.05)  # a POSIX mtime ticks at the kernel's coarse clock
        backend.modify("range.bin", new)
        with pytest.raises(SourceChangedError):
            _read_all(source.open(objects["range.bin"]))
        with pytest.raises(SourceChangedError):
            _read_all(source.open(objects["range.bin"], 10, 100))

    def test_object_deleted_after_listing_raises(self, backend):
        source, objects = _listed(backend.make(FILES))
        backend.delete("a.txt")
        with pytest.raises(SourceChangedError):
            _read_all(source.open(objects["a.txt"]))

    def test_other_objects_unaffected_by_a_change(self, backend):
        source, objects = _listed(backend.make(FILES))
        backend.modify("a.txt", b"changed")
        assert _read_all(source.open(objects["a0"])) == FILES["a0"]


def test_memory_url_stages_end_to_end(tmp_path):
    """The generic fsspec source through the whole pipeline."""
    from integration.helpers import assert_staged, small_config
    from stagegate.transfer import stage

    backend = MemoryBackend()
    try:
        url = backend.make(FILES)
        result = stage(open_source(url), tmp_path / "dest", small_config())
        assert result.verified_local == len(FILES)
        assert_staged(tmp_path / "dest", FILES)
    finally:
        backend.close()


def test_local_listing_skips_special_files(tmp_path):
    src = write_tree(tmp_path / "src", {"f": b"1"})
    os.mkfifo(src / "fifo")
    assert [o.key for o in open_source(str(src)).list()] == ["f"]
