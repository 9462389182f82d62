"""A whole staging in one process: plan, copy batch by batch, publish.

The service (issue "Control plane") runs the same three steps as separate tasks; this is
the embedded path, and the reference for what a staging means.
"""

import json
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

from stagegate.errors import InvalidInputError
from stagegate.transfer.engine import CopyEngine, TransferConfig
from stagegate.transfer.journal import Journal, encode_records, read_records
from stagegate.transfer.layout import LEGACY_STATE_DIR, state_dir_of
from stagegate.transfer.objects import CopiedFile, SourceObject, Verification
from stagegate.transfer.parts import batched_by_weight
from stagegate.transfer.plan import (
    LabelFile,
    Plan,
    check_label_files,
    check_labels_before_ready,
    directories_of,
    plan_dataset,
)
from stagegate.transfer.progress import ProgressCallback, ProgressTracker
from stagegate.transfer.sink import MANIFEST, READY_MARKER, DatasetDir, Durability, refuse_foreign_directory
from stagegate.transfer.sources.base import Source

PLAN_FILE = "plan.jsonl"
BATCHES_IN_FLIGHT = 2  # while one batch is synced and journaled, the next one copies


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

    @property
    def state_dir(self) -> str:
        """Where the manifest and READY of the dataset lie: beside it, not in it."""
        return str(state_dir_of(self.destination))

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def read_manifest(destination: str | Path) -> Iterator[CopiedFile]:
    """The manifest of a ready dataset: every file's record, in key order."""
    return read_records(state_dir_of(destination) / MANIFEST)


def pair_with_prior(
    entries: Iterator[SourceObject], prior: Iterator[CopiedFile]
) -> Iterator[tuple[SourceObject, CopiedFile | None]]:
    """Merge-join the plan with earlier records; both streams ascend by key."""
    record = next(prior, None)
    for obj in entries:
        while record is not None and record.key < obj.key:
            record = next(prior, None)
        yield obj, (record if record is not None and record.key == obj.key else None)


