"""``s3://bucket/prefix`` as a destination: uploads carrying a full-object CRC64NVME.

An object at most one part long goes up in one PutObject, a longer one as a multipart
upload whose parts go up in parallel while the engine reads the file once, in order. The
engine computes the CRC64NVME while reading; every request that makes an object appear
carries it (PutObject's ``ChecksumCRC64NVME``, CompleteMultipartUpload's full-object value),
so S3 checks it before the object exists at its key. After that, HeadObject
(``ChecksumMode=ENABLED``) must report the same CRC and size, else the object is deleted and
the file fails. CRC64NVME rather than per-part SHA-256: it is the one full-object checksum
both S3 and the moto server used in the tests compute over the stored bytes of a multipart
object (moto 5.2 reports a wrong full-object CRC32C).

Memory: part buffers are taken from one :class:`PartBuffers` per writer, so however many
files are in flight, at most ``buffers`` parts (being filled or going up) are held.
"""

import base64
import contextlib
import io
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from stagegate.transfer.checksums import hex_from_base64
from stagegate.transfer.endpoints.base import Present
from stagegate.transfer.errors import ChecksumMismatchError, SourceChangedError, TransferError
from stagegate.transfer.parts import S3_PART_RULE
from stagegate.transfer.sources.s3 import make_client, split_s3_url

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

ALGORITHM = "crc64nvme"


def _b64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode("ascii")


class PartBuffers:
    """At most ``count`` part buffers alive at once, across every upload of a writer. Given
    back buffers are reused: allocating and freeing part-sized blocks from many threads
    fragments the C heap until the process holds several times what is in use."""

    def __init__(self, count: int) -> None:
        if count < 1:
            raise ValueError("at least one part buffer is needed")
        self._free = threading.Semaphore(count)
        self._lock = threading.Lock()
        self._spare: list[bytearray] = []
        self.held = 0
        self.peak = 0  # the most held at once: what the memory bound promises

    def take(self, size: int) -> memoryview:
        """A writable buffer of exactly ``size`` bytes; blocks while ``count`` are out."""
        self._free.acquire()
        with self._lock:
            self.held += 1
            self.peak = max(self.peak, self.held)
            spare = self._spare.pop() if self._spare else None
        if spare is None or len(spare) < size:
            spare = bytearray(size)
        return memoryview(spare)[:size]

    def give_back(self, buffer: memoryview | None) -> None:
        with self._lock:
            self.held -= 1
            if buffer is not None:
                self._spare.append(buffer.obj)  # type: ignore[arg-type]
        self._free.release()


class _Body(io.RawIOBase):
    """A part buffer as the seekable stream botocore reads (to sign, checksum and send it)
    without copying it: given bytes or a bytearray, its signer would copy it into a BytesIO."""

    def __init__(self, view: memoryview) -> None:
        super().__init__()
        self._view = view
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int = -1, /) -> memoryview:
        # A slice, not a copy: botocore only hashes and sends what it reads.
        end = len(self._view) if size is None or size < 0 else min(len(self._view), self._pos + size)
        start, self._pos = self._pos, max(self._pos, end)
        return self._view[start:end]

    def readinto(self, b: Any) -> int:
        n = max(0, min(len(b), len(self._view) - self._pos))
        b[:n] = self._view[self._pos : self._pos + n]
        self._pos += n
        return n

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._view)}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def __len__(self) -> int:
        return len(self._view)


