"""The node-local sink: a dataset directory that nothing can make us write outside of.

Every path below the dataset root is walked one segment at a time with ``O_NOFOLLOW``
relative to its parent's descriptor, so a symlink planted anywhere in the tree (by a
previous dataset, a user, an attacker) is refused rather than followed, and ``..`` never
reaches the kernel (the key rules in :mod:`transfer.keys` refuse it first). Files are
written under a temporary name in ``.stagegate/tmp`` on the same filesystem and renamed
into place only once verified, so a reader never sees a partial file at a final name.
"""

import contextlib
import ctypes
import errno
import json
import os
import stat
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from transfer.errors import TransferError, UnsafeDestinationError
from transfer.keys import STATE_DIR

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
READY_MARKER = "READY"
MANIFEST = "manifest.jsonl"


class Durability(StrEnum):
    """When written data is forced to stable storage."""

    FILE = "file"  # fsync every file before it is renamed into place
    BATCH = "batch"  # one syncfs() after each batch, before the batch is journaled


_libc = ctypes.CDLL(None, use_errno=True)  # libc is already loaded; find_library would run ldconfig


def syncfs(fd: int) -> None:
    """Flush the whole filesystem holding ``fd``: one call instead of one fsync per file."""
    if _libc.syncfs(fd) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@dataclass(slots=True)
class TempFile:
    fd: int
    name: str


def open_nofollow(path: Path, flags: int, mode: int = 0o644) -> int:
    """``os.open`` that refuses a symlink as the last component."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeDestinationError(f"refusing to follow the symlink at {path}") from None
        raise


def real_directory(path: Path) -> Path:
    """Make ``path`` (if missing) and insist it is a directory, not a symlink to one."""
    with contextlib.suppress(FileExistsError):
        path.mkdir()
    if not stat.S_ISDIR(path.lstat().st_mode):
        raise UnsafeDestinationError(f"{path} is not a directory (a symlink?); refusing to use it")
    return path


def _open_dir(parent_fd: int, name: str, create: bool) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except FileNotFoundError:
        if not create:
            raise
    with contextlib.suppress(FileExistsError):  # another thread made it first
        os.mkdir(name, 0o777, dir_fd=parent_fd)
    return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)


class DatasetDir:
    """A dataset's directory. The directory itself is the root nothing escapes."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise TransferError(f"destination exists and is not a directory: {self.path}") from None
        # The root may itself be a symlink the operator chose (/nvme -> /mnt/nvme0); below it
        # nothing is followed.
        self._fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self._state_fd = self._walk_dir((STATE_DIR,), create=True)
        self._tmp_fd = _open_dir(self._state_fd, "tmp", create=True)

    def close(self) -> None:
        for fd in (self._tmp_fd, self._state_fd, self._fd):
            os.close(fd)

    def __enter__(self) -> "DatasetDir":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def state_path(self) -> Path:
        return self.path / STATE_DIR

    def _walk_dir(self, parts: tuple[str, ...], create: bool) -> int:
        fd = os.dup(self._fd)
        try:
            for depth, part in enumerate(parts):
                try:
                    child = _open_dir(fd, part, create)
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR, errno.EEXIST):
                        raise
                    where = self.path.joinpath(*parts[: depth + 1])
                    # Linux reports a symlink opened with O_DIRECTORY|O_NOFOLLOW as ENOTDIR.
                    if stat.S_ISLNK(os.stat(part, dir_fd=fd, follow_symlinks=False).st_mode):
                        raise UnsafeDestinationError(f"refusing to follow the symlink at {where}") from None
                    raise UnsafeDestinationError(
                        f"cannot make directory {where}: it exists and is not a directory "
                        "(a file left by something else, or the source holds both 'x' and 'x/...')"
                    ) from None
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd

    # -- files -------------------------------------------------------------------------

    def create_temp(self, size: int) -> TempFile:
        """A new, empty temporary file with room for ``size`` bytes reserved up front, so a
        full disk fails the file at once instead of half way through."""
        name = f"{uuid.uuid4().hex}.part"
        fd = os.open(
            name,
            os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o666,
            dir_fd=self._tmp_fd,
        )
        if size > 0:
            try:
                os.posix_fallocate(fd, 0, size)
            except OSError as exc:
                os.close(fd)
                os.unlink(name, dir_fd=self._tmp_fd)
                if exc.errno == errno.EOPNOTSUPP:
                    return self.create_temp(0)
                raise
        return TempFile(fd, name)

    def discard(self, temp: TempFile) -> None:
        """Drop a temporary file that will not be committed."""
        with contextlib.suppress(OSError):
            os.close(temp.fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp.name, dir_fd=self._tmp_fd)

    def commit(self, temp: TempFile, parts: tuple[str, ...], durability: Durability) -> int:
        """Rename ``temp`` to its final place; returns the final file's ``mtime_ns``."""
        try:
            if durability is Durability.FILE:
                os.fsync(temp.fd)
            mtime_ns = os.fstat(temp.fd).st_mtime_ns
        finally:
            os.close(temp.fd)
            temp.fd = -1  # closed: discard() must not close the number again, another file may own it
        parent = self._walk_dir(parts[:-1], create=True)
        try:
            os.rename(temp.name, parts[-1], src_dir_fd=self._tmp_fd, dst_dir_fd=parent)
        except IsADirectoryError:
            raise UnsafeDestinationError(
                f"cannot write {self.path.joinpath(*parts)}: a directory of that name is in the way"
            ) from None
        finally:
            os.close(parent)
        return mtime_ns

    def stat_file(self, parts: tuple[str, ...]) -> os.stat_result | None:
        """The file at ``parts`` if it is a regular file (symlinks are not followed)."""
        try:
            parent = self._walk_dir(parts[:-1], create=False)
        except (FileNotFoundError, UnsafeDestinationError):
            return None
        try:
            st = os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return None
        finally:
            os.close(parent)
        return st if stat.S_ISREG(st.st_mode) else None

    def clear_temp(self) -> None:
        """Remove temporary files an interrupted run left behind."""
        for name in os.listdir(self._tmp_fd):  # noqa: PTH208 - by descriptor, not path
            os.unlink(name, dir_fd=self._tmp_fd)

    def sync(self) -> None:
        syncfs(self._fd)

    # -- state files (manifest, ready marker) ------------------------------------------

    def write_state_file(self, name: str, chunks: Iterable[bytes]) -> None:
        """Atomically replace ``.stagegate/<name>`` with ``chunks``, durably."""
        temp = f".{name}.{uuid.uuid4().hex}"
        fd = os.open(
            temp,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o644,
            dir_fd=self._state_fd,
        )
        try:
            with os.fdopen(fd, "wb", closefd=False) as f:
                for chunk in chunks:
                    f.write(chunk)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temp, name, src_dir_fd=self._state_fd, dst_dir_fd=self._state_fd)
        os.fsync(self._state_fd)

    def remove_state_file(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=self._state_fd)

    def read_ready(self) -> dict[str, Any] | None:
        """The ready marker's content, or None while the dataset is not (or no longer) ready."""
        try:
            return json.loads((self.state_path / READY_MARKER).read_bytes())  # type: ignore[no-any-return]
        except FileNotFoundError:
            return None
