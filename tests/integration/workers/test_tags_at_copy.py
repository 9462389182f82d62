"""S3 object tags are read at copy time, only for objects whose GET (or HEAD) reports some,
and decided on before a byte of the object is written; on the real (loopback) S3 server,
with the real SQLite ledger under $STAGEGATE_HOME.

Requests are counted with botocore event hooks on the client the staging itself makes, and
the GETs of object bodies where the data path (the CRT's client) sends them.
"""

import collections
from pathlib import Path
from typing import Any

import pytest

from integration.helpers import MiB, assert_staged, is_ready, payload, temp_files
from stagegate.ledger import AuditTrail, Jobs, Manifests, open_ledger
from stagegate.policies import LABEL_FILE_NAME, LABEL_TAG, Policy, PolicyDeniedError
from stagegate.requests import StagingRequest
from stagegate.transfer import DatasetDir
from stagegate.transfer.sources import s3 as s3_source
from stagegate.transfer.sources import s3_crt
from stagegate.workers.staging import Requester, StagingOptions, check_policy, run_staging

pytestmark = pytest.mark.integration

REQUESTER = Requester(actor="alice", role="local")
# Small parts, so a 3 MiB object goes through the ranged (multipart) path.
OPTIONS = StagingOptions(concurrency=4, part_size=1 * MiB, multipart_threshold=2 * MiB)
INTERNAL_POLICY = b"version: 1\nstaging: internal\n"


@pytest.fixture
def requests(monkeypatch: pytest.MonkeyPatch) -> collections.Counter[str]:
    """S3 operations sent by every client the staging code makes, by name."""
    sent: collections.Counter[str] = collections.Counter()
    make_client = s3_source.make_client
    crt_get = s3_crt.CrtGetter.get

    def counting_get(self: s3_crt.CrtGetter, *args: Any, **kwargs: Any) -> Any:
        sent.update(["GetObject"])
        return crt_get(self, *args, **kwargs)

    def counting(max_connections: int) -> Any:
        client = make_client(max_connections)
        client.meta.events.register("before-call.s3.*", lambda model, **_: sent.update([model.name]))
        return client

    monkeypatch.setattr(s3_source, "make_client", counting)
    monkeypatch.setattr(s3_crt.CrtGetter, "get", counting_get)
    return sent


def put(s3_client: Any, bucket: str, files: dict[str, bytes], tags: dict[str, str] | None = None) -> None:
    s3_client.put_object(Bucket=bucket, Key=f"ds/{LABEL_FILE_NAME}", Body=b"public\n")
    for key, data in files.items():
        label = (tags or {}).get(key)
        extra = {"Tagging": f"{LABEL_TAG}={label}"} if label else {}
        s3_client.put_object(Bucket=bucket, Key=f"ds/{key}", Body=data, **extra)


def stage_with(bucket: str, dest: Path, job_ref: str, policy: Policy | None = None) -> Any:
    request = StagingRequest(source=f"s3://{bucket}/ds", destination=str(dest), job_ref=job_ref)
    with open_ledger() as ledger:
        return run_staging(ledger, policy or Policy.default(), REQUESTER, request, options=OPTIONS)


def actions_of(job_ref: str) -> list[str]:
    with open_ledger() as ledger:
        return [e.action for e in AuditTrail(ledger).query(job=job_ref)]


def job_and_labels(job_ref: str) -> tuple[str, dict[str, str]]:
    with open_ledger() as ledger:
        (event, *_) = AuditTrail(ledger).query(job=job_ref)
        assert event.job_id is not None
        job = Jobs(ledger).get(event.job_id)
        return job.state, {e.key: e.label for e in Manifests(ledger).entries(job.id)}


def test_untagged_objects_cost_no_tagging_request(s3_client, bucket, tmp_path, requests) -> None:
    files = {f"f/{i:03d}.bin": payload(f"u{i}", 1000 + i) for i in range(50)}
    put(s3_client, bucket, files)

    stage_with(bucket, tmp_path / "dest", "job-untagged")

    assert_staged(tmp_path / "dest", files)
    assert requests["GetObjectTagging"] == 0, requests
    # and the label file's: at planning, as its batch begins, before READY
    assert requests["GetObject"] == len(files) + 3


