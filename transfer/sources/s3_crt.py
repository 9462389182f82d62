"""GETs through the AWS Common Runtime's S3 client (``awscrt``): the S3 source's data path.

The listing, HEADs and tags stay on boto3 (a request each, rare); the bodies come through
the CRT, whose event loop, HTTP parsing and SigV4 signing run in native threads outside the
GIL, so the Python left per object is the hashing and writing the engine does anyway
(measured in bench/datapath.py; the README's "Data path" says why this one).

What boto3 gave and this keeps: the same credentials (boto3's chain, asked again whenever
they are due to expire), ``If-Match`` with the listed ETag on every GET (the CRT sends it on
every ranged request it makes), the response's headers before any of its body, so the caller
decides on ``x-amz-tagging-count`` and the published checksum before writing a byte, and a
bound on memory: the CRT buffers at most ``memory_limit`` for the whole client, and each open
body holds at most ``window`` bytes plus one part the engine has not read yet (the CRT's
delivering thread waits until it has). The CRT's own checksum validation stays off: the engine hashes
every byte against the published checksum itself, and retries a mismatch.
"""

import threading
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit

from awscrt.auth import AwsCredentials, AwsCredentialsProvider
from awscrt.http import HttpHeaders, HttpRequest
from awscrt.io import ClientBootstrap, DefaultHostResolver, EventLoopGroup
from awscrt.s3 import S3Client, S3Request, S3RequestTlsMode, S3RequestType

from stagegate.transfer.errors import SourceChangedError, SourceReadError, TransferError

MiB = 1 << 20
# The CRT's floor for its buffer pool; 8 MiB parts, so up to 32 ranges in flight per client.
MEMORY_LIMIT = 256 * MiB
PART_SIZE = 8 * MiB
WINDOW = 4 * MiB  # per open body: what the CRT may deliver ahead of the engine's reads


# response header -> the field boto3 would have parsed it into
_FIELDS = {
    "x-amz-checksum-crc64nvme": "ChecksumCRC64NVME",
    "x-amz-checksum-crc32c": "ChecksumCRC32C",
    "x-amz-checksum-crc32": "ChecksumCRC32",
    "x-amz-checksum-sha256": "ChecksumSHA256",
    "x-amz-checksum-sha1": "ChecksumSHA1",
    "x-amz-checksum-type": "ChecksumType",
    "x-amz-server-side-encryption": "ServerSideEncryption",
    "x-amz-tagging-count": "TagCount",
}


def _header_map(headers: Any) -> dict[str, str]:
    return {name.lower(): value for name, value in headers or ()}


def response_fields(headers: dict[str, str]) -> dict[str, Any]:
    """The headers as boto3 names them, so one reading of a response serves both clients."""
    fields: dict[str, Any] = {field: headers[name] for name, field in _FIELDS.items() if name in headers}
    if "TagCount" in fields:
        fields["TagCount"] = int(fields["TagCount"]) if fields["TagCount"].isdigit() else 1
    return fields


class CrtBody:
    """One GET's response: headers, then the body a chunk at a time, in order.

    The CRT calls :meth:`_on_body` on its own thread; the engine reads on its copying thread.
    Between them sits a queue of at most ``window`` bytes: a full queue makes the CRT's
    thread wait, an empty one the reader.
    """

    def __init__(self, key: str, window: int = WINDOW) -> None:
        self._key = key
        self._window = window
        self._cond = threading.Condition()
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._head: memoryview | None = None  # the unread rest of the first chunk
        self._status: int | None = None
        self.headers: dict[str, str] = {}
        self._done = False
        self._closed = False
        self._failure: Exception | None = None
        self.request: S3Request | None = None

    # -- the CRT's side (its threads) ------------------------------------------------

    def _on_headers(self, status_code: int, headers: Any, **_: Any) -> None:
        with self._cond:
            self._status = status_code
            self.headers = _header_map(headers)
            self._cond.notify_all()

    def _on_body(self, chunk: bytes, offset: int, **_: Any) -> None:
        with self._cond:
            while self._buffered >= self._window and not self._closed:
                self._cond.wait()
            if self._closed:
                return
            self._chunks.append(chunk)
            self._buffered += len(chunk)
            self._cond.notify_all()

    def _on_done(self, error: Exception | None, status_code: int | None = None, **_: Any) -> None:
        with self._cond:
            self._done = True
            if error is not None:
                self._failure = self._error(status_code or self._status, error)
            self._cond.notify_all()

    def _error(self, status: int | None, error: Exception) -> Exception:
        if status == 412:
            return SourceChangedError(f"{self._key}: changed since it was listed (ETag differs)")
        if status == 404:
            return SourceChangedError(f"{self._key}: deleted since it was listed")
        if status in (400, 401, 403, 405):  # refused: asking again gets the same answer
            return TransferError(f"{self._key}: S3 GET failed: HTTP {status}")
        # A dropped connection, a 5xx the CRT's retries did not outlast: worth another attempt.
        name = getattr(error, "name", type(error).__name__)
        http = f" (HTTP {status})" if status else ""
        return SourceReadError(f"{self._key}: S3 GET failed: {name}{http}")

    # -- the reader's side -----------------------------------------------------------

    def wait_headers(self) -> dict[str, str]:
        """The response's headers once they are in; raises the request's failure instead."""
        with self._cond:
            while not self._done and (self._status is None or self._status >= 300):
                self._cond.wait()
            if self._failure is not None:
                raise self._failure
            return self.headers

    def read(self, n: int, /) -> bytes:
        with self._cond:
            while self._head is None and not self._chunks and not self._done:
                self._cond.wait()
            if self._head is None:
                if not self._chunks:
                    if self._failure is not None:
                        raise self._failure
                    return b""
                chunk = self._chunks.popleft()
                if len(chunk) <= n:  # the common case: a whole chunk, handed on uncopied
                    self._buffered -= len(chunk)
                    self._cond.notify_all()
                    return chunk
                self._head = memoryview(chunk)
            data = bytes(self._head[:n])
            self._head = self._head[n:] if len(self._head) > n else None
            self._buffered -= len(data)
            self._cond.notify_all()
            return data

    def close(self) -> None:
        with self._cond:
            self._closed = True
            done = self._done
            self._chunks.clear()
            self._head = None
            self._cond.notify_all()
        if not done and self.request is not None:
            self.request.cancel()
        if self.request is not None:
            self.request.finished_future.exception()  # wait: no callback may outlive the reader


