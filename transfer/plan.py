"""Planning: one streaming pass over a source listing that checks every key and writes the
plan to a spill file, so a listing of millions of objects is never held in memory."""

import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from stagegate.errors import InvalidInputError
from stagegate.limits import MAX_LABEL_FILE_BYTES
from stagegate.progress import Listed, ListingCallback
from stagegate.transfer.errors import (
    LabelChangedError,
    LabelSourceError,
    PlanRejectedError,
    TransferError,
    UnsafeKeyError,
)
from stagegate.transfer.keys import NormalizationGuard, is_directory_marker, key_parts
from stagegate.transfer.label_sources import LabelFileAbove, not_a_label_file, too_big_a_label_file
from stagegate.transfer.manifest import ManifestDigest
from stagegate.transfer.objects import SourceObject
from stagegate.transfer.sink import open_nofollow
from stagegate.transfer.sources.base import Source

_DECODER = json.JSONDecoder()
MAX_PROBLEMS_SHOWN = 20
LISTED_EVERY = 1000  # objects between two planning-progress reports (an S3 listing page)


@dataclass(frozen=True, slots=True)
class LabelFile:
    """A file whose content labels its directory (``directory`` is '' at the dataset root)."""

    directory: str
    object: SourceObject
    content: bytes


@dataclass(frozen=True, slots=True)
class Plan:
    """What a staging will copy: its entries live in ``path``, one JSON object a line.

    ``label_files_above``: every place a label file was looked for above the source, nearest
    first, with or without one; ``filtered_out``: objects the request's filters left out.
    """

    source_url: str
    path: Path
    files: int
    bytes: int
    digest: str
    directory_markers: int
    label_files: dict[str, LabelFile] = field(default_factory=dict)
    label_files_above: tuple[LabelFileAbove, ...] = ()
    filtered_out: int = 0

    def entries(self) -> Iterator[SourceObject]:
        # Read several times a staging (policy, ledger rows, batches, label checks): a str to
        # raw_decode skips json.loads' encoding detection, a third of a line's cost.
        decode = _DECODER.raw_decode
        with os.fdopen(open_nofollow(self.path, os.O_RDONLY), "rb") as f:
            for line in f:
                yield SourceObject(**decode(line.decode())[0])


def _encode(obj: SourceObject) -> bytes:
    fields = {
        "key": obj.key,
        "size": obj.size,
        "revision": obj.revision,
        "version": obj.version,
        "mtime": obj.mtime,
        "checksum_algorithm": obj.checksum_algorithm,
        "label": obj.label,
    }
    return json.dumps(fields, separators=(",", ":")).encode() + b"\n"


class FileAsDirectoryGuard:
    """Finds a key under another key, as ``a/b`` under ``a``: an object store holds both, a
    directory cannot (``a`` cannot be a file and a directory), so the dataset cannot be staged.

    Keys arrive in ascending order, and every key starting with ``a`` follows ``a`` before
    any key that does not: only the chain of earlier keys that are prefixes of the current
    one is held, at most one per character of a key, whatever the listing's length.
    """

    __slots__ = ("_chain",)

    def __init__(self) -> None:
        self._chain: list[str] = []

    def add(self, key: str) -> None:
        """Raise :class:`UnsafeKeyError` if ``key`` lies under a key added before."""
        while self._chain and not key.startswith(self._chain[-1]):
            self._chain.pop()
        for earlier in self._chain:
            if key.startswith(earlier + "/"):
                raise UnsafeKeyError(key, f"{earlier!r} is a file, so it cannot also be a directory")
        self._chain.append(key)


def read_small(source: Source, obj: SourceObject, limit: int) -> bytes:
    """The whole content of a small object (a label file), refusing anything bigger
    (:class:`LabelSourceError`): a label file holds one word."""
    if obj.size > limit:
        raise too_big_a_label_file(obj.key, obj.size, limit)
    reader = source.open(obj)
    try:
        chunks = []
        while chunk := reader.read(limit + 1):
            chunks.append(chunk)
    finally:
        reader.close()
    return b"".join(chunks)


