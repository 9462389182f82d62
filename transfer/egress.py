"""Egress: copy selected checkpoints out of a run directory to S3 or an on-prem path, verified.

What is read: each checkpoint (a file, or a directory tree) below the run directory, walked
by descriptor with ``O_NOFOLLOW`` from the run directory down, so a symlink anywhere in a
checkpoint (or a checkpoint that is a symlink) is refused instead of followed, and nothing
outside the run directory is ever opened. Only regular files are copied; anything else
(a socket, a device) is refused too.

Where it goes: the destination key of a file is ``<checkpoint name>/<path inside it>`` (a
file checkpoint's key is its name), below the destination prefix.

- ``s3://bucket/prefix``: one PutObject, or above ``multipart_threshold`` a multipart upload
  whose parts go up in parallel while the file is read once, in order. Every upload asks S3
  for a full-object CRC64NVME (``ChecksumType=FULL_OBJECT`` for multipart), which S3 computes
  and stores with the object; we compute the same CRC while reading. After the upload,
  HeadObject (``ChecksumMode=ENABLED``) must report that CRC and the size, else the egress
  fails (and the bad object is deleted). CRC64NVME rather than per-part SHA-256: it is the
  one full-object checksum both S3 and the moto server used in the tests compute over the
  stored bytes of a multipart object (moto 5.2 reports a wrong full-object CRC32C).
- a path (``/mnt/share/x`` or ``file:///mnt/share/x``): walked from ``/`` by descriptor with
  ``O_NOFOLLOW`` (:mod:`transfer.egress_dir`), written under a temporary name in
  ``DEST/.stagegate/tmp``, fsynced, read back from disk and compared with the BLAKE3 taken
  while reading the source, then linked to its final name, which must not exist: an egress
  never overwrites. Every final name is checked before the first byte is written.

Pure of SQL, HTTP and policy: the caller decides whether the egress may happen at all.
"""

import contextlib
import errno
import os
import stat
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from stagegate.errors import InvalidInputError, NotFoundError
from stagegate.paths import plain_segments
from stagegate.transfer.checksums import hex_from_base64, new_local_hasher, new_source_hasher
from stagegate.transfer.egress_dir import EgressDir
from stagegate.transfer.errors import ChecksumMismatchError, TransferError, UnsafeDestinationError
from stagegate.transfer.keys import STATE_DIR
from stagegate.transfer.progress import Progress, ProgressCallback, ProgressTracker
from stagegate.transfer.sources.s3 import make_client, split_s3_url

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

