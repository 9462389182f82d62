"""The copy engine: verified, parallel, resumable copies from any reading endpoint (a
:class:`Source`) to any writing endpoint (a :class:`transfer.endpoints.base.Writer`).

Staging is a source -> the node-local dataset (:class:`transfer.sink.DatasetDir`); egress is
the run directory -> S3 or a confined path (:mod:`transfer.endpoints`). It takes a source, a
writer and a config, and reports through a callback; it knows nothing of Celery, SQL or
HTTP. Objects stream in order, one per thread, through ``chunk_size`` buffers (a writer that
uploads in parts gathers them itself, within its own bound); objects above the multipart
threshold, from a source that prefers ranged reads into a writer that takes positional
writes, are read as parallel ranged parts written in place with pwrite, then hashed once
from the page cache. Every file is BLAKE3-hashed, checked against any checksum the source
publishes and, where the writer reads back what it stored, against that, and committed under
its final name only when everything matched. The same retries, bandwidth cap and
durability apply in both directions. With ``processes`` above 1 and a source recipe, small
whole objects bound for a dataset are copied by that many child processes, each running
this same engine (:mod:`transfer.copy_processes`); their records come back to the caller's
futures as a thread's would.
"""

import errno
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, TypeVar

from stagegate.durability import Durability
from stagegate.errors import StagegateError
from stagegate.transfer.checksums import ALL_CORES, Hasher, new_local_hasher, new_source_hasher
from stagegate.transfer.copy_processes import (
    PROCESS_FILE_MAX,
    CopyProcesses,
    SourceRecipe,
    fan_out,
    groups_of,
)
from stagegate.transfer.endpoints.base import TempObject, Writer
from stagegate.transfer.errors import (
    ChecksumMismatchError,
    LabelChangedError,
    SourceChangedError,
    SourceReadError,
    TransferError,
)
from stagegate.transfer.keys import key_parts
from stagegate.transfer.mapped import STEP as MAPPED_STEP
from stagegate.transfer.mapped import file_views
from stagegate.transfer.objects import CopiedFile, SourceObject, Verification
from stagegate.transfer.parts import Part, part_size_by_need, part_size_under, split_parts
from stagegate.transfer.progress import ProgressTracker
from stagegate.transfer.sink import DatasetDir
from stagegate.transfer.sources.base import ObjectReader, PublishedChecksum, Source
from stagegate.transfer.throttle import BandwidthLimiter

log = logging.getLogger(__name__)

MiB = 1 << 20
GiB = 1 << 30
# What a copy inside the kernel fails with when it is the destination's fault, not the source's.
DESTINATION_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})


