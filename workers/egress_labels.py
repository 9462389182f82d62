"""The label of a checkpoint on its way out: labels only rise, and only a recorded
declassification lowers one.

A checkpoint's effective label is the highest of

- its own labels: the xattr ``user.classification`` on the checkpoint entry, and a
  ``.classification`` file directly inside a checkpoint directory (both count);
- the nearest ``.classification`` in the run directory or a parent of it, up to the label
  root (on the service ``<runs root>/<user>``; embedded, the run directory itself);
- its lineage: the highest label of the datasets the requester (or their project) staged
  under the job reference given. Naming a reference that only others staged is refused.

A label word the policy does not know wins over every level (the policy then denies it): an
unknown word fails closed. With no label at all the checkpoint is ``unclassified``.

A declassification recorded for the checkpoint (``ledger/declassifications.py``) replaces
that label, but only while nothing of the checkpoint changed since it was made: any file or
directory with a ctime later than the record (less a margin for coarse file clocks and clock
skew between hosts) voids it, and the egress says so.

Label files are opened non-blocking and without following links, and must be regular files:
a FIFO, directory, socket or symlink named ``.classification`` is an error naming it, never
a wait (a FIFO would block the worker forever) and never a label silently skipped.
"""

import errno
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from stagegate.checkpoints import Checkpoint
from stagegate.ledger import Ledger, Manifests
from stagegate.ledger.declassifications import Declassification, Declassifications
from stagegate.limits import MAX_LABEL_FILE_BYTES
from stagegate.policies import (
    LABEL_FILE_NAME,
    LABEL_XATTR,
    UNCLASSIFIED,
    LabelFileError,
    LevelError,
    Policy,
    normalize_label,
    parse_label_file,
)
from stagegate.transfer.endpoints.path import open_dir_at
from stagegate.transfer.endpoints.run_dir import RunDir
from stagegate.transfer.errors import UnsafeDestinationError
from stagegate.transfer.sources.local import read_xattr

# A declassification made at T holds while every ctime of the checkpoint is at most T minus
# this: file times come from a coarse clock, and the API's clock is not the node's.
DECLASSIFICATION_MARGIN_NS = 1_000_000_000
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_LABEL_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFDIR: "a directory",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFLNK: "a symlink",
}


@dataclass(frozen=True, slots=True)
class CheckpointLabel:
    name: str
    label: str  # 'unclassified' when there is none
    # Where the winning label came from: 'xattr', 'file' (inside the checkpoint),
    # 'file:<path>' (a run directory's), 'lineage:<job ref>', 'declassified:<id> by <who>', 'none'.
    origin: str
    sources: tuple[tuple[str, str], ...] = ()  # every (origin, label) that counted
    declassified: dict[str, object] | None = None
    notes: tuple[str, ...] = ()

    def to_details(self) -> dict[str, object]:
        details: dict[str, object] = {
            "label": self.label,
            "origin": self.origin,
            "sources": {origin: label for origin, label in self.sources},
        }
        if self.declassified is not None:
            details["declassified"] = self.declassified
        if self.notes:
            details["notes"] = list(self.notes)
        return details


@dataclass(frozen=True, slots=True)
class LabelScope:
    """Where the labels of one egress's checkpoints come from."""

    run_dir: Path
    label_root: Path  # the highest directory whose .classification counts
    actor: str
    project: str | None = None
    node: str | None = None  # None: embedded, a path on this machine
    job_ref: str | None = None


@dataclass(frozen=True, slots=True)
class Classification:
    labels: list[CheckpointLabel]
    lineage_refused: str | None = None  # why the job reference may not be used
    lineage_found: bool = False
    notes: list[str] = field(default_factory=list)


# -- reading labels ---------------------------------------------------------------------------


