"""A whole staging in one process: the service's steps (:mod:`transfer.staging_steps`) run
in order, plan -> copy batch ... -> publish, with two batches in flight and one progress
callback over the whole dataset.

This is the embedded path (``stagegate stage --to DIR``). It resumes exactly as the service
does, from the batch records in the state directory, so a ``kill -9`` or Ctrl-C loses at most
the files in flight and about a second of finished ones.
"""

import contextlib
import shutil
import stat
import time
from collections.abc import Callable
from pathlib import Path

from stagegate.errors import InvalidInputError
from stagegate.key_filters import KeyFilter
from stagegate.progress import ListingCallback
from stagegate.transfer.copy_processes import SourceRecipe
from stagegate.transfer.dataset_source import (
    ready_selection,
    record_source,
    refuse_other_source,
)
from stagegate.transfer.engine import CopyEngine, LabelGate, TransferConfig
from stagegate.transfer.layout import LEGACY_STATE_DIR, state_dir_of
from stagegate.transfer.parts import batched_by_weight
from stagegate.transfer.plan import Plan, check_labels_before_ready, plan_dataset
from stagegate.transfer.progress import ProgressCallback, ProgressTracker
from stagegate.transfer.sink import DatasetDir, refuse_foreign_directory
from stagegate.transfer.sources.base import Source
from stagegate.transfer.staging_steps import (
    RECORD_INTERVAL,
    StageResult,
    begin_rewrite,
    copy_batches,
    open_batch,
    publish,
)
from stagegate.transfer.strays import refuse_strays, remove_strays

PLAN_FILE = "plan.jsonl"
BATCHES_IN_FLIGHT = 2  # while one batch is synced and recorded, the next one copies
# Where a stagegate before the one batch record kept its embedded progress (generations of
# per-batch journals). Ignored: the files it vouched for are checked and copied again.
OLD_JOURNAL_DIR = "journal"