S3_ALGORITHM = "crc64nvme"
LOCAL_ALGORITHM = "blake3"
CHUNK = 1 << 20
MIN_PART_SIZE = 5 << 20  # S3's smallest part (all but the last)
MAX_PARTS = 10_000
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO swapped in for a checkpoint file after the walk is refused, not waited on.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class CheckpointLike(Protocol):
    """What egress needs of a checkpoint (``checkpoints.Checkpoint`` has it)."""

    @property
    def name(self) -> str: ...

    @property
    def is_dir(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class EgressConfig:
    concurrency: int = 8  # files in flight
    part_concurrency: int = 4  # parts of one file in flight (memory: this x part_size)
    part_size: int = 64 << 20
    multipart_threshold: int = 128 << 20


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

    @property
    def checksums(self) -> dict[str, str]:
        return {f.key: f.checksum for f in self.files}


@dataclass(frozen=True, slots=True)
class _SourceFile:
    key: str  # name/relative/path
    parts: tuple[str, ...]  # path segments below the run directory
    size: int


# -- reading the run directory ---------------------------------------------------------------


def _open_dir_at(parent_fd: int, name: str, where: Path) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafeDestinationError(f"refusing to follow {where}: not a plain directory") from None
        raise


class RunDir:
    """A run directory, opened once; everything below it is reached by descriptor."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_absolute():
            raise InvalidInputError(f"the run directory must be an absolute path, not {self.path}")
        # Every component, the run directory included, must be a real directory: a symlinked
        # component could point the worker's own permissions at someone else's data.
        fd = os.open("/", _DIR_FLAGS)
        try:
            for i, part in enumerate(self.path.parts[1:], start=1):
                try:
                    child = _open_dir_at(fd, part, Path(*self.path.parts[: i + 1]))
                except FileNotFoundError:
                    raise NotFoundError(f"run directory {self.path} does not exist") from None
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    @property
    def fd(self) -> int:
        return self._fd

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> "RunDir":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def files(self, checkpoint: CheckpointLike) -> list[_SourceFile]:
        """The regular files of ``checkpoint``, sorted by key; refuses symlinks and special files."""
        name = checkpoint.name
        if not name or "/" in name or name in (".", "..") or "\0" in name:
            raise InvalidInputError(f"checkpoint name {name!r} is not an entry of {self.path}")
        st = os.stat(name, dir_fd=self._fd, follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            raise UnsafeDestinationError(f"checkpoint {self.path / name} is a symlink; refusing to follow it")
        if stat.S_ISREG(st.st_mode):
            return [_SourceFile(name, (name,), st.st_size)]
        if not stat.S_ISDIR(st.st_mode):
            raise InvalidInputError(f"checkpoint {self.path / name} is neither a file nor a directory")
        found: list[_SourceFile] = []
        self._walk(self._fd, (name,), found)
        return sorted(found, key=lambda f: f.key)

    def _walk(self, parent_fd: int, parts: tuple[str, ...], found: list[_SourceFile]) -> None:
        fd = _open_dir_at(parent_fd, parts[-1], self.path.joinpath(*parts))
        try:
            with os.scandir(fd) as entries:
                children = sorted(entries, key=lambda e: e.name)
            for entry in children:
                where = self.path.joinpath(*parts, entry.name)
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode):
                    raise UnsafeDestinationError(f"refusing to follow the symlink at {where}")
                if stat.S_ISDIR(st.st_mode):
                    self._walk(fd, (*parts, entry.name), found)
                elif stat.S_ISREG(st.st_mode):
                    found.append(
                        _SourceFile("/".join((*parts, entry.name)), (*parts, entry.name), st.st_size)
                    )
                else:
                    raise InvalidInputError(f"{where} is not a regular file; egress copies files only")
        finally:
            os.close(fd)

    def newest_change_ns(self, name: str) -> int:
        """The latest ``st_ctime_ns`` of the entry ``name`` and of everything below it, found
        without following a symlink: a file or directory changed since a time shows here, and
        ctime cannot be set back by its owner."""
        st = os.stat(name, dir_fd=self._fd, follow_symlinks=False)
        if not stat.S_ISDIR(st.st_mode):
            return st.st_ctime_ns
        return max(st.st_ctime_ns, self._newest_below(self._fd, (name,)))

    def _newest_below(self, parent_fd: int, parts: tuple[str, ...]) -> int:
        fd = _open_dir_at(parent_fd, parts[-1], self.path.joinpath(*parts))
        newest = 0
        try:
            with os.scandir(fd) as entries:
                for entry in entries:
                    st = entry.stat(follow_symlinks=False)
                    newest = max(newest, st.st_ctime_ns)
                    if stat.S_ISDIR(st.st_mode):
                        newest = max(newest, self._newest_below(fd, (*parts, entry.name)))
        finally:
            os.close(fd)
        return newest

    @contextlib.contextmanager
    def open(self, f: _SourceFile) -> Iterator[int]:
        """A read descriptor for ``f``, reached without following any symlink."""
        fd = os.dup(self._fd)
        try:
            for depth, part in enumerate(f.parts[:-1]):
                child = _open_dir_at(fd, part, self.path.joinpath(*f.parts[: depth + 1]))
                os.close(fd)
                fd = child
            try:
                file_fd = os.open(f.parts[-1], _FILE_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise UnsafeDestinationError(
                        f"refusing to follow the symlink at {self.path / f.key}"
                    ) from None
                raise
        finally:
            os.close(fd)
        try:
            if not stat.S_ISREG(os.fstat(file_fd).st_mode):
                raise InvalidInputError(f"{self.path / f.key} is not a regular file")
            yield file_fd
        finally:
            os.close(file_fd)


def _read_chunks(fd: int, size: int, chunk: int = CHUNK) -> Iterator[bytes]:
    """The file's bytes; a file that shrank while read is an error (training still writing?)."""
    done = 0
    while True:
        data = os.read(fd, chunk)
        if not data:
            break
        done += len(data)
        yield data
    if done != size:
        raise TransferError(
            f"file changed while it was read ({done} bytes, expected {size}); is it still written?"
        )


# -- destinations ------------------------------------------------------------------------------


class Destination(Protocol):
    url: str

    def prepare(self, keys: list[str]) -> None: ...

    def put(self, run: RunDir, f: _SourceFile, key: str, tracker: ProgressTracker) -> EgressFile: ...

    def finish(self) -> None: ...

    def close(self) -> None: ...


def part_size_for(size: int, wanted: int) -> int:
    """``wanted``, raised so ``size`` fits in S3's 10,000 parts and no part is below 5 MiB."""
    part = max(wanted, MIN_PART_SIZE)
    while -(-size // part) > MAX_PARTS:
        part *= 2
    return part


class S3Destination:
    """``s3://bucket/prefix``: uploads with a full-object CRC64NVME, checked with HeadObject."""

    def __init__(self, url: str, config: EgressConfig, client: "S3Client | None" = None) -> None:
        self.url = url
        self.bucket, prefix = split_s3_url(url)
        self.prefix = prefix.strip("/")
        self._config = config
        self._client: S3Client = client or make_client(config.concurrency * (config.part_concurrency + 1) + 4)
        self._parts = ThreadPoolExecutor(
            max_workers=max(1, config.concurrency * config.part_concurrency), thread_name_prefix="egress-part"
        )

    def prepare(self, keys: list[str]) -> None:
        pass  # S3 destinations are governed by the policy's egress rules; a key may be rewritten

    def _object_key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, run: RunDir, f: _SourceFile, key: str, tracker: ProgressTracker) -> EgressFile:
        object_key = self._object_key(key)
        try:
            with run.open(f) as fd:
                if f.size > self._config.multipart_threshold:
                    crc = self._multipart(fd, f.size, object_key, tracker)
                else:
                    crc = self._single(fd, f.size, object_key, tracker)
            self._verify(object_key, f.size, crc)
        except (ClientError, BotoCoreError) as exc:
            raise TransferError(f"upload of {key} to {self.url} failed: {exc}") from exc
        return EgressFile(key, f.size, f"{S3_ALGORITHM}:{crc}")

    def _single(self, fd: int, size: int, object_key: str, tracker: ProgressTracker) -> str:
        hasher = new_source_hasher(S3_ALGORITHM)
        body = bytearray()
        for data in _read_chunks(fd, size):
            hasher.update(data)
            body += data
        crc = hasher.hexdigest()
        # The value is sent, so S3 checks the bytes it receives against it on arrival.
        self._client.put_object(
            Bucket=self.bucket,
            Key=object_key,
            Body=bytes(body),
            ChecksumAlgorithm="CRC64NVME",
            ChecksumCRC64NVME=_b64(crc),
        )
        tracker.bytes_moved(size)
        return crc

    def _multipart(self, fd: int, size: int, object_key: str, tracker: ProgressTracker) -> str:
        part_size = part_size_for(size, self._config.part_size)
        upload = self._client.create_multipart_upload(
            Bucket=self.bucket, Key=object_key, ChecksumAlgorithm="CRC64NVME", ChecksumType="FULL_OBJECT"
        )
        upload_id = upload["UploadId"]
        hasher = new_source_hasher(S3_ALGORITHM)
        in_flight: list[Future[dict[str, Any]]] = []
        window = threading.BoundedSemaphore(self._config.part_concurrency)
        try:
            number = 0
            buffer = bytearray()

            def send(data: bytes, n: int) -> None:
                window.acquire()  # bounded memory: at most part_concurrency parts held
                in_flight.append(
                    self._parts.submit(self._upload_part, object_key, upload_id, n, data, window)
                )

            for data in _read_chunks(fd, size):
                hasher.update(data)
                buffer += data
                if len(buffer) >= part_size:
                    number += 1
                    send(bytes(buffer[:part_size]), number)
                    del buffer[:part_size]
            if buffer or number == 0:
                number += 1
                send(bytes(buffer), number)
            parts = []
            for future in in_flight:
                part = future.result()
                tracker.bytes_moved(int(part.pop("_size")))
                parts.append(part)
            crc = hasher.hexdigest()
            self._client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=object_key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},  # type: ignore[typeddict-item]
                ChecksumType="FULL_OBJECT",
                ChecksumCRC64NVME=_b64(crc),
            )
            return crc
        except BaseException:
            for future in in_flight:
                future.cancel()
            with contextlib.suppress(Exception):
                self._client.abort_multipart_upload(Bucket=self.bucket, Key=object_key, UploadId=upload_id)
            raise

    def _upload_part(
        self, object_key: str, upload_id: str, number: int, data: bytes, window: threading.BoundedSemaphore
    ) -> dict[str, Any]:
        try:
            response = self._client.upload_part(
                Bucket=self.bucket,
                Key=object_key,
                UploadId=upload_id,
                PartNumber=number,
                Body=data,
                ChecksumAlgorithm="CRC64NVME",
            )
        finally:
            window.release()
        part: dict[str, Any] = {"PartNumber": number, "ETag": response["ETag"], "_size": len(data)}
        if response.get("ChecksumCRC64NVME"):
            part["ChecksumCRC64NVME"] = response["ChecksumCRC64NVME"]
        return part

    def _verify(self, object_key: str, size: int, crc: str) -> None:
        head = self._client.head_object(Bucket=self.bucket, Key=object_key, ChecksumMode="ENABLED")
        reported = head.get("ChecksumCRC64NVME")
        problem = None
        if head.get("ContentLength") != size:
            problem = f"S3 holds {head.get('ContentLength')} bytes, we sent {size}"
        elif not reported:
            problem = "S3 reports no CRC64NVME checksum for it"
        elif hex_from_base64(reported) != crc:
            problem = f"S3 reports {S3_ALGORITHM} {hex_from_base64(reported)}, the file read has {crc}"
        if problem is not None:
            # A wrong object must not sit at the final key looking like a good checkpoint.
            with contextlib.suppress(Exception):
                self._client.delete_object(Bucket=self.bucket, Key=object_key)
            raise ChecksumMismatchError(f"s3://{self.bucket}/{object_key} failed verification: {problem}")

    def finish(self) -> None:
        pass

    def close(self) -> None:
        self._parts.shutdown(wait=True, cancel_futures=True)


