"""The steps of a staging after planning: copy batch ... batch, then publish. The embedded
``stagegate stage`` (:func:`transfer.stage.stage`) runs them in one process, a couple of
batches in flight; the service runs each as its own task (:func:`copy_batch`,
:func:`publish_batches`), in whatever process gets the message.

A batch is a contiguous, ascending key range of the plan. Tasks are delivered at least once
and may be killed at any point, so every step is idempotent: a batch keeps one durable
record (:mod:`transfer.batch_record`), appended as its files become durable; running it
again keeps every file recorded and untouched, copies the rest, and a batch found complete
returns its record without touching the source. Publishing joins the records (index order
is key order) into the manifest and writes READY.
"""

import contextlib
import itertools
import json
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, wait
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from stagegate.transfer.batch_record import (
    BATCHES_DIR,
    BatchCounts,
    BatchRecord,
    BatchRecordWriter,
    read_batch_record,
    record_name,
)
from stagegate.transfer.copy_processes import SourceRecipe
from stagegate.transfer.engine import CopyEngine, LabelGate, TransferConfig, is_intact
from stagegate.transfer.errors import TransferError
from stagegate.transfer.layout import state_dir_of
from stagegate.transfer.objects import CopiedFile, SourceObject, Verification
from stagegate.transfer.plan import LabelFile, check_label_files, directories_of
from stagegate.transfer.progress import ProgressCallback, ProgressTracker
from stagegate.transfer.records import encode_records, newest_per_key, read_records, read_records_from
from stagegate.transfer.sink import MANIFEST, READY_MARKER, DatasetDir, real_directory
from stagegate.transfer.sources.base import Source

# Verified files are recorded in groups, one filesystem sync a group, at most this often: a
# kill loses the files in flight and at most this long of finished ones, not a whole batch.
RECORD_INTERVAL = 1.0
MAX_MISSING_SHOWN = 20


@dataclass(frozen=True, slots=True)
class BatchResult:
    """One copied batch. ``records`` are its files' manifest lines, in key order.

    The counts are those of the run that completed the batch: a repeated run
    (``already_done``) returns them unchanged.
    """

    index: int
    files: int
    bytes: int
    files_copied: int
    bytes_copied: int
    files_skipped: int  # found already present and verified
    bytes_skipped: int
    verified_source: int
    verified_local: int
    seconds: float
    records: list[CopiedFile] = field(repr=False)
    already_done: bool = False  # this call found the batch complete and did nothing

    @classmethod
    def of(cls, index: int, records: list[CopiedFile], counts: BatchCounts) -> "BatchResult":
        verified_source = sum(1 for r in records if r.verification is Verification.SOURCE)
        return cls(
            index=index,
            files=counts.files,
            bytes=counts.bytes,
            files_copied=counts.files - counts.files_skipped,
            bytes_copied=counts.bytes - counts.bytes_skipped,
            files_skipped=counts.files_skipped,
            bytes_skipped=counts.bytes_skipped,
            verified_source=verified_source,
            verified_local=len(records) - verified_source,
            seconds=counts.seconds,
            records=records,
        )

    def to_json(self) -> dict[str, object]:
        """The counts, without the records."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "records"}


@dataclass(frozen=True, slots=True)
class StageResult:
    source: str
    destination: str
    digest: str
    files: int
    bytes: int
    files_copied: int
    bytes_copied: int
    files_skipped: int
    verified_source: int
    verified_local: int
    seconds: float
    files_removed: int = 0  # gone from the source, or strays: removed before READY (sync, replace)

    @property
    def state_dir(self) -> str:
        """Where the manifest and READY of the dataset lie: beside it, not in it."""
        return str(state_dir_of(self.destination))

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def read_manifest(destination: str | Path) -> Iterator[CopiedFile]:
    """The manifest of a ready dataset: every file's record, in key order."""
    return read_records(state_dir_of(destination) / MANIFEST)


def batch_record_path(destination: str | Path, index: int) -> Path:
    """Where batch ``index``'s record lies while the dataset is being copied."""
    return state_dir_of(destination) / BATCHES_DIR / record_name(index)


def begin_rewrite(dataset: DatasetDir) -> None:
    """From here on the directory changes: it is not ready until published again, and what
    an interrupted copy left in the temporary directory goes."""
    dataset.remove_state_file(READY_MARKER)
    dataset.clear_temp()


