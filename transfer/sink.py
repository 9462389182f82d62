"""The node-local sink: a dataset directory that nothing can make us write outside of.

Every path below the dataset root is walked one segment at a time with ``O_NOFOLLOW``
relative to its parent's descriptor, so a symlink planted anywhere in the tree (by a
previous dataset, a user, an attacker) is refused rather than followed, and ``..`` never
reaches the kernel (the key rules in :mod:`transfer.keys` refuse it first). Files are
written under a temporary name in the ``tmp/`` of the dataset's state directory (beside the
dataset, on the same filesystem: :mod:`transfer.layout`) and renamed into place only once
verified, so a reader never sees a partial file at a final name.
"""

import contextlib
import ctypes
import errno
import fcntl
import itertools
import json
import os
import shutil
import stat
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stagegate.atomic_files import write_atomically
from stagegate.durability import Durability as Durability  # the kernel's; transfer.stage takes it from here
from stagegate.transfer.dir_cache import LastDirectories
from stagegate.transfer.errors import (
    DestinationBusyError,
    DestinationNotEmptyError,
    TransferError,
    UnsafeDestinationError,
)
from stagegate.transfer.layout import LEGACY_STATE_DIR, state_dir_of
from stagegate.transfer.parts import PartRule
from stagegate.transfer.writeback import WRITEBACK, Writeback

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
READY_MARKER = "READY"
MANIFEST = "manifest.jsonl"
LOCK_FILE = "lock"  # in the state directory; holds the pid of the staging that has it
# Files up to this size get no space reservation: a fallocate a file costs more than it saves.
RESERVE_ABOVE = 1 << 20


_libc = ctypes.CDLL(None, use_errno=True)  # libc is already loaded; find_library would run ldconfig


def syncfs(fd: int) -> None:
    """Flush the whole filesystem holding ``fd``: one call instead of one fsync per file."""
    if _libc.syncfs(fd) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def write_all(fd: int, data: bytes | memoryview) -> None:
    """Write all of ``data`` at ``fd``'s position (a short write goes on where it stopped)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_all_at(fd: int, offset: int, data: bytes | memoryview) -> None:
    """Write all of ``data`` at ``offset``, whatever short writes the kernel makes."""
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


@dataclass(slots=True)
class TempFile:
    """A temporary file being written; writeback of what is written starts as it goes
    (:mod:`transfer.writeback`), so the batch's sync does not have it all to write."""

    fd: int
    name: str
    writeback: Writeback = WRITEBACK
    written: int = 0  # where sequential writes have got to (the descriptor's position)

    def write(self, data: bytes | memoryview, /) -> None:
        write_all(self.fd, data)
        self.writeback.wrote(self.fd, self.written, len(data))
        self.written += len(data)

    def write_at(self, offset: int, data: bytes | memoryview, /) -> None:
        write_all_at(self.fd, offset, data)
        self.writeback.wrote(self.fd, offset, len(data))

    def append_from(self, copy: Callable[[int, int], int | None], n: int, /) -> int | None:
        """Append up to ``n`` bytes that ``copy(fd, n)`` writes at the descriptor's position
        inside the kernel (a local reader's ``copy_into``), so :meth:`write` may go on after
        it; its count, or None if it could not (nothing written)."""
        done = copy(self.fd, n)
        if done:
            self.writeback.wrote(self.fd, self.written, done)
            self.written += done
        return done


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


