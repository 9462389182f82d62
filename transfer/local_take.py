"""Taking a file from a dataset already cached on this node instead of reading the source.

Three ways, the cheapest the filesystem allows: a reflink (``FICLONE``: a new inode sharing
the extents, copy-on-write, so nothing the new dataset does can reach the old one's bytes);
a hard link of the cached file (the same inode, only when it is sealed: 0444 and owned by
this worker, so no job can write it and both datasets keep it read-only); a local copy.
Whichever it is, the file counts only if it holds the bytes the cached dataset's manifest
recorded (their BLAKE3): a cached file altered on disk is never passed on (the caller reads it
from the source instead). A copy or a reflink is hashed after the take. A link is verified as a
cache hit is, by the seal's fingerprint, where the caller vouches for the file as sealed (its
``lstat`` in a snapshot of its dataset that matched the fingerprint on record, under the cache
lock): the same inode, size, mode, mtime and ctime then means the same bytes (any write moves
the ctime, which no one can set back), so it is not read again; else it is hashed too.

Every path is walked by descriptor with ``O_NOFOLLOW``, as in :mod:`transfer.sink`.
"""

import contextlib
import errno
import fcntl
import logging
import os
import stat
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from stagegate.transfer.checksums import ALL_CORES, new_local_hasher
from stagegate.transfer.errors import UnsafeDestinationError
from stagegate.transfer.keys import key_parts
from stagegate.transfer.objects import CopiedFile, SourceObject, Verification
from stagegate.transfer.origins import CachedCopy
from stagegate.transfer.sealed import FILE_MODE
from stagegate.transfer.sink import DatasetDir, TempFile, open_or_make_dir, write_all

log = logging.getLogger(__name__)

FICLONE = 0x40049409  # _IOW(0x94, 9, int): clone all of a file's extents
_CHUNK = 8 << 20
# What a filesystem (or a pair of them) answers when it cannot clone or link.
_UNSUPPORTED = {errno.EOPNOTSUPP, errno.ENOTTY, errno.EINVAL, errno.EXDEV, errno.EPERM, errno.EMLINK}


class TakeMethod(StrEnum):
    REFLINK = "reflink"
    LINK = "link"
    COPY = "copy"


ALL_METHODS = (TakeMethod.REFLINK, TakeMethod.LINK, TakeMethod.COPY)


@dataclass(frozen=True, slots=True)
class TakenFile:
    """A cached file now in the new dataset, verified; ``inode`` is the cached file's (a link
    shares it, which the caller must know: its ctime changed)."""

    record: CopiedFile
    method: TakeMethod
    inode: int


def _open_cached(root: Path, key: str) -> tuple[int, int, str]:
    """(parent directory fd, file fd, name) of ``key`` below the dataset at ``root``."""
    parts = key_parts(key)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            child = open_or_make_dir(fd, part, create=False)
            os.close(fd)
            fd = child
        try:
            file_fd = os.open(
                parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=fd
            )
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafeDestinationError(f"{root / key} is a symlink") from None
            raise
    except BaseException:
        os.close(fd)
        raise
    return fd, file_fd, parts[-1]


def _hash_fd(fd: int, size: int) -> str:
    hasher = new_local_hasher(ALL_CORES if size > _CHUNK else 1)
    buf = bytearray(min(_CHUNK, max(size, 1)))
    view = memoryview(buf)
    offset = 0
    while n := os.preadv(fd, [view], offset):
        hasher.update(view[:n])
        offset += n
    return hasher.hexdigest()


def _copy_and_hash(src: int, dst: int, size: int) -> str:
    hasher = new_local_hasher(ALL_CORES if size > _CHUNK else 1)
    offset = 0
    while data := os.pread(src, _CHUNK, offset):
        hasher.update(data)
        write_all(dst, data)
        offset += len(data)
    return hasher.hexdigest()


def _sealed_by_us(st: os.stat_result) -> bool:
    return stat.S_IMODE(st.st_mode) == FILE_MODE and st.st_uid == os.geteuid()


def _sealed_identity(st: os.stat_result) -> tuple[int, ...]:
    """What the seal's fingerprint covers of a file (and its device)."""
    return st.st_dev, st.st_ino, st.st_size, st.st_mode, st.st_mtime_ns, st.st_ctime_ns