def stage(
    source: Source,
    destination: str | Path,
    config: TransferConfig | None = None,
    on_progress: ProgressCallback | None = None,
    on_plan: Callable[[Plan], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    label_file_name: str | None = None,
) -> StageResult:
    """Copy every object of ``source`` into ``destination`` and mark it ready.

    Files already there from an earlier run, unchanged and verified, are kept. The dataset
    is ready (``READY`` exists in its state directory beside it,
    :func:`transfer.layout.state_dir_of`) only when every file is verified and durable.
    ``on_plan`` sees the plan before any byte moves; if it raises (a policy denial), the
    destination is left as it was found. Files named ``label_file_name`` label their
    directory and are not staged; with ``config.recheck_labels`` they are re-read before
    each batch and once more before READY (a change raises :class:`transfer.errors.LabelChangedError`, and
    the dataset is not published), and every object's own label right before it is copied.

    ``destination`` must be new, empty or an earlier staging's (else
    :class:`DestinationNotEmptyError`); its lock is held throughout, and a staging already
    holding it fails this one at once (:class:`DestinationBusyError`).
    """
    config = config or TransferConfig()
    started = clock()
    if not str(destination).strip():
        # Path("") is the current directory: an unset variable must not stage over a home.
        raise InvalidInputError("the destination is empty: name the directory to stage into")
    destination = Path(destination)
    refuse_foreign_directory(destination)
    existed = destination.exists()
    had_state = state_dir_of(destination).exists() or (destination / LEGACY_STATE_DIR).is_dir()
    with DatasetDir(destination) as dataset:
        dataset.lock_exclusive()  # held until the dataset is closed: for the whole staging
        try:
            plan = plan_dataset(source, dataset.state_path / PLAN_FILE, label_file_name)
            if on_plan is not None:
                on_plan(plan)
        except BaseException:
            # A refused or missing source leaves the destination as it found it.
            (dataset.state_path / PLAN_FILE).unlink(missing_ok=True)
            if not existed:
                shutil.rmtree(destination, ignore_errors=True)
            if not had_state:
                shutil.rmtree(dataset.state_path, ignore_errors=True)
            raise
        begin_rewrite(dataset)
        journal = Journal(dataset.state_path)
        tracker = ProgressTracker(plan.files, plan.bytes, on_progress)
        pairs = pair_with_prior(plan.entries(), journal.earlier(dataset.state_path / MANIFEST))
        batches = batched_by_weight(
            pairs, lambda p: p[0].size, config.batch_max_bytes, config.batch_max_files
        )
        # FILE durability fsyncs every file before its rename; the renames themselves are
        # synced once, before the manifest: a journal record is a hint, checked on resume.
        sync = config.durability is Durability.BATCH
        with CopyEngine(source, dataset, config, tracker) as engine:
            in_flight: deque[tuple[int, list[Future[CopiedFile]]]] = deque()

            def finish(index: int, futures: "list[Future[CopiedFile]]") -> None:
                finish_batch(engine, dataset, futures, sync, partial(journal.record_batch, index))

            for index, batch in enumerate(batches):
                futures = start_batch(engine, source, batch, config, label_file_name, plan.label_files)
                in_flight.append((index, futures))
                if len(in_flight) >= BATCHES_IN_FLIGHT:
                    finish(*in_flight.popleft())
            while in_flight:
                finish(*in_flight.popleft())
        if config.recheck_labels and label_file_name is not None:
            check_labels_before_ready(
                source, plan.label_files, label_file_name, (obj.key for obj in plan.entries())
            )
        progress = tracker.state
        result = publish_records(
            dataset,
            journal.current(),
            source_url=plan.source_url,
            digest=plan.digest,
            files=plan.files,
            bytes=plan.bytes,
            files_skipped=progress.files_skipped,
            bytes_skipped=progress.bytes_skipped,
            seconds=clock() - started,
        )
        journal.discard_earlier()
        journal.remove()
        (dataset.state_path / PLAN_FILE).unlink()
        return result


# -- the steps stage() and the service's batch tasks (transfer.batches) share -----------


def begin_rewrite(dataset: DatasetDir) -> None:
    """From here on the directory changes: it is not ready until published again, and what
    an interrupted copy left in the temporary directory goes."""
    dataset.remove_state_file(READY_MARKER)
    dataset.clear_temp()


def start_batch(
    engine: CopyEngine,
    source: Source,
    batch: Sequence[tuple[SourceObject, CopiedFile | None]],
    config: TransferConfig,
    label_file_name: str | None,
    label_files: Mapping[str, LabelFile],
) -> "list[Future[CopiedFile]]":
    """Start copying ``batch`` (objects with their earlier records), once the label files of
    the directories it touches are found unchanged (with ``config.recheck_labels``)."""
    if config.recheck_labels and label_file_name is not None:
        directories = directories_of(obj.key for obj, _ in batch)
        check_label_files(source, label_files, label_file_name, directories)
    return [engine.submit(obj, prior) for obj, prior in batch]


def finish_batch(
    engine: CopyEngine,
    dataset: DatasetDir,
    futures: "list[Future[CopiedFile]]",
    sync: bool,
    record: Callable[[list[CopiedFile]], None],
) -> None:
    """Wait for a batch's copies, then ``record`` them; with ``sync``, only once the batch's
    bytes are durable, so the record never vouches for what a crash could take back."""
    records = engine.collect(futures)
    if sync:
        dataset.sync()
    record(records)


def publish_records(
    dataset: DatasetDir,
    records: Iterable[CopiedFile],
    *,
    source_url: str,
    digest: str,
    files: int,
    bytes: int,
    files_skipped: int,
    bytes_skipped: int,
    seconds: float,
) -> StageResult:
    """Write the manifest (``records``, in key order) and the READY marker."""
    dataset.sync()  # directory entries of every rename, and anything not yet synced
    counts = {level: 0 for level in Verification}

    def counted() -> Iterator[CopiedFile]:
        for record in records:
            counts[record.verification] += 1
            yield record

    dataset.write_state_file(MANIFEST, encode_records(counted()))
    result = StageResult(
        source=source_url,
        destination=str(dataset.path),
        digest=digest,
        files=files,
        bytes=bytes,
        files_copied=files - files_skipped,
        bytes_copied=bytes - bytes_skipped,
        files_skipped=files_skipped,
        verified_source=counts[Verification.SOURCE],
        verified_local=counts[Verification.LOCAL],
        seconds=round(seconds, 3),
    )
    ready = {**result.to_json(), "manifest": MANIFEST, "completed_at": time.time()}
    dataset.write_state_file(READY_MARKER, [json.dumps(ready, indent=2).encode() + b"\n"])
    return result
