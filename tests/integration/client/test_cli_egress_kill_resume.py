"""kill -9 in the middle of an egress, then the same command again, against the loopback S3
server and against a path: nothing partial is ever visible at a final name, the rerun keeps
what the killed run verified (same size and checksum at the destination) instead of calling
it "exists", sends the rest, and the destination ends up holding exactly the checkpoint."""

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from integration.helpers import STAGEGATE, MiB, payload, write_tree

pytestmark = pytest.mark.integration

NAME = "checkpoint-100"
# 5 MiB parts: the 12 MiB file goes up as a real multipart upload, so a kill can land while
# one is open at S3.
SIZES = ["--concurrency", "2", "--part-size", "5MiB", "--multipart-threshold", "5MiB", "--no-progress"]


def _checkpoint(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    files = {f"{NAME}/a-big.bin": payload("big", 12 * MiB)}  # sorted first: starts first
    files.update({f"{NAME}/shard-{i:02d}.bin": payload(f"s{i}", MiB) for i in range(24)})
    files[f"{NAME}/trainer_state.json"] = json.dumps({"global_step": 100}).encode()
    files[f"{NAME}/.classification"] = b"public\n"
    return write_tree(tmp_path / "run", files), files


def _kill_when(proc: subprocess.Popen[bytes], ready: Callable[[], bool]) -> None:
    try:
        deadline = time.monotonic() + 90
        while not ready():
            assert proc.poll() is None, f"finished before it could be killed: {proc.communicate()}"
            assert time.monotonic() < deadline, "no progress within 90 s"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _rerun(cmd: list[str], env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run([*cmd, "--json"], capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_kill_9_mid_egress_to_s3_then_rerun(
    tmp_path: Path, s3_client: Any, bucket: str, subprocess_env: dict[str, str]
) -> None:
    run, files = _checkpoint(tmp_path)
    prefix = "models/r1/"
    cmd = [STAGEGATE, "egress", str(run), "--to", f"s3://{bucket}/{prefix}", "--name", NAME, *SIZES]

    def objects() -> dict[str, bytes]:
        listed = s3_client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
        return {
            o["Key"].removeprefix(prefix): s3_client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
            for o in listed
        }

    def open_uploads() -> list[dict[str, Any]]:
        return s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])  # type: ignore[no-any-return]

    proc = subprocess.Popen(
        [*cmd, "--bandwidth", "2MB"],
        env=subprocess_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    # Killed with some files verified at their keys and the big one's multipart upload open.
    _kill_when(proc, lambda: len(objects()) >= 3 and bool(open_uploads()))

    landed = objects()
    assert 3 <= len(landed) < len(files)
    for key, data in landed.items():
        assert data == files[key], f"{key}: a partial or wrong object is visible at its final key"
    assert f"{NAME}/a-big.bin" not in landed  # its upload was open: nothing at the key yet
    assert open_uploads()

    summary = _rerun(cmd, subprocess_env)

    assert summary["files"] == len(files)
    assert summary["files_present"] >= len(landed)  # recognised, not sent again
    assert objects() == files
    assert open_uploads() == []  # the killed run's abandoned upload was aborted


def test_kill_9_mid_egress_to_a_path_then_rerun(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    run, files = _checkpoint(tmp_path)
    dest = tmp_path / "share" / "models"
    cmd = [STAGEGATE, "egress", str(run), "--to", str(dest), "--name", NAME, *SIZES]

    def landed() -> dict[str, bytes]:
        top = dest / NAME
        if not top.is_dir():
            return {}
        return {f"{NAME}/{p.name}": p.read_bytes() for p in top.iterdir() if p.is_file()}

    proc = subprocess.Popen(
        [*cmd, "--bandwidth", "2MB"],
        env=subprocess_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    _kill_when(proc, lambda: len(landed()) >= 3)

    before = landed()
    assert 3 <= len(before) < len(files)
    for key, data in before.items():
        assert data == files[key], f"{key}: a partial or wrong file is visible at its final name"
    # The file being written when the kill came was unnamed (O_TMPFILE): nothing is left.
    assert os.listdir(dest / ".stagegate" / "tmp") == []

    summary = _rerun(cmd, subprocess_env)

    assert summary["files"] == len(files)
    assert summary["files_present"] >= len(before)
    assert landed() == files
    assert sorted(os.listdir(dest)) == [".stagegate", NAME]
    assert os.listdir(dest / ".stagegate" / "tmp") == []
