"""The bench's moto S3 server for datasets of many objects: ``python -m bench.moto_seeded``.

Plain moto is the right server for most runs, but two of its costs have nothing to do with what
stagegate does and grow with the object count: every PUT costs its server about 7 ms of CPU
(100,000 objects: 12 minutes of upload before a run starts), and its ``ListObjectsV2`` walks
and sorts every key of the bucket for every page (quadratic: 101 pages of a 100,000-object
prefix took about 560 s; real S3 answers a page in tens of milliseconds). This process runs the
same moto server with both removed:

- the objects of each ``--seed PREFIX:COUNT:SIZE`` are made before it serves, through moto's
  own backend calls (``S3Backend.put_object``), with what a boto3 PUT leaves on them: random
  bytes, moto's MD5 ETag and the CRC32 checksum botocore sends by default, so a staging
  verifies every byte as it would against an uploaded object;
- ``ListObjectsV2`` pages are cut from the sorted key names by bisection
  (:func:`list_objects_v2`), with moto's answer for every prefix, delimiter, start-after,
  continuation token and page size (``tests/unit/bench/test_moto_seeded.py`` compares them).

Everything else (GET, HEAD, ranges, tags, conditional requests) is moto's.
"""

from __future__ import annotations

import argparse
import binascii
import os
import signal
import threading
from base64 import b64encode
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bench.datasets import LABEL, LABEL_FILE

ACCOUNT = "123456789012"  # moto's default account: what the bench's "testing" keys map to


@dataclass(frozen=True)
class Seed:
    """``count`` objects of ``size`` random bytes under ``prefix``, and its label file."""

    prefix: str
    count: int
    size: int

    @classmethod
    def parse(cls, spec: str) -> Seed:
        prefix, count, size = spec.rsplit(":", 2)
        return cls(prefix, int(count), int(size))

    def __str__(self) -> str:
        return f"{self.prefix}:{self.count}:{self.size}"


def seed_objects(seed: Seed) -> Iterator[tuple[str, bytes]]:
    """(key, body) of every object of a seeded dataset, its label file first; the layout the
    bench's uploads use too (``bench.burst``), so either way makes the same dataset."""
    yield f"{seed.prefix}/{LABEL_FILE}", LABEL
    for i in range(seed.count):
        yield f"{seed.prefix}/f/{i:07d}.bin", os.urandom(seed.size)


def put_seeded(backend: Any, bucket: str, key: str, body: bytes) -> None:
    """Store one object as moto stores a boto3 ``put_object`` of it: botocore sends a CRC32
    checksum by default, moto keeps it and answers it on GET with checksum mode on."""
    checksum = b64encode(binascii.crc32(body).to_bytes(4, "big")).decode()
    key_object = backend.put_object(bucket, key, body, checksum_value=checksum, disable_notification=True)
    key_object.checksum_algorithm = "CRC32"


def _after_prefix(prefix: str) -> str:
    """The least string greater than every string starting with ``prefix`` (not empty)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def list_objects_v2(
    self: Any,
    bucket: Any,
    prefix: str | None,
    delimiter: str | None,
    continuation_token: str | None,
    start_after: str | None,
    max_keys: int,
) -> Any:
    """moto's ``S3Backend.list_objects_v2``, one page at a cost of a sort of already sorted
    names (linear) and the page's own entries, not a walk of every key per page."""
    from moto.s3.exceptions import MethodNotAllowed
    from moto.s3.models import FakeDeleteMarker, FakeTableStorageBucket

    if isinstance(bucket, FakeTableStorageBucket):
        raise MethodNotAllowed()
    after = self._pagination_tokens.get(continuation_token) if continuation_token else start_after
    prefix = prefix or ""
    # dict.copy runs in C under the GIL: a PUT in another thread cannot change it mid-copy.
    names = sorted(dict.copy(bucket.keys))
    i = bisect_left(names, prefix)
    if after:
        i = max(i, bisect_right(names, after))
    entries: list[Any] = []
    # One entry past the page tells moto's _truncate_result that the listing goes on.
    while i < len(names) and len(entries) <= max_keys and names[i].startswith(prefix):
        name = names[i]
        rest = name[len(prefix) :]
        if delimiter and delimiter in rest:
            folder = prefix + rest.split(delimiter)[0] + delimiter
            if not after or folder > after:
                entries.append(folder)
            i = bisect_left(names, _after_prefix(folder))  # the folder's keys are one entry
            continue
        key = bucket.keys.get(name)
        if key is not None and not isinstance(key, FakeDeleteMarker):
            entries.append(key)
        i += 1
    return self._truncate_result(entries, max_keys)


def install_fast_listing() -> None:
    """Replace moto's listing with :func:`list_objects_v2`, in this process only."""
    from moto.s3.models import S3Backend

    S3Backend.list_objects_v2 = list_objects_v2  # type: ignore[method-assign]


def backend() -> Any:
    from moto.s3.models import s3_backends

    return s3_backends[ACCOUNT]["aws"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.moto_seeded", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--seed", action="append", default=[], type=Seed.parse, metavar="PREFIX:COUNT:SIZE")
    args = parser.parse_args(argv)

    from moto.server import ThreadedMotoServer

    install_fast_listing()
    s3 = backend()
    s3.create_bucket(args.bucket, "us-east-1")
    for seed in args.seed:
        for key, body in seed_objects(seed):
            put_seeded(s3, args.bucket, key, body)
        print(f"seeded {seed}", flush=True)
    server = ThreadedMotoServer(ip_address=args.host, port=args.port, verbose=False)
    server.start()
    print(f"serving on {args.host}:{args.port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop()


if __name__ == "__main__":
    main()
