"""Checksums: BLAKE3 for every file, plus whatever the source publishes, computed in-stream.

S3 publishes full-object CRC32, CRC32C, CRC64NVME, SHA-1 or SHA-256 values (base64 of the
big-endian digest) and, for single-part uploads without KMS encryption, an ETag that is the
MD5 of the bytes. Digests are compared as lowercase hex.
"""

import base64
import hashlib
import zlib
from typing import Protocol

import blake3

SOURCE_ALGORITHMS = ("crc32", "crc32c", "crc64nvme", "sha1", "sha256", "md5")


class Hasher(Protocol):
    def update(self, data: bytes | bytearray | memoryview, /) -> object: ...

    def hexdigest(self) -> str: ...


class _Crc:
    """A CRC with the hashlib interface; ``width`` bytes, big-endian, as S3 encodes it."""

    def __init__(self, fn: "CrcFn", width: int) -> None:
        self._fn = fn
        self._width = width
        self._value = 0

    def update(self, data: bytes | bytearray | memoryview, /) -> None:
        self._value = self._fn(data, self._value)

    def hexdigest(self) -> str:
        return self._value.to_bytes(self._width, "big").hex()


class CrcFn(Protocol):
    def __call__(self, data: bytes | bytearray | memoryview, previous: int, /) -> int: ...


def _crc32(data: bytes | bytearray | memoryview, previous: int) -> int:
    return zlib.crc32(data, previous)


def new_source_hasher(algorithm: str) -> Hasher:
    """A fresh hasher for one of :data:`SOURCE_ALGORITHMS`."""
    if algorithm == "crc32":
        return _Crc(_crc32, 4)
    if algorithm in ("crc32c", "crc64nvme"):
        from awscrt import checksums as crt  # native code, imported when an object needs it

        return _Crc(crt.crc32c, 4) if algorithm == "crc32c" else _Crc(crt.crc64nvme, 8)
    if algorithm in ("sha1", "sha256", "md5"):
        return hashlib.new(algorithm, usedforsecurity=False)
    raise ValueError(f"unknown checksum algorithm {algorithm!r}")


ALL_CORES = blake3.blake3.AUTO  # BLAKE3 may hash one update on every core (outside the GIL)


def new_local_hasher(threads: int = 1) -> Hasher:
    """The hasher every file's manifest checksum comes from; ``threads`` (or
    :data:`ALL_CORES`) for big updates only: below a few MiB the hand-off costs more."""
    return blake3.blake3(max_threads=threads)


def hex_from_base64(value: str) -> str:
    """S3 sends flexible checksums as base64; we compare hex."""
    return base64.b64decode(value, validate=True).hex()


def md5_from_etag(etag: str | None) -> str | None:
    """The MD5 hex an ETag stands for, when it is one (single-part upload), else None."""
    if etag is None:
        return None
    bare = etag.strip('"').lower()
    if len(bare) == 32 and all(c in "0123456789abcdef" for c in bare):
        return bare
    return None
