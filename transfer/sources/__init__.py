"""Sources, picked from the URL: ``s3://`` through boto3, ``file://`` and plain paths as
POSIX directories, anything else fsspec knows through one generic fsspec source."""

import contextlib
import functools
from collections.abc import Iterator
from urllib.parse import unquote, urlsplit

from stagegate.errors import InvalidInputError
from stagegate.transfer.copy_processes import SourceRecipe
from stagegate.transfer.objects import LabelSpec
from stagegate.transfer.sources.base import ObjectReader, PublishedChecksum, Source
from stagegate.transfer.sources.local import LocalSource

__all__ = ["ObjectReader", "PublishedChecksum", "Source", "open_source", "source_recipe"]


def open_source(
    url: str, max_connections: int = 64, labels: LabelSpec | None = None, *, tags_at_plan: bool = False
) -> Source:
    """The source for ``url``; with ``labels``, objects come with their own labels (from S3
    only with ``tags_at_plan``: one tagging request per object; else read at copy time)."""
    if not url:
        raise InvalidInputError("empty source URL")
    scheme = urlsplit(url).scheme if "://" in url else ""
    # boto3 and fsspec are imported only when used: a third of a second saved on startup.
    if scheme == "s3":
        from stagegate.transfer.sources.s3 import S3Source

        return S3Source(url, max_connections=max_connections, labels=labels, tags_at_plan=tags_at_plan)
    if scheme == "":
        return LocalSource(url, labels=labels)
    if scheme == "file":
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise InvalidInputError(f"file URL with a remote host is not supported: {url!r}")
        return LocalSource(unquote(parts.path), url=url, labels=labels)
    from stagegate.transfer.sources.fsspec_source import FsspecSource

    try:
        return FsspecSource(url, labels=labels)
    except (ValueError, ImportError) as exc:
        raise InvalidInputError(f"unsupported source URL {url!r}: {exc}") from None


def source_recipe(
    url: str, max_connections: int = 64, labels: LabelSpec | None = None, *, tags_at_plan: bool = False
) -> "SourceRecipe":
    """What opens :func:`open_source`'s source for ``url`` again in a copy process
    (:data:`transfer.copy_processes.SourceRecipe`): the arguments, never an open client or a
    credential (the child's own credential chain reads the environment, as this one did)."""
    return functools.partial(_opened, url, max_connections, labels, tags_at_plan)


@contextlib.contextmanager
def _opened(url: str, max_connections: int, labels: LabelSpec | None, tags_at_plan: bool) -> Iterator[Source]:
    source = open_source(url, max_connections, labels, tags_at_plan=tags_at_plan)
    try:
        yield source
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()