@dataclass(frozen=True, slots=True)
class TransferConfig:
    """How a copy runs. The defaults suit NVMe targets and S3 or NFS sources."""

    concurrency: int = 16  # files (and, separately, parts of big files) copied at once
    # processes copying small files (transfer.copy_processes; 1: this one alone); the
    # concurrency is shared among them, not multiplied
    processes: int = 1
    # the smallest ranged part (big files are split only as far as the concurrency needs,
    # transfer.parts.part_size_by_need), and the part size of a writer that uploads in parts
    part_size: int = 64 * MiB
    multipart_threshold: int = 128 * MiB  # objects larger than this are read in ranged parts
    chunk_size: int = 1 * MiB  # read size; memory is about 2 x concurrency x chunk_size
    bandwidth_limit: int | None = None  # bytes per second across all threads
    durability: Durability = Durability.BATCH
    batch_max_files: int = 1000
    batch_max_bytes: int = 1 * GiB
    max_attempts: int = 3  # per file, on a checksum mismatch or a failed read
    # re-read each object's own label right before copying it (and each batch's label files)
    recheck_labels: bool = False

    def __post_init__(self) -> None:
        for name in (
            "concurrency",
            "processes",
            "part_size",
            "multipart_threshold",
            "chunk_size",
            "batch_max_files",
            "batch_max_bytes",
            "max_attempts",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive")
        if self.bandwidth_limit is not None and self.bandwidth_limit < 1:
            raise ValueError("bandwidth_limit must be positive")


LabelGate = Callable[[SourceObject, "str | None"], "str | None"]
"""Asked with an object and its own label as the source reports it at copy time, before a
byte of the object is written: raises to refuse the object, else returns the label to record
for it (None: nothing to add to what the plan recorded). The policy lives in the caller."""


def strict_label_gate(obj: SourceObject, now: str | None) -> str | None:
    """The gate where the plan read every object's own label: any change since is refused."""
    if now != obj.label:
        raise LabelChangedError(f"{obj.key}: its label changed since planning ({obj.label!r} -> {now!r})")
    return None


def is_intact(dataset: DatasetDir, obj: SourceObject, prior: CopiedFile) -> bool:
    """True if ``prior`` records exactly ``obj`` and its file is in ``dataset`` untouched since:
    a stat, never a read of the source."""
    if not prior.matches(obj):
        return False
    st = dataset.stat_file(key_parts(obj.key))
    return st is not None and st.st_size == prior.size and st.st_mtime_ns == prior.mtime_ns


class _Cancelled(Exception):
    """Raised inside copy threads once another file has failed the run."""


T = TypeVar("T")


def _failed(future: "Future[Any]") -> bool:
    return future.done() and not future.cancelled() and future.exception() is not None


class _Hashes:
    """The hashers of one file: BLAKE3 always, the source's published algorithm, and the
    writer's read-back algorithm (shared with BLAKE3 when it is BLAKE3)."""

    def __init__(self, published: PublishedChecksum | None, read_back: str | None, threads: int = 1) -> None:
        self.local = new_local_hasher(threads)
        self.check: Hasher | None = None
        if published is not None:
            # A peer publishes the manifest's BLAKE3 (workers.peer_source): the one hash serves both.
            blake = published.algorithm == "blake3"
            self.check = self.local if blake else new_source_hasher(published.algorithm)
        self.dest: Hasher | None = None
        self.dest_algorithm = read_back
        if read_back == "blake3":
            self.dest = self.local
        elif read_back is not None:
            self.dest = new_source_hasher(read_back)
        self._all = [self.local] + ([self.check] if self.check not in (None, self.local) else [])
        if self.dest is not None and self.dest is not self.local:
            self._all.append(self.dest)

    def update(self, data: bytes | memoryview) -> None:
        for h in self._all:
            h.update(data)

    def dest_hex(self) -> str | None:
        return None if self.dest is None else self.dest.hexdigest()

    def destination_checksum(self) -> str | None:
        """``algorithm:hex`` of the writer's read-back checksum, for the record."""
        return None if self.dest is None else f"{self.dest_algorithm}:{self.dest.hexdigest()}"


class CopyEngine:
    """Copies objects from ``source`` to ``writer``; one instance per run."""

    def __init__(
        self,
        source: Source,
        writer: Writer[Any],
        config: TransferConfig,
        tracker: ProgressTracker,
        limiter: BandwidthLimiter | None = None,
        fsync: Callable[[int], None] = os.fsync,
        label_gate: LabelGate | None = None,
        source_recipe: SourceRecipe | None = None,
    ) -> None:
        self._source = source
        self._gate = label_gate or (strict_label_gate if config.recheck_labels else None)
        self._fsync = fsync
        self._writer = writer
        self._config = config
        self._tracker = tracker
        self._limiter = limiter or (
            BandwidthLimiter(config.bandwidth_limit) if config.bandwidth_limit else None
        )
        self._cancel = threading.Event()
        self._local = threading.local()  # each copying thread's chunk buffer
        self._ranged_lock = threading.Lock()
        self._ranged_in_flight = 0  # big objects submitted and not yet done: they share the parts
        # Two pools: a big file's thread waits on its parts, which must not queue behind it.
        self._files = ThreadPoolExecutor(config.concurrency, thread_name_prefix="stagegate-file")
        self._parts = ThreadPoolExecutor(config.concurrency, thread_name_prefix="stagegate-part")
        # Copy processes only where a child can reopen both ends alike: a dataset directory,
        # and a source rebuilt from its recipe. Started with the first small file to copy.
        self._recipe = source_recipe if config.processes > 1 and isinstance(writer, DatasetDir) else None
        self._children: CopyProcesses | None = None

    def __enter__(self) -> "CopyEngine":
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None:
            self.cancel()
        self.close()

    def close(self) -> None:
        self._files.shutdown(wait=True, cancel_futures=True)
        self._parts.shutdown(wait=True, cancel_futures=True)
        if self._children is not None:
            self._children.close()

    def cancel(self) -> None:
        """Stop every copy in flight at its next chunk; their temporary files are removed
        (a copy process drops the groups it has not begun and finishes the one it is on)."""
        self._cancel.set()
        if self._children is not None:
            self._children.cancel()

    # -- batches ---------------------------------------------------------------------

    def submit(self, obj: SourceObject, prior: CopiedFile | None) -> "Future[CopiedFile]":
        """Copy ``obj`` unless ``prior`` shows it is already present and verified."""
        return self.submit_all([(obj, prior)])[0]

    def submit_all(
        self,
        pairs: Iterable[tuple[SourceObject, CopiedFile | None]],
        into: "list[Future[CopiedFile]] | None" = None,
    ) -> "list[Future[CopiedFile]]":
        """:meth:`submit` every pair. The big objects among them count as in flight before
        the first starts, so each is split by the same share of the part threads. Each future
        is appended to ``into`` (returned) as it is submitted: an interrupt while submitting
        (starting a thousand copies takes a while) leaves the caller every copy already started."""
        todo = [(obj, prior if self._kept(obj, prior) else None) for obj, prior in pairs]
        with self._ranged_lock:
            self._ranged_in_flight += sum(1 for obj, kept in todo if kept is None and self._ranged(obj))
        futures: list[Future[CopiedFile]] = [] if into is None else into
        for_children: list[tuple[SourceObject, Future[CopiedFile]]] = []
        for obj, kept in todo:
            if kept is not None:
                self._tracker.file_skipped(obj.size)
                done: Future[CopiedFile] = Future()
                done.set_result(kept)
                futures.append(done)
                continue
            if self._for_a_child(obj):
                for_children.append((obj, Future()))
                futures.append(for_children[-1][1])
                continue
            future = self._files.submit(self.copy_file, obj)
            if self._ranged(obj):
                future.add_done_callback(self._ranged_done)
            futures.append(future)
        if for_children:
            self._hand_to_children(for_children)
        return futures

    def _for_a_child(self, obj: SourceObject) -> bool:
        return self._recipe is not None and obj.size <= PROCESS_FILE_MAX and not self._ranged(obj)

    def _hand_to_children(self, pairs: list[tuple[SourceObject, "Future[CopiedFile]"]]) -> None:
        if self._children is None:
            assert self._recipe is not None
            writer: object = self._writer
            assert isinstance(writer, DatasetDir)
            config = self._config
            self._children = CopyProcesses(
                config.processes, self._recipe, writer.path, writer.clears_the_way, config, self._gate
            )
        start = 0
        for group in groups_of([obj for obj, _ in pairs]):
            futures = [future for _, future in pairs[start : start + len(group)]]
            start += len(group)
            if self._cancel.is_set():
                for future in futures:
                    future.set_exception(_Cancelled())
                continue
            fan_out(self._children.submit(group), futures, self._copied_by_a_child, _Cancelled)

    def _copied_by_a_child(self, record: CopiedFile) -> None:
        self._tracker.bytes_moved(record.size)
        self._tracker.file_done()

    def _kept(self, obj: SourceObject, prior: CopiedFile | None) -> bool:
        writer: object = self._writer  # only a dataset keeps records to resume from
        return prior is not None and isinstance(writer, DatasetDir) and is_intact(writer, obj, prior)

    def _ranged_done(self, _: "Future[CopiedFile]") -> None:
        with self._ranged_lock:
            self._ranged_in_flight -= 1

    def collect(self, futures: "list[Future[T]]") -> list[T]:
        """The results of ``futures``; on the first failure, cancel the run and raise it."""
        wait(futures, return_when="FIRST_EXCEPTION")
        if any(_failed(f) for f in futures):
            self.cancel()
            wait(futures)
            errors = [f.exception() for f in futures if _failed(f)]
            # Report the cause, not the copies that stopped because of it.
            raise next((e for e in errors if not isinstance(e, _Cancelled)), errors[0])  # type: ignore[misc]
        return [f.result() for f in futures]

    # -- one file --------------------------------------------------------------------

    def copy_file(self, obj: SourceObject) -> CopiedFile:
        """Copy one object, retrying a checksum mismatch or a failed read."""
        attempts = self._config.max_attempts
        for attempt in range(1, attempts + 1):
            try:
                record = self._copy_in_parts(obj) if self._ranged(obj) else self._copy_whole(obj)
            except (ChecksumMismatchError, SourceReadError) as exc:
                if attempt == attempts:
                    raise
                log.warning("%s (attempt %d of %d, retrying)", exc, attempt, attempts)
                continue
            except StagegateError:
                raise  # a refusal (the label gate's) may be an OSError too: it is no write failure
            except OSError as exc:  # the destination's: a full disk, a quota, permissions
                why = exc.strerror or exc
                raise TransferError(f"{obj.key}: cannot write it under {self._writer.where}: {why}") from exc
            self._tracker.file_done()
            return record
        raise AssertionError("unreachable")

    def _ranged(self, obj: SourceObject) -> bool:
        return (
            obj.size > self._config.multipart_threshold
            and self._source.prefers_ranged_reads
            and self._writer.positional
        )

    def _part_size(self, obj: SourceObject) -> int:
        """The part size a writer that uploads in parts gathers (its memory bound)."""
        return part_size_under(self._writer.part_rule, obj.size, self._config.part_size)

    def _ranged_part_size(self, obj: SourceObject) -> int:
        """Parts by need: the part threads shared among the big objects in flight."""
        with self._ranged_lock:
            streams = max(1, self._ranged_in_flight)
        rule = self._writer.part_rule
        return part_size_by_need(obj.size, streams, self._config.concurrency, rule, self._config.part_size)

    def checksum_of(self, obj: SourceObject) -> str | None:
        """The writer's read-back checksum of ``obj`` as the source holds it now (read through
        the same cap and cancellation as a copy), or None if the writer reads nothing back:
        what recognises a file an interrupted run already published."""
        algorithm = self._writer.read_back_algorithm
        if algorithm is None:
            return None
        hasher = new_local_hasher() if algorithm == "blake3" else new_source_hasher(algorithm)
        reader = self._open(obj)
        moved = 0
        try:
            for data in self._chunks(obj, reader):
                hasher.update(data)
                moved += len(data)
        finally:
            reader.close()
        self._check_size(obj, moved)
        return hasher.hexdigest()

    def _check_cancelled(self) -> None:
        if self._cancel.is_set():
            raise _Cancelled

    def _open(self, obj: SourceObject, part: Part | None = None) -> ObjectReader:
        try:
            if part is None:
                return self._source.open(obj)
            return self._source.open(obj, part.offset, part.length)
        except StagegateError:
            raise
        except Exception as exc:
            raise SourceReadError(f"{obj.key}: cannot open: {exc}") from exc

    def _buffer(self) -> memoryview:
        """This thread's chunk buffer, made once: a fresh chunk per read, freed from many
        threads, fragments the C heap until the process holds several times what it uses."""
        buffer: memoryview | None = getattr(self._local, "buffer", None)
        if buffer is None or len(buffer) != self._config.chunk_size:
            buffer = self._local.buffer = memoryview(bytearray(self._config.chunk_size))
        return buffer

    def _chunks(self, obj: SourceObject, reader: ObjectReader) -> Iterator[bytes | memoryview]:
        """``obj``'s bytes, a chunk at a time; each chunk is valid until the next is asked for
        (a reader that can fill a buffer fills this thread's, which is reused)."""
        size = self._config.chunk_size
        readinto = getattr(reader, "readinto", None)
        buffer = self._buffer() if readinto is not None else None
        while True:
            self._check_cancelled()
            try:
                data: bytes | memoryview
                if readinto is not None and buffer is not None:
                    data = buffer[: readinto(buffer)]
                else:
                    data = reader.read(size)
            except StagegateError:
                raise
            except Exception as exc:
                raise SourceReadError(f"{obj.key}: read failed: {exc}") from exc
            if not data:
                return
            if self._limiter is not None:
                self._limiter.consume(len(data))
            yield data

    def _written_chunks(
        self, obj: SourceObject, reader: ObjectReader, temp: TempObject
    ) -> Iterator[bytes | memoryview]:
        """``obj``'s bytes, a chunk at a time, each once it is in ``temp``. Where the reader can
        copy inside the kernel into a local temporary file (a POSIX source into the dataset),
        it does, and what it copied is hashed from the destination's page cache, 8 MiB windows
        mapped (no copy at all) and the rest read back into the buffer: one copy of every byte
        at most instead of two through a Python buffer (measured in the README, "Speed"), and
        the hash is of the bytes as written. Elsewhere: read, write, yield."""
        copy_into = getattr(reader, "copy_into", None)
        append_from = getattr(temp, "append_from", None)
        if copy_into is not None and append_from is not None and temp.fd is not None:
            copied = hashed = 0
            buffer = self._buffer()
            n: int | None = 0
            while True:
                self._check_cancelled()
                try:
                    n = append_from(copy_into, len(buffer))
                except OSError as exc:
                    if exc.errno in DESTINATION_ERRNOS:
                        raise  # a full disk or quota: copy_file's "cannot write it under"
                    raise SourceReadError(f"{obj.key}: copy failed: {exc}") from exc
                if not n:
                    break  # the end, or (None) the kernel cannot copy here: the buffer takes over
                if self._limiter is not None:
                    self._limiter.consume(n)
                copied += n
                if copied - hashed >= MAPPED_STEP:
                    # Whole windows are hashed from the page cache itself, as mapped.py says;
                    # a small file's bytes, and a big one's tail, are read back into the buffer,
                    # since mapping a few KiB costs more system calls than it saves.
                    end = hashed + (copied - hashed) // MAPPED_STEP * MAPPED_STEP
                    yield from file_views(temp.fd, end, start=hashed)
                    hashed = end
            while hashed < copied:
                view = self._read_back(temp.fd, hashed, buffer[: min(len(buffer), copied - hashed)])
                hashed += len(view)
                yield view
            if n == 0:
                return
        for data in self._chunks(obj, reader):
            temp.write(data)
            yield data

    @staticmethod
    def _read_back(fd: int, offset: int, view: memoryview) -> memoryview:
        """Fill ``view`` from ``fd`` at ``offset``: what was just written there."""
        got = 0
        while got < len(view):
            n = os.preadv(fd, [view[got:]], offset + got)
            if n == 0:
                raise TransferError(f"temporary file shorter than written ({offset + got})")
            got += n
        return view

    def _copy_whole(self, obj: SourceObject) -> CopiedFile:
        parts = key_parts(obj.key)
        temp: TempObject | None = None
        moved = 0
        try:
            reader = self._open(obj)
            try:
                # The response's headers say whether the object has tags; the gate decides on
                # them before the temporary file exists, so a refused object leaves no byte.
                label = self._gate(obj, reader.own_label()) if self._gate is not None else None
                temp = self._writer.open_temp(parts, obj.size, self._part_size(obj))
                published = reader.published
                hashes = _Hashes(published, self._writer.read_back_algorithm)
                for data in self._written_chunks(obj, reader, temp):
                    hashes.update(data)
                    moved += len(data)
                    self._tracker.bytes_moved(len(data))
            finally:
                reader.close()
            self._check_size(obj, moved)
            verification = self._verify(obj, published, hashes.check)
            mtime_ns = self._commit(temp, parts, hashes.dest_hex())
            temp = None
        except BaseException:
            self._tracker.bytes_retracted(moved)
            raise
        finally:
            if temp is not None:
                self._writer.discard(temp)
        return self._record(obj, hashes, verification, published, mtime_ns, label)

    def _commit(self, temp: TempObject, parts: tuple[str, ...], checksum: str | None) -> int:
        if self._config.durability is Durability.FILE and temp.fd is not None:
            self._fsync(temp.fd)  # before the commit: a final name never points at unwritten bytes
        return self._writer.commit(temp, parts, checksum)

    def _copy_in_parts(self, obj: SourceObject) -> CopiedFile:
        parts = key_parts(obj.key)
        try:
            label = self._gate(obj, self._source.own_label(obj)) if self._gate is not None else None
            published = self._source.published_checksum(obj)
        except StagegateError:
            raise
        except Exception as exc:
            raise SourceReadError(f"{obj.key}: cannot read its checksum: {exc}") from exc
        part_size = self._ranged_part_size(obj)
        temp: TempObject | None = self._writer.open_temp(parts, obj.size, part_size)
        moved = [0]  # bytes of this attempt, across part threads
        lock = threading.Lock()

        def count(n: int) -> None:
            with lock:
                moved[0] += n
            self._tracker.bytes_moved(n)

        try:
            ranges = split_parts(obj.size, part_size)
            futures = [self._parts.submit(self._copy_range, obj, temp, r, count) for r in ranges]  # type: ignore[arg-type]
            self.collect(futures)
            self._check_size(obj, moved[0])
            hashes = self._hash_file(temp.fd, obj.size, published)  # type: ignore[union-attr,arg-type]
            verification = self._verify(obj, published, hashes.check)
            mtime_ns = self._commit(temp, parts, hashes.dest_hex())  # type: ignore[arg-type]
            temp = None
        except BaseException:
            self._tracker.bytes_retracted(moved[0])
            raise
        finally:
            if temp is not None:
                self._writer.discard(temp)
        return self._record(obj, hashes, verification, published, mtime_ns, label)

    def _copy_range(
        self, obj: SourceObject, temp: TempObject, part: Part, count: Callable[[int], None]
    ) -> None:
        attempts = self._config.max_attempts
        for attempt in range(1, attempts + 1):
            offset = part.offset
            try:
                reader = self._open(obj, part)
                try:
                    for data in self._chunks(obj, reader):
                        if offset + len(data) > part.end:
                            raise SourceChangedError(f"{obj.key}: part {part.index} longer than asked")
                        temp.write_at(offset, data)
                        offset += len(data)
                        count(len(data))
                finally:
                    reader.close()
                if offset != part.end:
                    raise SourceReadError(f"{obj.key}: part {part.index} ended early at byte {offset}")
                return
            except SourceReadError as exc:
                count(part.offset - offset)
                if attempt == attempts:
                    raise
                log.warning("%s (part attempt %d of %d, retrying)", exc, attempt, attempts)

    def _hash_file(self, fd: int, size: int, published: PublishedChecksum | None) -> _Hashes:
        """Hash an assembled file once, from the page cache it was just written through."""
        # One thread hashes the whole file: let BLAKE3 spread each 8 MiB view over the cores.
        hashes = _Hashes(published, self._writer.read_back_algorithm, threads=ALL_CORES)
        for view in file_views(fd, size):
            self._check_cancelled()
            hashes.update(view)
        return hashes

    @staticmethod
    def _check_size(obj: SourceObject, moved: int) -> None:
        if moved != obj.size:
            raise SourceChangedError(f"{obj.key}: got {moved} bytes, the listing said {obj.size}")

    @staticmethod
    def _verify(obj: SourceObject, published: PublishedChecksum | None, check: Hasher | None) -> Verification:
        if published is None or check is None:
            return Verification.LOCAL
        got = check.hexdigest()
        if got != published.hexdigest:
            raise ChecksumMismatchError(
                f"{obj.key}: {published.algorithm} of the bytes received is {got}, "
                f"the source published {published.hexdigest}"
            )
        return Verification.SOURCE

    @staticmethod
    def _record(
        obj: SourceObject,
        hashes: _Hashes,
        verification: Verification,
        published: PublishedChecksum | None,
        mtime_ns: int,
        label: str | None,
    ) -> CopiedFile:
        return CopiedFile(
            key=obj.key,
            size=obj.size,
            revision=obj.revision,
            version=obj.version,
            blake3=hashes.local.hexdigest(),
            verification=verification,
            source_checksum=str(published) if published else None,
            mtime_ns=mtime_ns,
            destination_checksum=hashes.destination_checksum(),
            label=label,
        )