def _b64(hex_digest: str) -> str:
    import base64

    return base64.b64encode(bytes.fromhex(hex_digest)).decode("ascii")


class LocalDestination:
    """An on-prem directory: temporary name, fsync, read back and compare, then a new name
    (never replacing a file that is there); see :mod:`transfer.egress_dir`."""

    def __init__(self, url: str) -> None:
        self.url = url
        path = local_path(url)
        if path is None:
            raise InvalidInputError(f"not a local destination: {url}")
        self._dir = EgressDir(str(path))

    def prepare(self, keys: list[str]) -> None:
        for key in keys:
            if key.split("/")[0] == STATE_DIR:
                raise InvalidInputError(f"a checkpoint cannot be named {STATE_DIR}")
        self._dir.refuse_existing(keys)

    def put(self, run: RunDir, f: _SourceFile, key: str, tracker: ProgressTracker) -> EgressFile:
        parts = tuple(key.split("/"))
        fd, name = self._dir.create_temp()
        try:
            try:
                if f.size > 0:
                    os.posix_fallocate(fd, 0, f.size)  # a full disk fails the file at once
            except OSError as exc:
                if exc.errno != errno.EOPNOTSUPP:
                    raise
            hasher = new_local_hasher()
            with run.open(f) as source_fd:
                for data in _read_chunks(source_fd, f.size):
                    hasher.update(data)
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view) :]
                    tracker.bytes_moved(len(data))
            os.fsync(fd)
            wanted = hasher.hexdigest()
            written = _hash_fd(fd)
            if written != wanted:
                raise ChecksumMismatchError(
                    f"{key}: written {LOCAL_ALGORITHM} {written} differs from the file read ({wanted})"
                )
            os.close(fd)
            fd = -1
            self._dir.commit_new(name, parts)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            self._dir.discard(name)
            raise
        return EgressFile(key, f.size, f"{LOCAL_ALGORITHM}:{wanted}")

    def finish(self) -> None:
        self._dir.sync()

    def close(self) -> None:
        self._dir.close()


