"""Delta staging on a node: the files of a batch that a dataset already cached here holds are
taken from it (reflink, hard link of its sealed file, or local copy: :mod:`transfer.local_take`)
instead of being read from the source; the copy step reads only the rest.

A hard link shares the inode, and linking or unlinking a name of a file moves its ctime, which
every cached dataset holding that inode fingerprints (:mod:`transfer.sealed`). So every take
and every eviction of a dataset with shared files runs inside :class:`SharedFiles`: under the
node's cache lock, each ready dataset is snapshot and checked against its recorded
fingerprint first (one found altered is never taken from, and never re-blessed), and after,
a dataset whose snapshot moved only in the ctimes of the shared inodes touched gets its new
fingerprint recorded. Anything else that changed still shows at its next check.
"""

import logging
import os
import stat
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path

from stagegate.ledger.cached_files import CachedEntry, CachedFiles
from stagegate.transfer import SourceObject
from stagegate.transfer.engine import LabelGate
from stagegate.transfer.keys import key_parts
from stagegate.transfer.local_take import TakeMethod, TakenFile, take_cached
from stagegate.transfer.objects import CopiedFile
from stagegate.transfer.origins import CachedCopy, Origin, Take, choose_origins
from stagegate.transfer.sealed import Snapshot, changed_only_ctimes, fingerprint_of, inodes_of, snapshot
from stagegate.transfer.sink import DatasetDir
from stagegate.transfer.sources import Source

log = logging.getLogger(__name__)


@dataclass
class _Checked:
    digest: str
    path: Path
    fingerprint: str
    before: Snapshot
    inodes: set[int] = field(default_factory=set)
    _files: dict[str, os.stat_result] | None = None

    def files(self) -> dict[str, os.stat_result]:
        """Each entry's ``lstat`` as the fingerprint check saw it, by key."""
        if self._files is None:
            self._files = dict(self.before)
        return self._files


class SharedFiles:
    """The ready datasets of a node checked before links to their files change, and their
    fingerprints brought up to date after (see the module's docstring). Hold the node's cache
    lock around it. ``touched`` collects the inodes whose link count the body changed."""

    def __init__(self, cached: CachedFiles, node: str, datasets_root: Path, but: Sequence[str] = ()) -> None:
        self._cached = cached
        self._node = node
        self.touched: set[int] = set()
        self.trusted: dict[str, _Checked] = {}
        for d in cached.ready_on(node):
            path = Path(d.path)
            if d.digest in but or path.parent != datasets_root or d.fingerprint is None:
                continue
            try:
                before = snapshot(path)
            except OSError:
                continue
            if fingerprint_of(before) != d.fingerprint:
                log.warning(
                    "cached dataset %s on %s is not as sealed: nothing is shared from it", d.digest, node
                )
                continue
            self.trusted[d.digest] = _Checked(d.digest, path, d.fingerprint, before, inodes_of(before))

    def sealed_files(self, digests: Sequence[str]) -> dict[str, dict[str, os.stat_result]]:
        """Of each of ``digests`` found as sealed, its files' ``lstat`` as the check saw them:
        a file still so is the one its manifest's BLAKE3 was recorded for."""
        return {d: self.trusted[d].files() for d in digests if d in self.trusted}

    def refresh(self) -> None:
        """Record the new fingerprint of every checked dataset holding a touched inode whose
        tree changed in nothing else."""
        for checked in self.trusted.values():
            if not checked.inodes & self.touched:
                continue
            try:
                after = snapshot(checked.path)
            except OSError:
                continue
            if not changed_only_ctimes(checked.before, after, self.touched):
                log.warning(
                    "cached dataset %s on %s changed while its files were shared", checked.digest, self._node
                )
                continue
            now = fingerprint_of(after)
            if now != checked.fingerprint and self._cached.refingerprint(
                self._node, checked.digest, checked.fingerprint, now
            ):
                checked.fingerprint, checked.before = now, after


def shared_counts(datasets: Sequence[tuple[str, Snapshot]]) -> dict[str, tuple[int, int] | None]:
    """Per dataset (oldest first), the bytes no older one holds and the bytes no other holds,
    from their snapshots (a shared file is one inode); None for one that shares nothing."""
    holders: dict[int, int] = {}
    files_of: list[tuple[str, dict[int, int]]] = []
    for digest, entries in datasets:
        files = {st.st_ino: st.st_size for _, st in entries if stat.S_ISREG(st.st_mode)}
        files_of.append((digest, files))
        for inode in files:
            holders[inode] = holders.get(inode, 0) + 1
    seen: set[int] = set()
    counts: dict[str, tuple[int, int] | None] = {}
    for digest, files in files_of:
        unique = sum(size for inode, size in files.items() if inode not in seen)
        sole = sum(size for inode, size in files.items() if holders[inode] == 1)
        seen.update(files)
        counts[digest] = None if unique == sole == sum(files.values()) else (unique, sole)
    return counts