def open_or_make_dir(parent_fd: int, name: str, create: bool) -> int:
    """The directory ``name`` below ``parent_fd`` (made if missing and ``create``), opened with
    ``O_NOFOLLOW``: a symlink there raises ``OSError`` (ELOOP, or ENOTDIR on Linux)."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except FileNotFoundError:
        if not create:
            raise
    with contextlib.suppress(FileExistsError):  # another thread made it first
        os.mkdir(name, 0o777, dir_fd=parent_fd)
    return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)


def refuse_foreign_directory(path: Path) -> None:
    """Refuse to stage into ``path`` if it holds anything and no earlier staging's state is
    beside it: those files are someone else's (a home directory, another tool's output), and
    a staging would silently replace any of them that the source also holds. Missing or empty
    is fine, and so is an earlier staging's directory (a rerun resumes it), in this layout or
    the older one with the state inside (:class:`DatasetDir` moves it out)."""
    for state in (state_dir_of(path), path / LEGACY_STATE_DIR):
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            if stat.S_ISDIR(os.lstat(state).st_mode):
                return
    try:
        with os.scandir(path) as entries:
            occupied = next(entries, None) is not None
    except (FileNotFoundError, NotADirectoryError):
        return  # made new, or refused as not a directory, by DatasetDir
    if occupied:
        raise DestinationNotEmptyError(
            f"{path} is not empty and holds no earlier staging (no {state_dir_of(path)} beside it): "
            "stagegate will not stage over files it did not put there; choose an empty or new directory"
        )


@dataclass(frozen=True, slots=True)
class Entry:
    """Something in a dataset directory that is no directory: a regular file (``regular``),
    or anything else (a symlink, a FIFO, a socket), which a staging never puts there."""

    key: str
    regular: bool


def _walk_entries(fd: int, prefix: str) -> Iterator[Entry]:
    """What lies below the directory ``fd``, in ascending key order: a directory sorts as its
    name and a ``/`` (every key below ``a/`` follows ``a.txt`` and precedes ``a0``, as in the
    plan), one directory's listing held at a time."""
    with os.scandir(fd) as scanned:
        listed = sorted(
            (e.name + "/" if is_dir else e.name, is_dir, e.is_file(follow_symlinks=False))
            for e in scanned
            for is_dir in (e.is_dir(follow_symlinks=False),)
        )
    for sort_name, is_dir, regular in listed:
        if not is_dir:
            yield Entry(prefix + sort_name, regular)
            continue
        name = sort_name[:-1]
        try:
            child = os.open(name, _DIR_FLAGS, dir_fd=fd)
        except FileNotFoundError:
            continue
        except OSError as exc:  # replaced by a symlink or a file since it was listed
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            yield Entry(prefix + name, regular=False)
            continue
        try:
            yield from _walk_entries(child, prefix + sort_name)
        finally:
            os.close(child)


def _remove_empty_directories(fd: int) -> bool:
    """Remove every directory below ``fd`` that holds no file (post-order, by descriptor);
    True if ``fd`` is left empty."""
    empty = True
    with os.scandir(fd) as entries:
        listed = [(e.name, e.is_dir(follow_symlinks=False)) for e in entries]
    for name, is_dir in listed:
        if not is_dir:
            empty = False
            continue
        try:
            child = os.open(name, _DIR_FLAGS, dir_fd=fd)
        except OSError:
            empty = False  # gone, or no directory any more: not ours to judge
            continue
        try:
            child_empty = _remove_empty_directories(child)
        finally:
            os.close(child)
        if child_empty:
            try:
                os.rmdir(name, dir_fd=fd)
                continue
            except OSError:
                pass  # something landed in it meanwhile: it stays
        empty = False
    return empty


