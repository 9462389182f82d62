"""Per-owner views: a training pod sees its own datasets, read-only, and nothing else cached.

A node's cache holds every dataset staged onto it, under directories named by digest, which a
pod cannot know when it is created. So the worker keeps, for each held staging that names an
owner, a view ``<root>/views/<owner-uid>/<staging-id>``: a read-only bind mount of that
staging's dataset directory. The pod mounts ``<root>/views`` with ``subPathExpr: $(POD_UID)``
(a Job's pods: the Job's uid), so its volume holds its own stagings only.

Bind mounts rather than hard links, measured and reasoned in ``bench/views.py``: one mount per
dataset whatever its file count, no inode touched (a link changes the file's ctime, which the
cache's tamper fingerprint covers, so linking would make every viewed dataset look altered),
and read-only enforced by the kernel, not by file modes. It needs CAP_SYS_ADMIN, so views are
off unless the operator turns them on (``STAGEGATE_VIEWS=1``, a privileged DaemonSet).

The view goes with the pin: :meth:`NodeViews.sync` makes the views on disk exactly the ones the
ledger wants (held, ready, owned stagings on this node), and runs before every eviction, so a
dataset is never deleted under a view (its space would otherwise stay in use).
"""

import ctypes
import ctypes.util
import logging
import os
import re
from collections.abc import Iterable, Set
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from stagegate.ledger.database import Ledger
from stagegate.ledger.owners import PinOwners

log = logging.getLogger(__name__)

VIEWS = "views"
_MS_RDONLY, _MS_REMOUNT, _MS_BIND = 1, 32, 4096
_MNT_DETACH = 2
_ESCAPED = re.compile(r"\\([0-7]{3})")
# A uid or a staging id as one path segment: never "..", never a slash.
_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


@dataclass(frozen=True, slots=True)
class View:
    """``owner_uid`` sees ``dataset`` (a cached dataset directory) as its staging ``job_id``."""

    owner_uid: str
    job_id: str
    dataset: Path


@dataclass(frozen=True, slots=True)
class ViewPlan:
    mount: tuple[tuple[Path, Path], ...]  # (dataset, view), to bind read-only
    unmount: tuple[Path, ...]
    remove: tuple[Path, ...]  # empty view directories to rmdir, children before parents


def plan_views(wanted: dict[Path, Path], present: Iterable[Path], mounted: Set[Path]) -> ViewPlan:
    """What makes the views on disk the ``wanted`` ones (view path -> dataset). ``present``: the
    view directories there are (``<uid>/<job>``, two levels); ``mounted``: those with a mount."""
    present = sorted(set(present))
    extra = [p for p in present if p not in wanted]
    return ViewPlan(
        mount=tuple((wanted[p], p) for p in sorted(wanted) if p not in mounted),
        unmount=tuple(p for p in extra if p in mounted),
        remove=tuple(extra),
    )


class Mounter(Protocol):
    def bind_read_only(self, source: Path, target: Path) -> None: ...
    def unmount(self, target: Path) -> None: ...
    def mounted_under(self, root: Path) -> set[Path]: ...


class LinuxMounter:
    """mount(2) and umount2(2) through libc: no ``mount`` binary, no shell."""

    def __init__(self, mountinfo: Path = Path("/proc/self/mountinfo")) -> None:
        self._libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self._mountinfo = mountinfo

    def _mount(self, source: Path | None, target: Path, flags: int) -> None:
        src = None if source is None else os.fsencode(source)
        if self._libc.mount(src, os.fsencode(target), None, ctypes.c_ulong(flags), None) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"mount {source} on {target}: {os.strerror(errno)}")

    def bind_read_only(self, source: Path, target: Path) -> None:
        self._mount(source, target, _MS_BIND)
        try:  # a bind mount takes its flags only on a remount
            self._mount(None, target, _MS_REMOUNT | _MS_BIND | _MS_RDONLY)
        except OSError:
            self.unmount(target)  # never leave a writable view
            raise

    def unmount(self, target: Path) -> None:
        # Detached: a pod still reading keeps its open files; the view is gone for everyone else.
        if self._libc.umount2(os.fsencode(target), _MNT_DETACH) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"unmount {target}: {os.strerror(errno)}")

    def mounted_under(self, root: Path) -> set[Path]:
        found = set()
        for line in self._mountinfo.read_text().splitlines():
            fields = line.split(" ")
            point = Path(_ESCAPED.sub(lambda m: chr(int(m.group(1), 8)), fields[4]))
            if point.is_relative_to(root) and point != root:
                found.add(point)
        return found


class NodeViews:
    """The views of one node root."""

    def __init__(self, root: Path, mounter: Mounter | None = None) -> None:
        self._root = root
        self._views = root / VIEWS
        self._datasets = root / "datasets"
        self._mounter = mounter or LinuxMounter()

    def path(self, owner_uid: str, job_id: str) -> Path:
        return self._views / owner_uid / job_id

    def sync(self, wanted: Iterable[View]) -> ViewPlan:
        """Mount the ``wanted`` views that are missing; unmount and remove every other one."""
        self._views.mkdir(exist_ok=True)
        targets: dict[Path, Path] = {}
        for view in wanted:
            if view.dataset.parent != self._datasets or not all(
                map(_SEGMENT.fullmatch, (view.owner_uid, view.job_id))
            ):
                log.error(
                    "refusing a view of %s for %s/%s: not a dataset or not a name",
                    view.dataset,
                    view.owner_uid,
                    view.job_id,
                )
                continue
            targets[self.path(view.owner_uid, view.job_id)] = view.dataset
        present = [job for owner in _dirs(self._views) for job in _dirs(owner)]
        plan = plan_views(targets, present, self._mounter.mounted_under(self._views))
        for target in plan.unmount:
            self._mounter.unmount(target)
        for target in plan.remove:
            _remove_empty(target)
        # Only the owner directories this pass emptied: kubelet creates a pod's own (subPathExpr)
        # before its first view exists, and removing it would cut the pod off from it.
        for owner in sorted({target.parent for target in plan.remove}):
            _remove_empty(owner, quiet=True)
        for dataset, target in plan.mount:
            target.mkdir(parents=True, exist_ok=True)
            self._mounter.bind_read_only(dataset, target)
        return plan


def _dirs(path: Path) -> list[Path]:
    try:
        return sorted(p for p in path.iterdir() if p.is_dir() and not p.is_symlink())
    except FileNotFoundError:
        return []


def _remove_empty(path: Path, quiet: bool = False) -> None:
    """rmdir, never rmtree: an unmounted view is an empty directory, and anything else found
    there is not ours to delete (nor a dataset to follow into)."""
    try:
        path.rmdir()
    except OSError as exc:
        if not quiet:
            log.error("left %s in place: %s", path, exc.strerror)


def sync_node_views(ledger: Ledger, node: str, views: NodeViews) -> ViewPlan:
    """Make ``node``'s views the ones its held, ready, owned stagings call for."""
    wanted = [View(held.owner_uid, held.job_id, Path(held.path)) for held in PinOwners(ledger).views_on(node)]
    return views.sync(wanted)