def pair_with_prior(
    entries: Iterator[SourceObject], prior: Iterator[CopiedFile]
) -> Iterator[tuple[SourceObject, CopiedFile | None]]:
    """Merge-join the plan with earlier records; both streams ascend by key."""
    record = next(prior, None)
    for obj in entries:
        while record is not None and record.key < obj.key:
            record = next(prior, None)
        yield obj, (record if record is not None and record.key == obj.key else None)


# -- one batch --------------------------------------------------------------------------


class BatchCopy:
    """One batch: what earlier runs left of it, then its copies in flight and its record.

    Made by :func:`open_batch`; :func:`copy_batches` starts and completes it.
    """

    def __init__(
        self,
        dataset: DatasetDir,
        index: int,
        objects: Sequence[SourceObject],
        taken: Sequence[CopiedFile] = (),
    ) -> None:
        _check_batch(index, objects)
        self.index = index
        self.objects = objects
        self.done: BatchResult | None = None  # complete already: nothing to do
        self.to_copy = 0  # files no earlier record vouches for
        self.futures: list[Future[CopiedFile]] = []
        self._pairs: list[tuple[SourceObject, CopiedFile | None]] = []
        self._recorded: set[int] = set()  # indexes in futures of the files in the record
        self._writer: BatchRecordWriter | None = None
        self._started = 0.0
        self._path = real_directory(dataset.state_path / BATCHES_DIR) / record_name(index)
        recorded = read_batch_record(self._path, index)
        if recorded is not None and recorded.counts is not None and _vouches_for(dataset, recorded, objects):
            self.done = replace(BatchResult.of(index, recorded.records, recorded.counts), already_done=True)
            return
        pairs = pair_with_prior(iter(objects), _prior_records(dataset, objects, recorded, taken))
        self._pairs = [(o, p if p is not None and is_intact(dataset, o, p) else None) for o, p in pairs]
        self.to_copy = sum(1 for _, prior in self._pairs if prior is None)

    def start(
        self,
        engine: CopyEngine,
        source: Source,
        config: TransferConfig,
        label_file_name: str | None,
        label_files: Mapping[str, LabelFile],
    ) -> None:
        """Begin the record with the files kept, then start copying the rest, once the label
        files of the directories it touches are found unchanged (``config.recheck_labels``)."""
        self._started = time.monotonic()
        if self.to_copy and config.recheck_labels and label_file_name is not None:
            directories = directories_of(o.key for o in self.objects)
            check_label_files(source, label_files, label_file_name, directories)
        kept = [prior for _, prior in self._pairs if prior is not None]
        self._writer = BatchRecordWriter(self._path, self.index, kept)
        # Filled as the copies start, so a Ctrl-C while they are being started still finds, and
        # records, the files that finished (it used to find none and lose them all).
        engine.submit_all(self._pairs, into=self.futures)

    def pending(self) -> "list[Future[CopiedFile]]":
        return [f for f in self.futures if not f.done()]

    def failed(self) -> bool:
        return any(_failed(f) for f in self.futures)

    def _finished_unrecorded(self) -> Iterator[int]:
        for i, future in enumerate(list(self.futures)):
            if i not in self._recorded and future.done() and not _failed(future) and not future.cancelled():
                yield i

    def has_unrecorded(self) -> bool:
        return next(self._finished_unrecorded(), None) is not None

    def record_finished(self) -> None:
        """Append the files verified since the last call. Only after a sync of the dataset:
        a record vouches for bytes and a rename that a crash can no longer take back."""
        if self._writer is None:
            return
        group = []
        for i in list(self._finished_unrecorded()):
            self._recorded.add(i)
            record = self.futures[i].result()
            if record is not self._pairs[i][1]:  # a file kept is in the record since start()
                group.append(record)
        self._writer.append(group)

    def complete(self, records: list[CopiedFile]) -> BatchResult:
        """Every file is recorded (after :meth:`record_finished`): write the record's last line."""
        assert self._writer is not None
        kept = [obj for (obj, prior), record in zip(self._pairs, records, strict=True) if record is prior]
        counts = BatchCounts(
            files=len(records),
            bytes=sum(r.size for r in records),
            files_skipped=len(kept),
            bytes_skipped=sum(obj.size for obj in kept),
            seconds=round(time.monotonic() - self._started, 3),
        )
        self._writer.complete(counts)
        return BatchResult.of(self.index, sorted(records, key=lambda r: r.key), counts)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def _failed(future: "Future[CopiedFile]") -> bool:
    return future.done() and not future.cancelled() and future.exception() is not None


