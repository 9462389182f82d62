"""Checkpoints published where the database cannot reach: an Object Lock bucket on a real S3
server (moto on loopback), where a locked checkpoint cannot be deleted and an overwrite leaves
it in place, and an append-only file."""

import uuid
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from stagegate.ledger import AuditTrail, Ledger, NewEvent
from stagegate.ledger.checkpoint_note import open_checkpoint, split_notes
from stagegate.ledger.checkpoint_publish import AppendOnlyFile, ObjectLockBucket, PublishError, publisher_from
from stagegate.ledger.checkpoints import Checkpoints
from stagegate.ledger.signed_note import SignerKey
from stagegate.settings import load_settings

ORIGIN = "test.example/audit"
KEY = SignerKey.generate(ORIGIN)


def append(ledger: Ledger, count: int) -> None:
    trail = AuditTrail(ledger)
    for n in range(count):
        trail.append(NewEvent(actor="alice", role="local", action="stage.completed", bytes=n))


@pytest.fixture
def locked_bucket(s3_client: Any) -> str:
    name = f"sg-lock-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name


def test_checkpoints_land_locked_and_cannot_be_deleted(
    ledger: Ledger, s3_client: Any, locked_bucket: str
) -> None:
    publisher = ObjectLockBucket(locked_bucket, "audit/", retention_days=1, client=s3_client)
    checkpoints = Checkpoints(ledger, origin=ORIGIN, signer=lambda: KEY, publisher=publisher)
    append(ledger, 3)
    first = checkpoints.sign()
    append(ledger, 2)
    second = checkpoints.sign()
    keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket=locked_bucket)["Contents"]]
    assert keys == [f"audit/{3:020d}.checkpoint", f"audit/{5:020d}.checkpoint"]

    key = publisher.key_of(3)
    head = s3_client.head_object(Bucket=locked_bucket, Key=key)
    assert head["ObjectLockMode"] == "COMPLIANCE" and "ObjectLockRetainUntilDate" in head
    body = s3_client.get_object(Bucket=locked_bucket, Key=key)["Body"].read().decode()
    assert body == first.note
    assert open_checkpoint(body, [KEY.verifier()], ORIGIN).checkpoint.size == 3

    version = head["VersionId"]
    with pytest.raises(ClientError) as refused:
        s3_client.delete_object(Bucket=locked_bucket, Key=key, VersionId=version)
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    # An overwrite makes a new version; the locked one stays, unchanged, and cannot be deleted.
    s3_client.put_object(Bucket=locked_bucket, Key=key, Body=b"forged")
    kept = s3_client.get_object(Bucket=locked_bucket, Key=key, VersionId=version)["Body"].read().decode()
    assert kept == first.note
    with pytest.raises(ClientError):
        s3_client.delete_object(Bucket=locked_bucket, Key=key, VersionId=version)
    # Publishing again notices that what the key now shows is not the ledger's checkpoint.
    with pytest.raises(PublishError, match="another checkpoint of 3 events"):
        publisher.ensure(3, first.note)
    assert publisher.ensure(5, second.note).endswith(f"{5:020d}.checkpoint")  # already there: fine


def test_a_bucket_without_object_lock_is_refused(ledger: Ledger, s3_client: Any, bucket: str) -> None:
    publisher = ObjectLockBucket(bucket, "", retention_days=1, client=s3_client)
    checkpoints = Checkpoints(ledger, origin=ORIGIN, signer=lambda: KEY, publisher=publisher)
    append(ledger, 2)
    with pytest.raises(PublishError, match="no Object Lock"):
        checkpoints.sign()
    assert s3_client.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    # Signed in the ledger all the same: the next run publishes it once the bucket is fixed.
    assert checkpoints.latest() is not None


def test_an_append_only_file_collects_every_checkpoint(ledger: Ledger, tmp_path: Path) -> None:
    log = tmp_path / "checkpoints.log"
    checkpoints = Checkpoints(ledger, origin=ORIGIN, signer=lambda: KEY, publisher=AppendOnlyFile(log))
    notes = []
    for count in (2, 3, 1):
        append(ledger, count)
        notes.append(checkpoints.sign().note)
    checkpoints.sign()  # nothing new: the last one is there already, not written twice
    assert split_notes(log.read_text()) == notes
    log.write_text(log.read_text().replace(notes[1], notes[1].replace("\ntime 2", "\ntime 1")))
    with pytest.raises(PublishError, match="another checkpoint"):
        AppendOnlyFile(log).ensure(5, notes[1])


def test_the_setting_picks_the_place(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STAGEGATE_CHECKPOINT_PUBLISH", "s3://audit-lock/cp")
    monkeypatch.setenv("STAGEGATE_CHECKPOINT_RETENTION_DAYS", "7")
    chosen = publisher_from(load_settings())
    assert isinstance(chosen, ObjectLockBucket) and chosen.where == "s3://audit-lock/cp/"
    monkeypatch.setenv("STAGEGATE_CHECKPOINT_PUBLISH", str(tmp_path / "cp.log"))
    assert isinstance(publisher_from(load_settings()), AppendOnlyFile)


def test_a_checkpoint_that_failed_to_publish_goes_out_with_the_next(
    ledger: Ledger, s3_client: Any, locked_bucket: str
) -> None:
    away = ObjectLockBucket(locked_bucket, "", retention_days=1, client=s3_client)
    away.bucket = "no-such-bucket"  # S3 refuses: the checkpoint stays in the ledger only
    checkpoints = Checkpoints(ledger, origin=ORIGIN, signer=lambda: KEY, publisher=away)
    append(ledger, 2)
    with pytest.raises(PublishError):
        checkpoints.sign()
    checkpoints.publisher = ObjectLockBucket(locked_bucket, "", retention_days=1, client=s3_client)
    append(ledger, 1)
    checkpoints.sign()
    keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket=locked_bucket)["Contents"]]
    assert keys == [f"{2:020d}.checkpoint", f"{3:020d}.checkpoint"]