def _hash_fd(fd: int) -> str:
    hasher = new_local_hasher()
    offset = 0
    while data := os.pread(fd, CHUNK, offset):
        hasher.update(data)
        offset += len(data)
    return hasher.hexdigest()


def local_path(url: str) -> Path | None:
    """The directory a local destination names (``/x`` or ``file:///x``), else None.

    Raises :class:`InvalidInputError` for an empty, ``.`` or ``..`` segment: the path is taken
    as written, so what the policy matches is exactly the directory that is written."""
    rest = url.removeprefix("file://") if url.startswith("file://") else url
    if not rest.startswith("/"):
        return None
    return Path("/", *plain_segments(rest))


def validate_destination(url: str) -> str:
    """``url`` if egress can write there (``s3://bucket[/prefix]``, an absolute path, ``file:///``)."""
    if url.startswith("s3://"):
        split_s3_url(url)
        return url
    if local_path(url) is not None:
        return url
    raise InvalidInputError(
        f"unsupported egress destination {url!r}: use s3://bucket/prefix, an absolute path or file:///path"
    )


def open_destination(url: str, config: EgressConfig, client: "S3Client | None" = None) -> Destination:
    validate_destination(url)
    if url.startswith("s3://"):
        return S3Destination(url, config, client)
    return LocalDestination(url)


