"""Checkpoint egress in embedded mode: real run directories, the loopback S3 server, a SQLite
ledger; selection, lineage, the policy, verification and deletion, all audited."""

import getpass
import io
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from integration.helpers import STAGEGATE, payload, write_tree
from stagegate.ledger import AuditTrail, Jobs, Ledger, open_ledger
from stagegate.policies import Policy, PolicyDeniedError
from stagegate.requests import EgressRequest, StagingRequest
from stagegate.transfer.errors import ChecksumMismatchError
from stagegate.transfer.sources.s3 import make_client
from stagegate.workers.egress import EgressOptions, run_egress
from stagegate.workers.staging import Requester, run_staging

pytestmark = pytest.mark.integration

MiB = 1 << 20
WHO = Requester(actor="alice", role="local")
# Small parts, so a 7 MiB file goes up as a real multipart upload (S3's parts are >= 5 MiB).
CONFIG = EgressOptions(concurrency=4, part_size=5 * MiB, multipart_threshold=6 * MiB)
CONFIDENTIAL_STAGING = (
    b"version: 1\nstaging: confidential\negress:\n"
    b'  - prefix: "s3://"\n    max_level: public\n  - prefix: "/"\n    max_level: public\n'
)


@pytest.fixture
def ledger() -> Any:
    opened = open_ledger()
    try:
        yield opened
    finally:
        opened.close()


def make_run(root: Path, label: str | None = "public") -> Path:
    """A Hugging Face style run: three checkpoints, the newest with a multipart-sized file."""
    run = root / "run"
    for step in (100, 200, 300):
        files = {
            f"checkpoint-{step}/model.safetensors": payload(f"m{step}", 7 * MiB if step == 300 else 3000),
            f"checkpoint-{step}/optimizer/state.pt": payload(f"o{step}", 2000),
            f"checkpoint-{step}/trainer_state.json": json.dumps({"global_step": step}).encode(),
        }
        if label is not None:
            files[f"checkpoint-{step}/.classification"] = f"{label}\n".encode()
        write_tree(run, files)
    return run


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def objects(s3_client: Any, bucket: str, prefix: str) -> dict[str, bytes]:
    listed = s3_client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {
        o["Key"].removeprefix(prefix): s3_client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
        for o in listed
    }


def events(ledger: Ledger, job_id: str) -> list[Any]:
    return [e for e in AuditTrail(ledger).query(job=job_id)]