def plan_dataset(
    source: Source,
    spill: Path,
    label_file_name: str | None = None,
    on_listed: ListingCallback | None = None,
    key_filter: Callable[[str], bool] | None = None,
) -> Plan:
    """List ``source`` into ``spill`` and check every key; ``on_listed`` hears how far the
    listing is every :data:`LISTED_EVERY` objects, and once more when it is complete.

    Objects named ``label_file_name`` are read, not staged: their content labels their
    directory, and they are in ``Plan.label_files``. They count in the digest, so a
    relabelled dataset is a different dataset. The label files of the directories above the
    source (:meth:`Source.label_files_above`) are read too, into ``Plan.label_files_above``.

    ``key_filter`` (a :class:`stagegate.key_filters.KeyFilter`) says which other keys are
    staged: the rest are not in the plan, its counts or its digest, so two filters that take
    different files make different datasets. Label files are read whatever it says (an
    exclude cannot leave data unlabelled), and so is a label file's name used as a folder.

    Raises :class:`PlanRejectedError` naming the unsafe keys (the first 20 and a count), among
    them a key under another (``a/b`` under the file ``a``);
    :class:`LabelSourceError` for a label file that is a "directory" (a marker, or objects
    under its name) or too big; :class:`transfer.errors.SourceNotFoundError` if the source
    holds nothing.
    """
    guard = NormalizationGuard()
    nesting = FileAsDirectoryGuard()
    digest = ManifestDigest()
    label_files: dict[str, LabelFile] = {}
    problems: list[str] = []
    problem_count = total_bytes = markers = files = listed = listed_bytes = filtered_out = 0
    with os.fdopen(open_nofollow(spill, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), "wb") as f:
        for obj in source.list():
            listed += 1
            listed_bytes += obj.size
            if on_listed is not None and listed % LISTED_EVERY == 0:
                on_listed(Listed(listed, listed_bytes))
            if is_directory_marker(obj.key, obj.size):
                if label_file_name is not None:
                    _no_label_directory(obj.key.rstrip("/") + "/", label_file_name)
                markers += 1
                continue
            is_label_file = label_file_name is not None and obj.key.rpartition("/")[2] == label_file_name
            if key_filter is not None and not is_label_file and not key_filter(obj.key):
                if label_file_name is not None:  # a label "folder" is refused, excluded or not
                    _no_label_directory(obj.key, label_file_name)
                filtered_out += 1
                continue
            try:
                parts = key_parts(obj.key)
                guard.add(obj.key)
                nesting.add(obj.key)
            except UnsafeKeyError as exc:
                problem_count += 1
                if len(problems) < MAX_PROBLEMS_SHOWN:
                    problems.append(str(exc))
                continue
            if label_file_name is not None and label_file_name in parts[:-1]:
                _no_label_directory(obj.key, label_file_name)
            digest.add(obj)
            directory = obj.key.rpartition("/")[0]
            if is_label_file:
                content = read_small(source, obj, MAX_LABEL_FILE_BYTES)
                label_files[directory] = LabelFile(directory, obj, content)
                continue
            files += 1
            total_bytes += obj.size
            f.write(_encode(obj))
    if on_listed is not None:
        on_listed(Listed(listed, listed_bytes, done=True))
    if files == 0 and filtered_out:
        raise InvalidInputError(
            f"the --include/--exclude filters leave none of the {filtered_out} objects of {source.url}"
        )
    above = source.label_files_above(label_file_name) if label_file_name is not None else ()
    plan = Plan(
        source.url, spill, files, total_bytes, digest.hexdigest(), markers, label_files, above, filtered_out
    )
    if guard.needs_second_pass and not problems:
        try:
            guard.check_against(o.key for o in plan.entries())
        except UnsafeKeyError as exc:
            problems.append(str(exc))
            problem_count += 1
    if problems:
        raise PlanRejectedError(problems, problem_count)
    return plan


def _no_label_directory(key: str, label_file_name: str) -> None:
    """Raise :class:`LabelSourceError` if a directory on ``key``'s path is named like a label file."""
    parts = key.split("/")[:-1]
    if label_file_name in parts:
        where = "/".join(parts[: parts.index(label_file_name) + 1])
        raise not_a_label_file(where, "a directory")


def directories_of(keys: Iterable[str]) -> set[str]:
    """Every directory holding one of ``keys``, and their parents up to the root ('')."""
    found: set[str] = set()
    for key in keys:
        directory = key.rpartition("/")[0]
        while directory not in found:
            found.add(directory)
            if not directory:
                break
            directory = directory.rpartition("/")[0]
    return found


def check_label_files(
    source: Source, label_files: Mapping[str, LabelFile], label_file_name: str, directories: Iterable[str]
) -> None:
    """Raise :class:`LabelChangedError` if the label of any of ``directories`` changed since
    planning (``label_files``, the plan's, by directory): a label file edited, removed, or
    newly put there.

    Run before each batch over the directories the batch touches: a look-up per directory,
    and label files, being one word, are re-read whole, which catches an edit even where
    the source has no revision to compare.
    """
    for directory in sorted(directories):
        key = f"{directory}/{label_file_name}" if directory else label_file_name
        planned = label_files.get(directory)
        if planned is None:
            try:
                appeared = source.find(key) is not None
            except LabelSourceError as exc:  # something that is no regular file appeared
                raise LabelChangedError(f"{key}: changed since planning ({exc})") from exc
            if appeared:
                raise LabelChangedError(f"{key}: a label file appeared since planning")
            continue
        try:  # a removed or replaced file fails the read itself (If-Match, revision checks)
            content = read_small(source, planned.object, MAX_LABEL_FILE_BYTES)
        except (TransferError, LabelSourceError, OSError) as exc:
            raise LabelChangedError(f"{key}: changed since planning ({exc})") from exc
        if content != planned.content:
            raise LabelChangedError(f"{key}: its label changed since planning")


def check_labels_before_ready(
    source: Source,
    label_files: Mapping[str, LabelFile],
    label_file_name: str,
    keys: Iterable[str],
    above: Sequence[LabelFileAbove] = (),
) -> None:
    """:func:`check_label_files` over every directory of ``keys`` and every planned label file,
    and the label files above the source against ``above`` (the plan's: those it found): run
    once after the last batch, before READY. Each batch checks the label files only as it
    begins, so one rewritten while the last (or only) batch copied is caught here."""
    check_label_files(source, label_files, label_file_name, directories_of(keys) | set(label_files))
    planned = {a.where: a.content for a in above if a.content is not None}
    now = {a.where: a.content for a in source.label_files_above(label_file_name) if a.content is not None}
    for where in sorted(planned.keys() | now.keys()):
        if planned.get(where) != now.get(where):
            what = "appeared" if where not in planned else "was removed" if where not in now else "changed"
            raise LabelChangedError(f"{where}: a label file above the source {what} since planning")