class S3Upload:
    """One object on its way up: bytes are gathered into part buffers, each full part is
    handed to the upload pool, the last one waits for :meth:`S3Writer.commit`."""

    fd = None  # not a local file

    def __init__(self, writer: "S3Writer", key: str, size: int, part_size: int) -> None:
        self._writer = writer
        self.key = key
        self.size = size
        self.part_size = part_size
        self.upload_id: str | None = None  # a multipart upload, once the first part goes up
        self.parts: list[Future[dict[str, Any]]] = []
        self._buffer: memoryview | None = None
        self._filled = 0
        self._offset = 0  # bytes handed over so far, in earlier parts

    @property
    def single(self) -> bool:
        return self.size <= self.part_size

    def write(self, data: bytes | memoryview, /) -> None:
        view = memoryview(data)
        while view:
            if self._buffer is None:
                left = self.size - self._offset
                if left <= 0:
                    raise SourceChangedError(f"{self.key}: longer than the {self.size} bytes listed")
                self._raise_failed_part()  # stop reading a file whose upload already failed
                self._buffer = self._writer.buffers.take(min(self.part_size, left))
                self._filled = 0
            if self._filled == len(self._buffer):  # a single part, full, and more is coming
                raise SourceChangedError(f"{self.key}: longer than the {self.size} bytes listed")
            n = min(len(view), len(self._buffer) - self._filled)
            self._buffer[self._filled : self._filled + n] = view[:n]
            self._filled += n
            view = view[n:]
            if self._filled == len(self._buffer) and not self.single:
                self._send()

    def write_at(self, offset: int, data: bytes | memoryview, /) -> None:
        raise TypeError("an S3 upload is written in order")

    def _raise_failed_part(self) -> None:
        for future in self.parts:
            if future.done() and not future.cancelled() and future.exception() is not None:
                future.result()

    def _send(self) -> None:
        buffer, self._buffer = self._buffer, None
        assert buffer is not None
        self._writer.send_part(self, len(self.parts) + 1, buffer)
        self._offset += len(buffer)

    def last_buffer(self) -> memoryview:
        """The single part of a small object, whole (an empty object has an empty one)."""
        if self._buffer is None:
            return self._writer.buffers.take(0)
        if self._filled != len(self._buffer):
            raise SourceChangedError(f"{self.key}: got {self._filled} bytes, the listing said {self.size}")
        buffer, self._buffer = self._buffer, None
        return buffer

    def flush(self) -> None:
        """Send a partly filled last part (the file ended early: the engine then fails it)."""
        if self._buffer is not None and not self.single:
            self._buffer = self._buffer[: self._filled]
            self._send()

    def release(self) -> None:
        if self._buffer is not None:
            buffer, self._buffer = self._buffer, None
            self._writer.buffers.give_back(buffer)


