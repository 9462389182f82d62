"""Opening a service staging's source within the requester's rights, not the worker's.

The API checked the URL's text against the operator's source roots; here it is checked again
(the worker may be configured more strictly, and the ledger row is not proof), and a local
path is then opened one segment at a time below its root with ``O_NOFOLLOW``: a symlink
anywhere under the root (``~alice/data -> ~bob/secret``) fails the staging instead of
redirecting it. The source then reads through the descriptor it walked to
(``/proc/self/fd/N``), so renaming or relinking the path afterwards cannot redirect it
either. The root itself is the operator's choice and may be a link (``/mnt/nfs -> /nfs``).

Label files above the source are looked for in the directories walked, from the source's up to
the requester's root and never higher: a ``.classification`` above the root (say, a permissive
one in ``/mnt/nfs/home``) is another owner's and labels nothing of theirs.
"""

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from stagegate.confinement import SourceNotPermittedError, SourceRules
from stagegate.transfer import open_source
from stagegate.transfer.errors import SourceNotFoundError
from stagegate.transfer.objects import LabelSpec
from stagegate.transfer.sources import Source
from stagegate.transfer.sources.local import LocalSource

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
# O_NONBLOCK: a FIFO planted as the dataset must not block the worker on open.
_LEAF = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


def _walk(root: str, below: tuple[str, ...], fds: list[int]) -> tuple[int, str | None]:
    """(descriptor, None) for a directory source, (its directory's descriptor, name) for a file."""
    try:
        fd = os.open(root, _DIR)
    except FileNotFoundError:
        raise SourceNotFoundError(f"the source root {root} does not exist on this node") from None
    fds.append(fd)
    for depth, segment in enumerate(below):
        try:
            child = os.open(segment, _LEAF, dir_fd=fd)
        except FileNotFoundError:
            raise SourceNotFoundError(f"no such file or directory under {root}") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                shown = "/".join(below[: depth + 1])
                raise SourceNotPermittedError(
                    f"{root}/{shown} is a symbolic link; the service does not follow links in a "
                    "local source (they could lead outside your source root): give the real path"
                ) from None
            raise
        fds.append(child)
        mode = os.fstat(child).st_mode
        last = depth == len(below) - 1
        if stat.S_ISDIR(mode):
            fd = child
        elif last and stat.S_ISREG(mode):
            return fd, segment
        else:
            raise SourceNotPermittedError(
                f"{root}/{'/'.join(below[: depth + 1])} is neither a directory nor a regular file"
            )
    return fd, None


@contextlib.contextmanager
def confined_source(
    url: str,
    rules: SourceRules,
    user: str,
    project: str | None,
    *,
    max_connections: int,
    labels: LabelSpec,
    tags_at_plan: bool = False,
) -> Iterator[Source]:
    """The source of ``url`` as ``user`` may read it; descriptors held until the block ends."""
    where = rules.local_root(url, user, project)
    if where is None:
        yield open_source(url, max_connections=max_connections, labels=labels, tags_at_plan=tags_at_plan)
        return
    fds: list[int] = []
    root, below = where
    try:
        fd, name = _walk(root, below, fds)
        through = Path(f"/proc/self/fd/{fd}")
        # fds[i] is the directory i segments below the root; the source's own (or, for a file,
        # the file) is not above it.
        above = [("/".join((root.rstrip("/"), *below[:i])), fds[i]) for i in reversed(range(len(below)))]
        yield LocalSource(through / name if name else through, url=url, labels=labels, above=above)
    finally:
        for held in reversed(fds):
            os.close(held)


def check_confined(url: str, rules: SourceRules, user: str, project: str | None) -> None:
    """Raise as :func:`confined_source` would if ``user`` may not have ``url`` read, without
    opening a source (a follower of a shared plan reads nothing, but must have the right to)."""
    where = rules.local_root(url, user, project)
    if where is None:
        return  # a permitted non-local source: the check is the scheme's
    fds: list[int] = []
    try:
        _walk(*where, fds)
    finally:
        for held in reversed(fds):
            os.close(held)
