"""Reading a run directory's files without following links: JSON, a tree's size and newest mtime."""

import json
import os
import stat
from pathlib import Path
from typing import Any

MAX_JSON_BYTES = 64 << 20  # a trainer_state.json of a very long run is tens of MB; anything larger is not one


def inside(run_dir: Path, path: str) -> bool:
    """Whether ``path``, its links resolved, lies within ``run_dir``."""
    root = os.path.realpath(run_dir)
    return os.path.commonpath([root, os.path.realpath(path)]) == root


def tree_size_mtime(root: str, root_mtime: float) -> tuple[int, float]:
    """Bytes of the regular files below ``root`` and its newest mtime; symlinks are skipped.

    The newest mtime, not the directory's own: files rewritten in place do not touch it.
    """
    size, mtime = 0, root_mtime
    pending = [root]
    while pending:
        with os.scandir(pending.pop()) as it:
            for entry in it:
                if entry.is_symlink():
                    continue  # its bytes live elsewhere, perhaps outside the run directory
                st = entry.stat(follow_symlinks=False)
                mtime = max(mtime, st.st_mtime)
                if stat.S_ISDIR(st.st_mode):
                    pending.append(entry.path)
                elif stat.S_ISREG(st.st_mode):
                    size += st.st_size
    return size, mtime


def read_json(path: Path, label: str, notes: list[str]) -> Any:
    """The parsed JSON at ``path``, or None (with a note) if absent, a link, not a file or invalid."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # NONBLOCK: a FIFO must not hang us
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as exc:
        why = exc.strerror or exc
        notes.append(f"{label} could not be opened ({why}; symlinks are not followed); ignored")
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            notes.append(f"{label} is not a regular file; ignored")
            return None
        if st.st_size > MAX_JSON_BYTES:
            notes.append(f"{label} is larger than {MAX_JSON_BYTES >> 20} MiB; ignored")
            return None
        data = f.read()
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        notes.append(f"{label} is not valid JSON ({exc}); ignored")
        return None
