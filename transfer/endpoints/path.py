"""A path egress writes into: a directory nothing can redirect and in which nothing is replaced.

The destination path is walked by descriptor from ``/``, one segment at a time with
``O_NOFOLLOW``, so a symlinked component anywhere (``/data/public -> /data/secret``) is refused
instead of followed: the directory written is exactly the one the policy decided about.
Missing directories are made on the way. A file is written as an unnamed ``O_TMPFILE`` in
``DEST/.stagegate/tmp`` (a named temporary file there where the filesystem has no
``O_TMPFILE``), so a writer killed mid-file leaves nothing with a name; it is read back and
compared with the checksum taken while reading, then given its final name with ``link(2)``,
which fails if that name exists: an egress never overwrites a file that is there (someone
else's checkpoint, a cached dataset).
"""

import contextlib
import errno
import os
import stat
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from stagegate.errors import ExistsError, InvalidInputError
from stagegate.paths import plain_segments
from stagegate.transfer.checksums import new_local_hasher
from stagegate.transfer.endpoints.base import Present
from stagegate.transfer.errors import ChecksumMismatchError, UnsafeDestinationError
from stagegate.transfer.keys import STATE_DIR
from stagegate.transfer.parts import PartRule
from stagegate.transfer.sink import open_or_make_dir, write_all, write_all_at

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
ALGORITHM = "blake3"
_CHUNK = 1 << 20


def _where(segments: tuple[str, ...]) -> str:
    return str(PurePosixPath("/", *segments))


def open_dir_at(parent_fd: int, name: str, where: str, *, create: bool) -> int:
    """The directory ``name`` below ``parent_fd``, made if missing and ``create``; never a symlink."""
    try:
        return open_or_make_dir(parent_fd, name, create)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        # Linux reports a symlink opened with O_DIRECTORY|O_NOFOLLOW as ENOTDIR.
        if stat.S_ISLNK(os.stat(name, dir_fd=parent_fd, follow_symlinks=False).st_mode):
            raise UnsafeDestinationError(f"refusing to follow the symlink at {where}") from None
        raise UnsafeDestinationError(f"{where} exists and is not a directory") from None


def walk_below(fd: int, above: tuple[str, ...], names: tuple[str, ...], *, create: bool) -> int:
    """A descriptor of the directory ``names`` below ``fd`` (which is ``/<above>``, for the
    errors), opened one segment at a time without following any symlink. Takes ``fd`` over:
    it is closed, also on failure."""
    try:
        for depth, name in enumerate(names):
            child = open_dir_at(fd, name, _where((*above, *names[: depth + 1])), create=create)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_walked(segments: tuple[str, ...], *, create: bool) -> int:
    """A descriptor of ``/<segments>``, reached from ``/`` without following any symlink."""
    return walk_below(os.open("/", _DIR_FLAGS), (), segments, create=create)


def hash_fd(fd: int) -> str:
    """The BLAKE3 of everything in the file ``fd``, read by offset."""
    hasher = new_local_hasher()
    offset = 0
    while data := os.pread(fd, _CHUNK, offset):
        hasher.update(data)
        offset += len(data)
    return hasher.hexdigest()


@dataclass(slots=True)
class TempEgressFile:
    """A file being written; ``name`` is None while it is an unnamed ``O_TMPFILE``."""

    fd: int
    name: str | None

    def write(self, data: bytes | memoryview, /) -> None:
        write_all(self.fd, data)

    def write_at(self, offset: int, data: bytes | memoryview, /) -> None:
        write_all_at(self.fd, offset, data)


