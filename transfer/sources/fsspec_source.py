"""Any other fsspec URL (``memory://``, ``gcs://``, ``hdfs://``...) as a source.

A generic fallback: correctness over speed. No checksum is published through fsspec's
interface, so files from here are verified locally only.
"""

from collections.abc import Iterator
from datetime import datetime
from functools import cached_property
from typing import Any

import fsspec

from stagegate.transfer.errors import SourceChangedError, SourceNotFoundError
from stagegate.transfer.label_sources import LabelFileAbove, not_a_label_file
from stagegate.transfer.objects import LabelSpec, SourceObject
from stagegate.transfer.sources.base import DirEntry, PublishedChecksum, walk_sorted


def _revision(info: dict[str, Any]) -> str | None:
    """What identifies the bytes. Backends give times as floats in listings and as datetimes
    from info(): both become whole microseconds, so the two spellings compare equal."""
    for field in ("ETag", "etag", "md5", "mtime", "LastModified", "created"):
        value = info.get(field)
        if value is None:
            continue
        if isinstance(value, datetime):
            value = value.timestamp()
        if isinstance(value, float | int):
            value = round(value * 1_000_000)
        return f"{field}:{value}"
    return None


class _FsspecReader:
    published: PublishedChecksum | None = None

    def __init__(self, handle: Any, length: int) -> None:
        self._handle = handle
        self._left = length

    def read(self, n: int, /) -> bytes:
        if self._left <= 0:
            return b""
        data: bytes = self._handle.read(min(n, self._left))
        self._left -= len(data)
        return data

    def own_label(self) -> str | None:
        return None  # fsspec has no common notion of object tags

    def close(self) -> None:
        self._handle.close()


class FsspecSource:
    prefers_ranged_reads = False  # the generic path: simple and correct over fast

    labels_listed = True  # own labels come with the listing, at no extra cost

    def __init__(self, url: str, labels: LabelSpec | None = None) -> None:
        self.url = url
        self._fs, path = fsspec.core.url_to_fs(url)
        self._root = path.rstrip("/")
        self._label_file = labels.file_name if labels else None

    @cached_property
    def _is_single_file(self) -> bool:
        """Whether the URL names one file: asked once, by list() or by the first read (a batch
        reads objects another process listed, without listing)."""
        return bool(self._fs.isfile(self._root))

    def list(self) -> Iterator[SourceObject]:
        if not self._fs.exists(self._root):
            raise SourceNotFoundError(f"nothing at {self.url}")
        if self._is_single_file:
            yield self._object(self._root.rsplit("/", 1)[-1], self._fs.info(self._root))
            return
        for key, entry in walk_sorted(self._list_dir):
            yield self._object(key, entry.payload)  # type: ignore[arg-type]

    def _list_dir(self, rel: str) -> Iterator[DirEntry]:
        path = f"{self._root}/{rel}" if rel else self._root
        for info in self._fs.ls(path, detail=True):
            name = info["name"].rstrip("/").rsplit("/", 1)[-1]
            if name == self._label_file and info["type"] != "file":
                # Skipped, it would leave its directory unlabelled: fail closed instead.
                key = f"{rel}/{name}" if rel else name
                raise not_a_label_file(key, f"a {info['type']}")
            yield DirEntry(name, info["type"] == "directory", info)

    @staticmethod
    def _object(key: str, info: dict[str, Any]) -> SourceObject:
        return SourceObject(key=key, size=int(info["size"] or 0), revision=_revision(info))

    def _path(self, obj: SourceObject) -> str:
        return self._root if self._is_single_file else f"{self._root}/{obj.key}"

    def open(self, obj: SourceObject, offset: int = 0, length: int | None = None) -> _FsspecReader:
        path = self._path(obj)
        try:
            info = self._fs.info(path)
        except FileNotFoundError:
            raise SourceChangedError(f"{obj.key}: deleted since it was listed") from None
        if _revision(info) != obj.revision or int(info["size"] or 0) != obj.size:
            raise SourceChangedError(f"{obj.key}: changed since it was listed")
        handle = self._fs.open(path, "rb")
        handle.seek(offset)
        return _FsspecReader(handle, obj.size - offset if length is None else length)

    def published_checksum(self, obj: SourceObject) -> PublishedChecksum | None:
        return None

    def own_label(self, obj: SourceObject) -> str | None:
        return None

    def label_files_above(self, name: str) -> tuple[LabelFileAbove, ...]:
        # Where a generic filesystem's bucket or mount begins is not known here: nothing above
        # the URL is read, so data labelled only from above stays unclassified (denied).
        return ()

    def find(self, key: str) -> SourceObject | None:
        try:
            info = self._fs.info(f"{self._root}/{key}")
        except FileNotFoundError:
            return None
        return self._object(key, info) if info.get("type") == "file" else None
