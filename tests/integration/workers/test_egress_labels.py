"""Egress labels only rise (embedded mode, a SQLite ledger, the loopback S3 server): a
run directory's .classification counts, lineage is the requester's own, unknown words and
label files that are not regular files fail closed, and only a declassification lowers one."""

import getpass
import json
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from integration.helpers import STAGEGATE, write_tree
from stagegate.ledger import AuditTrail, Ledger, open_ledger
from stagegate.policies import LabelFileError, Policy, PolicyDeniedError
from stagegate.requests import EgressRequest, StagingRequest
from stagegate.workers.egress import EgressOptions, run_egress
from stagegate.workers.egress_labels import DECLASSIFICATION_MARGIN_NS
from stagegate.workers.staging import Requester, run_staging

pytestmark = pytest.mark.integration

ALICE = Requester(actor="alice", role="local")
BOB = Requester(actor="bob", role="local")
CONFIG = EgressOptions(concurrency=2)
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


def make_run(root: Path, own: str | None = "public") -> Path:
    run = root / "run"
    files = {
        "checkpoint-100/model.bin": b"weights",
        "checkpoint-100/trainer_state.json": b'{"global_step": 100}',
    }
    if own is not None:
        files["checkpoint-100/.classification"] = f"{own}\n".encode()
    return write_tree(run, files)


def objects(s3_client: Any, bucket: str, prefix: str = "") -> list[str]:
    return [o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]


def stage_confidential(ledger: Ledger, tmp_path: Path, who: Requester, job_ref: str) -> None:
    data = write_tree(
        tmp_path / f"data-{who.actor}", {"x.csv": b"id\n", ".classification": b"confidential\n"}
    )
    request = StagingRequest(str(data), str(tmp_path / f"nvme-{who.actor}"), job_ref=job_ref)
    run_staging(ledger, Policy.parse(CONFIDENTIAL_STAGING), who, request)


def last_event(ledger: Ledger, action: str) -> Any:
    return AuditTrail(ledger).query(action=action)[-1]