def open_batch(
    dataset: DatasetDir, index: int, objects: Sequence[SourceObject], taken: Sequence[CopiedFile] = ()
) -> BatchCopy:
    """Batch ``index``, ``objects`` (strictly ascending keys), as earlier runs left it in
    ``dataset``: complete (``.done``) or with the files it still needs (``.to_copy``).
    ``taken`` are records of files just put in place from elsewhere than the source (the node's
    cache, :mod:`transfer.local_take`), verified and durable: kept like an earlier run's."""
    return BatchCopy(dataset, index, objects, taken)


def copy_batches(
    engine: CopyEngine,
    source: Source,
    dataset: DatasetDir,
    batches: Iterable[BatchCopy],
    config: TransferConfig,
    tracker: ProgressTracker,
    *,
    in_flight: int = 1,
    label_file_name: str | None = None,
    label_files: Mapping[str, LabelFile] | None = None,
    record_interval: float = RECORD_INTERVAL,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[BatchResult]:
    """Copy ``batches`` in order, up to ``in_flight`` at once, yielding each as it completes
    (one found complete already counts its files as skipped in ``tracker``).

    While copies run, every ``record_interval`` seconds in which files finished, the dataset
    is synced once and every batch in flight appends those files to its record; a batch
    completes with a last sync and its record's last line. On any failure (or an interrupt)
    the copies stop, and what already finished is synced and recorded before the error
    goes on: a rerun copies only the rest.
    """
    queue: deque[BatchCopy] = deque()
    upcoming = iter(batches)
    last_sync = clock()
    try:
        while True:
            while len(queue) < in_flight and (batch := next(upcoming, None)) is not None:
                queue.append(batch)
                if batch.done is None:
                    batch.start(engine, source, config, label_file_name, label_files or {})
                else:
                    for obj in batch.objects:
                        tracker.file_skipped(obj.size)
            if not queue:
                return
            head = queue[0]
            if head.done is not None:
                queue.popleft()
                yield head.done
                continue
            while (waiting := head.pending()) and not head.failed():
                timeout = max(0.0, last_sync + record_interval - clock())
                wait(waiting, timeout=timeout, return_when=FIRST_EXCEPTION)
                if clock() >= last_sync + record_interval:
                    if any(b.has_unrecorded() for b in queue):
                        _sync_and_record(dataset, queue)
                    last_sync = clock()
            records = engine.collect(head.futures)  # raises the first failure, cancelling the rest
            if head.to_copy:
                _sync_and_record(dataset, queue)
            result = head.complete(records)
            queue.popleft().close()
            yield result
    except BaseException:
        _keep_what_finished(engine, dataset, queue)
        raise
    finally:
        for batch in queue:
            batch.close()


def _sync_and_record(dataset: DatasetDir, queue: Iterable[BatchCopy]) -> None:
    # One sync for every batch in flight: bytes and renames, whatever config.durability says,
    # since publishing trusts the records without looking at the files.
    dataset.sync()
    for batch in queue:
        batch.record_finished()


def _keep_what_finished(engine: CopyEngine, dataset: DatasetDir, queue: Iterable[BatchCopy]) -> None:
    """After a failure: stop the copies, then record the files that did finish."""
    engine.cancel()
    started = [b for b in queue if b.futures]
    wait([f for b in started for f in b.futures])
    with contextlib.suppress(Exception):  # the failure under way matters more; a rerun copies them
        _sync_and_record(dataset, started)


def copy_batch(
    source: Source,
    destination: Path,
    index: int,
    objects: Sequence[SourceObject],
    config: TransferConfig,
    on_progress: ProgressCallback | None = None,
    label_file_name: str | None = None,
    label_files: Mapping[str, LabelFile] | None = None,
    label_gate: LabelGate | None = None,
    taken: Sequence[CopiedFile] = (),
    source_recipe: SourceRecipe | None = None,
) -> BatchResult:
    """The service's copy step: batch ``index``, ``objects`` (in strictly ascending key
    order), into ``destination``.

    A batch already completed there returns its record without reading the source. Files
    an earlier run left verified (this batch's record, complete or interrupted, or the
    manifest of an earlier publish) are kept if untouched; the rest are copied. With
    ``config.recheck_labels`` and ``label_file_name``, the label files of the directories
    the batch touches are first compared with ``label_files`` (the plan's, by directory;
    none given means the plan found none); ``label_gate`` decides on each object's own label
    before a byte of it is written (:func:`transfer.stage.stage`). Once anything is to be
    written the dataset stops being ready; a batch with nothing to write leaves it as it
    is, so a batch delivered again after its dataset was published changes nothing. ``taken``
    (in key order) are files of the batch already put in place and verified (:func:`open_batch`):
    they count as skipped, and only the rest is read from the source. With
    ``config.processes`` above 1, ``source_recipe`` opens the source in each copy process
    (:mod:`transfer.copy_processes`; without one every file is copied here).
    """
    with DatasetDir(destination) as dataset:
        batch = open_batch(dataset, index, objects, taken)
        if batch.done is not None:
            return batch.done
        if batch.to_copy:
            begin_rewrite(dataset)
        tracker = ProgressTracker(len(objects), sum(obj.size for obj in objects), on_progress)
        with CopyEngine(
            source, dataset, config, tracker, label_gate=label_gate, source_recipe=source_recipe
        ) as engine:
            (result,) = copy_batches(
                engine, source, dataset, [batch], config, tracker,
                label_file_name=label_file_name, label_files=label_files,
            )  # fmt: skip
    return result


# -- publishing -------------------------------------------------------------------------


def publish(
    dataset: DatasetDir,
    *,
    source_url: str,
    digest: str,
    batches: int,
    files: int,
    bytes: int,
    skipped: tuple[int, int] | None = None,
    seconds: float | None = None,
    files_removed: int = 0,
    selection: Mapping[str, object] | None = None,
) -> StageResult:
    """Publish ``dataset`` from the records of its ``batches`` batches: the manifest (every
    batch's records in index order, which is key order) and READY; then drop the records.
    ``selection`` (the embedded staging's source as it is known, whatever its spelling, and
    its include and exclude rules) is written into READY beside the result, so the marker
    alone says which source, and which part of it, the directory holds.

    ``skipped`` (files, bytes) and ``seconds`` default to the sums of the batches' counts;
    a run that copied every batch itself knows its own; ``files_removed`` is what it removed
    before publishing (:func:`transfer.strays.remove_strays`). Raises :class:`TransferError` naming
    the batches not (intact) there, or if the records hold other totals than ``files`` and
    ``bytes``. Publishing again once published (READY for the same ``digest``) returns the
    published result.
    """
    started = time.monotonic()
    batches_dir = real_directory(dataset.state_path / BATCHES_DIR)
    ready = dataset.read_ready()
    if ready is not None and ready.get("digest") == digest:
        result = StageResult(**{f.name: ready[f.name] for f in fields(StageResult) if f.name in ready})
        if (result.files, result.bytes) != (files, bytes):
            raise TransferError(
                f"{dataset.path} is published with {result.files} files, {result.bytes} bytes; "
                f"asked to publish {files} files, {bytes} bytes under the same digest"
            )
        shutil.rmtree(batches_dir, ignore_errors=True)  # a batch delivered after publishing
        return result
    # One pass over the records: each batch is checked as it is copied into the manifest, which
    # is renamed into place only if every batch was there and the totals add up.
    joined = _JoinedRecords(dataset.path, batches_dir, batches, files, bytes)
    dataset.write_state_file(MANIFEST, encode_records(joined))
    dataset.clear_temp()
    dataset.sync()  # directory entries of every rename, and anything not yet synced, before READY
    summaries, counts = joined.summaries, joined.verified
    if skipped is None:
        skipped = sum(s.files_skipped for s in summaries), sum(s.bytes_skipped for s in summaries)
    if seconds is None:
        seconds = sum(s.seconds for s in summaries) + time.monotonic() - started
    result = StageResult(
        source=source_url,
        destination=str(dataset.path),
        digest=digest,
        files=files,
        bytes=bytes,
        files_copied=files - skipped[0],
        bytes_copied=bytes - skipped[1],
        files_skipped=skipped[0],
        verified_source=counts[Verification.SOURCE],
        verified_local=counts[Verification.LOCAL],
        seconds=round(seconds, 3),
        files_removed=files_removed,
    )
    ready_marker = {
        **result.to_json(),
        **(selection or {}),
        "manifest": MANIFEST,
        "completed_at": time.time(),
    }
    dataset.write_state_file(READY_MARKER, [json.dumps(ready_marker, indent=2).encode() + b"\n"])
    shutil.rmtree(batches_dir, ignore_errors=True)
    return result


def publish_batches(
    destination: Path,
    *,
    source_url: str,
    digest: str,
    batches: int,
    files: int,
    bytes: int,
    selection: Mapping[str, object],
) -> StageResult:
    """The service's publish step: :func:`publish` the dataset whose ``batches`` batches
    were copied into ``destination``. ``selection`` (from
    :func:`transfer.dataset_source.ready_selection`) is required: READY has one shape whichever
    path wrote it."""
    if batches < 0:
        raise ValueError("batches must not be negative")
    destination = Path(destination)
    if batches and not destination.is_dir():
        raise _not_copied(destination, list(range(batches)), batches)
    with DatasetDir(destination) as dataset:
        return publish(
            dataset,
            source_url=source_url,
            digest=digest,
            batches=batches,
            files=files,
            bytes=bytes,
            selection=selection,
        )


# -- checks over records ----------------------------------------------------------------


def _check_batch(index: int, objects: Sequence[SourceObject]) -> None:
    if index < 0:
        raise ValueError(f"batch index must not be negative, got {index}")
    if not objects:
        raise ValueError(f"batch {index} holds no object")
    for before, after in itertools.pairwise(objects):
        if not before.key < after.key:
            raise ValueError(f"batch {index}: keys must ascend strictly ({before.key!r}, {after.key!r})")


def _vouches_for(dataset: DatasetDir, recorded: BatchRecord, objects: Sequence[SourceObject]) -> bool:
    """True if ``recorded`` holds exactly ``objects``' records and every file is still in place."""
    return len(recorded.records) == len(objects) and all(
        is_intact(dataset, obj, record) for obj, record in zip(objects, recorded.records, strict=True)
    )


def _prior_records(
    dataset: DatasetDir,
    objects: Sequence[SourceObject],
    recorded: BatchRecord | None,
    taken: Sequence[CopiedFile] = (),
) -> Iterator[CopiedFile]:
    """What earlier runs recorded for the batch's key range, in key order: the manifest of an
    earlier publish (its slice only), then this batch's own record, which is newer, then the
    files just taken from elsewhere, newest."""
    streams: list[Iterator[CopiedFile]] = []
    manifest = dataset.state_path / MANIFEST
    if manifest.is_file():
        first, last = objects[0].key, objects[-1].key
        streams.append(itertools.takewhile(lambda r: r.key <= last, read_records_from(manifest, first)))
    if recorded is not None:
        streams.append(iter(recorded.records))
    if taken:
        streams.append(iter(taken))
    return newest_per_key(streams)


def _not_copied(destination: Path, missing: list[int], batches: int) -> TransferError:
    shown = ", ".join(str(i) for i in missing[:MAX_MISSING_SHOWN])
    more = f" and {len(missing) - MAX_MISSING_SHOWN} more" if len(missing) > MAX_MISSING_SHOWN else ""
    return TransferError(
        f"cannot publish {destination}: {len(missing)} of {batches} batches not copied "
        f"(missing or damaged: batch {shown}{more})"
    )


class _JoinedRecords:
    """The records of batches ``0 .. batches-1`` in index order (key order), each batch read once
    and checked as it goes: complete, following the batch before it in key order, and the
    totals those of the plan. Raises :class:`TransferError` at the end naming every batch not
    (intact) there, so the manifest being written from it is never renamed into place. Only
    one batch's records are held at a time."""

    def __init__(self, destination: Path, batches_dir: Path, batches: int, files: int, bytes: int) -> None:
        self._destination = destination
        self._dir = batches_dir
        self._batches = batches
        self._totals = (files, bytes)
        self.summaries: list[BatchCounts] = []
        self.verified = {level: 0 for level in Verification}

    def __iter__(self) -> Iterator[CopiedFile]:
        missing: list[int] = []
        last_key: str | None = None
        for index in range(self._batches):
            recorded = read_batch_record(self._dir / record_name(index), index)
            if recorded is None or recorded.counts is None:
                missing.append(index)
                continue
            self.summaries.append(recorded.counts)
            if missing or not recorded.records:
                continue  # the manifest will not be kept: only the rest of the check matters
            if last_key is not None and not last_key < recorded.records[0].key:
                raise TransferError(
                    f"cannot publish {self._destination}: batch {index} does not follow the batch "
                    f"before it in key order (the batches are not one plan's)"
                )
            last_key = recorded.records[-1].key
            for record in recorded.records:
                self.verified[record.verification] += 1
                yield record
        if missing:
            raise _not_copied(self._destination, missing, self._batches)
        got = sum(s.files for s in self.summaries), sum(s.bytes for s in self.summaries)
        if got != self._totals:
            raise TransferError(
                f"cannot publish {self._destination}: the batches hold {got[0]} files, {got[1]} bytes; "
                f"the plan has {self._totals[0]} files, {self._totals[1]} bytes"
            )
