"""Tests for the pure parts of transfer.sources.s3: URL splitting and published checksums."""

import base64
import hashlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stagegate.errors import InvalidInputError
from stagegate.transfer.errors import SourceNotFoundError
from stagegate.transfer.sources.base import PublishedChecksum
from stagegate.transfer.sources.s3 import published_from_response, split_s3_url

MD5 = hashlib.md5(b"data").hexdigest()
ETAG = f'"{MD5}"'
MULTIPART_ETAG = f'"{MD5}-3"'


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


VALUES = {
    "ChecksumCRC64NVME": bytes(range(8)),
    "ChecksumCRC32C": bytes(range(10, 14)),
    "ChecksumCRC32": bytes(range(20, 24)),
    "ChecksumSHA256": bytes(range(32)),
    "ChecksumSHA1": bytes(range(40, 60)),
}
ALGORITHM = {
    "ChecksumCRC64NVME": "crc64nvme",
    "ChecksumCRC32C": "crc32c",
    "ChecksumCRC32": "crc32",
    "ChecksumSHA256": "sha256",
    "ChecksumSHA1": "sha1",
}
PREFERENCE = list(VALUES)  # most preferred first


def response(*fields: str, **extra: Any) -> dict[str, Any]:
    resp: dict[str, Any] = {field: b64(VALUES[field]) for field in fields}
    resp.update(extra)
    return resp


# --- split_s3_url ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("s3://bucket", ("bucket", "")),
        ("s3://bucket/", ("bucket", "")),
        ("s3://bucket/data/train", ("bucket", "data/train")),
        ("s3://bucket/data/train/", ("bucket", "data/train/")),
        ("s3://bkt/a//b", ("bkt", "a//b")),
    ],
)
def test_split_s3_url(url: str, expected: tuple[str, str]) -> None:
    assert split_s3_url(url) == expected


@pytest.mark.parametrize("url", ["s3://", "s3:///prefix", ""])
def test_split_s3_url_without_bucket(url: str) -> None:
    with pytest.raises(SourceNotFoundError):
        split_s3_url(url)


@given(st.from_regex(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", fullmatch=True), st.text(max_size=30))
def test_split_s3_url_roundtrip(bucket: str, prefix: str) -> None:
    assert split_s3_url(f"s3://{bucket}/{prefix}") == (bucket, prefix)


@pytest.mark.parametrize("bucket", ["b", "ab", "AKIA:hunter2@some-bucket", "bad bucket"])
def test_split_s3_url_refuses_what_cannot_be_a_bucket(bucket: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        split_s3_url(f"s3://{bucket}/prefix")
    assert "bucket" in str(info.value)


# --- published_from_response ----------------------------------------------------------


@pytest.mark.parametrize("start", range(len(PREFERENCE)))
def test_strongest_checksum_is_preferred(start: int) -> None:
    present = PREFERENCE[start:]
    best = present[0]
    published = published_from_response(response(*present), ETAG)
    assert published == PublishedChecksum(ALGORITHM[best], VALUES[best].hex())


@given(st.sets(st.sampled_from(PREFERENCE), min_size=1), st.booleans())
def test_preference_order_for_any_subset(fields: set[str], with_type: bool) -> None:
    extra = {"ChecksumType": "FULL_OBJECT"} if with_type else {}
    best = min(fields, key=PREFERENCE.index)
    published = published_from_response(response(*fields, **extra), ETAG)
    assert published == PublishedChecksum(ALGORITHM[best], VALUES[best].hex())


def test_composite_value_is_ignored() -> None:
    resp = {"ChecksumCRC32C": b64(VALUES["ChecksumCRC32C"]) + "-3"}
    assert published_from_response(resp, ETAG) == PublishedChecksum("md5", MD5)


def test_composite_value_is_skipped_for_the_next_full_one() -> None:
    resp = response("ChecksumCRC32")
    resp["ChecksumCRC64NVME"] = b64(VALUES["ChecksumCRC64NVME"]) + "-2"
    assert published_from_response(resp, ETAG) == PublishedChecksum("crc32", VALUES["ChecksumCRC32"].hex())


def test_multipart_object_checksum_is_composite_by_default() -> None:
    resp = response("ChecksumCRC32C", "ChecksumSHA256")
    assert published_from_response(resp, MULTIPART_ETAG) is None


def test_multipart_composite_type_is_not_used() -> None:
    resp = response("ChecksumCRC32C", ChecksumType="COMPOSITE")
    assert published_from_response(resp, MULTIPART_ETAG) is None


def test_multipart_full_object_checksum_is_used() -> None:
    resp = response("ChecksumCRC64NVME", ChecksumType="FULL_OBJECT")
    assert published_from_response(resp, MULTIPART_ETAG) == PublishedChecksum(
        "crc64nvme", VALUES["ChecksumCRC64NVME"].hex()
    )


def test_single_part_composite_type_falls_back_to_etag() -> None:
    resp = response("ChecksumCRC32", ChecksumType="COMPOSITE")
    assert published_from_response(resp, ETAG) == PublishedChecksum("md5", MD5)


@pytest.mark.parametrize("etag", [ETAG, MD5])
def test_etag_md5_for_single_part_objects(etag: str) -> None:
    assert published_from_response({}, etag) == PublishedChecksum("md5", MD5)


@pytest.mark.parametrize("etag", [None, MULTIPART_ETAG, '"not-an-md5"'])
def test_no_checksum_when_etag_is_not_an_md5(etag: str | None) -> None:
    assert published_from_response({}, etag) is None


@pytest.mark.parametrize("sse", ["aws:kms", "aws:kms:dsse"])
def test_kms_encrypted_etag_is_not_an_md5(sse: str) -> None:
    assert published_from_response({"ServerSideEncryption": sse}, ETAG) is None


def test_kms_encrypted_object_still_uses_flexible_checksum() -> None:
    resp = response("ChecksumSHA256", ServerSideEncryption="aws:kms")
    assert published_from_response(resp, ETAG) == PublishedChecksum("sha256", VALUES["ChecksumSHA256"].hex())


def test_sse_s3_etag_is_still_an_md5() -> None:
    assert published_from_response({"ServerSideEncryption": "AES256"}, ETAG) == PublishedChecksum("md5", MD5)


def test_empty_checksum_value_is_ignored() -> None:
    resp = {"ChecksumCRC64NVME": "", **response("ChecksumSHA1")}
    assert published_from_response(resp, ETAG) == PublishedChecksum("sha1", VALUES["ChecksumSHA1"].hex())


def test_published_checksum_str() -> None:
    assert str(PublishedChecksum("md5", MD5)) == f"md5:{MD5}"
