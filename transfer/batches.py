"""A staging in steps that may run in different processes: copy batch by batch, then publish.

The service plans once, then a task per batch (a contiguous, ascending key range of the
plan) copies it into the node's dataset directory, and a last task publishes the dataset.
Tasks are delivered at least once and may be killed at any point; the batches of one
dataset on one node run one after another, never at the same time. So every step is
idempotent: a finished batch leaves a durable record, ``batches/<index>.jsonl`` in the
dataset's state directory, written only after its bytes are durable, and running the batch
again returns that record without touching the source. Publishing joins the records (index
order is key order) into the manifest, exactly as :func:`transfer.stage.stage` does in one process.
"""

import itertools
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from stagegate.transfer.engine import CopyEngine, TransferConfig, is_intact
from stagegate.transfer.errors import TransferError
from stagegate.transfer.journal import encode_records, newest_per_key, read_records_from, write_atomically
from stagegate.transfer.layout import state_dir_of
from stagegate.transfer.objects import CopiedFile, SourceObject, Verification
from stagegate.transfer.plan import LabelFile
from stagegate.transfer.progress import ProgressCallback, ProgressTracker
from stagegate.transfer.sink import MANIFEST, DatasetDir, open_nofollow, real_directory
from stagegate.transfer.sources.base import Source
from stagegate.transfer.stage import (
    StageResult,
    begin_rewrite,
    finish_batch,
    pair_with_prior,
    publish_records,
    start_batch,
)

log = logging.getLogger(__name__)

BATCHES_DIR = "batches"
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

    def to_json(self) -> dict[str, object]:
        """The counts, without the records."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "records"}


def batch_record_path(destination: str | Path, index: int) -> Path:
    """Where batch ``index``'s record lies once the batch is complete."""
    return state_dir_of(destination) / BATCHES_DIR / f"{index:010d}.jsonl"


def copy_batch(
    source: Source,
    destination: Path,
    index: int,
    objects: Sequence[SourceObject],
    config: TransferConfig,
    on_progress: ProgressCallback | None = None,
    label_file_name: str | None = None,
    label_files: Mapping[str, LabelFile] | None = None,
) -> BatchResult:
    """Copy batch ``index``, ``objects`` (in strictly ascending key order), into ``destination``.

    A batch already completed there returns its record without reading the source. Files
    an earlier run left verified (this batch's record, the manifest of an earlier publish)
    are kept if untouched; an interrupted run's files that no record vouches for are copied
    again. With ``config.recheck_labels`` and ``label_file_name``, the label files of the
    directories the batch touches are first compared with ``label_files`` (the plan's, by
    directory; none given means the plan found none). Once anything is to be written the
    dataset stops being ready; a batch with nothing to write leaves it as it is, so a batch
    delivered again after its dataset was published changes nothing.
    """
    started = time.monotonic()
    _check_batch(index, objects)
    with DatasetDir(destination) as dataset:
        path = real_directory(dataset.state_path / BATCHES_DIR) / f"{index:010d}.jsonl"
        recorded = _read_batch_record(path, index)
        if recorded is not None and _vouches_for(dataset, recorded.records, objects):
            return replace(recorded, already_done=True)
        pairs = list(pair_with_prior(iter(objects), _prior_records(dataset, objects, recorded)))
        to_copy = sum(1 for obj, prior in pairs if prior is None or not is_intact(dataset, obj, prior))
        if to_copy:
            begin_rewrite(dataset)
        tracker = ProgressTracker(len(objects), sum(obj.size for obj in objects), on_progress)
        done: list[BatchResult] = []

        def record(records: list[CopiedFile]) -> None:
            progress = tracker.state
            result = _batch_result(
                index,
                sorted(records, key=lambda r: r.key),
                progress.files_skipped,
                progress.bytes_skipped,
                round(time.monotonic() - started, 3),
            )
            write_atomically(path, _encode_batch_record(result))
            done.append(result)

        with CopyEngine(source, dataset, config, tracker) as engine:
            # With nothing to copy nothing crosses, so no label needs asking about.
            labels = label_file_name if to_copy else None
            futures = start_batch(engine, source, pairs, config, labels, label_files or {})
            # Synced whatever config.durability says, renames included: publishing trusts
            # the records without looking at the files. Nothing copied, nothing to sync.
            finish_batch(engine, dataset, futures, bool(to_copy), record)
    return done[0]


