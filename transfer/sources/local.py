"""A POSIX directory (local disk or an NFS mount) as a source."""

import errno
import os
import stat
import weakref
from collections.abc import Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import cast

from stagegate.limits import MAX_LABEL_FILE_BYTES
from stagegate.transfer.dir_cache import LastDirectories
from stagegate.transfer.errors import (
    LabelChangedError,
    LabelSourceError,
    SourceChangedError,
    SourceNotFoundError,
)
from stagegate.transfer.label_sources import (
    LabelFileAbove,
    combined_label,
    is_label_name,
    not_a_label_file,
    too_big_a_label_file,
)
from stagegate.transfer.objects import LabelSpec, SourceObject
from stagegate.transfer.sources.base import DirEntry, PublishedChecksum, walk_sorted


def posix_revision(st: os.stat_result) -> str:
    """What identifies a file's bytes: mtime and size, which a writer can put back (``touch
    -d``, ``os.utime``), and ctime and inode, which it cannot (a rewrite in place moves ctime,
    a replacement is a new inode)."""
    return f"{st.st_mtime_ns}:{st.st_size}:{st.st_ctime_ns}:{st.st_ino}"


def describe_file_type(mode: int) -> str:
    """``"a symlink"``, ``"a FIFO"``...: what a non-regular file is, for messages."""
    kinds = (
        (stat.S_ISLNK, "a symlink"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    )
    return next((what for test, what in kinds if test(mode)), "not a regular file")


# A file smaller than this is read in one or two calls: no readahead hint (a syscall) for it.
READAHEAD_HINT_ABOVE = 1 << 20
_NO_XATTR = (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP)
# copy_file_range's "not between these two files": another filesystem (before Linux 5.3, or a
# pair the kernel will not copy across), no such call, or a filesystem that has none.
_NO_KERNEL_COPY = frozenset({errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP})
_DIR_NOFOLLOW = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _below(dir_fd: int, name: str) -> Path:
    """A path naming ``name`` in the directory held open as ``dir_fd``: no component of it can
    be swapped for a link (the xattr calls that take it do not follow the last one)."""
    return Path(f"/proc/self/fd/{dir_fd}") / name


def read_xattr(target: int | Path, name: str) -> str | None:
    """The own label in the extended attributes of a path (not followed) or descriptor: every
    attribute whose name is ``name`` but for case and surrounding space, combined (see
    :func:`transfer.label_sources.combined_label`)."""
    follow = {} if isinstance(target, int) else {"follow_symlinks": False}
    try:
        names = [n for n in os.listxattr(target, **follow) if is_label_name(n, name)]
    except OSError as exc:
        if exc.errno in _NO_XATTR:
            return None
        raise
    values = []
    for found in names:
        try:
            values.append(os.getxattr(target, found, **follow).decode("utf-8", errors="replace"))
        except OSError as exc:
            if exc.errno != errno.ENODATA:  # removed since listed: that one is gone
                raise
    return combined_label(values)


def read_label_file_in(dir_fd: int, name: str, where: str) -> bytes | None:
    """The content of the label file ``name`` in the directory held open as ``dir_fd`` (shown as
    ``where``), or None if there is none; a link, FIFO or directory there, or a file too big,
    is :class:`LabelSourceError` (never followed, never skipped)."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except PermissionError:  # unreadable, it could hold any label: fail closed, saying so
        raise LabelSourceError(
            f"{where}: a label file that cannot be read labels nothing; make it readable"
        ) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise not_a_label_file(where, "a symlink") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise not_a_label_file(where, describe_file_type(st.st_mode))
        if st.st_size > MAX_LABEL_FILE_BYTES:
            raise too_big_a_label_file(where, st.st_size, MAX_LABEL_FILE_BYTES)
        return os.pread(fd, MAX_LABEL_FILE_BYTES + 1, 0)
    finally:
        os.close(fd)


def directories_up_to_mount(path: Path) -> list[Path]:
    """The directories holding ``path`` (its real path), nearest first, up to and including the
    root of the filesystem it is on: a label above a mount point belongs to another filesystem."""
    real = Path(os.path.realpath(path))
    device = real.stat().st_dev
    found = []
    here = real
    while here.parent != here:
        parent = here.parent
        if parent.stat().st_dev != device:
            break
        found.append(parent)
        here = parent
    return found


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

    def readinto(self, buffer: memoryview, /) -> int:
        """Fill ``buffer`` (up to the end of the range): the engine reuses one buffer per
        thread instead of a new bytes object per chunk. 0 at the end."""
        if self._left <= 0:
            return 0
        n = os.preadv(self._fd, [buffer[: min(len(buffer), self._left)]], self._pos)
        if n == 0:
            raise SourceChangedError(f"file shrank while being read (at byte {self._pos})")
        self._pos += n
        self._left -= n
        return n

    def copy_into(self, fd: int, n: int, /) -> int | None:
        """Copy up to ``n`` bytes of the range to ``fd`` at its position inside the kernel
        (``copy_file_range``): the bytes never pass through a Python buffer. The count, 0 at
        the end, or None where the kernel cannot copy between these two files (another
        filesystem, an old kernel): nothing was copied, the caller reads and writes instead."""
        if self._left <= 0:
            return 0
        try:
            n = os.copy_file_range(self._fd, fd, min(n, self._left), self._pos)
        except OSError as exc:
            if exc.errno in _NO_KERNEL_COPY:
                return None
            raise
        if n == 0:
            raise SourceChangedError(f"file shrank while being read (at byte {self._pos})")
        self._pos += n
        self._left -= n
        return n

    def close(self) -> None:
        os.close(self._fd)


class LocalSource:
    """Files under a directory, or one file. Symlinks are not followed: a link could lead
    outside the dataset the policy was asked about; they are counted in ``skipped_symlinks``.
    Other entries that are not regular files (FIFOs, sockets, devices) are skipped, except
    that a label file (``labels.file_name``) that is not a regular file is an error
    (:class:`LabelSourceError`): skipping it would stage its directory unlabelled or under a
    parent's lower label. Files are opened non-blocking, so a FIFO never blocks a reader.

    ``above``: the directories above the source whose label files count, nearest first, as
    (shown path, open descriptor) pairs; by default those up to the mount's root (the service
    passes the requester's, which end at their source root)."""

    # Measured (README): from a local disk or page cache, one stream per file written and
    # hashed in one pass beats ranged parts that must be hashed again after assembly.
    prefers_ranged_reads = False

    labels_listed = True  # own labels come with the listing, at no extra cost

    def __init__(
        self,
        path: str | os.PathLike[str],
        url: str | None = None,
        labels: LabelSpec | None = None,
        above: Sequence[tuple[str, int]] | None = None,
    ) -> None:
        self.root = Path(path)
        self._above = above
        self.url = url or str(self.root)
        self.skipped_symlinks = 0
        self._xattr = labels.xattr if labels else None
        self._label_file = labels.file_name if labels else None
        # Each copying thread keeps its last directory open (transfer.dir_cache), closed with
        # the source; label files are always reached afresh, so a swapped directory's shows.
        self._dirs = LastDirectories()
        weakref.finalize(self, self._dirs.close)

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
            st, own = cast(tuple[os.stat_result, str | None], entry.payload)
            yield SourceObject(
                key=key, size=st.st_size, revision=posix_revision(st), mtime=st.st_mtime, label=own
            )

    def _list_dir(self, rel: str) -> Iterator[DirEntry]:
        # The directory is reached by descriptor, segment by segment without following links,
        # and listed through that descriptor: a directory swapped for a symlink between two
        # listings (or before a read) cannot make another tree's files look like this one's.
        fd = self._open_dir(tuple(rel.split("/")) if rel else ())
        try:
            with os.scandir(fd) as it:
                entries = list(it)
            for e in entries:
                if e.name == self._label_file and not e.is_file(follow_symlinks=False):
                    what = describe_file_type(e.stat(follow_symlinks=False).st_mode)
                    raise not_a_label_file(f"{rel}/{e.name}" if rel else e.name, what)
                if e.is_symlink():
                    self.skipped_symlinks += 1
                    continue
                if e.is_dir(follow_symlinks=False):
                    yield DirEntry(e.name, True, None)
                elif e.is_file(follow_symlinks=False):
                    label = read_xattr(_below(fd, e.name), self._xattr) if self._xattr else None
                    yield DirEntry(e.name, False, (e.stat(follow_symlinks=False), label))
        finally:
            os.close(fd)

    def _object(self, key: str, st: os.stat_result, path: Path) -> SourceObject:
        label = read_xattr(path, self._xattr) if self._xattr else None
        return SourceObject(
            key=key, size=st.st_size, revision=posix_revision(st), mtime=st.st_mtime, label=label
        )

    @cached_property
    def _is_single_file(self) -> bool:
        return self.root.is_file()

    def _open_dir(self, segments: tuple[str, ...]) -> int:
        """A descriptor of the directory ``segments`` below the root, no link followed below
        it (the root itself is the caller's choice and may be one)."""
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for depth, name in enumerate(segments):
                try:
                    child = os.open(name, _DIR_NOFOLLOW, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        where = "/".join(segments[: depth + 1])
                        raise SourceChangedError(
                            f"{where}: no longer a directory (a symlink?) since it was listed"
                        ) from None
                    raise
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _open_file(self, key: str, flags: int) -> int:
        """``os.open`` of the file at ``key``, reached without following any link below the root."""
        if self._is_single_file:
            return os.open(self.root, flags)
        *parents, name = key.split("/")
        if name == self._label_file:
            try:
                dir_fd = self._open_dir(tuple(parents))
            except FileNotFoundError:
                raise SourceChangedError(f"{key}: deleted since it was listed") from None
            try:
                return os.open(name, flags, dir_fd=dir_fd)
            finally:
                os.close(dir_fd)
        try:
            return os.open(name, flags, dir_fd=self._dirs.get(tuple(parents), self._open_dir))
        except FileNotFoundError:
            raise SourceChangedError(f"{key}: deleted since it was listed") from None

    def open(self, obj: SourceObject, offset: int = 0, length: int | None = None) -> _FileReader:
        try:
            # O_NONBLOCK: a FIFO put in a file's place opens at once (and is refused below)
            # instead of blocking until a writer comes; on a regular file it changes nothing.
            fd = self._open_file(obj.key, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise SourceChangedError(f"{obj.key}: deleted since it was listed") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a symlink
                raise SourceChangedError(f"{obj.key}: replaced by a symlink since it was listed") from None
            raise
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or posix_revision(st) != obj.revision:
            try:  # a new label moves ctime too: say the more useful of the two
                label = read_xattr(fd, self._xattr) if self._xattr else obj.label
            finally:
                os.close(fd)
            if label != obj.label:
                raise LabelChangedError(
                    f"{obj.key}: its label changed since planning ({obj.label!r} -> {label!r})"
                )
            raise SourceChangedError(f"{obj.key}: modified since it was listed")
        if offset == 0 and length is None and obj.size > READAHEAD_HINT_ABOVE:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        return _FileReader(fd, offset, obj.size - offset if length is None else length, self._xattr)

    def published_checksum(self, obj: SourceObject) -> PublishedChecksum | None:
        return None

    def own_label(self, obj: SourceObject) -> str | None:
        if not self._xattr:
            return None
        try:
            fd = self._open_file(obj.key, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise SourceChangedError(f"{obj.key}: deleted since it was listed") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise SourceChangedError(f"{obj.key}: replaced by a symlink since it was listed") from None
            raise
        try:
            return read_xattr(fd, self._xattr)
        finally:
            os.close(fd)

    def label_files_above(self, name: str) -> tuple[LabelFileAbove, ...]:
        if self._above is not None:
            return tuple(
                LabelFileAbove(f"{shown}/{name}", read_label_file_in(fd, name, f"{shown}/{name}"))
                for shown, fd in self._above
            )
        try:
            directories = directories_up_to_mount(self.root)
        except FileNotFoundError:
            raise SourceNotFoundError(f"no such file or directory: {self.root}") from None
        found = []
        for directory in directories:
            where = f"{directory.as_posix().rstrip('/')}/{name}"
            # O_PATH: a parent one may pass through but not list (mode 0711) is still looked in.
            fd = os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                found.append(LabelFileAbove(where, read_label_file_in(fd, name, where)))
            finally:
                os.close(fd)
        return tuple(found)

    def find(self, key: str) -> SourceObject | None:
        *parents, name = key.split("/")
        try:
            dir_fd = self._open_dir(tuple(parents))
        except (FileNotFoundError, SourceChangedError):
            return None  # gone, or no longer a plain directory: nothing there to find
        try:
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except (FileNotFoundError, NotADirectoryError):
                return None
            if stat.S_ISREG(st.st_mode):
                return self._object(key, st, _below(dir_fd, name))
            if name == self._label_file:
                raise not_a_label_file(key, describe_file_type(st.st_mode))
            return None
        finally:
            os.close(dir_fd)
