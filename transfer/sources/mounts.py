"""Which filesystem a path is on: a local disk, or one whose every open and read may wait on a
network (NFS, SMB, FUSE, the parallel filesystems).

It decides how many threads copy small files from a POSIX source. Where a read does not wait,
each extra copy thread only adds GIL hand-offs (every system call releases the lock and takes
it back): staging 20,000 small files from the page cache cost 5.5 s of CPU on one copy thread
and 10.7 s on two (README, "Small files"). Where it does wait, threads hide the latency.
"""

import os
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")

NETWORK_FILESYSTEMS = frozenset(
    {
        "nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "afs", "9p", "ceph", "glusterfs",
        "lustre", "gpfs", "beegfs", "panfs", "wekafs", "orangefs", "pvfs2", "ocfs2", "gfs2",
        "davfs", "sshfs", "fuse", "fuseblk",
    }
)  # fmt: skip


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash in a path as octal escapes."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def filesystem_type(path: str, mountinfo: str) -> str | None:
    """The type of the filesystem mounted deepest above ``path`` (absolute, resolved), from the
    text of a ``/proc/<pid>/mountinfo``; None if no line covers it."""
    best: tuple[int, str] | None = None
    for line in mountinfo.splitlines():
        fields = line.split(" ")
        if "-" not in fields or len(fields) < 5:
            continue
        mount_point = _unescape(fields[4])
        fstype = fields[fields.index("-") + 1]
        inside = path == mount_point or path.startswith(mount_point.rstrip("/") + "/")
        if inside and (best is None or len(mount_point) >= best[0]):
            best = (len(mount_point), fstype)  # later lines are mounted over earlier ones
    return None if best is None else best[1]


def is_network_filesystem(fstype: str | None) -> bool:
    """True for a filesystem type whose reads may wait on a network (unknown counts as one)."""
    if fstype is None:
        return True
    return fstype in NETWORK_FILESYSTEMS or fstype.startswith("fuse.")


def on_network_filesystem(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` is on a network filesystem, or if that cannot be told."""
    try:
        return is_network_filesystem(filesystem_type(os.path.realpath(path), MOUNTINFO.read_text()))
    except OSError:
        return True