def _lock_holder(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


class DatasetDir:
    """A dataset's directory and its state directory beside it. The dataset directory itself
    is the root nothing escapes. The engine writes it as a
    :class:`transfer.endpoints.base.Writer`."""

    positional = True
    read_back_algorithm = None  # its bytes were checked against the source on the way in
    part_rule = PartRule()

    def __init__(
        self, path: str | os.PathLike[str], *, clear_the_way: bool = False, writeback: Writeback = WRITEBACK
    ) -> None:
        """``clear_the_way`` (a staging with ``sync`` or ``replace``): what stands where a new
        file or directory must go (an old file where the new set has a directory, an old
        directory where it has a file, a symlink) is removed, by descriptor and never
        followed, instead of failing the staging; :attr:`cleared` counts the files it held."""
        self.path = Path(path)
        self._writeback = writeback
        # Temporary names: one random prefix per open, then a counter, not a getrandom per file.
        self._temp_prefix = uuid.uuid4().hex
        self._temp_numbers = itertools.count()
        self.state_path = state_dir_of(self.path)
        self._clear_the_way = clear_the_way
        self._cleared_lock = threading.Lock()
        self.cleared = 0
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise TransferError(f"destination exists and is not a directory: {self.path}") from None
        # The root may itself be a symlink the operator chose (/nvme -> /mnt/nvme0); below it
        # nothing is followed.
        self._fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            self._state_fd = self._open_state()
        except BaseException:
            os.close(self._fd)
            raise
        self._tmp_fd = open_or_make_dir(self._state_fd, "tmp", create=True)
        self._lock_fd: int | None = None
        # Each committing thread keeps the directory of its last file open (transfer.dir_cache).
        self._parents = LastDirectories()

    @property
    def clears_the_way(self) -> bool:
        """Whether this directory was opened to clear what stands in a new file's way."""
        return self._clear_the_way

    def _open_state(self) -> int:
        """Open (making it if missing) the state directory, after moving an older layout's
        ``DIR/.stagegate`` out to it, and insist it shares the dataset's filesystem."""
        parent = os.open(self.state_path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            self._refuse_another_filesystem(parent)  # before anything is made there
            self._move_legacy_state(parent)
            try:
                fd = open_or_make_dir(parent, self.state_path.name, create=True)
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR, errno.EEXIST):
                    raise
                raise UnsafeDestinationError(
                    f"{self.state_path} is not a directory (a symlink?); refusing to keep the state there"
                ) from None
        finally:
            os.close(parent)
        try:
            self._refuse_another_filesystem(fd)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _refuse_another_filesystem(self, fd: int) -> None:
        if os.fstat(fd).st_dev != os.fstat(self._fd).st_dev:
            raise UnsafeDestinationError(
                f"{self.path} is on another filesystem than {self.state_path.parent} (a mount point?), "
                f"so files could not be renamed atomically from its state directory {self.state_path}; "
                "stage into a directory below it"
            )

    def _move_legacy_state(self, parent: int) -> None:
        """An older stagegate kept the state in ``DIR/.stagegate``: move it out, so a rerun
        resumes from it and the dataset directory ends up holding only the dataset. If a state
        directory is already beside the dataset, the older one is stale and goes."""
        try:
            st = os.stat(LEGACY_STATE_DIR, dir_fd=self._fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(st.st_mode):
            return  # no state of ours; refuse_foreign_directory judged the directory
        try:
            os.rename(LEGACY_STATE_DIR, self.state_path.name, src_dir_fd=self._fd, dst_dir_fd=parent)
        except FileNotFoundError:
            return  # another staging moved it first
        except OSError as exc:
            if exc.errno == errno.ENOTDIR:  # a file or symlink planted at the state's name
                raise UnsafeDestinationError(
                    f"{self.state_path} is not a directory (a symlink?); refusing to keep the state there"
                ) from None
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            shutil.rmtree(self.path / LEGACY_STATE_DIR, ignore_errors=True)
        os.fsync(parent)
        os.fsync(self._fd)

    def close(self) -> None:
        self._parents.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lock
            self._lock_fd = None
        for fd in (self._tmp_fd, self._state_fd, self._fd):
            os.close(fd)

    def lock_exclusive(self) -> None:
        """Take this directory's staging lock until :meth:`close`, or fail at once with
        :class:`DestinationBusyError` naming the staging that holds it. Two stagings into one
        place would each report success over the other's bytes."""
        fd = os.open(
            LOCK_FILE,
            os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
            0o644,
            dir_fd=self._state_fd,
        )
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                where = self.state_path / LOCK_FILE
                raise UnsafeDestinationError(f"{where} is not a regular file; refusing to use it as the lock")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = _lock_holder(fd)
                who = f"another staging (pid {pid})" if pid is not None else "another staging"
                raise DestinationBusyError(
                    f"{who} is writing into {self.path}; wait for it to finish, or stage elsewhere",
                    pid,
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self._lock_fd = fd

    @property
    def where(self) -> str:
        return str(self.path)

    def __enter__(self) -> "DatasetDir":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _walk_dir(self, parts: tuple[str, ...], create: bool) -> int:
        fd = os.dup(self._fd)
        try:
            for depth, part in enumerate(parts):
                try:
                    child = open_or_make_dir(fd, part, create)
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR, errno.EEXIST):
                        raise
                    if create and self._clear_the_way:
                        child = self._replace_with_directory(fd, part)
                        os.close(fd)
                        fd = child
                        continue
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
        full disk fails the file at once instead of half way through (a file of at most
        :data:`RESERVE_ABOVE` bytes goes in a write or two, which fail as soon)."""
        name = f"{self._temp_prefix}-{next(self._temp_numbers)}.part"
        fd = os.open(
            name,
            os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o666,
            dir_fd=self._tmp_fd,
        )
        if size > RESERVE_ABOVE:
            try:
                os.posix_fallocate(fd, 0, size)
            except OSError as exc:
                os.close(fd)
                os.unlink(name, dir_fd=self._tmp_fd)
                if exc.errno == errno.EOPNOTSUPP:
                    return self.create_temp(0)
                raise
        return TempFile(fd, name, self._writeback)

    def link_temp(self, src_dir_fd: int, name: str) -> TempFile:
        """A temporary name for the file ``name`` below ``src_dir_fd``: a hard link to it (the
        same inode, no byte copied), opened read-only. A symlink there is linked as itself and
        then refused (``UnsafeDestinationError``), never followed."""
        temp = f"{self._temp_prefix}-{next(self._temp_numbers)}.part"
        os.link(name, temp, src_dir_fd=src_dir_fd, dst_dir_fd=self._tmp_fd, follow_symlinks=False)
        try:
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
            fd = os.open(temp, flags, dir_fd=self._tmp_fd)
        except OSError as exc:
            os.unlink(temp, dir_fd=self._tmp_fd)
            if exc.errno == errno.ELOOP:
                raise UnsafeDestinationError(f"refusing to link the symlink {name}") from None
            raise
        return TempFile(fd, temp, self._writeback)

    def open_temp(self, parts: tuple[str, ...], size: int, part_size: int = 0) -> TempFile:
        """:meth:`create_temp`, as the engine's writer interface asks for it."""
        return self.create_temp(size)

    def discard(self, temp: TempFile) -> None:
        """Drop a temporary file that will not be committed."""
        with contextlib.suppress(OSError):
            os.close(temp.fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp.name, dir_fd=self._tmp_fd)

    def commit(self, temp: TempFile, parts: tuple[str, ...], checksum: str | None = None) -> int:
        """Rename ``temp`` to its final place (replacing what is there: the dataset is ours);
        returns the final file's ``mtime_ns``. Making its bytes durable first, when the
        durability asks for it, is the engine's part; ``checksum`` is not read back here."""
        try:
            mtime_ns = os.fstat(temp.fd).st_mtime_ns
        finally:
            os.close(temp.fd)
            temp.fd = -1  # closed: discard() must not close the number again, another file may own it
        parent = self._parents.get(parts[:-1], self._made_dir)  # kept for the thread's next file
        try:
            os.rename(temp.name, parts[-1], src_dir_fd=self._tmp_fd, dst_dir_fd=parent)
        except IsADirectoryError:
            if not self._clear_the_way:
                raise UnsafeDestinationError(
                    f"cannot write {self.path.joinpath(*parts)}: a directory of that name is in the way"
                ) from None
            self._remove_directory(parent, parts[-1])
            os.rename(temp.name, parts[-1], src_dir_fd=self._tmp_fd, dst_dir_fd=parent)
        return mtime_ns

    def _made_dir(self, parts: tuple[str, ...]) -> int:
        return self._walk_dir(parts, create=True)

    def _replace_with_directory(self, parent: int, name: str) -> int:
        """The directory ``name`` below ``parent``, made in place of the file or symlink there."""
        try:
            os.unlink(name, dir_fd=parent)  # a symlink itself, never what it points to
        except FileNotFoundError:
            pass  # another thread cleared it first
        else:
            self._count_cleared(1)
        return open_or_make_dir(parent, name, create=True)

    def _remove_directory(self, parent: int, name: str) -> None:
        """Remove the directory ``name`` below ``parent`` and everything in it, by descriptor."""
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
        try:
            files = sum(1 for _ in _walk_entries(fd, ""))
        finally:
            os.close(fd)
        shutil.rmtree(name, dir_fd=parent)  # fd-based on Linux: follows no symlink inside
        self._count_cleared(files)

    def _count_cleared(self, files: int) -> None:
        with self._cleared_lock:
            self.cleared += files

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

    def walk(self) -> Iterator[Entry]:
        """Everything below the dataset root that is no directory, in ascending key order
        (the plan's order). Walked by descriptor, each directory opened with ``O_NOFOLLOW``
        relative to its parent: a symlink is an entry (never ``regular``) and never entered,
        wherever it points."""
        fd = os.open(".", _DIR_FLAGS, dir_fd=self._fd)  # a descriptor of its own: scandir reads its offset
        try:
            yield from _walk_entries(fd, "")
        finally:
            os.close(fd)

    def remove(self, key: str) -> None:
        """Remove the entry at ``key``: a file, or a symlink itself (``unlink`` never follows
        one). Its directory is reached by descriptor, so a link planted in the way is refused."""
        parts = tuple(key.split("/"))
        try:
            parent = self._walk_dir(parts[:-1], create=False)
        except FileNotFoundError:
            return
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(parts[-1], dir_fd=parent)
        finally:
            os.close(parent)

    def remove_empty_directories(self) -> None:
        """Remove the directories below the root that hold no file (left by removed files)."""
        fd = os.open(".", _DIR_FLAGS, dir_fd=self._fd)
        try:
            _remove_empty_directories(fd)
        finally:
            os.close(fd)

    def clear_temp(self) -> None:
        """Remove temporary files an interrupted run left behind."""
        for name in os.listdir(self._tmp_fd):  # noqa: PTH208 - by descriptor, not path
            os.unlink(name, dir_fd=self._tmp_fd)

    def sync(self) -> None:
        syncfs(self._fd)

    # -- state files (manifest, ready marker) ------------------------------------------

    def write_state_file(self, name: str, chunks: Iterable[bytes]) -> None:
        """Atomically replace the state directory's ``name`` with ``chunks``, durably."""
        write_atomically(name, chunks, dir_fd=self._state_fd)

    def remove_state_file(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=self._state_fd)

    def read_ready(self) -> dict[str, Any] | None:
        """The ready marker's content, or None while the dataset is not (or no longer) ready."""
        return self.read_state_json(READY_MARKER)

    def read_state_json(self, name: str) -> dict[str, Any] | None:
        """The JSON object in the state directory's ``name``, or None if there is none."""
        try:
            return json.loads((self.state_path / name).read_bytes())  # type: ignore[no-any-return]
        except FileNotFoundError:
            return None