# -- the copy ----------------------------------------------------------------------------------


@dataclass
class _Plan:
    files: list[_SourceFile] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        return sum(f.size for f in self.files)


def list_checkpoint_files(
    run_dir: str | os.PathLike[str], checkpoints: Sequence[CheckpointLike]
) -> list[str]:
    """The keys egress would write for ``checkpoints`` (for dry runs and tests)."""
    with RunDir(run_dir) as run:
        return [f.key for c in checkpoints for f in run.files(c)]


def egress(
    run_dir: str | os.PathLike[str],
    checkpoints: Sequence[CheckpointLike],
    destination: str,
    config: EgressConfig | None = None,
    on_progress: ProgressCallback | None = None,
    *,
    client: "S3Client | None" = None,
    on_start: Callable[[Progress], None] | None = None,
) -> EgressResult:
    """Copy ``checkpoints`` of ``run_dir`` to ``destination`` and verify every file there.

    Returns every file's record once all are verified; raises on the first failure (the
    files verified before it stay at the destination, the failing one does not).
    """
    config = config or EgressConfig()
    with RunDir(run_dir) as run:
        plan = _Plan([f for c in checkpoints for f in run.files(c)])
        tracker = ProgressTracker(len(plan.files), plan.bytes, on_progress)
        if on_start is not None:
            on_start(tracker.state)
        target = open_destination(destination, config, client)
        try:
            target.prepare([f.key for f in plan.files])
            records: list[EgressFile] = []
            with ThreadPoolExecutor(
                max_workers=max(1, config.concurrency), thread_name_prefix="egress"
            ) as pool:
                futures = [pool.submit(_put_one, target, run, f, tracker) for f in plan.files]
                try:
                    for future in futures:
                        records.append(future.result())
                except BaseException:
                    for future in futures:
                        future.cancel()
                    raise
            target.finish()
        finally:
            target.close()
    return EgressResult(destination, tuple(records), plan.bytes)


def _put_one(target: Destination, run: RunDir, f: _SourceFile, tracker: ProgressTracker) -> EgressFile:
    record = target.put(run, f, f.key, tracker)
    tracker.file_done()
    return record


def delete_checkpoint(run_dir: str | os.PathLike[str], name: str) -> int:
    """Remove the checkpoint ``name`` from ``run_dir`` (its file or whole tree), following no
    symlink; returns the bytes it held. Called only once every selected checkpoint is verified
    at the destination."""
    import shutil

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