def test_selected_checkpoints_arrive_byte_identical_in_s3(
    ledger: Ledger, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    run = make_run(tmp_path)
    before = tree(run)
    request = EgressRequest(str(run), f"s3://{bucket}/models/r1", latest=2)

    outcome = run_egress(ledger, Policy.default(), WHO, request, CONFIG)

    assert [c.name for c in outcome.selection.selected] == ["checkpoint-200", "checkpoint-300"] or sorted(
        c.name for c in outcome.selection.selected
    ) == ["checkpoint-200", "checkpoint-300"]
    expected = {k: v for k, v in before.items() if not k.startswith("checkpoint-100/")}
    assert objects(s3_client, bucket, "models/r1/") == expected
    assert outcome.result is not None
    assert set(outcome.result.checksums) == set(expected)
    assert all(v.startswith("crc64nvme:") for v in outcome.result.checksums.values())
    assert tree(run) == before  # nothing deleted without --delete-unselected
    actions = [e.action for e in events(ledger, outcome.job_id)]
    assert actions == ["egress.requested", "policy.allowed", "egress.completed"]
    job = Jobs(ledger).get(outcome.job_id)
    assert (job.kind, job.state, job.files, job.bytes) == ("egress", "completed", 8, outcome.result.bytes)


def test_selected_checkpoint_arrives_in_a_local_directory(ledger: Ledger, tmp_path: Path) -> None:
    run = make_run(tmp_path)
    dest = tmp_path / "share" / "models"
    request = EgressRequest(str(run), f"file://{dest}", names=("checkpoint-100",))

    outcome = run_egress(ledger, Policy.default(), WHO, request, CONFIG)

    got = {k: v for k, v in tree(dest).items() if not k.startswith(".stagegate/")}
    assert got == {k: v for k, v in tree(run).items() if k.startswith("checkpoint-100/")}
    assert os.listdir(dest / ".stagegate" / "tmp") == []  # no temporary file left behind
    assert outcome.result is not None
    assert all(v.startswith("blake3:") for v in outcome.result.checksums.values())


def test_delete_unselected_removes_exactly_the_unselected_after_verification(
    ledger: Ledger, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    run = make_run(tmp_path)
    (run / "train.log").write_text("not a checkpoint")
    kept = {k: v for k, v in tree(run).items() if k.startswith("checkpoint-300/") or k == "train.log"}
    request = EgressRequest(str(run), f"s3://{bucket}/m", latest=1, delete_unselected=True)

    outcome = run_egress(ledger, Policy.default(), WHO, request, CONFIG)

    assert tree(run) == kept
    assert sorted(name for name, _ in outcome.deleted) == ["checkpoint-100", "checkpoint-200"]
    trail = events(ledger, outcome.job_id)
    actions = [e.action for e in trail]
    assert actions[:3] == ["egress.requested", "policy.allowed", "egress.completed"]
    deleted = [e for e in trail if e.action == "checkpoint.deleted"]
    assert len(deleted) == 2 and actions[3:] == ["checkpoint.deleted"] * 2
    assert sorted(str(e.details["name"]) for e in deleted) == ["checkpoint-100", "checkpoint-200"]
    for e in deleted:
        assert e.details["path"] == str(run / str(e.details["name"]))
        assert e.details["bytes"] == e.bytes > 0
    assert set(objects(s3_client, bucket, "m/")) == {k for k in kept if k != "train.log"}


def test_a_corrupted_upload_fails_and_deletes_nothing(
    ledger: Ledger, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    run = make_run(tmp_path)
    before = tree(run)
    client = make_client(16)

    def corrupt(request: Any, **_: Any) -> None:
        # One flipped byte on the wire after our CRC was taken: S3 stores (and its CRC64NVME
        # describes) other bytes than the file holds. Stands in for a store that damaged data.
        data = request.body.read() if hasattr(request.body, "read") else bytes(request.body or b"")
        if data:
            request.body = io.BytesIO(bytes([data[0] ^ 0xFF]) + data[1:])

    client.meta.events.register("before-send.s3.UploadPart", corrupt)
    request = EgressRequest(str(run), f"s3://{bucket}/bad", latest=1, delete_unselected=True)

    with pytest.raises(ChecksumMismatchError, match="failed verification"):
        run_egress(ledger, Policy.default(), WHO, request, CONFIG, s3_client=client)

    assert tree(run) == before
    (job,) = [j for j in _egress_jobs(ledger)]
    actions = [e.action for e in events(ledger, job.id)]
    assert actions == ["egress.requested", "policy.allowed", "egress.failed"]
    assert job.state == "failed"
    assert "checkpoint-300/model.safetensors" not in objects(s3_client, bucket, "bad/")


def _egress_jobs(ledger: Ledger) -> list[Any]:
    trail = AuditTrail(ledger).query(action="egress.requested")
    return [Jobs(ledger).get(str(e.job_id)) for e in trail]


def _stage_confidential(ledger: Ledger, tmp_path: Path, job_ref: str, who: Requester = WHO) -> None:
    data = write_tree(
        tmp_path / "data", {"patients.csv": b"id,diagnosis\n", ".classification": b"confidential\n"}
    )
    policy = Policy.parse(CONFIDENTIAL_STAGING)
    run_staging(ledger, policy, who, StagingRequest(str(data), str(tmp_path / "nvme"), job_ref=job_ref))


def test_lineage_confidential_is_refused_for_a_public_destination(
    ledger: Ledger, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    _stage_confidential(ledger, tmp_path, "train-42")
    run = make_run(tmp_path, label=None)
    before = tree(run)
    request = EgressRequest(
        str(run), f"s3://{bucket}/m", latest=1, job_ref="train-42", delete_unselected=True
    )

    with pytest.raises(PolicyDeniedError) as denied:
        run_egress(ledger, Policy.parse(CONFIDENTIAL_STAGING), WHO, request, CONFIG)

    assert "checkpoint checkpoint-300 (lineage:train-42) is confidential" in str(denied.value)
    assert tree(run) == before
    assert objects(s3_client, bucket, "m/") == {}
    (job,) = _egress_jobs(ledger)
    assert [e.action for e in events(ledger, job.id)] == ["egress.requested", "policy.denied"]
    assert job.state == "denied"


def test_lineage_denial_exits_3_through_the_cli(
    ledger: Ledger, subprocess_env: dict[str, str], bucket: str, tmp_path: Path
) -> None:
    # The CLI's requester is the operating-system user: lineage is theirs only if they staged it.
    _stage_confidential(ledger, tmp_path, "train-43", Requester(getpass.getuser(), "local"))
    run = make_run(tmp_path, label=None)
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_bytes(CONFIDENTIAL_STAGING)
    args = [STAGEGATE, "egress", str(run), "--to", f"s3://{bucket}/m", "--latest", "1", "--job", "train-43"]
    args += ["--policy", str(policy_file), "--no-progress"]

    proc = subprocess.run(args, capture_output=True, text=True, env=subprocess_env, timeout=60)

    assert proc.returncode == 3, proc.stderr
    assert "confidential" in proc.stderr and "Traceback" not in proc.stderr


def test_no_label_and_no_lineage_is_refused_with_the_fix(ledger: Ledger, bucket: str, tmp_path: Path) -> None:
    run = make_run(tmp_path, label=None)
    request = EgressRequest(str(run), f"s3://{bucket}/m", names=("checkpoint-200",), job_ref="never-staged")

    with pytest.raises(PolicyDeniedError) as denied:
        run_egress(ledger, Policy.default(), WHO, request, CONFIG)

    message = str(denied.value)
    assert "checkpoint-200 has no label and no lineage" in message
    assert "setfattr -n user.classification -v public" in message
    assert ".classification file" in message and "--job" in message


@pytest.mark.parametrize("how", ["xattr", "file"])
def test_an_own_public_label_does_not_lower_confidential_lineage(
    ledger: Ledger, s3_client: Any, bucket: str, tmp_path: Path, how: str
) -> None:
    # Labels only rise: a model trained on confidential data stays confidential, whatever
    # label its owner gives it (lowering one is a declassification).
    _stage_confidential(ledger, tmp_path, "train-44")
    run = make_run(tmp_path, label=None)
    if how == "xattr":
        os.setxattr(run / "checkpoint-100", "user.classification", b"public")
    else:
        (run / "checkpoint-100" / ".classification").write_text("public\n")
    request = EgressRequest(str(run), f"s3://{bucket}/x", names=("checkpoint-100",), job_ref="train-44")

    with pytest.raises(PolicyDeniedError) as denied:
        run_egress(ledger, Policy.default(), WHO, request, CONFIG)

    assert "checkpoint checkpoint-100 (lineage:train-44) is confidential" in str(denied.value)
    assert objects(s3_client, bucket, "x/") == {}
    (job,) = _egress_jobs(ledger)
    denial = next(e for e in events(ledger, job.id) if e.action == "policy.denied")
    labels = denial.details["labels"]["checkpoint-100"]  # type: ignore[index]
    assert labels["sources"] == {how: "public", "lineage:train-44": "confidential"}


def test_dry_run_moves_and_deletes_nothing(
    subprocess_env: dict[str, str], bucket: str, tmp_path: Path
) -> None:
    run = make_run(tmp_path)
    before = tree(run)
    args = [STAGEGATE, "egress", str(run), "--to", f"s3://{bucket}/m", "--latest", "1"]
    proc = subprocess.run(
        [*args, "--delete-unselected", "--dry-run"], capture_output=True, text=True, env=subprocess_env
    )

    assert proc.returncode == 0, proc.stderr
    assert "checkpoint-300" in proc.stdout and "allowed" in proc.stdout and "nothing moved" in proc.stdout
    assert tree(run) == before


def test_dry_run_says_which_look_alikes_were_skipped_and_why(
    subprocess_env: dict[str, str], bucket: str, tmp_path: Path
) -> None:
    run = make_run(tmp_path)
    write_tree(run, {"tmp-checkpoint-400/model.safetensors": b"half", "best/trainer_state.json": b"{cut"})
    args = [STAGEGATE, "egress", str(run), "--to", f"s3://{bucket}/m", "--latest", "1", "--dry-run"]

    text = subprocess.run(args, capture_output=True, text=True, env=subprocess_env, timeout=60)
    as_json = subprocess.run(
        [*args, "--json"], capture_output=True, text=True, env=subprocess_env, timeout=60
    )

    assert text.returncode == 0, text.stderr
    assert "skipped tmp-checkpoint-400: an unfinished save" in text.stdout
    assert "skipped best: best/trainer_state.json is not valid JSON" in text.stdout
    assert as_json.returncode == 0, as_json.stderr
    skipped = json.loads(as_json.stdout)["skipped"]
    assert sorted(skipped) == ["best", "tmp-checkpoint-400"]
    assert skipped["tmp-checkpoint-400"].startswith("an unfinished save")


def test_cli_egress_json_summary(
    subprocess_env: dict[str, str], s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    run = make_run(tmp_path)
    args = [STAGEGATE, "egress", str(run), "--to", f"s3://{bucket}/c", "--name", "checkpoint-100", "--json"]
    proc = subprocess.run(args, capture_output=True, text=True, env=subprocess_env, timeout=60)

    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["state"] == "completed" and summary["selected"] == ["checkpoint-100"]
    assert set(summary["checksums"]) == set(objects(s3_client, bucket, "c/"))


def test_cli_egress_resolves_the_users_own_links_then_writes_the_real_directory(
    subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    """Embedded, the command runs with the user's rights: a run directory and a destination
    reached through links the user keeps (a home on another mount) are resolved first, so the
    policy decides about the real path and the no-link walk below it goes through."""
    run = make_run(tmp_path)
    (tmp_path / "home-link").symlink_to(tmp_path)
    real_out = tmp_path / "out"
    args = [
        STAGEGATE, "egress", str(tmp_path / "home-link" / "run"), "--to",
        str(tmp_path / "home-link" / "out"), "--name", "checkpoint-100", "--json",
    ]  # fmt: skip
    proc = subprocess.run(args, capture_output=True, text=True, env=subprocess_env, timeout=60)

    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["destination"] == str(real_out)
    assert (real_out / "checkpoint-100").is_dir()
    assert run.is_dir()


def test_a_rerun_to_s3_keeps_the_objects_already_verified_there(
    ledger: Ledger, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    run = make_run(tmp_path)
    request = EgressRequest(str(run), f"s3://{bucket}/again", latest=1)
    first = run_egress(ledger, Policy.default(), WHO, request, CONFIG)
    client = make_client(16)
    sent: list[str] = []
    for operation in ("PutObject", "UploadPart", "CreateMultipartUpload"):
        client.meta.events.register(f"before-send.s3.{operation}", lambda **kw: sent.append("x"))

    again = run_egress(ledger, Policy.default(), WHO, request, CONFIG, s3_client=client)

    assert first.result is not None and again.result is not None
    assert again.result.files_present == len(again.result.files) == 4
    assert again.result.checksums == first.result.checksums
    assert sent == []  # not one byte sent again
    (completed,) = [e for e in events(ledger, again.job_id) if e.action == "egress.completed"]
    assert completed.details["files_present"] == 4