def publish_batches(
    destination: Path, *, source_url: str, digest: str, batches: int, files: int, bytes: int
) -> StageResult:
    """Publish a dataset whose ``batches`` batches were copied into ``destination``: write
    the manifest (every batch's records in index order, which is key order) and READY,
    then drop the batch records.

    Raises :class:`TransferError` naming the batches not (intact) there, or if the records
    hold other totals than ``files`` and ``bytes``. Publishing again once published (READY
    for the same ``digest``) returns the published result.
    """
    started = time.monotonic()
    if batches < 0:
        raise ValueError("batches must not be negative")
    destination = Path(destination)
    if batches and not destination.is_dir():
        raise _not_copied(destination, list(range(batches)), batches)
    with DatasetDir(destination) as dataset:
        batches_dir = real_directory(dataset.state_path / BATCHES_DIR)
        ready = dataset.read_ready()
        if ready is not None and ready.get("digest") == digest:
            result = StageResult(**{f.name: ready[f.name] for f in fields(StageResult)})
            if (result.files, result.bytes) != (files, bytes):
                raise TransferError(
                    f"{destination} is published with {result.files} files, {result.bytes} bytes; "
                    f"asked to publish {files} files, {bytes} bytes under the same digest"
                )
            shutil.rmtree(batches_dir, ignore_errors=True)  # a batch delivered after publishing
            return result
        summaries = _check_complete(destination, batches_dir, batches, files, bytes)
        dataset.clear_temp()
        result = publish_records(
            dataset,
            _records_in_order(batches_dir, batches),
            source_url=source_url,
            digest=digest,
            files=files,
            bytes=bytes,
            files_skipped=sum(s.files_skipped for s in summaries),
            bytes_skipped=sum(s.bytes_skipped for s in summaries),
            seconds=sum(s.seconds for s in summaries) + time.monotonic() - started,
        )
        shutil.rmtree(batches_dir, ignore_errors=True)
    return result


# -- batch records ----------------------------------------------------------------------


def _check_batch(index: int, objects: Sequence[SourceObject]) -> None:
    if index < 0:
        raise ValueError(f"batch index must not be negative, got {index}")
    if not objects:
        raise ValueError(f"batch {index} holds no object")
    for before, after in itertools.pairwise(objects):
        if not before.key < after.key:
            raise ValueError(f"batch {index}: keys must ascend strictly ({before.key!r}, {after.key!r})")


def _batch_result(
    index: int, records: list[CopiedFile], files_skipped: int, bytes_skipped: int, seconds: float
) -> BatchResult:
    total = sum(r.size for r in records)
    verified_source = sum(1 for r in records if r.verification is Verification.SOURCE)
    return BatchResult(
        index=index,
        files=len(records),
        bytes=total,
        files_copied=len(records) - files_skipped,
        bytes_copied=total - bytes_skipped,
        files_skipped=files_skipped,
        bytes_skipped=bytes_skipped,
        verified_source=verified_source,
        verified_local=len(records) - verified_source,
        seconds=seconds,
        records=records,
    )


def _encode_batch_record(result: BatchResult) -> Iterator[bytes]:
    """A header line with the counts of the run that copied the batch, then its records."""
    header = {
        "batch": result.index,
        "files": result.files,
        "bytes": result.bytes,
        "files_skipped": result.files_skipped,
        "bytes_skipped": result.bytes_skipped,
        "seconds": result.seconds,
    }
    yield json.dumps(header, separators=(",", ":")).encode() + b"\n"
    yield from encode_records(result.records)