def test_policy_asking_for_tags_at_plan_reads_every_objects(s3_client, bucket, tmp_path, requests) -> None:
    files = {f"f/{i:03d}.bin": payload(f"p{i}", 100) for i in range(10)}
    put(s3_client, bucket, files, tags={"f/003.bin": "confidential"})
    policy = Policy.parse(b"version: 1\nstaging: public\nobject_tags: at_plan\n")

    with pytest.raises(PolicyDeniedError, match=r"f/003\.bin"):
        stage_with(bucket, tmp_path / "dest", "job-at-plan", policy)

    assert requests["GetObjectTagging"] == len(files) + 1  # and the label file's
    assert actions_of("job-at-plan") == ["stage.requested", "policy.denied"]  # before anything moved
    assert not (tmp_path / "dest").exists()


@pytest.mark.parametrize("size", [5000, 3 * MiB + 7], ids=["whole", "ranged"])
def test_tagged_object_the_policy_denies_never_has_a_byte_on_the_node(
    s3_client, bucket, tmp_path, requests, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    files = {"a.bin": payload("a", 3000), "secret.bin": payload("s", size), "z.bin": payload("z", 3000)}
    put(s3_client, bucket, files, tags={"secret.bin": "confidential"})
    dest = tmp_path / "dest"
    opened: list[tuple[str, ...]] = []
    open_temp = DatasetDir.open_temp

    def watched(self: DatasetDir, parts: tuple[str, ...], *args: Any) -> Any:
        opened.append(parts)  # every temporary file the engine makes, before a byte goes in
        return open_temp(self, parts, *args)

    monkeypatch.setattr(DatasetDir, "open_temp", watched)

    with pytest.raises(PolicyDeniedError) as denied:
        stage_with(bucket, dest, "job-secret")

    assert ("secret.bin",) not in opened, "a temporary file was made for the denied object"
    assert not (dest / "secret.bin").exists()
    assert temp_files(dest) == []
    assert not is_ready(dest)
    (reason,) = denied.value.decision.reasons
    assert reason.startswith("secret.bin ") and "confidential" in reason
    # The plan was allowed (no tag read then); the object's own tag refused it at copy time,
    # audited as a denial like one at planning.
    assert actions_of("job-secret") == ["stage.requested", "policy.allowed", "policy.denied"]
    state, labels = job_and_labels("job-secret")
    assert state == "denied"
    assert labels["secret.bin"] == "public"  # the plan's; nothing of it was staged
    assert requests["GetObjectTagging"] == 1  # only the tagged object's


def test_tagged_object_within_the_policy_stages_with_its_label(s3_client, bucket, tmp_path, requests) -> None:
    files = {"a.bin": payload("a", 3000), "b.bin": payload("b", 3 * MiB + 1), "c.bin": b"c"}
    put(s3_client, bucket, files, tags={"a.bin": "internal", "b.bin": "internal"})
    dest = tmp_path / "dest"

    stage_with(bucket, dest, "job-internal", Policy.parse(INTERNAL_POLICY))

    manifest = assert_staged(dest, files)
    assert {k: r.get("label") for k, r in manifest.items()} == {
        "a.bin": "internal",
        "b.bin": "internal",
        "c.bin": None,
    }
    state, labels = job_and_labels("job-internal")
    assert state == "ready"
    assert labels == {"a.bin": "internal", "b.bin": "internal", "c.bin": "public"}  # the effective ones
    assert requests["GetObjectTagging"] == 2
    assert actions_of("job-internal") == ["stage.requested", "policy.allowed", "stage.completed"]


def test_policy_check_still_sees_tag_labels(s3_client, bucket, requests) -> None:
    files = {f"f/{i}.bin": b"x" for i in range(5)}
    put(s3_client, bucket, files, tags={"f/2.bin": "confidential"})

    plan, decision = check_policy(Policy.default(), f"s3://{bucket}/ds")

    assert not decision.allowed
    assert [r.split(" ")[0] for r in decision.reasons] == ["f/2.bin"]
    assert requests["GetObjectTagging"] == len(files) + 1  # every object's, the label file's too
    assert plan.files == len(files)
