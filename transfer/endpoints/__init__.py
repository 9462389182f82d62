"""Endpoints: what the one copy engine reads from and writes to.

Reading is the :class:`transfer.sources.base.Source` interface (S3, POSIX, fsspec sources in
:mod:`transfer.sources`, and a run directory's checkpoints in :mod:`.run_dir`). Writing is
:class:`.base.Writer`: the node-local dataset (:class:`transfer.sink.DatasetDir`), a confined
egress directory (:class:`.path.ConfinedDir`) and S3 (:class:`.s3.S3Writer`).
"""

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stagegate.errors import InvalidInputError
from stagegate.paths import plain_segments
from stagegate.transfer.endpoints.base import EgressWriter, Present, TempObject, Writer

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = [
    "EgressWriter",
    "Present",
    "TempObject",
    "Writer",
    "local_path",
    "open_writer",
    "validate_destination",
]


def local_path(url: str) -> Path | None:
    """The directory a local destination names (``/x`` or ``file:///x``), else None.

    Raises :class:`InvalidInputError` for an empty, ``.`` or ``..`` segment: the path is taken
    as written, so what the policy matches is exactly the directory that is written."""
    rest = url.removeprefix("file://") if url.startswith("file://") else url
    if not rest.startswith("/"):
        return None
    return Path("/", *plain_segments(rest))


def validate_destination(url: str) -> str:
    """``url`` if egress can write there (``s3://bucket[/prefix]``, an absolute path, ``file:///``)."""
    if url.startswith("s3://"):
        from stagegate.transfer.sources.s3 import split_s3_url

        split_s3_url(url)
        return url
    if local_path(url) is not None:
        return url
    raise InvalidInputError(
        f"unsupported egress destination {url!r}: use s3://bucket/prefix, an absolute path or file:///path"
    )


def open_writer(
    url: str,
    buffers: int,
    client: "S3Client | None" = None,
    fsync: Callable[[int], None] = os.fsync,
) -> EgressWriter[Any]:
    """The writer for an egress destination; ``buffers`` bounds an S3 writer's part buffers,
    ``fsync`` is what a path destination syncs its directories with."""
    validate_destination(url)
    if url.startswith("s3://"):
        from stagegate.transfer.endpoints.s3 import S3Writer  # boto3 only when it is needed

        return S3Writer(url, buffers, client)
    from stagegate.transfer.endpoints.path import ConfinedDir

    return ConfinedDir(str(local_path(url)), fsync)