def test_a_run_directory_label_is_not_lowered_by_the_checkpoints_own(
    ledger: Ledger, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    run = make_run(tmp_path, own="public")
    (run / ".classification").write_text("confidential\n")
    request = EgressRequest(str(run), f"s3://{bucket}/m", latest=1)

    with pytest.raises(PolicyDeniedError) as denied:
        run_egress(ledger, Policy.default(), ALICE, request, CONFIG)

    assert f"checkpoint checkpoint-100 (file:{run}/.classification) is confidential" in str(denied.value)
    assert objects(s3_client, bucket) == []


def test_a_label_file_deeper_inside_a_checkpoint_counts(
    ledger: Ledger, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    run = make_run(tmp_path, own="public")
    write_tree(run / "checkpoint-100", {"eval/.classification": b"confidential\n", "eval/preds.csv": b"1"})
    request = EgressRequest(str(run), f"s3://{bucket}/m", latest=1)

    with pytest.raises(PolicyDeniedError) as denied:
        run_egress(ledger, Policy.default(), ALICE, request, CONFIG)

    assert "(file:checkpoint-100/eval/.classification) is confidential" in str(denied.value)
    assert objects(s3_client, bucket) == []


def test_an_xattr_spelt_with_capitals_still_labels_the_checkpoint(
    ledger: Ledger, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    run = make_run(tmp_path, own="public")
    try:
        os.setxattr(run / "checkpoint-100", "user.Classification", b"confidential")
    except OSError as exc:
        pytest.fail(f"this filesystem must support user xattrs for the test: {exc}")
    request = EgressRequest(str(run), f"s3://{bucket}/m", latest=1)

    with pytest.raises(PolicyDeniedError) as denied:
        run_egress(ledger, Policy.default(), ALICE, request, CONFIG)

    assert "(xattr) is confidential" in str(denied.value)
    assert objects(s3_client, bucket) == []


def test_an_unknown_label_word_fails_closed(
    ledger: Ledger, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    run = make_run(tmp_path, own="public")
    (run / ".classification").write_text("secretish\n")  # not a level of the policy

    with pytest.raises(PolicyDeniedError, match="unknown label 'secretish'"):
        run_egress(
            ledger, Policy.default(), ALICE, EgressRequest(str(run), f"s3://{bucket}/m", latest=1), CONFIG
        )

    assert objects(s3_client, bucket) == []


def test_lineage_comes_only_from_the_requesters_own_stagings(
    ledger: Ledger, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    stage_confidential(ledger, tmp_path, ALICE, "train-9")
    run = make_run(tmp_path, own="public")
    request = EgressRequest(str(run), f"s3://{bucket}/m", latest=1, job_ref="train-9")

    with pytest.raises(PolicyDeniedError) as denied:
        run_egress(ledger, Policy.default(), BOB, request, CONFIG)  # bob names alice's job

    message = str(denied.value)
    assert "job reference 'train-9' names stagings you did not run" in message
    assert "confidential" not in message  # nothing of alice's data leaks to bob
    denial = last_event(ledger, "policy.denied")
    assert denial.actor == "bob" and "confidential" not in json.dumps(denial.to_json())
    assert objects(s3_client, bucket) == []

    # Alice's own lineage counts for her: confidential, refused for a public destination.
    with pytest.raises(PolicyDeniedError, match=r"\(lineage:train-9\) is confidential"):
        run_egress(ledger, Policy.default(), ALICE, request, CONFIG)


@pytest.mark.parametrize("kind", ["fifo", "directory", "symlink", "socket"])
def test_a_label_file_that_is_not_a_regular_file_fails_at_once_naming_it(
    subprocess_env: dict[str, str], bucket: str, tmp_path: Path, kind: str
) -> None:
    run = make_run(tmp_path, own=None)
    label = run / "checkpoint-100" / ".classification"
    if kind == "fifo":
        os.mkfifo(label)  # opened blocking, this would hang the egress (and a node worker) forever
    elif kind == "directory":
        label.mkdir()
    elif kind == "symlink":
        (tmp_path / "elsewhere").write_text("public\n")
        label.symlink_to(tmp_path / "elsewhere")
    else:
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(label))
    args = [STAGEGATE, "egress", str(run), "--to", f"s3://{bucket}/m", "--latest", "1", "--no-progress"]

    proc = subprocess.run(args, capture_output=True, text=True, env=subprocess_env, timeout=60)

    assert proc.returncode == 2, proc.stderr
    assert str(label) in proc.stderr and "regular file" in proc.stderr, proc.stderr
    with open_ledger() as ledger:  # the same $STAGEGATE_HOME: the refusal is audited
        assert [e.action for e in AuditTrail(ledger).query()][-1] == "egress.failed"


def test_a_fifo_label_file_is_an_error_in_process_too(ledger: Ledger, bucket: str, tmp_path: Path) -> None:
    run = make_run(tmp_path, own=None)
    os.mkfifo(run / ".classification")

    with pytest.raises(LabelFileError, match="is a FIFO"):
        run_egress(
            ledger, Policy.default(), ALICE, EgressRequest(str(run), f"s3://{bucket}/m", latest=1), CONFIG
        )


def declassify_cli(env: dict[str, str], checkpoint: Path, label: str = "public") -> dict[str, Any]:
    args = [STAGEGATE, "declassify", str(checkpoint), "--label", label, "--reason", "weights only, reviewed"]
    proc = subprocess.run([*args, "--json"], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    made: dict[str, Any] = json.loads(proc.stdout)
    return made


def test_a_declassification_lowers_the_label_until_the_checkpoint_changes(
    s3_client: Any, subprocess_env: dict[str, str], bucket: str, tmp_path: Path
) -> None:
    me = Requester(getpass.getuser(), "local")  # the embedded CLI's actor
    with open_ledger() as ledger:
        stage_confidential(ledger, tmp_path, me, "train-5")
    run = make_run(tmp_path, own=None)
    request = EgressRequest(str(run), f"s3://{bucket}/one", latest=1, job_ref="train-5")
    # A declassification holds only for a checkpoint unchanged since a margin before it.
    time.sleep(DECLASSIFICATION_MARGIN_NS / 1e9 + 0.2)

    made = declassify_cli(subprocess_env, run / "checkpoint-100")

    with open_ledger() as ledger:
        declassified = last_event(ledger, "label.declassified")
        assert (declassified.actor, declassified.role) == (me.actor, "local")
        assert declassified.details["to"] == "public" and declassified.reasons == ("weights only, reviewed",)
        outcome = run_egress(ledger, Policy.default(), me, request, CONFIG)
        (label,) = outcome.labels
        assert (label.label, label.origin) == ("public", f"declassified:{made['id']} by {me.actor}")
        allowed = last_event(ledger, "policy.allowed")
        cited = allowed.details["declassified"]["checkpoint-100"]
        assert cited["id"] == made["id"] and cited["from"] == "confidential" and cited["to"] == "public"
        assert sorted(objects(s3_client, bucket, "one/")) == [
            "one/checkpoint-100/model.bin",
            "one/checkpoint-100/trainer_state.json",
        ]

        # Changed after the declassification (new weights): it no longer applies, and the egress says so.
        (run / "checkpoint-100" / "model.bin").write_bytes(b"other weights")
        again = EgressRequest(str(run), f"s3://{bucket}/two", latest=1, job_ref="train-5")
        with pytest.raises(PolicyDeniedError, match=r"\(lineage:train-5\) is confidential"):
            run_egress(ledger, Policy.default(), me, again, CONFIG)
        notes = last_event(ledger, "policy.denied").details["notes"]
        assert any(f"declassification {made['id']}" in n and "ignored" in n for n in notes)
    assert objects(s3_client, bucket, "two/") == []
