"""A training run's directory as a reading endpoint: the files of the selected checkpoints.

Everything is reached by descriptor with ``O_NOFOLLOW``, from ``/`` down to the run directory
and from there into each checkpoint, so a symlink anywhere (a checkpoint that is a link, a
link inside one, a directory swapped for one after the walk) is refused instead of followed,
and nothing outside the run directory is ever opened. Only regular files are read; anything
else (a socket, a device) is refused. As a :class:`transfer.sources.base.Source`, the keys are
``<checkpoint name>/<path inside it>`` (a file checkpoint's key is its name), and a file's
revision is its POSIX identity (mtime, size, ctime, inode): one rewritten after the listing
is refused, never shipped half old and half new.
"""

import contextlib
import errno
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from stagegate.errors import InvalidInputError, NotFoundError
from stagegate.transfer.errors import SourceChangedError, UnsafeDestinationError
from stagegate.transfer.label_sources import LabelFileAbove
from stagegate.transfer.objects import SourceObject
from stagegate.transfer.sources.base import PublishedChecksum
from stagegate.transfer.sources.local import posix_revision

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO swapped in for a checkpoint file after the walk is refused, not waited on.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class CheckpointLike(Protocol):
    """What egress needs of a checkpoint (``checkpoints.Checkpoint`` has it)."""

    @property
    def name(self) -> str: ...

    @property
    def is_dir(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class RunFile:
    key: str  # name/relative/path
    parts: tuple[str, ...]  # path segments below the run directory
    size: int
    revision: str


def _open_dir_at(parent_fd: int, name: str, where: Path) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafeDestinationError(f"refusing to follow {where}: not a plain directory") from None
        raise


class RunDir:
    """A run directory, opened once; everything below it is reached by descriptor."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_absolute():
            raise InvalidInputError(f"the run directory must be an absolute path, not {self.path}")
        # Every component, the run directory included, must be a real directory: a symlinked
        # component could point the worker's own permissions at someone else's data.
        fd = os.open("/", _DIR_FLAGS)
        try:
            for i, part in enumerate(self.path.parts[1:], start=1):
                try:
                    child = _open_dir_at(fd, part, Path(*self.path.parts[: i + 1]))
                except FileNotFoundError:
                    raise NotFoundError(f"run directory {self.path} does not exist") from None
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    @property
    def fd(self) -> int:
        return self._fd

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> "RunDir":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def files(self, checkpoint: CheckpointLike) -> list[RunFile]:
        """The regular files of ``checkpoint``, sorted by key; refuses symlinks and special files."""
        name = checkpoint.name
        if not name or "/" in name or name in (".", "..") or "\0" in name:
            raise InvalidInputError(f"checkpoint name {name!r} is not an entry of {self.path}")
        st = os.stat(name, dir_fd=self._fd, follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            raise UnsafeDestinationError(f"checkpoint {self.path / name} is a symlink; refusing to follow it")
        if stat.S_ISREG(st.st_mode):
            return [RunFile(name, (name,), st.st_size, posix_revision(st))]
        if not stat.S_ISDIR(st.st_mode):
            raise InvalidInputError(f"checkpoint {self.path / name} is neither a file nor a directory")
        found: list[RunFile] = []
        self._walk(self._fd, (name,), found)
        return sorted(found, key=lambda f: f.key)

    def _walk(self, parent_fd: int, parts: tuple[str, ...], found: list[RunFile]) -> None:
        fd = _open_dir_at(parent_fd, parts[-1], self.path.joinpath(*parts))
        try:
            with os.scandir(fd) as entries:
                children = sorted(entries, key=lambda e: e.name)
            for entry in children:
                where = self.path.joinpath(*parts, entry.name)
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode):
                    raise UnsafeDestinationError(f"refusing to follow the symlink at {where}")
                if stat.S_ISDIR(st.st_mode):
                    self._walk(fd, (*parts, entry.name), found)
                elif stat.S_ISREG(st.st_mode):
                    path = (*parts, entry.name)
                    found.append(RunFile("/".join(path), path, st.st_size, posix_revision(st)))
                else:
                    raise InvalidInputError(f"{where} is not a regular file; egress copies files only")
        finally:
            os.close(fd)

    def newest_change_ns(self, name: str) -> int:
        """The latest ``st_ctime_ns`` of the entry ``name`` and of everything below it, found
        without following a symlink: a file or directory changed since a time shows here, and
        ctime cannot be set back by its owner."""
        st = os.stat(name, dir_fd=self._fd, follow_symlinks=False)
        if not stat.S_ISDIR(st.st_mode):
            return st.st_ctime_ns
        return max(st.st_ctime_ns, self._newest_below(self._fd, (name,)))

    def _newest_below(self, parent_fd: int, parts: tuple[str, ...]) -> int:
        fd = _open_dir_at(parent_fd, parts[-1], self.path.joinpath(*parts))
        newest = 0
        try:
            with os.scandir(fd) as entries:
                for entry in entries:
                    st = entry.stat(follow_symlinks=False)
                    newest = max(newest, st.st_ctime_ns)
                    if stat.S_ISDIR(st.st_mode):
                        newest = max(newest, self._newest_below(fd, (*parts, entry.name)))
        finally:
            os.close(fd)
        return newest

    def open_fd(self, parts: tuple[str, ...]) -> int:
        """A read descriptor of the regular file at ``parts``, reached without following any
        symlink; the caller closes it."""
        key = "/".join(parts)
        fd = os.dup(self._fd)
        try:
            for depth, part in enumerate(parts[:-1]):
                child = _open_dir_at(fd, part, self.path.joinpath(*parts[: depth + 1]))
                os.close(fd)
                fd = child
            try:
                file_fd = os.open(parts[-1], _FILE_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise UnsafeDestinationError(
                        f"refusing to follow the symlink at {self.path / key}"
                    ) from None
                raise
        finally:
            os.close(fd)
        if not stat.S_ISREG(os.fstat(file_fd).st_mode):
            os.close(file_fd)
            raise InvalidInputError(f"{self.path / key} is not a regular file")
        return file_fd

    @contextlib.contextmanager
    def open(self, f: RunFile) -> Iterator[int]:
        """A read descriptor for ``f``, reached without following any symlink."""
        fd = self.open_fd(f.parts)
        try:
            yield fd
        finally:
            os.close(fd)


class _RangeReader:
    published: PublishedChecksum | None = None  # a POSIX file publishes no checksum

    def __init__(self, key: str, fd: int, offset: int, length: int) -> None:
        self._key = key
        self._fd = fd
        self._pos = offset
        self._left = length

    def own_label(self) -> str | None:
        return None  # checkpoint labels are resolved by the egress step before the copy

    def read(self, n: int, /) -> bytes:
        if self._left <= 0:
            return b""
        data = os.pread(self._fd, min(n, self._left), self._pos)
        if not data:
            raise SourceChangedError(
                f"file shrank while being read (at byte {self._pos}); is it still written?"
            )
        self._pos += len(data)
        self._left -= len(data)
        return data

    def close(self) -> None:
        os.close(self._fd)


class RunDirSource:
    """The files of ``checkpoints`` in ``run`` (those ``key_filter`` takes) as a
    :class:`transfer.sources.base.Source`, listed once when made (so every final name can be
    checked before the first byte)."""

    prefers_ranged_reads = False  # a local file streams faster than it splits (README)

    labels_listed = True  # own labels come with the listing, at no extra cost

    def __init__(
        self,
        run: RunDir,
        checkpoints: Sequence[CheckpointLike],
        key_filter: Callable[[str], bool] | None = None,
    ) -> None:
        self.run = run
        self.url = str(run.path)
        taken = (f for c in checkpoints for f in run.files(c) if key_filter is None or key_filter(f.key))
        files = sorted(taken, key=lambda f: f.key)
        self._files = {f.key: f for f in files}
        self.objects = [SourceObject(f.key, f.size, revision=f.revision) for f in files]

    def list(self) -> Iterator[SourceObject]:
        return iter(self.objects)

    def open(self, obj: SourceObject, offset: int = 0, length: int | None = None) -> _RangeReader:
        try:
            fd = self.run.open_fd(self._files[obj.key].parts)
        except FileNotFoundError:
            raise SourceChangedError(f"{obj.key}: deleted since it was listed") from None
        if posix_revision(os.fstat(fd)) != obj.revision:
            os.close(fd)
            raise SourceChangedError(f"{obj.key}: modified since it was listed; is it still written?")
        if offset == 0 and length is None:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        return _RangeReader(obj.key, fd, offset, obj.size - offset if length is None else length)

    def published_checksum(self, obj: SourceObject) -> PublishedChecksum | None:
        return None

    def own_label(self, obj: SourceObject) -> str | None:
        return None

    def find(self, key: str) -> SourceObject | None:
        return next((o for o in self.objects if o.key == key), None)

    def label_files_above(self, name: str) -> tuple[LabelFileAbove, ...]:
        return ()  # a checkpoint's labels are egress's own (workers.egress_labels), up to the run root
