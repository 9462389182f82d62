"""Replacing a file so that a reader, a crash or a power cut never sees half of it: the one
writer for state files (manifests, ready markers, batch records, reports)."""

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def temporary_name(name: str) -> str:
    """Where :func:`write_atomically` writes ``name`` before the rename: hidden, beside it, and
    never a name that could be another state file's."""
    return f".{name}.tmp"


def write_atomically(
    path: str | os.PathLike[str], chunks: Iterable[bytes], *, dir_fd: int | None = None, mode: int = 0o644
) -> None:
    """Durably replace ``path`` (a bare name in ``dir_fd`` when given) with ``chunks``.

    Written under :func:`temporary_name` in the same directory (created afresh, never through
    a link), fsynced, renamed over ``path``, and the directory fsynced: afterwards ``path`` is
    all of the new content, and at no moment is it anything but the old file, the new one, or
    absent. A failure removes the temporary file. One writer per name at a time: a leftover of
    a killed writer is removed first.
    """
    target = Path(path)
    if dir_fd is not None and target.name != str(target):
        raise ValueError(f"with dir_fd, {path!r} must be a bare name")
    directory = dir_fd if dir_fd is not None else os.open(target.parent, _DIRECTORY)
    temp = temporary_name(target.name)
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp, dir_fd=directory)  # unlink removes a planted link, never its target
        fd = os.open(temp, _CREATE, mode, dir_fd=directory)
        try:
            with os.fdopen(fd, "wb", closefd=False) as f:
                f.writelines(chunks)
            os.fsync(fd)
            os.close(fd)
            fd = -1
            os.rename(temp, target.name, src_dir_fd=directory, dst_dir_fd=directory)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=directory)
            raise
        os.fsync(directory)  # the rename itself is durable only once its directory is
    finally:
        if dir_fd is None:
            os.close(directory)
