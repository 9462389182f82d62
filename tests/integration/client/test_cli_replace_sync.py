"""`stagegate stage SRC --to DIR` with `--replace` and `--sync`, as a user runs it: another
source's dataset is refused by name, a rerun after the source lost files refuses unless
`--sync`, the policy's word comes before any deletion, and a `kill -9` in the middle of a
replace or a sync leaves a directory that is plainly not ready, which a rerun completes.

After each scenario the directory is walked and compared with its manifest (``assert_staged``)."""

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from integration.helpers import (
    STAGEGATE,
    assert_staged,
    data_files,
    dataset_and_state,
    is_ready,
    payload,
    write_tree,
)
from stagegate.actions import AuditAction
from stagegate.ledger import AuditTrail, open_ledger
from stagegate.transfer.layout import state_dir_of

pytestmark = pytest.mark.integration

PUBLIC = {".classification": b"public\n"}
NO_BAR = ["--no-progress"]
OLD = {"train/a.bin": payload("a", 20_000), "val/b.bin": payload("b", 10_000)}
NEW = {"train/a.bin": payload("A", 20_001), "test/c.bin": payload("c", 30_000)}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([STAGEGATE, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def old_src(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "old-src", {**OLD, **PUBLIC})


@pytest.fixture
def new_src(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "new-src", {**NEW, **PUBLIC})


@pytest.fixture
def staged(old_src: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "dest"
    proc = run("stage", str(old_src), "--to", str(dest), *NO_BAR)
    assert proc.returncode == 0, proc.stderr
    assert_staged(dest, OLD)
    return dest


def test_another_sources_dataset_is_refused_with_exit_2_naming_it(
    staged: Path, old_src: Path, new_src: Path
) -> None:
    before = dataset_and_state(staged)
    proc = run("stage", str(new_src), "--to", str(staged), *NO_BAR)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"holds the dataset of {old_src}" in proc.stderr and "--replace" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert dataset_and_state(staged) == before


def test_replace_stages_the_new_dataset_and_nothing_of_the_old_remains(staged: Path, new_src: Path) -> None:
    proc = run("stage", str(new_src), "--to", str(staged), "--replace", "--json", *NO_BAR)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["files_removed"] == 1 and summary["files"] == len(NEW)
    assert_staged(staged, NEW)
    assert not (staged / "val").exists()

    proc = run("stage", str(new_src), "--to", str(staged), "--sync", *NO_BAR)  # in sync: nothing to remove
    assert proc.returncode == 0, proc.stderr
    assert "removed" not in proc.stdout


def test_a_rerun_after_a_source_deletion_refuses_until_sync(staged: Path, old_src: Path) -> None:
    (old_src / "val" / "b.bin").unlink()
    before = dataset_and_state(staged)
    proc = run("stage", str(old_src), "--to", str(staged), *NO_BAR)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "val/b.bin" in proc.stderr and "--sync" in proc.stderr and "Nothing was changed" in proc.stderr
    assert dataset_and_state(staged) == before
    assert_staged(staged, OLD)  # READY still tells the truth: the old set is all there

    proc = run("stage", str(old_src), "--to", str(staged), "--sync", *NO_BAR)
    assert proc.returncode == 0, proc.stderr
    assert "removed 1 not in the source" in proc.stdout
    assert_staged(staged, {"train/a.bin": OLD["train/a.bin"]})


def test_the_audit_trail_records_the_refusal_and_what_sync_removed(staged: Path, old_src: Path) -> None:
    (old_src / "val" / "b.bin").unlink()
    assert run("stage", str(old_src), "--to", str(staged), "--job", "refused", *NO_BAR).returncode == 2
    assert (
        run("stage", str(old_src), "--to", str(staged), "--job", "synced", "--sync", *NO_BAR).returncode == 0
    )
    with open_ledger() as ledger:
        refused = AuditTrail(ledger).query(job="refused")
        synced = AuditTrail(ledger).query(job="synced")
    failed = [e for e in refused if e.action == AuditAction.STAGE_FAILED]
    assert len(failed) == 1 and "val/b.bin" in failed[0].reasons[0]
    assert failed[0].details["error"] == "StrayFilesError"
    (completed,) = [e for e in synced if e.action == AuditAction.STAGE_COMPLETED]
    assert completed.details["files_removed"] == 1
    (requested,) = [e for e in synced if e.action == AuditAction.STAGE_REQUESTED]
    assert requested.details == {"sync": True}
    assert not next(e for e in refused if e.action == AuditAction.STAGE_REQUESTED).details


def test_sync_that_the_policy_denies_deletes_nothing(staged: Path, old_src: Path) -> None:
    (old_src / "val" / "b.bin").unlink()
    (old_src / ".classification").write_bytes(b"confidential\n")  # the shipped policy stages public only
    before = dataset_and_state(staged)
    for flag in ("--sync", "--replace"):
        proc = run("stage", str(old_src), "--to", str(staged), flag, *NO_BAR)
        assert proc.returncode == 3, proc.stdout + proc.stderr
        assert dataset_and_state(staged) == before, flag
    assert_staged(staged, OLD)


def test_replace_and_sync_are_refused_for_the_service(new_src: Path) -> None:
    for flag in ("--replace", "--sync"):
        proc = run("stage", str(new_src), "--node", "gpu-1", "--server", "http://127.0.0.1:9", flag)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert f"{flag} applies only to staging here (--to)" in proc.stderr


def _start(src: Path, dest: Path, *flags: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [STAGEGATE, "stage", str(src), "--to", str(dest), *flags, *NO_BAR],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _kill_when(proc: subprocess.Popen[str], ready: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 60
    while not ready():
        assert proc.poll() is None, f"the staging ended before {what}: {proc.communicate()}"
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def _copying(dest: Path) -> bool:
    tmp = state_dir_of(dest) / "tmp"
    return tmp.is_dir() and any(name.endswith(".part") for name in os.listdir(tmp))


def _no_partial_file(dest: Path, *sets: dict[str, bytes]) -> None:
    """Every file at a final name is whole: some set's bytes for that key."""
    for key, data in data_files(dest).items():
        assert any(s.get(key) == data for s in sets), f"{key}: not one whole version"


def test_kill_9_during_replace_then_rerun(staged: Path, new_src: Path) -> None:
    big = {"test/big.bin": payload("big", 400_000)}
    write_tree(new_src, big)
    proc = _start(new_src, staged, "--replace", "--bandwidth", "100KB")
    _kill_when(proc, lambda: _copying(staged), "the replace copying")
    assert not is_ready(staged), "a half-replaced directory must not look ready"
    _no_partial_file(staged, OLD, NEW, big)

    again = run("stage", str(new_src), "--to", str(staged), "--replace", *NO_BAR)
    assert again.returncode == 0, again.stderr
    assert_staged(staged, {**NEW, **big})


def test_kill_9_while_sync_deletes_then_rerun(staged: Path, old_src: Path) -> None:
    # Many strays, so that the deletions take long enough to be caught in the middle.
    strays = staged / "val" / "gone"
    strays.mkdir()
    for i in range(20_000):
        (strays / f"{i:05d}").write_bytes(b"")
    proc = _start(old_src, staged, "--sync")
    _kill_when(proc, lambda: len(os.listdir(strays)) < 20_000, "the deletions")
    left = len(os.listdir(strays)) if strays.exists() else 0
    assert 0 < left < 20_000, "killed in the middle of the deletions"
    assert not is_ready(staged), "READY must not be written before the deletions are done"
    on_disk = data_files(staged)
    assert {k: v for k, v in on_disk.items() if k in OLD} == OLD, "the new set is all there"

    again = run("stage", str(old_src), "--to", str(staged), "--sync", *NO_BAR)
    assert again.returncode == 0, again.stderr
    assert f"removed {left} not in the source" in again.stdout
    assert_staged(staged, OLD)
