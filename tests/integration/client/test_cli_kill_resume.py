"""kill -9 in the middle of a staging, then run the same command again: nothing partial is
ever visible at a final path, the rerun resumes, and the result is complete and identical."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from integration.helpers import (
    STAGEGATE,
    MiB,
    assert_staged,
    data_files,
    is_ready,
    payload,
    write_tree,
)
from stagegate.transfer.layout import state_dir_of

pytestmark = pytest.mark.integration

SIZES = ["--part-size", "1MiB", "--multipart-threshold", "2MiB", "--no-progress"]


def _dataset() -> dict[str, bytes]:
    # Progress is journaled per batch (at most 1000 files): the first 1000 keys are tiny so
    # that one batch is journaled quickly; the throttled rest is where the kill lands.
    files = {f"a-tiny/{i:04d}": payload(f"t{i}", 64 + i % 100) for i in range(1000)}
    files.update({f"b-mid/{i:02d}.bin": payload(f"m{i}", 256 * 1024) for i in range(40)})
    files["c-big/eight.bin"] = payload("eight", 8 * MiB)
    return files


def _journaled_batches(dest: Path) -> list[Path]:
    return list((state_dir_of(dest) / "journal").glob("*/*.jsonl"))


def test_kill_9_mid_run_then_rerun(tmp_path):
    files = _dataset()
    # Labelled public at the root, as the shipped policy requires; the label file is read,
    # not staged, so ``files`` stays exactly the data expected in the destination.
    src = write_tree(tmp_path / "src", {**files, ".classification": b"public\n"})
    dest = tmp_path / "dest"
    cmd = [STAGEGATE, "stage", str(src), "--to", str(dest), *SIZES]

    proc = subprocess.Popen(
        [*cmd, "--bandwidth", "2MB"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"finished before it could be killed: {proc.communicate()}"
            assert time.monotonic() < deadline, "no progress within 60 s"
            landed = [p for p in (dest / "b-mid").glob("*.bin")] if (dest / "b-mid").exists() else []
            if _journaled_batches(dest) and len(landed) >= 2:
                break
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    assert not is_ready(dest)
    present = data_files(dest)
    assert 0 < len(present) < len(files)
    for key, data in present.items():
        assert data == files[key], f"{key}: a partial or wrong file is visible at its final path"

    rerun = subprocess.run([*cmd, "--json"], capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout)
    assert summary["files_skipped"] > 0
    assert summary["files_skipped"] + summary["files_copied"] == len(files)
    assert_staged(dest, files)
