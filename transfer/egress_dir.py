"""A local egress destination that nothing can redirect and nothing in it is replaced.

The destination path is walked by descriptor from ``/``, one segment at a time with
``O_NOFOLLOW``, so a symlinked component anywhere (``/data/public -> /data/secret``) is refused
instead of followed: the directory written is exactly the one the policy decided about.
Missing directories are made on the way. Files are written under a temporary name in
``DEST/.stagegate/tmp`` and committed with ``link(2)``, which fails if the final name exists:
an egress never overwrites a file that is there (someone else's checkpoint, a cached dataset).
"""

import contextlib
import errno
import os
import stat
import uuid
from pathlib import PurePosixPath

from stagegate.errors import ExistsError
from stagegate.paths import plain_segments
from stagegate.transfer.errors import UnsafeDestinationError
from stagegate.transfer.keys import STATE_DIR
from stagegate.transfer.sink import open_or_make_dir, syncfs

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


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


def open_walked(segments: tuple[str, ...], *, create: bool) -> int:
    """A descriptor of ``/<segments>``, reached from ``/`` without following any symlink."""
    fd = os.open("/", _DIR_FLAGS)
    try:
        for depth, name in enumerate(segments):
            child = open_dir_at(fd, name, _where(segments[: depth + 1]), create=create)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


class EgressDir:
    """The destination directory of a local egress, held open by descriptor."""

    def __init__(self, path: str) -> None:
        self.segments = plain_segments(path, "a local destination")
        self.path = _where(self.segments)
        self._fd = open_walked(self.segments, create=True)
        try:
            self._state_fd = open_dir_at(self._fd, STATE_DIR, f"{self.path}/{STATE_DIR}", create=True)
            temp_dir = f"{self.path}/{STATE_DIR}/tmp"  # noqa: S108 - below the destination, not /tmp
            self._tmp_fd = open_dir_at(self._state_fd, "tmp", temp_dir, create=True)
        except BaseException:
            os.close(self._fd)
            raise

    def close(self) -> None:
        for fd in (self._tmp_fd, self._state_fd, self._fd):
            os.close(fd)

    def __enter__(self) -> "EgressDir":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _parent(self, parts: tuple[str, ...], *, create: bool) -> int:
        fd = os.dup(self._fd)
        try:
            for depth, name in enumerate(parts[:-1]):
                child = open_dir_at(fd, name, _where((*self.segments, *parts[: depth + 1])), create=create)
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd

    def exists(self, parts: tuple[str, ...]) -> bool:
        """True if anything (file, directory, symlink) is at ``parts`` below the destination."""
        try:
            parent = self._parent(parts, create=False)
        except FileNotFoundError:
            return False
        try:
            os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return False
        finally:
            os.close(parent)
        return True

    def refuse_existing(self, keys: list[str]) -> None:
        """Raise :class:`ExistsError` naming the first of ``keys`` already at the destination,
        before a byte is written: an egress adds files, it never replaces one."""
        for key in keys:
            if self.exists(tuple(key.split("/"))):
                raise ExistsError(
                    f"{self.path}/{key} already exists; egress never overwrites: choose another "
                    "destination or remove it first"
                )

    def create_temp(self) -> tuple[int, str]:
        name = f"{uuid.uuid4().hex}.part"
        fd = os.open(
            name,
            os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o666,
            dir_fd=self._tmp_fd,
        )
        return fd, name

    def discard(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=self._tmp_fd)

    def commit_new(self, name: str, parts: tuple[str, ...]) -> None:
        """Give the temporary file ``name`` its final name ``parts``, only if that name is free."""
        parent = self._parent(parts, create=True)
        try:
            # link(2) never replaces its target, unlike rename(2): an existing file stays as it is.
            os.link(name, parts[-1], src_dir_fd=self._tmp_fd, dst_dir_fd=parent, follow_symlinks=False)
        except FileExistsError:
            raise ExistsError(
                f"{self.path}/{'/'.join(parts)} already exists; egress never overwrites it"
            ) from None
        finally:
            os.close(parent)
        os.unlink(name, dir_fd=self._tmp_fd)

    def sync(self) -> None:
        syncfs(self._fd)  # the new names in every directory, in one call
