"""Which S3 key a planned object names, for a source that never listed (a batch task):
the URL's folder wins over an object of the same name, exactly as list() decides, and the
question costs one single-key listing at most."""

import io
from typing import Any

import pytest

from stagegate.transfer.objects import SourceObject
from stagegate.transfer.sources.s3 import S3Source


class FakeClient:
    """Just enough of an S3 client: a set of keys; records what was asked."""

    def __init__(self, keys: dict[str, bytes]) -> None:
        self.keys = keys
        self.listings: list[str] = []
        self.gets: list[str] = []

    def list_objects_v2(self, Bucket: str, Prefix: str, MaxKeys: int) -> dict[str, Any]:
        self.listings.append(Prefix)
        found = sorted(k for k in self.keys if k.startswith(Prefix))[:MaxKeys]
        return {"Contents": [{"Key": k} for k in found]} if found else {}

    def get_object(self, **args: Any) -> dict[str, Any]:
        self.gets.append(args["Key"])
        return {"Body": io.BytesIO(self.keys[args["Key"]])}


def read(source: S3Source, key: str, size: int) -> bytes:
    reader = source.open(SourceObject(key, size))
    try:
        return reader.read(size + 1)
    finally:
        reader.close()


@pytest.mark.parametrize(
    ("url", "key", "expected"),
    [
        ("s3://bkt/ds/file.bin", "file.bin", "ds/file.bin"),  # a single object
        ("s3://bkt/ds/dir", "dir", "ds/dir/dir"),  # the folder, though the object ds/dir exists
        ("s3://bkt/ds/dir", "other", "ds/dir/other"),
        ("s3://bkt/ds/dir/", "dir", "ds/dir/dir"),
        ("s3://bkt/file.bin", "file.bin", "file.bin"),  # an object at the bucket's top
        ("s3://bkt", "ds/file.bin", "ds/file.bin"),
    ],
)
def test_the_key_a_fresh_source_reads(url: str, key: str, expected: str) -> None:
    keys = {
        "file.bin": b"top",
        "ds/file.bin": b"one",
        "ds/dir": b"object named like the folder",
        "ds/dir/dir": b"in the folder",
        "ds/dir/other": b"also in it",
    }
    client = FakeClient(keys)
    source = S3Source(url, client=client, data_path="boto3")  # type: ignore[arg-type]
    assert read(source, key, len(keys[expected])) == keys[expected]
    assert client.gets == [expected]


def test_the_question_is_asked_once_and_only_for_the_urls_own_name() -> None:
    client = FakeClient({"ds/file.bin": b"one", "ds/dir/a": b"a", "ds/dir/b": b"b"})
    single = S3Source("s3://bkt/ds/file.bin", client=client, data_path="boto3")  # type: ignore[arg-type]
    for _ in range(3):
        read(single, "file.bin", 3)
    assert client.listings == ["ds/file.bin/"]

    client.listings.clear()
    folder = S3Source("s3://bkt/ds/dir", client=client, data_path="boto3")  # type: ignore[arg-type]
    read(folder, "a", 1)
    read(folder, "b", 1)
    assert client.listings == [], "a key that is not the URL's own name needs no question"