def _read_batch_record(path: Path, index: int) -> BatchResult | None:
    """The batch record at ``path`` if it is there and whole, else None (run the batch)."""
    try:
        with os.fdopen(open_nofollow(path, os.O_RDONLY), "rb") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return None
    try:
        header = json.loads(lines[0])
        records = [CopiedFile.from_json(json.loads(line)) for line in lines[1:]]
        skipped = int(header["files_skipped"]), int(header["bytes_skipped"])
        result = _batch_result(index, records, *skipped, float(header["seconds"]))
        keys = [r.key for r in records]
        if (header["batch"], header["files"], header["bytes"]) != (index, result.files, result.bytes):
            raise ValueError("its header does not match its records")
        if not all(a < b for a, b in itertools.pairwise(keys)):
            raise ValueError("its records are not in key order")
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        log.warning("ignoring the batch record %s: damaged (%s)", path, exc)
        return None
    return result


def _vouches_for(dataset: DatasetDir, records: list[CopiedFile], objects: Sequence[SourceObject]) -> bool:
    """True if ``records`` are exactly ``objects``' and every file is still in place."""
    return len(records) == len(objects) and all(
        is_intact(dataset, obj, record) for obj, record in zip(objects, records, strict=True)
    )


def _prior_records(
    dataset: DatasetDir, objects: Sequence[SourceObject], recorded: BatchResult | None
) -> Iterator[CopiedFile]:
    """What earlier runs recorded for the batch's key range, in key order: the manifest of an
    earlier publish (its slice only), then this batch's own record, which is newer."""
    streams: list[Iterator[CopiedFile]] = []
    manifest = dataset.state_path / MANIFEST
    if manifest.is_file():
        first, last = objects[0].key, objects[-1].key
        streams.append(itertools.takewhile(lambda r: r.key <= last, read_records_from(manifest, first)))
    if recorded is not None:
        streams.append(iter(recorded.records))
    return newest_per_key(streams)


# -- publishing -------------------------------------------------------------------------


def _not_copied(destination: Path, missing: list[int], batches: int) -> TransferError:
    shown = ", ".join(str(i) for i in missing[:MAX_MISSING_SHOWN])
    more = f" and {len(missing) - MAX_MISSING_SHOWN} more" if len(missing) > MAX_MISSING_SHOWN else ""
    return TransferError(
        f"cannot publish {destination}: {len(missing)} of {batches} batches not copied "
        f"(missing or damaged: batch {shown}{more})"
    )


def _check_complete(
    destination: Path, batches_dir: Path, batches: int, files: int, bytes: int
) -> list[BatchResult]:
    """Every batch's counts, once its record is found whole, following the previous batch
    in key order, and the totals add up. Only counts are kept: memory stays one batch."""
    summaries: list[BatchResult] = []
    missing: list[int] = []
    last_key: str | None = None
    for index in range(batches):
        recorded = _read_batch_record(batches_dir / f"{index:010d}.jsonl", index)
        if recorded is None:
            missing.append(index)
            continue
        if recorded.records:
            if last_key is not None and not last_key < recorded.records[0].key:
                raise TransferError(
                    f"cannot publish {destination}: batch {index} does not follow the batch "
                    f"before it in key order (the batches are not one plan's)"
                )
            last_key = recorded.records[-1].key
        summaries.append(replace(recorded, records=[]))
    if missing:
        raise _not_copied(destination, missing, batches)
    got_files, got_bytes = sum(s.files for s in summaries), sum(s.bytes for s in summaries)
    if (got_files, got_bytes) != (files, bytes):
        raise TransferError(
            f"cannot publish {destination}: the batches hold {got_files} files, {got_bytes} bytes; "
            f"the plan has {files} files, {bytes} bytes"
        )
    return summaries


def _records_in_order(batches_dir: Path, batches: int) -> Iterator[CopiedFile]:
    for index in range(batches):
        recorded = _read_batch_record(batches_dir / f"{index:010d}.jsonl", index)
        if recorded is None:  # checked a moment ago; no batch runs while its dataset publishes
            raise TransferError(f"batch {index}: its record vanished while publishing")
        yield from recorded.records
