"""An S3 bucket prefix as a source: listings, HEADs and tags through boto3; the bodies of
small objects through the CRT's S3 client (:mod:`transfer.sources.s3_crt`), ranges and big
objects through boto3's GET (``data_path="auto"``; "crt" or "boto3" force one for all).

Credentials come from boto3's standard chain and ``AWS_ENDPOINT_URL`` is honoured, so any
S3-compatible store works. Every GET carries ``If-Match`` with the listed ETag: a ranged
read can never mix two revisions of an object, and a change since planning is caught
by S3 itself (412) rather than by a checksum after the fact.
"""

import hashlib
import io
import os
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from stagegate.errors import InvalidInputError
from stagegate.limits import MAX_LABEL_FILE_BYTES
from stagegate.settings import aws_environment
from stagegate.transfer.checksums import hex_from_base64, md5_from_etag
from stagegate.transfer.errors import SourceChangedError, SourceNotFoundError, TransferError
from stagegate.transfer.label_sources import (
    LabelFileAbove,
    combined_label,
    directories_above,
    is_label_name,
    not_a_label_file,
    too_big_a_label_file,
)
from stagegate.transfer.objects import LabelSpec, SourceObject
from stagegate.transfer.sources.base import PublishedChecksum
from stagegate.transfer.sources.s3_body import DirectBody, direct_reader
from stagegate.transfer.sources.s3_timestamps import parse_timestamp

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from stagegate.transfer.sources.s3_crt import CrtGetter

# "auto": whole objects of up to one CRT part through the CRT, ranges and bigger objects
# through boto3 (the measurement behind it: README, "S3 data path"); or either for everything.
DATA_PATHS = ("auto", "crt", "boto3")

# response field -> our algorithm name, most preferred first
_CHECKSUM_FIELDS = (
    ("ChecksumCRC64NVME", "crc64nvme"),
    ("ChecksumCRC32C", "crc32c"),
    ("ChecksumCRC32", "crc32"),
    ("ChecksumSHA256", "sha256"),
    ("ChecksumSHA1", "sha1"),
)
_KMS = ("aws:kms", "aws:kms:dsse")
# Bucket names: 3-63 of lowercase letters, digits, dots and hyphens (older buckets may have
# capitals and underscores, so those pass too); anything else cannot name a bucket.
_BUCKET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,253}[A-Za-z0-9]")


def split_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (``bucket``, ``some/prefix``)."""
    rest = url.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise SourceNotFoundError(f"no bucket in {url!r}")
    if not _BUCKET_NAME.fullmatch(bucket):
        # Only the URL is quoted: redaction knows URLs, and a mistyped bucket may hold a secret.
        raise InvalidInputError(f"not a usable S3 URL (invalid bucket name): {url}")
    return bucket, prefix


def _ask_for_checksums(request: Any, **_: Any) -> None:
    request.headers["x-amz-checksum-mode"] = "ENABLED"


# One boto3 session per process and AWS environment (:func:`_session`), and the lock that
# guards it: a session is not thread-safe, and clients are made from it in several threads.
_sessions: dict[str, boto3.session.Session] = {}
_sessions_lock = threading.Lock()
os.register_at_fork(after_in_child=lambda: globals().update(_sessions_lock=threading.Lock()))


def _session() -> boto3.session.Session:
    """The session clients are made from. A new one loads and parses S3's service model again,
    150-300 ms of CPU measured here, paid by every source opened (each plan, copy batch and
    finalize of a staging); a client from a loaded session costs about 17 ms. Keyed by the
    ``AWS_*`` environment, so a changed endpoint, region or credential gets a session of its
    own, as a fresh session would have seen it. Call with ``_sessions_lock`` held."""
    key = hashlib.sha256(repr(aws_environment()).encode()).hexdigest()  # no credential kept as a key
    session = _sessions.get(key)
    if session is None:
        if len(_sessions) >= 16:  # environments come and go (tests): keep a handful
            _sessions.clear()
        core = botocore.session.get_session()
        # Each response is parsed by this session's factory: listings' timestamps without dateutil.
        core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=parse_timestamp)
        session = _sessions[key] = boto3.session.Session(botocore_session=core)
    return session


def make_client(max_connections: int) -> "S3Client":
    config = Config(
        max_pool_connections=max_connections,
        retries={"mode": "standard", "max_attempts": 5},
        tcp_keepalive=True,
        parameter_validation=False,  # we build every call ourselves; saves CPU per request
        response_checksum_validation="when_required",
        request_checksum_calculation="when_required",
    )
    with _sessions_lock:
        client = _session().client("s3", config=config)
    # S3 sends an object's checksum only when asked. Asking through the ChecksumMode
    # parameter would also make botocore validate it, and we already hash in-stream:
    # ask with the header instead, and compute the checksum once.
    client.meta.events.register("before-sign.s3.GetObject", _ask_for_checksums)
    return client


def published_from_response(resp: dict[str, Any], etag: str | None) -> PublishedChecksum | None:
    """The strongest full-object checksum in a GET/HEAD response, else the ETag's MD5."""
    # A multipart object's checksum is a composite over its parts' checksums, not over the
    # bytes, unless S3 says FULL_OBJECT; a single-part object's checksum is always full.
    multipart = etag is not None and "-" in etag
    full_object = resp.get("ChecksumType") == "FULL_OBJECT" or (
        not multipart and resp.get("ChecksumType") in (None, "FULL_OBJECT")
    )
    for field, algorithm in _CHECKSUM_FIELDS:
        value = resp.get(field)
        if value and full_object and "-" not in value:
            return PublishedChecksum(algorithm, hex_from_base64(value))
    if resp.get("ServerSideEncryption") in _KMS:
        return None  # a KMS-encrypted object's ETag is not the MD5 of its bytes
    md5 = md5_from_etag(etag)
    return PublishedChecksum("md5", md5) if md5 else None


