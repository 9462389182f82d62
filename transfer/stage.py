"""A whole staging in one process: plan, copy batch by batch, publish.

The service (issue "Control plane") runs the same three steps as separate tasks; this is
the embedded path, and the reference for what a staging means.
"""

import json
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from pathlib import Path

from transfer.engine import CopyEngine, TransferConfig
from transfer.journal import Journal, encode_records, read_records
from transfer.keys import STATE_DIR
from transfer.objects import CopiedFile, SourceObject, Verification
from transfer.parts import batched_by_weight
from transfer.plan import Plan, check_label_files, directories_of, plan_dataset
from transfer.progress import ProgressCallback, ProgressTracker
from transfer.sink import MANIFEST, READY_MARKER, DatasetDir, Durability
from transfer.sources.base import Source

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

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def read_manifest(destination: str | Path) -> Iterator[CopiedFile]:
    """The manifest of a ready dataset: every file's record, in key order."""
    return read_records(Path(destination) / STATE_DIR / MANIFEST)


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
    is ready (``.stagegate/READY`` exists) only when every file is verified and durable.
    ``on_plan`` sees the plan before any byte moves; if it raises (a policy denial), the
    destination is left as it was found. Files named ``label_file_name`` label their
    directory and are not staged; with ``config.recheck_labels`` they are re-read before
    each batch, and every object's own label right before it is copied.
    """
    config = config or TransferConfig()
    started = clock()
    destination = Path(destination)
    existed, had_state = destination.exists(), (destination / STATE_DIR).exists()
    with DatasetDir(destination) as dataset:
        try:
            plan = plan_dataset(source, dataset.state_path / PLAN_FILE, label_file_name)
            if on_plan is not None:
                on_plan(plan)
        except BaseException:
            # A refused or missing source leaves the destination as it found it.
            (dataset.state_path / PLAN_FILE).unlink(missing_ok=True)
            if not existed:
                shutil.rmtree(destination, ignore_errors=True)
            elif not had_state:
                shutil.rmtree(dataset.state_path, ignore_errors=True)
            raise
        # From here on the directory changes: it is not ready until published again.
        dataset.remove_state_file(READY_MARKER)
        dataset.clear_temp()
        journal = Journal(dataset.state_path)
        tracker = ProgressTracker(plan.files, plan.bytes, on_progress)
        pairs = pair_with_prior(plan.entries(), journal.earlier(dataset.state_path / MANIFEST))
        batches = batched_by_weight(
            pairs, lambda p: p[0].size, config.batch_max_bytes, config.batch_max_files
        )
        with CopyEngine(source, dataset, config, tracker) as engine:
            in_flight: deque[tuple[int, list[Future[CopiedFile]]]] = deque()
            for index, batch in enumerate(batches):
                if config.recheck_labels and label_file_name is not None:
                    directories = directories_of(obj.key for obj, _ in batch)
                    check_label_files(source, plan, label_file_name, directories)
                in_flight.append((index, [engine.submit(obj, prior) for obj, prior in batch]))
                if len(in_flight) >= BATCHES_IN_FLIGHT:
                    _finish_batch(engine, dataset, journal, config, *in_flight.popleft())
            while in_flight:
                _finish_batch(engine, dataset, journal, config, *in_flight.popleft())
        progress = tracker.state
        result = _publish(
            dataset, journal, plan, progress.files_skipped, progress.bytes_skipped, clock() - started
        )
        (dataset.state_path / PLAN_FILE).unlink()
        return result


def _finish_batch(
    engine: CopyEngine,
    dataset: DatasetDir,
    journal: Journal,
    config: TransferConfig,
    index: int,
    futures: "list[Future[CopiedFile]]",
) -> None:
    records = engine.collect(futures)
    if config.durability is Durability.BATCH:
        dataset.sync()  # the batch's bytes are durable before the journal says so
    journal.record_batch(index, records)


def _publish(
    dataset: DatasetDir,
    journal: Journal,
    plan: Plan,
    files_skipped: int,
    bytes_skipped: int,
    seconds: float,
) -> StageResult:
    dataset.sync()  # directory entries of every rename, and anything not yet synced
    counts = {level: 0 for level in Verification}

    def counted() -> Iterator[CopiedFile]:
        for record in journal.current():
            counts[record.verification] += 1
            yield record

    dataset.write_state_file(MANIFEST, encode_records(counted()))
    result = StageResult(
        source=plan.source_url,
        destination=str(dataset.path),
        digest=plan.digest,
        files=plan.files,
        bytes=plan.bytes,
        files_copied=plan.files - files_skipped,
        bytes_copied=plan.bytes - bytes_skipped,
        files_skipped=files_skipped,
        verified_source=counts[Verification.SOURCE],
        verified_local=counts[Verification.LOCAL],
        seconds=round(seconds, 3),
    )
    ready = {**result.to_json(), "manifest": MANIFEST, "completed_at": time.time()}
    dataset.write_state_file(READY_MARKER, [json.dumps(ready, indent=2).encode() + b"\n"])
    journal.discard_earlier()
    journal.remove()
    return result