def read_label_file_at(dir_fd: int, name: str, where: str) -> str | None:
    """The label in the file ``name`` below ``dir_fd``, or None if there is none.

    Opened non-blocking without following a link; anything but a regular file is an error
    naming ``where``, and so is a file too large to be one word."""
    try:
        fd = os.open(name, _LABEL_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LabelFileError(f"{where} is a symlink; a label file must be a regular file") from None
        if exc.errno == errno.ENXIO:  # opening a socket
            raise LabelFileError(f"{where} is a socket; a label file must be a regular file") from None
        raise LabelFileError(f"{where} cannot be read ({exc.strerror}); fix it or remove it") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
            raise LabelFileError(f"{where} is {kind}; a label file must be a regular file holding one word")
        content = os.read(fd, MAX_LABEL_FILE_BYTES + 1)
    finally:
        os.close(fd)
    return parse_label_file(content, where)


def own_labels(run: RunDir, checkpoint: Checkpoint) -> list[tuple[str, str]]:
    """The checkpoint's own labels as (origin, label): its xattr (any spelling of the name) and,
    for a directory, every ``.classification`` inside it, at any depth: a label file deeper
    down labels files that go out with the checkpoint, so it counts too. The entry is reached
    by descriptor, never through a link."""
    name = checkpoint.name
    where = run.path / name
    mode = os.stat(name, dir_fd=run.fd, follow_symlinks=False).st_mode
    if stat.S_ISLNK(mode):
        raise UnsafeDestinationError(f"checkpoint {where} is a symlink; refusing to follow it")
    if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
        raise LabelFileError(f"checkpoint {where} is neither a file nor a directory")
    fd = os.open(name, _DIR_FLAGS if stat.S_ISDIR(mode) else _LABEL_FLAGS, dir_fd=run.fd)
    found: list[tuple[str, str]] = []
    try:
        if not stat.S_IFMT(os.fstat(fd).st_mode) == stat.S_IFMT(mode):
            raise UnsafeDestinationError(f"checkpoint {where} changed while it was read")
        raw = read_xattr(fd, LABEL_XATTR)  # 'user.Classification' counts as much as the lower case
        if raw is not None:
            found.append(("xattr", parse_label_file(raw, f"{where} ({LABEL_XATTR})")))
        if stat.S_ISDIR(mode):
            label = read_label_file_at(fd, LABEL_FILE_NAME, str(where / LABEL_FILE_NAME))
            if label is not None:
                found.append(("file", label))
    finally:
        os.close(fd)
    if stat.S_ISDIR(mode):
        found += _deeper_label_files(run, checkpoint)
    return found


def _deeper_label_files(run: RunDir, checkpoint: Checkpoint) -> list[tuple[str, str]]:
    """(origin, label) of every ``.classification`` below the checkpoint's top directory."""
    found = []
    for f in run.files(checkpoint):  # regular files only, reached without following a link
        if f.parts[-1] != LABEL_FILE_NAME or len(f.parts) <= 2:
            continue
        where = str(run.path / f.key)
        with run.open(f) as fd:
            content = os.read(fd, MAX_LABEL_FILE_BYTES + 1)
        found.append((f"file:{f.key}", parse_label_file(content, where)))
    return found


def directory_label(run_dir: Path, label_root: Path) -> tuple[str, str] | None:
    """The nearest ``.classification`` in ``run_dir`` or a parent of it, up to ``label_root``,
    as (origin, label). Walked from ``/`` by descriptor; no link is followed."""
    parts = run_dir.parts[1:]
    root_depth = len(label_root.parts) - 1
    if not run_dir.is_relative_to(label_root):
        raise ValueError(f"{run_dir} is not below {label_root}")
    nearest: tuple[str, str] | None = None
    fd = os.open("/", _DIR_FLAGS)
    try:
        for depth, name in enumerate(parts, start=1):
            child = open_dir_at(fd, name, str(Path("/", *parts[:depth])), create=False)
            os.close(fd)
            fd = child
            if depth >= root_depth:
                where = Path("/", *parts[:depth]) / LABEL_FILE_NAME
                label = read_label_file_at(fd, LABEL_FILE_NAME, str(where))
                if label is not None:
                    nearest = (f"file:{where}", label)
    finally:
        os.close(fd)
    return nearest


# -- combining them ---------------------------------------------------------------------------


def highest(policy: Policy, sources: Sequence[tuple[str, str]]) -> tuple[str, str]:
    """(label, origin) of the highest of ``sources``; a word the policy does not know beats
    every level (fail closed: the policy denies it, naming it)."""
    if not sources:
        return UNCLASSIFIED, "none"
    best: tuple[int, str, str] | None = None
    for origin, label in sources:
        word = normalize_label(label)
        rank = policy.levels.rank_or_none(word)
        if rank is None:
            return word, origin
        if best is None or rank > best[0]:
            best = (rank, word, origin)
    assert best is not None
    return best[1], best[2]


def lineage(manifests: Manifests, policy: Policy, scope: LabelScope) -> tuple[str | None, str | None]:
    """(the lineage label or None, why the job reference is refused or None)."""
    if not scope.job_ref:
        return None, None
    labels = manifests.labels_for_job_ref(scope.job_ref, scope.actor, scope.project)
    if not labels:
        if manifests.staged_only_by_others(scope.job_ref, scope.actor, scope.project):
            # Say nothing of what those stagings hold: their labels are not the requester's to see.
            return None, (
                f"job reference {scope.job_ref!r} names stagings you did not run; lineage comes only "
                "from datasets you (or your project) staged: pass your own job reference"
            )
        return None, None
    try:
        return policy.highest_label(labels), None
    except LevelError:
        return UNCLASSIFIED, None  # a label this policy does not know: fail closed


def apply_declassification(
    label: CheckpointLabel, record: Declassification, newest_change_ns: int
) -> CheckpointLabel:
    """``label`` with ``record`` applied if the checkpoint is unchanged since it, else with a note."""
    made_ns = int(record.created_at.timestamp() * 1_000_000_000)
    who = f"{record.actor} ({record.role})"
    if newest_change_ns > made_ns - DECLASSIFICATION_MARGIN_NS:
        note = (
            f"declassification {record.id} by {who} ignored: the checkpoint changed after it was "
            "made (a file or directory has a later ctime); ask for a new declassification"
        )
        return CheckpointLabel(
            label.name, label.label, label.origin, label.sources, None, (*label.notes, note)
        )
    cited: dict[str, object] = {
        "id": record.id,
        "by": record.actor,
        "role": record.role,
        "reason": record.reason,
        "at": record.created_at.isoformat(),
        "from": label.label,
        "to": record.label,
    }
    return CheckpointLabel(
        label.name,
        record.label,
        f"declassified:{record.id} by {record.actor}",
        label.sources,
        cited,
        label.notes,
    )


def classify(
    ledger: Ledger, policy: Policy, scope: LabelScope, checkpoints: Sequence[Checkpoint]
) -> Classification:
    """Every checkpoint's effective label under ``scope``."""
    lineage_label, refused = lineage(Manifests(ledger), policy, scope)
    around = directory_label(scope.run_dir, scope.label_root)
    declassifications = Declassifications(ledger)
    labels: list[CheckpointLabel] = []
    with RunDir(scope.run_dir) as run:
        for c in checkpoints:
            sources = own_labels(run, c)
            if around is not None:
                sources.append(around)
            if lineage_label is not None:
                sources.append((f"lineage:{scope.job_ref}", lineage_label))
            word, origin = highest(policy, sources)
            label = CheckpointLabel(c.name, word, origin, tuple(sources))
            record = declassifications.latest(scope.node, str(scope.run_dir), c.name)
            if record is not None:
                label = apply_declassification(label, record, run.newest_change_ns(c.name))
            labels.append(label)
    return Classification(labels, refused, lineage_label is not None)