class _BodyReader:
    def __init__(
        self,
        body: Any,
        published: PublishedChecksum | None,
        label: Callable[[], str | None] = lambda: None,
    ) -> None:
        self._body = body
        self.published = published
        self._label = label

    def own_label(self) -> str | None:
        return self._label()

    def read(self, n: int, /) -> bytes:
        return self._body.read(n)  # type: ignore[no-any-return]

    def close(self) -> None:
        self._body.close()


class _DirectBodyReader(_BodyReader):
    """A body the engine reads into its own reused buffer (:mod:`transfer.sources.s3_body`)."""

    def __init__(
        self, body: DirectBody, published: PublishedChecksum | None, label: Callable[[], str | None]
    ) -> None:
        super().__init__(body, published, label)
        self._direct = body

    def readinto(self, buffer: memoryview, /) -> int:
        return self._direct.readinto(buffer)


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3Source:
    # One S3 stream tops out well below a node's bandwidth; parallel ranges fill it.
    prefers_ranged_reads = True

    def __init__(
        self,
        url: str,
        client: "S3Client | None" = None,
        max_connections: int = 64,
        labels: LabelSpec | None = None,
        tags_at_plan: bool = False,
        data_path: str = "auto",
    ) -> None:
        if data_path not in DATA_PATHS:
            raise InvalidInputError(f"unknown S3 data path {data_path!r}: one of {', '.join(DATA_PATHS)}")
        self.url = url
        self._data_path = data_path
        self._max_connections = max_connections
        self._getter: CrtGetter | None = None
        self._getter_lock = threading.Lock()
        self.bucket, prefix = split_s3_url(url)
        self._client = client or make_client(max_connections)
        self._prefix = prefix
        # Whether the URL names one object rather than a folder: learnt by list(), or asked
        # once (see _names_object) by a batch that reads objects another process listed.
        self._single: bool | None = None
        self._single_lock = threading.Lock()
        self._tag = labels.tag if labels else None
        self._tag_threads = max(1, min(32, max_connections // 2))
        # Tags cost one request per object and a listing carries none, so by default they are
        # read only at copy time, and only for objects whose GET says they have some.
        self.labels_listed = self._tag is None or tags_at_plan

    def _dir_prefix(self) -> str:
        # "s3://b/data/train" means the folder data/train/, as aws s3 cp --recursive reads it.
        return self._prefix if not self._prefix or self._prefix.endswith("/") else self._prefix + "/"

    def list(self) -> Iterator[SourceObject]:
        dir_prefix = self._dir_prefix()
        found = False
        paginator = self._client.get_paginator("list_objects_v2")
        # Listings carry no tags: in the exhaustive mode each object's are asked for
        # separately (one request per object), a page at a time in parallel, so their
        # latencies overlap.
        tagger = ThreadPoolExecutor(self._tag_threads) if self._tag and self.labels_listed else None
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=dir_prefix):
                items = [i for i in page.get("Contents", []) if i["Key"] != dir_prefix]
                found = found or bool(page.get("Contents"))  # the folder marker counts as found
                labels = tagger.map(lambda i: self._label_of(i["Key"]), items) if tagger else None
                for item in items:
                    label = next(labels) if labels is not None else None
                    yield self._object(item["Key"][len(dir_prefix) :], item, label)
        except ClientError as exc:
            raise self._listing_failed(exc) from None
        except ParamValidationError as exc:
            raise InvalidInputError(f"not a usable S3 location: {self.url}: {exc}") from None
        except BotoCoreError as exc:  # no credentials, endpoint unreachable...
            raise TransferError(f"cannot list {self.url}: {exc}") from None
        finally:
            if tagger is not None:
                tagger.shutdown(cancel_futures=True)
        if found:
            self._single = False
            return
        # Not a folder: perhaps the URL names a single object.
        head = self._head(self._prefix) if self._prefix and not self._prefix.endswith("/") else None
        if head is None:
            raise SourceNotFoundError(f"nothing under {self.url}")
        self._single = True
        label = self._label_of(self._prefix) if self._tag and self.labels_listed else None
        yield self._object(
            self._object_name(), {"Size": head["ContentLength"], "ETag": head.get("ETag")}, label
        )

    def _object_name(self) -> str:
        """The key a single object's URL lists it under: its name, the file it becomes."""
        return self._prefix.rsplit("/", 1)[-1]

    def _names_object(self, key: str) -> bool:
        """True if ``key`` is the object the URL itself names, not one in the folder it names.

        Only a URL without a trailing '/' can name an object, and then only under its own
        name. That name is ambiguous (``s3://b/x`` may be the object ``x`` or the folder
        holding ``x/x``): list() decides it (a folder wins) and remembers; a source that never
        listed asks the same question once, with one single-key listing of the folder.
        """
        if not self._prefix or self._prefix.endswith("/") or key != self._object_name():
            return False
        with self._single_lock:
            if self._single is None:
                self._single = not self._folder_exists()
            return self._single

    def _folder_exists(self) -> bool:
        try:
            page = self._client.list_objects_v2(Bucket=self.bucket, Prefix=self._dir_prefix(), MaxKeys=1)
        except ClientError as exc:
            raise self._listing_failed(exc) from None
        return bool(page.get("Contents"))  # the folder marker counts, as in list()

    def _listing_failed(self, exc: ClientError) -> Exception:
        code = _error_code(exc)
        if code == "NoSuchBucket":
            return SourceNotFoundError(f"no such bucket: {self.bucket}")
        return TransferError(f"cannot list {self.url}: {code or exc}")

    def _label_of(self, full_key: str) -> str | None:
        assert self._tag is not None  # asked only with a label spec
        try:
            tags = self._client.get_object_tagging(Bucket=self.bucket, Key=full_key)["TagSet"]
        except ClientError as exc:
            if _error_code(exc) in ("NoSuchKey", "404"):
                raise SourceChangedError(f"{full_key}: deleted while being listed") from None
            raise TransferError(f"cannot read the tags of {full_key}: {_error_code(exc) or exc}") from None
        return combined_label(t["Value"] for t in tags if is_label_name(t["Key"], self._tag))

    def own_label(self, obj: SourceObject) -> str | None:
        if not self._tag:
            return None
        full_key = self._full_key(obj)
        # A HEAD says whether the object has tags at all: untagged objects cost no tag request.
        head = self._head(full_key)  # the ranged GETs that follow carry If-Match
        if head is None:
            raise SourceChangedError(f"{obj.key}: deleted since it was listed")
        return self._label_of(full_key) if head.get("TagCount") else None

    def find(self, key: str) -> SourceObject | None:
        head = self._head(self._dir_prefix() + key)
        if head is None:
            return None
        return self._object(key, {"Size": head["ContentLength"], "ETag": head.get("ETag")})

    def label_files_above(self, name: str) -> tuple[LabelFileAbove, ...]:
        # The folders holding the URL's folder (or object) up to the bucket's root.
        found = []
        for folder in directories_above(self._prefix.rstrip("/")):
            key = f"{folder}/{name}" if folder else name
            where = f"s3://{self.bucket}/{key}"
            try:
                under = self._client.list_objects_v2(Bucket=self.bucket, Prefix=key + "/", MaxKeys=1)
            except ClientError as exc:
                raise self._listing_failed(exc) from None
            if under.get("Contents"):
                raise not_a_label_file(where, "a folder")
            head = self._head(key)
            if head is None:
                found.append(LabelFileAbove(where, None))
                continue
            if head["ContentLength"] > MAX_LABEL_FILE_BYTES:
                raise too_big_a_label_file(where, head["ContentLength"], MAX_LABEL_FILE_BYTES)
            try:
                body = self._client.get_object(Bucket=self.bucket, Key=key, IfMatch=head["ETag"])["Body"]
            except ClientError as exc:
                raise TransferError(f"cannot read {where}: {_error_code(exc) or exc}") from None
            found.append(LabelFileAbove(where, body.read(MAX_LABEL_FILE_BYTES + 1)))
        return tuple(found)

    @staticmethod
    def _object(key: str, item: Any, label: str | None = None) -> SourceObject:
        algorithms = item.get("ChecksumAlgorithm") or []
        etag = item.get("ETag")
        return SourceObject(
            key=key,
            size=int(item["Size"]),
            revision=etag.strip('"') if etag else None,
            mtime=item["LastModified"].timestamp() if "LastModified" in item else None,
            checksum_algorithm=algorithms[0].lower() if algorithms else None,
            label=label,
        )

    def _full_key(self, obj: SourceObject) -> str:
        return self._prefix if self._names_object(obj.key) else self._dir_prefix() + obj.key

    def _head(self, key: str, **extra: Any) -> dict[str, Any] | None:
        try:
            return self._client.head_object(Bucket=self.bucket, Key=key, **extra)  # type: ignore[return-value]
        except ClientError as exc:
            if _error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def open(self, obj: SourceObject, offset: int = 0, length: int | None = None) -> _BodyReader:
        whole = offset == 0 and (length is None or length == obj.size)
        if not whole and (length == 0 or offset >= obj.size):
            return _BodyReader(io.BytesIO(), None)  # S3 ignores an empty Range and sends it all
        byte_range = None if whole else (offset, obj.size - 1 if length is None else offset + length - 1)
        full_key = self._full_key(obj)
        if self._through_crt(obj, byte_range):
            body, resp = self._get_crt(obj, full_key, byte_range)
        else:
            body, resp = self._get_boto3(obj, full_key, byte_range)
        published = published_from_response(resp, obj.revision) if whole else None
        if whole and obj.checksum_algorithm and (published is None or published.algorithm == "md5"):
            # The object has a checksum the response did not carry (the CRT reads an object
            # above one part as ranged GETs, which S3 answers without it): ask for it.
            published = self.published_checksum(obj)

        def label() -> str | None:
            # A GET reports how many tags the object has: untagged objects cost no extra call.
            if not self._tag or not resp.get("TagCount"):
                return None
            return self._label_of(full_key)

        direct = direct_reader(body, obj.key)
        if direct is not None:
            return _DirectBodyReader(direct, published, label)
        return _BodyReader(body, published, label)

    def _through_crt(self, obj: SourceObject, byte_range: tuple[int, int] | None) -> bool:
        if self._data_path != "auto":
            return self._data_path == "crt"
        from stagegate.transfer.sources.s3_crt import PART_SIZE

        # Per file the CRT costs less CPU than botocore; per byte more (it hands Python each
        # part as a fresh buffer, and splits a range into more requests): small files take it.
        return byte_range is None and obj.size <= PART_SIZE

    def _get_crt(
        self, obj: SourceObject, full_key: str, byte_range: tuple[int, int] | None
    ) -> tuple[Any, dict[str, Any]]:
        from stagegate.transfer.sources.s3_crt import response_fields

        body = self._crt().get(self.bucket, full_key, obj.revision, obj.version, byte_range, obj.key)
        return body, response_fields(body.headers)

    def _crt(self) -> "CrtGetter":
        with self._getter_lock:  # one CRT client (and its event loops) per source
            if self._getter is None:
                from stagegate.transfer.sources.s3_crt import CrtGetter

                meta = self._client.meta
                self._getter = CrtGetter(
                    meta.endpoint_url,
                    meta.region_name or "us-east-1",
                    boto3.session.Session().get_credentials,
                    max_connections=self._max_connections,
                )
            return self._getter

    def _get_boto3(
        self, obj: SourceObject, full_key: str, byte_range: tuple[int, int] | None
    ) -> tuple[Any, dict[str, Any]]:
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": full_key}
        if obj.revision:
            args["IfMatch"] = obj.revision
        if obj.version:
            args["VersionId"] = obj.version
        if byte_range is not None:
            args["Range"] = f"bytes={byte_range[0]}-{byte_range[1]}"
        try:
            resp = self._client.get_object(**args)
        except ClientError as exc:
            code = _error_code(exc)
            if code in ("PreconditionFailed", "412"):
                raise SourceChangedError(f"{obj.key}: changed since it was listed (ETag differs)") from None
            if code in ("NoSuchKey", "404"):
                raise SourceChangedError(f"{obj.key}: deleted since it was listed") from None
            raise TransferError(f"{obj.key}: S3 GET failed: {code or exc}") from None
        return resp["Body"], resp  # type: ignore[return-value]

    def published_checksum(self, obj: SourceObject) -> PublishedChecksum | None:
        head = self._head(self._full_key(obj), ChecksumMode="ENABLED")
        if head is None:
            raise SourceChangedError(f"{obj.key}: deleted since it was listed")
        if obj.revision and head.get("ETag", "").strip('"') != obj.revision:
            raise SourceChangedError(f"{obj.key}: changed since it was listed (ETag differs)")
        return published_from_response(head, obj.revision)
