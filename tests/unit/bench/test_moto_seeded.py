"""bench.moto_seeded's listing answers every page as moto's own does, only without walking
every key per page; and its seeded objects carry what a boto3 PUT leaves."""

import binascii
import hashlib
from base64 import b64encode
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from moto import mock_aws

from bench.moto_seeded import Seed, backend, list_objects_v2, put_seeded, seed_objects

BUCKET = "listing"
names = st.text(alphabet="ab/.", min_size=1, max_size=5)


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        found = backend()
        found.create_bucket(BUCKET, "us-east-1")
        yield found


def _pages(
    s3: Any, lister: Any, prefix: str | None, delimiter: str | None, start: str | None, size: int
) -> list[Any]:
    """Every page of a listing, as (names, truncated, token), following the tokens."""
    pages: list[Any] = []
    token = None
    while True:
        entries, truncated, token = lister(
            s3, s3.get_bucket(BUCKET), prefix, delimiter, token, None if token else start, size
        )
        pages.append(([e if isinstance(e, str) else e.name for e in entries], truncated, token))
        if not truncated or len(pages) > 50:
            return pages


def _moto(s3: Any, *args: Any) -> Any:
    return type(s3).list_objects_v2(s3, *args)


@given(
    keys=st.sets(names, max_size=25),
    deleted=st.sets(names, max_size=5),
    prefix=st.none() | st.text(alphabet="ab/", max_size=3),
    delimiter=st.sampled_from([None, "/", "b/"]),
    start=st.none() | names,
    size=st.integers(min_value=0, max_value=6),
)
def test_listing_pages_are_motos(
    keys: set[str], deleted: set[str], prefix: str | None, delimiter: str | None, start: str | None, size: int
) -> None:
    with mock_aws():
        s3 = backend()
        s3.create_bucket(BUCKET, "us-east-1")
        for key in sorted(keys):
            s3.put_object(BUCKET, key, b"x")
        for key in deleted & keys:
            s3.delete_object(BUCKET, key)
        assert _pages(s3, list_objects_v2, prefix, delimiter, start, size) == _pages(
            s3, _moto, prefix, delimiter, start, size
        )


def test_delete_markers_are_not_listed(s3: Any) -> None:
    s3.put_bucket_versioning(BUCKET, "Enabled")
    for key in ("a", "b", "c"):
        s3.put_object(BUCKET, key, b"x")
    s3.delete_object(BUCKET, "b")  # versioned: leaves a delete marker as the latest version
    assert _pages(s3, list_objects_v2, None, None, None, 10) == _pages(s3, _moto, None, None, None, 10)
    assert _pages(s3, list_objects_v2, None, None, None, 10)[0][0] == ["a", "c"]


def test_seeded_objects_carry_md5_etag_and_crc32(s3: Any) -> None:
    seed = Seed("data", 3, 64)
    for key, body in seed_objects(seed):
        put_seeded(s3, BUCKET, key, body)
    listed = [e.name for e in list_objects_v2(s3, s3.get_bucket(BUCKET), "data/", None, None, None, 10)[0]]
    assert listed == [
        "data/.classification",
        "data/f/0000000.bin",
        "data/f/0000001.bin",
        "data/f/0000002.bin",
    ]
    stored = s3.get_object(BUCKET, "data/f/0000001.bin")
    assert len(stored.value) == 64
    assert stored.etag == f'"{hashlib.md5(stored.value).hexdigest()}"'
    assert stored.checksum_algorithm == "CRC32"
    assert stored.checksum_value == b64encode(binascii.crc32(stored.value).to_bytes(4, "big")).decode()


def test_seed_spec_round_trips() -> None:
    assert Seed.parse("a:b:7:3") == Seed("a:b", 7, 3)
    assert Seed.parse(str(Seed("big", 100000, 256))) == Seed("big", 100000, 256)
