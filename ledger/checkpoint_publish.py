"""Publishing checkpoints where the ledger's database cannot reach: an S3 bucket with Object
Lock, or an append-only file (``STAGEGATE_CHECKPOINT_PUBLISH``).

On S3 each checkpoint is its own object, ``PREFIX/<size, 20 digits>.checkpoint``, written once
(``If-None-Match: *``) under a COMPLIANCE-mode retention of ``STAGEGATE_CHECKPOINT_RETENTION_DAYS``:
until it runs out nobody, the bucket's owner included, can delete or overwrite that version.
A bucket without Object Lock is refused, not used. A file is only ever appended to (one note
after another, as ``stagegate audit checkpoint`` prints them); making it append-only for
everyone else (``chattr +a``, another host's export) is the operator's part.
"""

import fcntl
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from stagegate.errors import StagegateError
from stagegate.ledger.checkpoint_note import split_notes
from stagegate.settings import Settings

MAX_LOG_BYTES = 64 << 20


class PublishError(StagegateError):
    """A checkpoint could not be published, or the published one differs from the ledger's."""


class Publisher(Protocol):
    where: str

    def ensure(self, size: int, note: str) -> str:
        """Publish the checkpoint of ``size`` events unless it already is; returns where it is."""


def _differs(size: int, where: str) -> PublishError:
    return PublishError(
        f"{where} already holds another checkpoint of {size} events than the ledger's: "
        "the ledger's checkpoints were altered (or two logs share one place); nothing published"
    )


class AppendOnlyFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)

    def notes(self) -> list[str]:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return []
        with os.fdopen(fd, encoding="utf-8") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise PublishError(f"the checkpoint log {self.path} is not a regular file")
            return split_notes(f.read(MAX_LOG_BYTES))

    def ensure(self, size: int, note: str) -> str:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
        try:
            fd = os.open(self.path, flags, 0o644)
        except OSError as exc:
            raise PublishError(f"cannot open the checkpoint log {self.path}: {exc.strerror}") from None
        with os.fdopen(fd, "a", encoding="utf-8") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)  # two signers never interleave their lines
            published = self.notes()
            if note in published:
                return self.where
            if any(n.split("\n", 2)[1:2] == [str(size)] for n in published):
                raise _differs(size, self.where)
            f.write(note + "\n")
            f.flush()
            os.fsync(f.fileno())
        return self.where


class ObjectLockBucket:
    def __init__(self, bucket: str, prefix: str, retention_days: int, client: Any = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.retention = timedelta(days=retention_days)
        self.where = f"s3://{bucket}/{self.prefix}"
        self._client = client
        self._checked = False

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("s3")
        return self._client

    def key_of(self, size: int) -> str:
        return f"{self.prefix}{size:020d}.checkpoint"

    def _check_locked(self) -> None:
        from botocore.exceptions import ClientError

        try:
            config = self.client.get_object_lock_configuration(Bucket=self.bucket)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            raise PublishError(
                f"bucket {self.bucket} has no Object Lock ({code}): checkpoints go only to a write-once "
                "bucket (create it with --object-lock-enabled-for-bucket)"
            ) from None
        if config.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") != "Enabled":
            raise PublishError(
                f"bucket {self.bucket} has Object Lock off: checkpoints go only to a write-once bucket"
            )
        self._checked = True

    def ensure(self, size: int, note: str) -> str:
        from botocore.exceptions import ClientError

        if not self._checked:
            self._check_locked()
        key = self.key_of(size)
        where = f"s3://{self.bucket}/{key}"
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=note.encode(),
                ContentType="text/plain; charset=utf-8",
                ChecksumAlgorithm="SHA256",
                IfNoneMatch="*",
                ObjectLockMode="COMPLIANCE",
                ObjectLockRetainUntilDate=datetime.now(UTC) + self.retention,
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("PreconditionFailed", "412"):
                raise PublishError(f"cannot publish the checkpoint to {where}: {exc}") from None
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read().decode()
            if body != note:
                raise _differs(size, where) from None
        return where


def publisher_from(settings: Settings) -> Publisher | None:
    """The place ``STAGEGATE_CHECKPOINT_PUBLISH`` names, or None when unset."""
    target = settings.checkpoint_publish
    if target is None:
        return None
    if target.startswith("s3://"):
        bucket, _, prefix = target.removeprefix("s3://").partition("/")
        return ObjectLockBucket(bucket, prefix, settings.checkpoint_retention_days)
    return AppendOnlyFile(Path(target))
