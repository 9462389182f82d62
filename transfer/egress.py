"""Egress: ship the selected checkpoints of a run directory to S3 or a path, verified, through
the one copy engine (run directory endpoint -> S3 or confined-path writer).

What is egress's own and lives here: which files go (the selected checkpoints' regular files,
:class:`transfer.endpoints.run_dir.RunDirSource`), the key each gets
(``<checkpoint name>/<path inside it>`` below the destination prefix), what is already at
the destination, and deleting a checkpoint once the others are verified. Moving the bytes,
retrying, the bandwidth cap, bounded buffers, verification and durability are the engine's,
as for staging.

Before the first byte, every final name is looked at. A file already there with the same
size and the same checksum as the local file (S3's CRC64NVME, a path's BLAKE3 read back)
is recognised as egressed (an earlier run verified it, perhaps one killed part way) and not
sent again; anything else at a path destination's name fails the egress there, naming it
(an egress never overwrites), while on S3 it is replaced, as the policy's egress rules allow.

Pure of SQL, HTTP and policy: the caller decides whether the egress may happen at all.
"""

import os
import shutil
import stat
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stagegate.durability import Durability
from stagegate.errors import ExistsError, InvalidInputError
from stagegate.transfer.endpoints import EgressWriter, local_path, open_writer, validate_destination
from stagegate.transfer.endpoints.run_dir import CheckpointLike, RunDir, RunDirSource
from stagegate.transfer.engine import CopyEngine, TransferConfig
from stagegate.transfer.keys import key_parts
from stagegate.transfer.objects import CopiedFile, SourceObject
from stagegate.transfer.progress import Progress, ProgressCallback, ProgressTracker

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = [
    "CheckpointLike",
    "EgressConfig",
    "EgressFile",
    "EgressResult",
    "delete_checkpoint",
    "egress",
    "list_checkpoint_files",
    "local_path",
    "validate_destination",
]

MiB = 1 << 20


PART_BUFFER_MEMORY = 64 * MiB  # what the S3 part buffers may hold, unless two parts are more