def _as_sealed(st: os.stat_result, sealed: os.stat_result | None) -> bool:
    """True if ``st`` is the file ``sealed`` was, unchanged."""
    return sealed is not None and _sealed_identity(st) == _sealed_identity(sealed)


def _unwritten(before: os.stat_result, sealed: os.stat_result | None, linked: int) -> bool:
    """True if the file opened as ``before`` and now linked as ``linked`` is the sealed file,
    unwritten: as sealed when opened, and its size and mtime unmoved since (the link itself
    moved its ctime, so a write after the open shows in the mtime; one that set the mtime
    back moved the ctime again, and shows at the fingerprint's next check)."""
    if not _as_sealed(before, sealed):
        return False
    after = os.fstat(linked)
    return (after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
    )


def _take_temp(
    dataset: DatasetDir, method: TakeMethod, parent: int, fd: int, name: str, st: os.stat_result
) -> tuple[TempFile, str | None] | None:
    """A temporary file in ``dataset`` holding the cached file's bytes by ``method`` (and
    their hash, if it was computed on the way), or None if the filesystem cannot."""
    if method is TakeMethod.LINK:
        if not _sealed_by_us(st):
            return None
        try:
            temp = dataset.link_temp(parent, name)
        except OSError as exc:
            if exc.errno in _UNSUPPORTED:
                return None
            raise
        if os.fstat(temp.fd).st_ino != st.st_ino:  # replaced between the open and the link
            dataset.discard(temp)
            return None
        return temp, None
    temp = dataset.create_temp(0 if method is TakeMethod.REFLINK else st.st_size)
    try:
        if method is TakeMethod.REFLINK:
            try:
                fcntl.ioctl(temp.fd, FICLONE, fd)
            except OSError as exc:
                if exc.errno in _UNSUPPORTED:
                    dataset.discard(temp)
                    return None
                raise
            return temp, None
        return temp, _copy_and_hash(fd, temp.fd, st.st_size)
    except BaseException:
        dataset.discard(temp)
        raise


def take_cached(
    dataset: DatasetDir,
    obj: SourceObject,
    cached: CachedCopy,
    methods: tuple[TakeMethod, ...] = ALL_METHODS,
    sealed: os.stat_result | None = None,
) -> TakenFile | None:
    """Put ``cached``'s file into ``dataset`` at ``obj``'s key by the first of ``methods`` the
    filesystem allows, verified against ``cached.blake3``; None (nothing left in ``dataset``)
    if the cached file is missing, not a regular file, of another size, or hashes otherwise.
    ``sealed``: the file's ``lstat`` where the caller checked its dataset against the seal's
    fingerprint; a link of the very same file is then verified by it, not hashed."""
    try:
        parent, fd, name = _open_cached(Path(cached.dataset), cached.key)
    except (OSError, UnsafeDestinationError) as exc:
        log.warning("cached file %s/%s cannot be taken: %s", cached.dataset, cached.key, exc)
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size != cached.size or st.st_size != obj.size:
            log.warning("cached file %s/%s is not the file recorded", cached.dataset, cached.key)
            return None
        for method in methods:
            made = _take_temp(dataset, method, parent, fd, name, st)
            if made is None:
                continue
            temp, hashed = made
            try:
                if hashed is None and method is TakeMethod.LINK and _unwritten(st, sealed, temp.fd):
                    hashed = cached.blake3  # the sealed bytes: verified as a cache hit is
                got = hashed if hashed is not None else _hash_fd(temp.fd, st.st_size)
                if got != cached.blake3:
                    log.warning(
                        "cached file %s/%s hashes otherwise than its manifest says: read from the source",
                        cached.dataset,
                        cached.key,
                    )
                    return None
                mtime_ns = dataset.commit(temp, key_parts(obj.key))
                temp = None  # type: ignore[assignment]
            finally:
                if temp is not None:
                    dataset.discard(temp)
            record = CopiedFile(
                key=obj.key,
                size=obj.size,
                revision=obj.revision,
                version=obj.version,
                blake3=got,
                verification=Verification.LOCAL,
                source_checksum=None,
                mtime_ns=mtime_ns,
            )
            return TakenFile(record, method, st.st_ino)
        return None
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
        with contextlib.suppress(OSError):
            os.close(parent)
