"""Ctrl-C of `stagegate stage` and `stagegate egress`, run as a user runs them: each says it was
interrupted and how to resume (not click's bare "aborted"), and what it says resumes. For a
staging the printed command is the whole one (a subset's filters, --job): run as printed, it
finishes the same dataset, copying only the files not yet kept."""

import json
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from integration.helpers import STAGEGATE, MiB, assert_staged, payload, write_tree

pytestmark = pytest.mark.integration

VAL = {f"val/{i:03d}.bin": payload(f"v{i}", 16 * 1024) for i in range(160)}
TRAIN = {f"train/{i:03d}.bin": payload(f"t{i}", 16 * 1024) for i in range(40)}


def interrupt_when(cmd: list[str], ready: Callable[[], bool], env: dict[str, str]) -> tuple[int, str]:
    """Run ``cmd``, send SIGINT (Ctrl-C) once ``ready()``; its exit code and stderr."""
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 90
        while not ready():
            assert proc.poll() is None, f"finished before it could be interrupted: {proc.communicate()}"
            assert time.monotonic() < deadline, "no progress within 90 s"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=30)
    return proc.returncode, stderr


def files_under(root: Path) -> int:
    return sum(len(names) for _, _, names in os.walk(root)) if root.is_dir() else 0


def test_ctrl_c_of_a_subset_prints_the_command_that_resumes_it(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    src = write_tree(tmp_path / "src", {**VAL, **TRAIN, ".classification": b"public\n"})
    dest = tmp_path / "val only"  # a space: the printed command must quote it
    cmd = [STAGEGATE, "stage", str(src), "--to", str(dest), "--include", "/val/**", "--job", "run 7"]

    code, stderr = interrupt_when(
        [*cmd, "--bandwidth", "300kB", "--no-progress"], lambda: files_under(dest) >= 10, subprocess_env
    )

    assert code == 130, stderr
    assert "aborted" not in stderr
    assert "every file verified so far is kept" in stderr
    printed = stderr.split("To resume, run:\n", 1)[1].strip()
    words = shlex.split(printed)
    assert words[:2] == ["stagegate", "stage"] and words[2:] == cmd[2:], printed
    kept = files_under(dest)
    assert 0 < kept < len(VAL)

    resumed = subprocess.run(
        [STAGEGATE, *words[1:], "--json", "--no-progress"],
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=180,
    )

    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["files"] == len(VAL)  # the subset, not the whole source
    assert summary["files_copied"] < len(VAL)  # what the interrupted run kept was not copied again
    assert_staged(dest, VAL)
    jobs = subprocess.run(
        [STAGEGATE, "audit", "query", "--job", "run 7", "--action", "stage.completed", "--json"],
        env=subprocess_env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert len(jobs.stdout.splitlines()) == 1, jobs.stdout + jobs.stderr


def test_ctrl_c_of_an_egress_says_how_to_resume(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    name = "checkpoint-100"
    files = {f"{name}/shard-{i:02d}.bin": payload(f"s{i}", MiB) for i in range(16)}
    files[f"{name}/.classification"] = b"public\n"
    run = write_tree(tmp_path / "run", files)
    dest = tmp_path / "share" / "models"
    cmd = [STAGEGATE, "egress", str(run), "--to", str(dest), "--name", name, "--concurrency", "2"]

    def landed() -> int:
        return files_under(dest / name)

    code, stderr = interrupt_when(
        [*cmd, "--bandwidth", "2MB", "--no-progress"], lambda: landed() >= 3, subprocess_env
    )

    assert code == 130, stderr
    assert "aborted" not in stderr
    assert "interrupted; nothing unselected was deleted" in stderr
    assert "run the same command again to resume" in stderr
    before = landed()
    again = subprocess.run([*cmd, "--json"], env=subprocess_env, capture_output=True, text=True, timeout=180)
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["files_present"] >= before
    assert landed() == len(files)
