"""Tests for transfer.checksums: in-stream hashers and how S3 values are decoded."""

import base64
import hashlib
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stagegate.transfer.checksums import (
    SOURCE_ALGORITHMS,
    hex_from_base64,
    md5_from_etag,
    new_local_hasher,
    new_source_hasher,
)

CHECK = b"123456789"  # the standard CRC check input

DIGEST_BYTES = {"crc32": 4, "crc32c": 4, "crc64nvme": 8, "sha1": 20, "sha256": 32, "md5": 16}


def digest_in_chunks(algorithm: str, data: bytes, cuts: list[int]) -> str:
    hasher = new_source_hasher(algorithm)
    previous = 0
    for cut in [*sorted(cuts), len(data)]:
        hasher.update(memoryview(data)[previous:cut])
        previous = cut
    return hasher.hexdigest()


@settings(max_examples=100)
@given(
    algorithm=st.sampled_from(SOURCE_ALGORITHMS),
    data=st.binary(max_size=2048),
    cut_fractions=st.lists(st.floats(0, 1), max_size=8),
)
def test_chunking_does_not_change_the_digest(algorithm: str, data: bytes, cut_fractions: list[float]) -> None:
    cuts = [int(f * len(data)) for f in cut_fractions]
    whole = new_source_hasher(algorithm)
    whole.update(data)
    assert digest_in_chunks(algorithm, data, cuts) == whole.hexdigest()


@pytest.mark.parametrize("algorithm", SOURCE_ALGORITHMS)
def test_digest_is_lowercase_hex_of_the_expected_width(algorithm: str) -> None:
    hasher = new_source_hasher(algorithm)
    hasher.update(b"stagegate")
    hexdigest = hasher.hexdigest()
    assert len(hexdigest) == 2 * DIGEST_BYTES[algorithm]
    assert hexdigest == hexdigest.lower()
    int(hexdigest, 16)


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("crc32", "cbf43926"),
        ("crc32c", "e3069283"),
        ("crc64nvme", "ae8b14860a799888"),
        ("sha1", hashlib.sha1(CHECK).hexdigest()),
        ("sha256", hashlib.sha256(CHECK).hexdigest()),
        ("md5", hashlib.md5(CHECK).hexdigest()),
    ],
)
def test_known_vectors(algorithm: str, expected: str) -> None:
    hasher = new_source_hasher(algorithm)
    hasher.update(CHECK)
    assert hasher.hexdigest() == expected


@pytest.mark.parametrize("algorithm", SOURCE_ALGORITHMS)
def test_empty_input(algorithm: str) -> None:
    expected = {
        "crc32": "00000000",
        "crc32c": "00000000",
        "crc64nvme": "0000000000000000",
        "sha1": hashlib.sha1(b"").hexdigest(),
        "sha256": hashlib.sha256(b"").hexdigest(),
        "md5": hashlib.md5(b"").hexdigest(),
    }[algorithm]
    assert new_source_hasher(algorithm).hexdigest() == expected


@given(st.binary(max_size=4096))
def test_crc32_is_zlib_big_endian(data: bytes) -> None:
    hasher = new_source_hasher("crc32")
    hasher.update(data)
    assert hasher.hexdigest() == zlib.crc32(data).to_bytes(4, "big").hex()


@given(st.binary(max_size=4096), st.sampled_from(["sha256", "md5", "sha1"]))
def test_cryptographic_hashes_are_hashlib(data: bytes, algorithm: str) -> None:
    hasher = new_source_hasher(algorithm)
    hasher.update(data)
    assert hasher.hexdigest() == hashlib.new(algorithm, data).hexdigest()


def test_hashers_are_independent() -> None:
    a, b = new_source_hasher("crc32c"), new_source_hasher("crc32c")
    a.update(b"abc")
    assert b.hexdigest() == "00000000"


@pytest.mark.parametrize("algorithm", ["", "CRC32", "sha512", "blake3", "crc64"])
def test_unknown_algorithm_is_refused(algorithm: str) -> None:
    with pytest.raises(ValueError):
        new_source_hasher(algorithm)


def test_local_hasher_is_blake3() -> None:
    hasher = new_local_hasher()
    hasher.update(b"")
    # BLAKE3 of the empty input (from the BLAKE3 reference test vectors)
    assert hasher.hexdigest() == "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"


@given(st.binary(max_size=64))
def test_hex_from_base64_roundtrip(raw: bytes) -> None:
    assert hex_from_base64(base64.b64encode(raw).decode()) == raw.hex()


def test_hex_from_base64_s3_example() -> None:
    # S3 returns ChecksumCRC32 as base64 of the 4 big-endian bytes
    assert hex_from_base64("y/Q5Jg==") == "cbf43926"


@pytest.mark.parametrize("value", ["not base64!", "abc", "y/Q5Jg==-3"])
def test_hex_from_base64_refuses_garbage(value: str) -> None:
    with pytest.raises(ValueError):
        hex_from_base64(value)


MD5_HEX = hashlib.md5(b"x").hexdigest()


@pytest.mark.parametrize(
    ("etag", "expected"),
    [
        (f'"{MD5_HEX}"', MD5_HEX),
        (MD5_HEX, MD5_HEX),
        (f'"{MD5_HEX.upper()}"', MD5_HEX),
        (f'"{MD5_HEX}-3"', None),
        (f"{MD5_HEX}-1", None),
        (None, None),
        ("", None),
        ('""', None),
        (f'"{MD5_HEX[:-1]}"', None),
        (f'"{MD5_HEX}0"', None),
        (f'"{MD5_HEX[:-1]}g"', None),
    ],
)
def test_md5_from_etag(etag: str | None, expected: str | None) -> None:
    assert md5_from_etag(etag) == expected


@given(st.binary(max_size=256), st.booleans())
def test_md5_from_etag_of_a_single_part_upload(data: bytes, quoted: bool) -> None:
    md5 = hashlib.md5(data).hexdigest()
    etag = f'"{md5}"' if quoted else md5
    assert md5_from_etag(etag) == md5


@given(st.binary(max_size=64), st.integers(1, 10_000))
def test_md5_from_etag_refuses_multipart(data: bytes, parts: int) -> None:
    assert md5_from_etag(f'"{hashlib.md5(data).hexdigest()}-{parts}"') is None