def recount_shared(cached: CachedFiles, node: str, datasets_root: Path) -> None:
    """Bring every ready dataset's unique and sole bytes on ``node`` up to date from the disk
    (one ``lstat`` per entry). Hold the node's cache lock."""
    found: list[tuple[str, Snapshot]] = []
    for d in cached.ready_on(node):
        path = Path(d.path)
        if path.parent != datasets_root:
            continue
        try:
            found.append((d.digest, snapshot(path)))
        except OSError:
            continue
    cached.count_shared(node, shared_counts(found))


def _copy_of(entry: CachedEntry) -> CachedCopy:
    return CachedCopy(
        digest=entry.digest,
        dataset=entry.path,
        source=entry.source,
        key=entry.key,
        size=entry.size,
        revision=entry.revision,
        source_checksum=entry.source_checksum,
        blake3=entry.blake3,
        verification=entry.verification,
    )


@dataclass(frozen=True, slots=True)
class CacheTakes:
    """What one batch took from the node's cache: the files' records, in key order."""

    records: list[CopiedFile]
    bytes: int
    methods: dict[str, int]


def _cache_takes(
    cached: CachedFiles,
    node: str,
    digest: str,
    entries: Sequence[tuple[SourceObject, str | None]],
    source_url: str,
) -> list[Take]:
    """The entries ((object, published checksum)) whose bytes a ready dataset on ``node`` other
    than ``digest`` holds, each with the cached file a take would use."""
    candidates = cached.matching(
        node,
        (obj.revision for obj, _ in entries if obj.revision is not None),
        (checksum for _, checksum in entries if checksum is not None),
        but=digest,
    )
    if not candidates:
        return []
    return [
        t for t in choose_origins(entries, source_url, map(_copy_of, candidates)) if t.origin is Origin.CACHE
    ]


def held_on_node(
    cached: CachedFiles,
    node: str,
    digest: str,
    batches: Iterable[Sequence[tuple[SourceObject, str | None]]],
    source_url: str,
) -> dict[str, int]:
    """Of a dataset to be written on ``node`` (its entries, a batch at a time), the bytes ready
    datasets there already hold, by the dataset the copy step would take them from: what
    admission need not find room for (:mod:`ledger.delta_accounting`)."""
    held: dict[str, int] = {}
    for entries in batches:
        for take in _cache_takes(cached, node, digest, entries, source_url):
            assert take.cached is not None
            held[take.cached.digest] = held.get(take.cached.digest, 0) + take.obj.size
    return held


def _own_label(source: Source, obj: SourceObject) -> str | None:
    return obj.label if source.labels_listed else source.own_label(obj)


def take_from_cache(
    cached: CachedFiles,
    shared: Callable[[Sequence[str]], AbstractContextManager[SharedFiles]],
    node: str,
    digest: str,
    destination: Path,
    entries: Sequence[tuple[SourceObject, str | None]],
    source: Source,
    source_url: str,
    label_gate: LabelGate | None,
    threads: int = 8,
) -> CacheTakes:
    """Take the files of ``entries`` ((object, published checksum), key order) that a ready
    dataset on ``node`` other than ``digest`` holds, into ``destination``. Each object's own
    label is still put to ``label_gate`` first, as a copy would (read from the source where
    the plan did not list it: no byte is read); a refusal raises before anything is taken. ``shared`` opens a
    :class:`SharedFiles` (under the cache lock) excluding the given digests."""
    takes = _cache_takes(cached, node, digest, entries, source_url)
    if not takes:
        return CacheTakes([], 0, {})
    with ThreadPoolExecutor(max(1, threads), thread_name_prefix="stagegate-take") as pool:
        labels: list[str | None] = [None] * len(takes)
        if label_gate is not None:
            gate = label_gate
            # The plan read every own label where the source lists them; else ask (S3: a HEAD).
            labels = list(pool.map(lambda t: gate(t.obj, _own_label(source, t.obj)), takes))
        with shared([digest]) as guard, DatasetDir(destination) as dataset:
            sealed = guard.sealed_files(sorted({t.cached.digest for t in takes if t.cached is not None}))

            def take_one(take: Take) -> TakenFile | None:
                assert take.cached is not None
                files = sealed.get(take.cached.digest)
                if files is None:
                    return None  # altered since it was sealed: its files come from the source
                if dataset.stat_file(key_parts(take.obj.key)) is not None:
                    return None  # an earlier run's: the batch's record says whether it counts
                # A link of a file still as sealed is verified by the fingerprint just checked.
                done = take_cached(dataset, take.obj, take.cached, sealed=files.get(take.cached.key))
                if done is not None and done.method is TakeMethod.LINK:
                    guard.touched.add(done.inode)  # its link count, so its ctime, moved
                return done

            # In threads: each take hashes its file, and BLAKE3 runs outside the GIL.
            taken = [
                replace(done, record=replace(done.record, label=label)) if label else done
                for done, label in zip(pool.map(take_one, takes), labels, strict=True)
                if done is not None
            ]
            if taken:
                dataset.sync()  # the batch's record vouches for these as soon as it starts
    methods: dict[str, int] = {}
    for t in taken:
        methods[t.method.value] = methods.get(t.method.value, 0) + 1
    return CacheTakes([t.record for t in taken], sum(t.record.size for t in taken), methods)
