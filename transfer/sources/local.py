"""A POSIX directory (local disk or an NFS mount) as a source."""

import errno
import os
import stat
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path

from transfer.errors import SourceChangedError, SourceNotFoundError
from transfer.objects import LabelSpec, SourceObject
from transfer.sources.base import DirEntry, PublishedChecksum, walk_sorted


def posix_revision(st: os.stat_result) -> str:
    return f"{st.st_mtime_ns}:{st.st_size}"


def read_xattr(target: int | Path, name: str) -> str | None:
    """The text of extended attribute ``name`` of a path (not followed) or descriptor."""
    try:
        if isinstance(target, int):
            value = os.getxattr(target, name)
        else:
            value = os.getxattr(target, name, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
            return None
        raise
    return value.decode("utf-8", errors="replace").strip()


class _FileReader:
    published: PublishedChecksum | None = None  # POSIX publishes no checksum

    def __init__(self, fd: int, offset: int, length: int, xattr: str | None) -> None:
        self._fd = fd
        self._pos = offset
        self._left = length
        self._xattr = xattr

    def own_label(self) -> str | None:
        return read_xattr(self._fd, self._xattr) if self._xattr else None

    def read(self, n: int, /) -> bytes:
        if self._left <= 0:
            return b""
        data = os.pread(self._fd, min(n, self._left), self._pos)
        if not data:
            raise SourceChangedError(f"file shrank while being read (at byte {self._pos})")
        self._pos += len(data)
        self._left -= len(data)
        return data

    def close(self) -> None:
        os.close(self._fd)


class LocalSource:
    """Files under a directory, or one file. Symlinks are not followed: a link could lead
    outside the dataset the policy was asked about; they are counted in ``skipped_symlinks``."""

    # Measured (README): from a local disk or page cache, one stream per file written and
    # hashed in one pass beats ranged parts that must be hashed again after assembly.
    prefers_ranged_reads = False

    def __init__(
        self, path: str | os.PathLike[str], url: str | None = None, labels: LabelSpec | None = None
    ) -> None:
        self.root = Path(path)
        self.url = url or str(self.root)
        self.skipped_symlinks = 0
        self._xattr = labels.xattr if labels else None

    def list(self) -> Iterator[SourceObject]:
        try:
            st = self.root.stat()
        except FileNotFoundError:
            raise SourceNotFoundError(f"no such file or directory: {self.root}") from None
        if stat.S_ISREG(st.st_mode):
            yield self._object(self.root.name, st, self.root)
            return
        if not stat.S_ISDIR(st.st_mode):
            raise SourceNotFoundError(f"not a regular file or directory: {self.root}")
        for key, entry in walk_sorted(self._list_dir):
            yield self._object(key, entry.payload, self.root / key)  # type: ignore[arg-type]

    def _list_dir(self, rel: str) -> Iterator[DirEntry]:
        with os.scandir(self.root / rel if rel else self.root) as it:
            for e in it:
                if e.is_symlink():
                    self.skipped_symlinks += 1
                    continue
                if e.is_dir(follow_symlinks=False):
                    yield DirEntry(e.name, True, None)
                elif e.is_file(follow_symlinks=False):
                    yield DirEntry(e.name, False, e.stat(follow_symlinks=False))

    def _object(self, key: str, st: os.stat_result, path: Path) -> SourceObject:
        label = read_xattr(path, self._xattr) if self._xattr else None
        return SourceObject(
            key=key, size=st.st_size, revision=posix_revision(st), mtime=st.st_mtime, label=label
        )

    @cached_property
    def _is_single_file(self) -> bool:
        return self.root.is_file()

    def _path(self, obj: SourceObject) -> Path:
        return self.root if self._is_single_file else self.root / obj.key

    def open(self, obj: SourceObject, offset: int = 0, length: int | None = None) -> _FileReader:
        try:
            fd = os.open(self._path(obj), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            raise SourceChangedError(f"{obj.key}: deleted since it was listed") from None
        st = os.fstat(fd)
        if posix_revision(st) != obj.revision:
            os.close(fd)
            raise SourceChangedError(f"{obj.key}: modified since it was listed")
        if offset == 0 and length is None:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        return _FileReader(fd, offset, obj.size - offset if length is None else length, self._xattr)

    def published_checksum(self, obj: SourceObject) -> PublishedChecksum | None:
        return None

    def own_label(self, obj: SourceObject) -> str | None:
        return read_xattr(self._path(obj), self._xattr) if self._xattr else None

    def find(self, key: str) -> SourceObject | None:
        path = self.root / key
        try:
            st = path.lstat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return self._object(key, st, path) if stat.S_ISREG(st.st_mode) else None