def stage(
    source: Source,
    destination: str | Path,
    config: TransferConfig | None = None,
    on_progress: ProgressCallback | None = None,
    on_plan: Callable[[Plan], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    label_file_name: str | None = None,
    record_interval: float = RECORD_INTERVAL,
    label_gate: LabelGate | None = None,
    on_listed: ListingCallback | None = None,
    key_filter: Callable[[str], bool] | None = None,
    *,
    replace: bool = False,
    sync: bool = False,
    source_recipe: SourceRecipe | None = None,
) -> StageResult:
    """Copy every object of ``source`` into ``destination`` and mark it ready.

    Files already there from an earlier run, unchanged and verified, are kept. The dataset
    is ready (``READY`` exists in its state directory beside it,
    :func:`transfer.layout.state_dir_of`) only when every file is verified and durable.
    ``on_listed`` hears how far planning has listed the source. ``on_plan`` sees the plan
    before any byte moves; if it raises (a policy denial), the
    destination is left as it was found. Files named ``label_file_name`` label their
    directory and are not staged; with ``config.recheck_labels`` they are re-read before
    each batch and once more before READY (a change raises :class:`transfer.errors.LabelChangedError`, and
    the dataset is not published), and every object's own label right before it is copied.
    ``label_gate`` (:data:`transfer.engine.LabelGate`) decides on each object's own label as
    it is opened, before a byte of it is written (default: with ``config.recheck_labels``,
    any change since planning fails the staging). ``key_filter`` says which keys are staged
    (:func:`transfer.plan.plan_dataset`). With ``config.processes`` above 1, small files are
    copied by that many processes, each opening the source by ``source_recipe``
    (:func:`transfer.sources.source_recipe`; without one, every file is copied here).

    ``destination`` must be new, empty or an earlier staging of the same source (else
    :class:`DestinationNotEmptyError`, or its :class:`OtherDatasetError` naming the other
    source), and hold nothing the plan does not (else :class:`StrayFilesError`, raised
    after planning and before anything changes); its lock is held throughout, and a staging
    already holding it fails this one at once (:class:`DestinationBusyError`). With ``sync``,
    what it holds beyond the plan (files gone from the source, strays) is removed once the
    new set is copied and verified, before READY. ``replace`` also lifts the first rule: the
    new dataset replaces whatever is there, which is removed the same way. Either way, until
    READY is written again the directory is not ready, and a rerun finishes the job.
    """
    config = config or TransferConfig()
    started = clock()
    if not str(destination).strip():
        # Path("") is the current directory: an unset variable must not stage over a home.
        raise InvalidInputError("the destination is empty: name the directory to stage into")
    destination = Path(destination)
    if not replace:
        refuse_foreign_directory(destination)
    existed = destination.exists()
    had_state = state_dir_of(destination).exists() or (destination / LEGACY_STATE_DIR).is_dir()
    with DatasetDir(destination, clear_the_way=replace or sync) as dataset:
        dataset.lock_exclusive()  # held until the dataset is closed: for the whole staging
        try:
            if not replace:
                refuse_other_source(dataset, source.url)
            plan = plan_dataset(
                source, dataset.state_path / PLAN_FILE, label_file_name, on_listed, key_filter=key_filter
            )
            if on_plan is not None:
                on_plan(plan)
            if not (replace or sync):
                refuse_strays(dataset, plan)  # before READY goes: the old dataset stays as it was
        except BaseException:
            # A refused or missing source leaves the destination as it found it.
            (dataset.state_path / PLAN_FILE).unlink(missing_ok=True)
            if not existed:
                shutil.rmtree(destination, ignore_errors=True)
            if not had_state:
                shutil.rmtree(dataset.state_path, ignore_errors=True)
            raise
        record_source(dataset, plan.source_url)
        begin_rewrite(dataset)
        _forget_old_journal(dataset)
        tracker = ProgressTracker(plan.files, plan.bytes, on_progress)
        # Cut as the service's plan step cuts a node's share (workers.portions).
        cut = batched_by_weight(
            plan.entries(), lambda o: o.size, config.batch_max_bytes, config.batch_max_files
        )
        batches = (open_batch(dataset, index, objects) for index, objects in enumerate(cut))
        count = 0
        with CopyEngine(
            source, dataset, config, tracker, label_gate=label_gate, source_recipe=source_recipe
        ) as engine:
            for _ in copy_batches(
                engine, source, dataset, batches, config, tracker,
                in_flight=BATCHES_IN_FLIGHT, label_file_name=label_file_name,
                label_files=plan.label_files, record_interval=record_interval,
            ):  # fmt: skip
                count += 1
        if config.recheck_labels and label_file_name is not None:
            check_labels_before_ready(
                source,
                plan.label_files,
                label_file_name,
                (obj.key for obj in plan.entries()),
                plan.label_files_above,
            )
        # Only now, every new file verified and durable, does anything of the old go.
        removed = dataset.cleared + (remove_strays(dataset, plan) if replace or sync else 0)
        progress = tracker.state
        result = publish(
            dataset,
            source_url=plan.source_url,
            digest=plan.digest,
            batches=count,
            files=plan.files,
            bytes=plan.bytes,
            skipped=(progress.files_skipped, progress.bytes_skipped),
            seconds=clock() - started,
            files_removed=removed,
            selection=_selection(plan.source_url, key_filter),
        )
        (dataset.state_path / PLAN_FILE).unlink()
        return result


def _selection(source_url: str, key_filter: Callable[[str], bool] | None) -> dict[str, object]:
    if isinstance(key_filter, KeyFilter):
        return ready_selection(source_url, key_filter.include, key_filter.exclude)
    return ready_selection(source_url)


def _forget_old_journal(dataset: DatasetDir) -> None:
    path = dataset.state_path / OLD_JOURNAL_DIR
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISDIR(path.lstat().st_mode):
            shutil.rmtree(path)
        else:
            path.unlink()  # a link or file planted at its name: removed, never followed
