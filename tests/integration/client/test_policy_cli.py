"""``stagegate stage`` and ``stagegate policy check`` under the classification policy, run as
real subprocesses on labelled directories and on the loopback S3 server."""

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from integration.helpers import STAGEGATE, assert_staged, payload, put_objects, snapshot, write_tree

pytestmark = pytest.mark.integration

FILES = {"a.txt": b"alpha", "sub/b.bin": payload("b", 5000)}
CONFIDENTIAL_POLICY = b"version: 1\nstaging: confidential\n"


def run(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([STAGEGATE, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=60)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def audit(*args: str, env: dict[str, str] | None = None) -> list[dict[str, object]]:
    proc = run("audit", "query", "--json", *args, env=env)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_confidential_xattr_file_is_denied_with_exit_3(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", {**FILES, ".classification": b"public\n"})
    os.setxattr(src / "sub" / "b.bin", "user.classification", b"confidential")
    dest = tmp_path / "dest"

    proc = run("stage", str(src), "--to", str(dest), "--job", "j1", "--no-progress")

    assert proc.returncode == 3, proc.stderr
    assert "sub/b.bin is confidential" in proc.stderr
    assert "a.txt" not in proc.stderr
    assert proc.stdout == ""
    assert not dest.exists()
    (denied,) = audit("--action", "policy.denied")
    assert denied["job_ref"] == "j1"
    assert any("sub/b.bin" in r and "confidential" in r for r in denied["reasons"])  # type: ignore[union-attr]


def test_confidential_s3_tag_is_denied_with_exit_3(
    s3_client, bucket: str, subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    put_objects(s3_client, bucket, {"ds/a.txt": FILES["a.txt"], "ds/.classification": b"public\n"})
    s3_client.put_object(
        Bucket=bucket, Key="ds/sub/b.bin", Body=FILES["sub/b.bin"], Tagging="classification=confidential"
    )
    dest = tmp_path / "dest"
    dest.mkdir()

    proc = run("stage", f"s3://{bucket}/ds", "--to", str(dest), "--job", "j-s3", env=subprocess_env)

    assert proc.returncode == 3, proc.stderr
    assert "sub/b.bin is confidential" in proc.stderr
    # The tag is read as its object is opened: nothing of sub/b.bin is written (a.txt may be).
    assert set(snapshot(dest)) <= {"a.txt"}
    assert [e["action"] for e in audit("--job", "j-s3", env=subprocess_env)] == [
        "stage.requested",
        "policy.allowed",
        "policy.denied",
    ]


def test_custom_policy_file_stages_confidential_data(
    s3_client, bucket: str, subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    put_objects(s3_client, bucket, {f"ds/{k}": v for k, v in FILES.items()})
    put_objects(s3_client, bucket, {"ds/.classification": b"confidential\n"})
    policy = tmp_path / "policy.yaml"
    policy.write_bytes(CONFIDENTIAL_POLICY)
    url = f"s3://{bucket}/ds"

    refused = run("stage", url, "--to", str(tmp_path / "refused"), env=subprocess_env)
    assert refused.returncode == 3, refused.stderr
    assert not (tmp_path / "refused").exists()

    dest = tmp_path / "dest"
    proc = run(
        "stage",
        url,
        "--to",
        str(dest),
        "--policy",
        str(policy),
        "--json",
        "--job",
        "conf",
        env=subprocess_env,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["files"] == len(FILES)
    assert_staged(dest, FILES)
    completed = audit("--job", "conf", "--action", "stage.completed", env=subprocess_env)
    assert [e["policy_version"] for e in completed] == [hashlib.sha256(CONFIDENTIAL_POLICY).hexdigest()]


def test_malformed_policy_file_exits_2(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", {**FILES, ".classification": b"public\n"})
    policy = tmp_path / "policy.yaml"
    policy.write_bytes(b"version: 1\nstaging: secret-ish\n")
    proc = run("stage", str(src), "--to", str(tmp_path / "dest"), "--policy", str(policy))
    assert proc.returncode == 2, proc.stderr
    assert "policy.yaml" in proc.stderr
    assert not (tmp_path / "dest").exists()


def test_policy_check_reports_and_moves_nothing(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", {**FILES, ".classification": b"public\n"})
    os.setxattr(src / "sub" / "b.bin", "user.classification", b"confidential")
    policy = tmp_path / "policy.yaml"
    policy.write_bytes(CONFIDENTIAL_POLICY)
    before = snapshot(tmp_path)

    denied = run("policy", "check", str(src), cwd=tmp_path)
    assert denied.returncode == 3, denied.stderr
    assert denied.stdout.startswith("DENIED: 2 files")
    assert "sub/b.bin is confidential" in denied.stdout
    assert "highest label in the dataset: confidential" in denied.stdout

    as_json = run("policy", "check", str(src), "--json", cwd=tmp_path)
    assert as_json.returncode == 3
    decision = json.loads(as_json.stdout)
    assert (decision["allowed"], decision["files"], decision["offending_count"]) == (False, 2, 1)
    assert decision["reasons"] == [r for r in decision["reasons"] if r.startswith("sub/b.bin ")]

    allowed = run("policy", "check", str(src), "--policy", str(policy), cwd=tmp_path)
    assert allowed.returncode == 0, allowed.stderr
    assert allowed.stdout.startswith("allowed: 2 files")

    assert snapshot(tmp_path) == before  # nothing copied, nothing created
    assert audit() == []  # a check is not a staging


def test_policy_check_on_s3_unlabelled(
    s3_client, bucket: str, subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    put_objects(
        s3_client, bucket, {"ds/a.txt": b"a", "ds/sub/.classification": b"public\n", "ds/sub/b.bin": b"b"}
    )
    proc = run("policy", "check", f"s3://{bucket}/ds", "--json", env=subprocess_env, cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr
    decision = json.loads(proc.stdout)
    assert decision["files"] == 2
    assert decision["highest_label"] == "unclassified"
    assert len(decision["reasons"]) == 1 and decision["reasons"][0].startswith("a.txt is unclassified")
    assert list(tmp_path.iterdir()) == []