def _delegate(credentials: Callable[[], Any]) -> AwsCredentialsProvider:
    # The CRT asks for every request it signs: the same keys give back the same object, since
    # making a new one cost a fifth of the GIL-held time of a 2,000-object staging (py-spy).
    made: dict[tuple[str, str, str | None], AwsCredentials] = {}

    def current() -> AwsCredentials:
        frozen = credentials()
        if frozen is None:
            raise TransferError("no AWS credentials found (boto3's chain: environment, config, role)")
        frozen = frozen.get_frozen_credentials()  # refreshes ones about to expire
        keys = (frozen.access_key, frozen.secret_key, frozen.token)
        found = made.get(keys)
        if found is None:
            made.clear()  # rotated: the old ones are of no more use
            found = made[keys] = AwsCredentials(*keys)
        return found

    return AwsCredentialsProvider.new_delegate(current)


class CrtGetter:
    """A CRT S3 client for GETs from one endpoint, with boto3's credentials and region."""

    def __init__(
        self,
        endpoint_url: str | None,
        region: str,
        credentials: Callable[[], Any],
        threads: int | None = None,
        max_connections: int = 64,
    ) -> None:
        self._elg = EventLoopGroup(threads or 0)  # 0: one loop per core
        self._bootstrap = ClientBootstrap(self._elg, DefaultHostResolver(self._elg))
        parts = urlsplit(endpoint_url) if endpoint_url else None
        self._path_style = parts is not None
        self._host = parts.netloc if parts else f"s3.{region}.amazonaws.com"
        self._base = parts.path.rstrip("/") if parts else ""
        tls = S3RequestTlsMode.DISABLED if parts is not None and parts.scheme == "http" else None
        self._client = S3Client(
            bootstrap=self._bootstrap,
            region=region,
            tls_mode=tls,
            credential_provider=_delegate(credentials),
            part_size=PART_SIZE,
            memory_limit=MEMORY_LIMIT,
            max_active_connections_override=max_connections,
        )

    def get(
        self,
        bucket: str,
        key: str,
        if_match: str | None = None,
        version: str | None = None,
        byte_range: tuple[int, int] | None = None,
        name: str | None = None,
    ) -> CrtBody:
        """Start a GET of ``key`` (bytes ``first..last`` inclusive if ``byte_range``) and
        return its body once the response's headers are in; errors call it ``name``."""
        quoted = quote(key, safe="/~")
        if self._path_style:
            host, path = self._host, f"{self._base}/{bucket}/{quoted}"
        else:
            host, path = f"{bucket}.{self._host}", f"/{quoted}"
        if version:
            path += f"?versionId={quote(version, safe='')}"
        headers = [("Host", host), ("x-amz-checksum-mode", "ENABLED")]
        if if_match:
            headers.append(("If-Match", f'"{if_match}"'))
        if byte_range is not None:
            headers.append(("Range", f"bytes={byte_range[0]}-{byte_range[1]}"))
        body = CrtBody(name or key)
        body.request = self._client.make_request(
            type=S3RequestType.GET_OBJECT,
            request=HttpRequest("GET", path, HttpHeaders(headers)),
            operation_name="GetObject",
            on_headers=body._on_headers,
            on_body=body._on_body,
            on_done=body._on_done,
        )
        try:
            body.wait_headers()
        except BaseException:
            body.close()
            raise
        return body
