"""A published dataset, sealed: read-only to everyone, and fingerprinted so a change shows.

Jobs read a node's cached datasets, and a later staging of the same source reuses them, so
a cached copy must not change under either. Sealing makes every file 0444 and every
directory 0555 (owned by the worker, so a job running as another user cannot write it back).
The fingerprint is a BLAKE3 digest over every entry's (path, type, inode, size, mode,
mtime_ns, ctime_ns): whoever rewrites, adds, removes or renames anything, or changes a mode,
changes a ctime, and a ctime cannot be set back by any user short of changing the clock or
the raw disk. Checking it costs one ``lstat`` per entry and reads no byte of data; the scrub
(:func:`file_hashes`) reads the bytes.
"""

import contextlib
import os
import stat
from collections.abc import Callable, Iterator, Set
from pathlib import Path

import blake3

FILE_MODE = 0o444
DIR_MODE = 0o555
WRITABLE_DIR_MODE = 0o755
_CHUNK = 1 << 20


def _entries(root: Path) -> Iterator[tuple[str, os.stat_result]]:
    """(relative path, lstat) of every entry below ``root``, depth first, names sorted, so the
    same tree always gives the same sequence. Links are listed, never followed."""
    stack = [""]
    while stack:
        rel = stack.pop()
        with os.scandir(root / rel if rel else root) as it:
            children = sorted(it, key=lambda e: e.name, reverse=True)
        for entry in children:
            key = f"{rel}/{entry.name}" if rel else entry.name
            st = entry.stat(follow_symlinks=False)
            yield key, st
            if stat.S_ISDIR(st.st_mode):
                stack.append(key)


Snapshot = list[tuple[str, os.stat_result]]
"""(relative path, lstat) of a tree's every entry, the root itself first (key "")."""


def snapshot(root: str | os.PathLike[str]) -> Snapshot:
    """What :func:`fingerprint` covers of the tree at ``root``, as it is now."""
    root = Path(root)
    top = root.lstat()
    if not stat.S_ISDIR(top.st_mode):
        raise NotADirectoryError(f"{root} is not a directory")
    return [("", top), *_entries(root)]


def fingerprint_of(entries: Snapshot) -> str:
    """The fingerprint of a :func:`snapshot`."""
    digest = blake3.blake3()
    for key, st in entries:
        line = (
            f"{key}\0{stat.S_IFMT(st.st_mode)}\0{st.st_ino}\0{st.st_size}\0"
            f"{stat.S_IMODE(st.st_mode)}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\n"
        )
        digest.update(line.encode("utf-8", "surrogateescape"))
    return str(digest.hexdigest())


def fingerprint(root: str | os.PathLike[str]) -> str:
    """The fingerprint of the tree at ``root``, the root directory itself included."""
    return fingerprint_of(snapshot(root))


def inodes_of(entries: Snapshot) -> set[int]:
    """The inodes of the regular files of a snapshot."""
    return {st.st_ino for _, st in entries if stat.S_ISREG(st.st_mode)}


def _identity(key: str, st: os.stat_result) -> tuple[object, ...]:
    """What the fingerprint covers of an entry, its ctime aside."""
    return key, stat.S_IFMT(st.st_mode), st.st_ino, st.st_size, stat.S_IMODE(st.st_mode), st.st_mtime_ns


def changed_only_ctimes(before: Snapshot, after: Snapshot, inodes: Set[int]) -> bool:
    """True if ``after`` differs from ``before`` in nothing but the ctime of files whose inode
    is in ``inodes``: what linking or unlinking another name of a shared file does (a link
    count is part of the inode, so its ctime moves). Anything else (a byte, a mode, a name,
    the ctime of any other entry) is a change the fingerprint must go on showing."""
    if len(before) != len(after):
        return False
    for (key, old), (key_after, new) in zip(before, after, strict=True):
        if _identity(key, old) != _identity(key_after, new):
            return False
        if old.st_ctime_ns != new.st_ctime_ns and not (stat.S_ISREG(new.st_mode) and new.st_ino in inodes):
            return False
    return True


def seal(root: str | os.PathLike[str]) -> None:
    """Make the tree read-only: files 0444, directories 0555, children before their parents."""
    root = Path(root)
    # Only what is not sealed yet: a chmod moves the ctime even to the same mode, and a file
    # linked from another cached dataset (delta staging) must keep the ctime that one recorded.
    for key, st in reversed(list(_entries(root))):
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISDIR(st.st_mode) and mode != DIR_MODE:
            (root / key).chmod(DIR_MODE)
        elif stat.S_ISREG(st.st_mode) and mode != FILE_MODE:
            (root / key).chmod(FILE_MODE)
    root.chmod(DIR_MODE)


def is_sealed(root: str | os.PathLike[str]) -> bool:
    try:
        return stat.S_IMODE(Path(root).lstat().st_mode) == DIR_MODE
    except FileNotFoundError:
        return False


def unseal(root: str | os.PathLike[str]) -> None:
    """Make the directories writable by their owner again, so the tree can be removed (a
    sealed directory's entries cannot be unlinked, nor the directory moved elsewhere)."""
    root = Path(root)
    with contextlib.suppress(FileNotFoundError):
        root.chmod(WRITABLE_DIR_MODE)
        for key, st in list(_entries(root)):
            if stat.S_ISDIR(st.st_mode):
                (root / key).chmod(WRITABLE_DIR_MODE)


def file_hashes(
    root: str | os.PathLike[str], on_bytes: Callable[[int], None] | None = None
) -> Iterator[tuple[str, str | None]]:
    """(key, BLAKE3 hex) of every file of the dataset at ``root``, in key order; anything not
    a regular file gives None. The state directory lies beside ``root`` (:mod:`transfer.layout`),
    so whatever is inside is the dataset's, and a file no manifest lists shows. ``on_bytes`` is
    told of every chunk read (a scrub's rate limit)."""
    root = Path(root)
    found = sorted(
        (key, stat.S_ISREG(st.st_mode)) for key, st in _entries(root) if not stat.S_ISDIR(st.st_mode)
    )
    for key, regular in found:
        if not regular:
            yield key, None
            continue
        hasher = blake3.blake3()
        fd = os.open(root / key, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            while chunk := os.read(fd, _CHUNK):
                hasher.update(chunk)
                if on_bytes is not None:
                    on_bytes(len(chunk))
        finally:
            os.close(fd)
        yield key, str(hasher.hexdigest())