class S3Writer:
    """Uploads below ``s3://bucket/prefix`` (a :class:`transfer.endpoints.base.EgressWriter`)."""

    positional = False
    read_back_algorithm = ALGORITHM
    part_rule = S3_PART_RULE
    overwrites = True  # S3 prefixes are governed by the policy's egress rules

    def __init__(self, url: str, buffers: int = 8, client: "S3Client | None" = None) -> None:
        self.url = self.where = url
        self.bucket, prefix = split_s3_url(url)
        self.prefix = prefix.strip("/")
        self.buffers = PartBuffers(buffers)
        self._client: S3Client = client or make_client(2 * buffers + 4)
        # Never more uploads in flight than buffers: a part only goes up holding one.
        self._pool = ThreadPoolExecutor(buffers, thread_name_prefix="stagegate-upload")
        self._opened = datetime.now(UTC)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def object_key(self, parts: tuple[str, ...]) -> str:
        key = "/".join(parts)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _failed(self, what: str, exc: Exception) -> TransferError:
        return TransferError(f"{what} {self.url} failed: {exc}")

    # -- before the first byte ----------------------------------------------------------------

    def prepare(self, keys: list[str]) -> None:
        """Abort multipart uploads an interrupted egress left for these keys (started before
        this writer opened): their parts would otherwise be stored, and billed, until a
        lifecycle rule removes them. They never made an object appear."""
        wanted = {self.object_key(tuple(k.split("/"))) for k in keys}
        try:
            paginator = self._client.get_paginator("list_multipart_uploads")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for upload in page.get("Uploads", []):
                    started = upload.get("Initiated")
                    if upload["Key"] in wanted and (started is None or started < self._opened):
                        self._client.abort_multipart_upload(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
        except (ClientError, BotoCoreError) as exc:
            raise self._failed("clearing abandoned uploads in", exc) from exc

    def present(self, parts: tuple[str, ...]) -> Present | None:
        try:
            head = self._client.head_object(
                Bucket=self.bucket, Key=self.object_key(parts), ChecksumMode="ENABLED"
            )
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code", "")) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self._failed("looking at", exc) from exc
        except BotoCoreError as exc:
            raise self._failed("looking at", exc) from exc
        value = head.get("ChecksumCRC64NVME")
        full = head.get("ChecksumType", "FULL_OBJECT") == "FULL_OBJECT" and value and "-" not in value
        return Present(int(head.get("ContentLength", -1)), hex_from_base64(value) if full and value else None)

    # -- writing --------------------------------------------------------------------------------

    def open_temp(self, parts: tuple[str, ...], size: int, part_size: int) -> S3Upload:
        return S3Upload(self, self.object_key(parts), size, part_size)

    def send_part(self, upload: S3Upload, number: int, buffer: memoryview) -> None:
        if upload.upload_id is None:
            try:
                created = self._client.create_multipart_upload(
                    Bucket=self.bucket,
                    Key=upload.key,
                    ChecksumAlgorithm="CRC64NVME",
                    ChecksumType="FULL_OBJECT",
                )
            except (ClientError, BotoCoreError) as exc:
                self.buffers.give_back(buffer)
                raise self._failed(f"starting the upload of {upload.key} to", exc) from exc
            upload.upload_id = created["UploadId"]
        upload.parts.append(
            self._pool.submit(self._upload_part, upload.key, upload.upload_id, number, buffer)
        )

    def _upload_part(self, key: str, upload_id: str, number: int, buffer: memoryview) -> dict[str, Any]:
        try:
            response = self._client.upload_part(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                Body=_Body(buffer),  # type: ignore[arg-type]
                ContentLength=len(buffer),
                ChecksumAlgorithm="CRC64NVME",
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._failed(f"uploading part {number} of {key} to", exc) from exc
        finally:
            self.buffers.give_back(buffer)
        part: dict[str, Any] = {"PartNumber": number, "ETag": response["ETag"]}
        if response.get("ChecksumCRC64NVME"):
            part["ChecksumCRC64NVME"] = response["ChecksumCRC64NVME"]
        return part

    def commit(self, temp: S3Upload, parts: tuple[str, ...], checksum: str | None) -> int:
        assert checksum is not None  # the engine computes read_back_algorithm while reading
        key = self.object_key(parts)
        try:
            if temp.single:
                body = temp.last_buffer()
                try:
                    # The value is sent, so S3 checks the bytes it receives against it on arrival.
                    self._client.put_object(
                        Bucket=self.bucket,
                        Key=key,
                        Body=_Body(body),  # type: ignore[arg-type]
                        ContentLength=len(body),
                        ChecksumAlgorithm="CRC64NVME",
                        ChecksumCRC64NVME=_b64(checksum),
                    )
                finally:
                    self.buffers.give_back(body)
            else:
                temp.flush()
                done = [future.result() for future in temp.parts]
                self._client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=str(temp.upload_id),
                    MultipartUpload={"Parts": done},  # type: ignore[typeddict-item]
                    ChecksumType="FULL_OBJECT",
                    ChecksumCRC64NVME=_b64(checksum),
                )
                temp.upload_id = None  # completed: nothing left to abort
            self._verify(key, temp.size, checksum)
        except (ClientError, BotoCoreError) as exc:
            raise self._failed(f"upload of {'/'.join(parts)} to", exc) from exc
        return 0

    def _verify(self, key: str, size: int, crc: str) -> None:
        head = self._client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
        reported = head.get("ChecksumCRC64NVME")
        problem = None
        if head.get("ContentLength") != size:
            problem = f"S3 holds {head.get('ContentLength')} bytes, we sent {size}"
        elif not reported:
            problem = "S3 reports no CRC64NVME checksum for it"
        elif hex_from_base64(reported) != crc:
            problem = f"S3 reports {ALGORITHM} {hex_from_base64(reported)}, the file read has {crc}"
        if problem is not None:
            # A wrong object must not sit at the final key looking like a good checkpoint.
            with contextlib.suppress(Exception):
                self._client.delete_object(Bucket=self.bucket, Key=key)
            raise ChecksumMismatchError(f"s3://{self.bucket}/{key} failed verification: {problem}")

    def discard(self, temp: S3Upload) -> None:
        temp.release()
        for future in temp.parts:
            if future.cancel():  # never ran, so never gave its buffer back
                self.buffers.give_back(None)
        for future in temp.parts:
            with contextlib.suppress(Exception):
                future.result()
        if temp.upload_id is not None:
            with contextlib.suppress(Exception):
                self._client.abort_multipart_upload(Bucket=self.bucket, Key=temp.key, UploadId=temp.upload_id)

    def finish(self) -> None:
        pass  # every object was verified as it was committed