@dataclass
class ConfinedDir:
    """The destination directory of a path egress, held open by descriptor (a
    :class:`transfer.endpoints.base.EgressWriter`)."""

    path: str  # /x or file:///x, as written: what the policy matched is what is walked
    fsync: Callable[[int], None] = os.fsync  # the directories' fsync, injected as the engine's is
    positional = True
    read_back_algorithm = ALGORITHM
    part_rule = PartRule()
    overwrites = False
    segments: tuple[str, ...] = field(init=False)
    where: str = field(init=False)

    def __post_init__(self) -> None:
        self.segments = plain_segments(self.path.removeprefix("file://"), "a local destination")
        self.where = _where(self.segments)
        self._fd = open_walked(self.segments, create=True)
        try:
            self._state_fd = open_dir_at(self._fd, STATE_DIR, f"{self.where}/{STATE_DIR}", create=True)
            temp_dir = f"{self.where}/{STATE_DIR}/tmp"  # noqa: S108 - below the destination, not /tmp
            self._tmp_fd = open_dir_at(self._state_fd, "tmp", temp_dir, create=True)
        except BaseException:
            os.close(self._fd)
            raise
        self._touched: set[tuple[str, ...]] = set()  # parent directories that got a new name

    def close(self) -> None:
        for fd in (self._tmp_fd, self._state_fd, self._fd):
            os.close(fd)

    def __enter__(self) -> "ConfinedDir":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _parent(self, parts: tuple[str, ...], *, create: bool) -> int:
        return walk_below(os.dup(self._fd), self.segments, parts[:-1], create=create)

    # -- before the first byte ----------------------------------------------------------------

    def prepare(self, keys: list[str]) -> None:
        for key in keys:
            if key.split("/")[0] == STATE_DIR:
                raise InvalidInputError(f"a checkpoint cannot be named {STATE_DIR}")

    def present(self, parts: tuple[str, ...]) -> Present | None:
        try:
            parent = self._parent(parts, create=False)
        except FileNotFoundError:
            return None
        except UnsafeDestinationError:  # a file or link where a directory should be: in the way
            return Present(-1, None)
        try:
            try:
                fd = os.open(parts[-1], _READ_FLAGS, dir_fd=parent)
            except FileNotFoundError:
                return None
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.EACCES):
                    return Present(-1, None)  # a symlink, or a file we may not read: never ours
                raise
        finally:
            os.close(parent)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return Present(-1, None)
            return Present(st.st_size, hash_fd(fd))
        finally:
            os.close(fd)

    # -- writing --------------------------------------------------------------------------------

    def open_temp(self, parts: tuple[str, ...], size: int, part_size: int = 0) -> TempEgressFile:
        try:
            # Unnamed until linked: a writer killed mid-file leaves no name behind.
            fd = os.open(".", os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o666, dir_fd=self._tmp_fd)
            temp = TempEgressFile(fd, None)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                raise
            name = f"{uuid.uuid4().hex}.part"
            flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            temp = TempEgressFile(os.open(name, flags, 0o666, dir_fd=self._tmp_fd), name)
        try:
            if size > 0:
                os.posix_fallocate(temp.fd, 0, size)  # a full disk fails the file at once
        except OSError as exc:
            if exc.errno != errno.EOPNOTSUPP:
                self.discard(temp)
                raise
        return temp

    def discard(self, temp: TempEgressFile) -> None:
        with contextlib.suppress(OSError):
            os.close(temp.fd)
        temp.fd = -1
        if temp.name is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp.name, dir_fd=self._tmp_fd)

    def commit(self, temp: TempEgressFile, parts: tuple[str, ...], checksum: str | None) -> int:
        """Read the file back from disk, compare, and link it to ``parts``, which must be free."""
        written = hash_fd(temp.fd)
        if written != checksum:
            raise ChecksumMismatchError(
                f"{'/'.join(parts)}: written {ALGORITHM} {written} differs from the file read ({checksum})"
            )
        mtime_ns = os.fstat(temp.fd).st_mtime_ns
        parent = self._parent(parts, create=True)
        try:
            # link(2) never replaces its target, unlike rename(2): an existing file stays as it is.
            if temp.name is None:
                os.link(f"/proc/self/fd/{temp.fd}", parts[-1], dst_dir_fd=parent, follow_symlinks=True)
            else:
                os.link(
                    temp.name, parts[-1], src_dir_fd=self._tmp_fd, dst_dir_fd=parent, follow_symlinks=False
                )
        except FileExistsError:
            raise ExistsError(
                f"{self.where}/{'/'.join(parts)} already exists; egress never overwrites it"
            ) from None
        finally:
            os.close(parent)
        self._touched.add(parts[:-1])
        self.discard(temp)  # the temporary name (if any) goes; the file lives on under parts
        return mtime_ns

    def finish(self) -> None:
        """Make the new names durable: an fsync of each directory that got one. The files'
        bytes were made durable by the engine before they were linked."""
        for dir_parts in sorted(self._touched):
            fd = self._parent((*dir_parts, "-"), create=False)
            try:
                self.fsync(fd)
            finally:
                os.close(fd)
        self._touched.clear()