@dataclass(frozen=True, slots=True)
class EgressConfig:
    """How an egress runs. On S3, every file in flight shares :attr:`part_buffers` part
    buffers (64 MiB of them by default), plus a 1 MiB chunk per file being read."""

    concurrency: int = 8  # files in flight
    # As `aws s3 cp`: 8 MiB parts, multipart above 8 MiB (one part). A file of at most one
    # part goes up in one PutObject; anything larger in parts of this size.
    part_size: int = 8 * MiB
    multipart_threshold: int = 8 * MiB
    bandwidth_limit: int | None = None  # bytes per second across all threads

    @property
    def part_buffers(self) -> int:
        """How many S3 parts may be held at once, filling or going up: ``concurrency``, fewer
        where that would pass 64 MiB, never fewer than two (one filling, one going up)."""
        return max(2, min(self.concurrency, PART_BUFFER_MEMORY // max(1, self.part_size)))

    def transfer_config(self) -> TransferConfig:
        return TransferConfig(
            concurrency=self.concurrency,
            part_size=min(self.part_size, self.multipart_threshold),
            multipart_threshold=self.multipart_threshold,
            bandwidth_limit=self.bandwidth_limit,
            # A path destination's file is fsynced once, before it is linked: an egress never
            # overwrites, so a name must never point at bytes a crash could lose.
            durability=Durability.FILE,
        )


@dataclass(frozen=True, slots=True)
class EgressFile:
    """One file as it arrived: its key relative to the destination prefix, size, checksum."""

    key: str
    size: int
    checksum: str  # "algo:hex", the value the destination reported and we computed


@dataclass(frozen=True, slots=True)
class EgressResult:
    destination: str
    files: tuple[EgressFile, ...]
    bytes: int
    files_present: int = 0  # already at the destination, verified, from an earlier run

    @property
    def checksums(self) -> dict[str, str]:
        return {f.key: f.checksum for f in self.files}


def list_checkpoint_files(
    run_dir: str | os.PathLike[str],
    checkpoints: Sequence[CheckpointLike],
    key_filter: Callable[[str], bool] | None = None,
) -> list[str]:
    """The keys egress would write for ``checkpoints`` (for dry runs and tests)."""
    with RunDir(run_dir) as run:
        return [o.key for o in RunDirSource(run, checkpoints, key_filter).objects]


def egress(
    run_dir: str | os.PathLike[str],
    checkpoints: Sequence[CheckpointLike],
    destination: str,
    config: EgressConfig | None = None,
    on_progress: ProgressCallback | None = None,
    *,
    client: "S3Client | None" = None,
    on_start: Callable[[Progress], None] | None = None,
    fsync: Callable[[int], None] = os.fsync,
    key_filter: Callable[[str], bool] | None = None,
) -> EgressResult:
    """Copy ``checkpoints`` of ``run_dir`` (their files ``key_filter`` takes) to
    ``destination`` and verify every file there.

    Returns every file's record once all are verified; raises on the first failure (the
    files verified before it stay at the destination, the failing one does not).
    """
    config = config or EgressConfig()
    with RunDir(run_dir) as run:
        source = RunDirSource(run, checkpoints, key_filter)
        objects = source.objects
        if not objects and key_filter is not None:
            raise InvalidInputError(
                "the --include/--exclude filters leave no file of the selected checkpoints"
            )
        tracker = ProgressTracker(len(objects), sum(o.size for o in objects), on_progress)
        if on_start is not None:
            on_start(tracker.state)
        writer = open_writer(destination, config.part_buffers, client, fsync)
        try:
            writer.prepare([o.key for o in objects])
            for obj in objects:
                key_parts(obj.key)  # every key is safe before a byte moves
            with CopyEngine(source, writer, config.transfer_config(), tracker, fsync=fsync) as engine:
                present, todo = _recognise(engine, writer, objects, config.concurrency)
                for obj in present:
                    tracker.file_skipped(obj.size)
                copied = engine.collect(engine.submit_all((obj, None) for obj in todo))
            writer.finish()
        finally:
            writer.close()
    files = sorted(
        [*(_egress_file(r) for r in copied), *present.values()],
        key=lambda f: f.key,
    )
    return EgressResult(destination, tuple(files), sum(o.size for o in objects), len(present))


def _egress_file(record: CopiedFile) -> EgressFile:
    assert record.destination_checksum is not None  # every egress writer reads back
    return EgressFile(record.key, record.size, record.destination_checksum)


def _recognise(
    engine: CopyEngine, writer: EgressWriter[Any], objects: list[SourceObject], concurrency: int
) -> tuple[dict[SourceObject, EgressFile], list[SourceObject]]:
    """Split ``objects`` into those already at the destination, verified (same size, same
    checksum), and those to copy; raise :class:`ExistsError` naming the first name a path
    destination holds with other content: before a byte is written."""
    algorithm = writer.read_back_algorithm

    def look(obj: SourceObject) -> tuple[SourceObject, str | None, bool]:
        found = writer.present(key_parts(obj.key))
        if found is None:
            return obj, None, False
        if (
            found.size == obj.size
            and found.checksum is not None
            and engine.checksum_of(obj) == found.checksum
        ):
            return obj, found.checksum, False
        return obj, None, not writer.overwrites

    with ThreadPoolExecutor(max(1, concurrency), thread_name_prefix="stagegate-look") as pool:
        looked = list(pool.map(look, objects))
    for obj, _, conflict in looked:
        if conflict:
            raise ExistsError(
                f"{writer.where}/{obj.key} already exists; egress never overwrites: choose another "
                "destination or remove it first"
            )
    present = {obj: EgressFile(obj.key, obj.size, f"{algorithm}:{same}") for obj, same, _ in looked if same}
    return present, [obj for obj, same, _ in looked if not same]


def delete_checkpoint(run_dir: str | os.PathLike[str], name: str) -> int:
    """Remove the checkpoint ``name`` from ``run_dir`` (its file or whole tree), following no
    symlink; returns the bytes it held. Called only once every selected checkpoint is verified
    at the destination."""
    with RunDir(run_dir) as run:
        held = sum(f.size for f in run.files(_Named(name)))
        st = os.stat(name, dir_fd=run.fd, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(name, dir_fd=run.fd)  # descriptor-based: symlinks inside are unlinked, not followed
        else:
            os.unlink(name, dir_fd=run.fd)
        os.fsync(run.fd)
    return held


@dataclass(frozen=True, slots=True)
class _Named:
    name: str
    is_dir: bool = False
