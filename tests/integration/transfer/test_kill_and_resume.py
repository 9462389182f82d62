"""A staging killed in the middle (SIGKILL, or Ctrl-C of the embedded command), then run
again: the same in both modes, since both run the same steps and keep the same batch
records. Nothing partial is ever visible at a final path, the rerun copies only the files
that were not yet durably recorded (never all of them: progress is kept per file, not per
batch), leaves the recorded ones untouched, and the result is complete and verified.

Embedded is the ``stagegate stage`` command as a user runs it; service is a process running
a node worker's copy and publish steps (``service_steps_run.py``), killed as a worker is.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from integration.helpers import (
    STAGEGATE,
    assert_staged,
    data_files,
    is_ready,
    payload,
    put_objects,
    write_tree,
)
from stagegate.transfer import open_source, stage
from stagegate.transfer.batch_record import BATCHES_DIR, read_batch_record
from stagegate.transfer.layout import state_dir_of

pytestmark = pytest.mark.integration

STEPS = str(Path(__file__).with_name("service_steps_run.py"))
BANDWIDTH = 1_000_000  # bytes per second: the run takes about 6 s, so the kill lands mid-batch
SERVICE_BATCH_FILES = 100  # three batches: one done, one partly done, one not begun at the kill
FILES = {
    **{f"a-small/{i:03d}.bin": payload(f"s{i}", 16 * 1024) for i in range(240)},
    **{f"b-mid/{i}.bin": payload(f"m{i}", 512 * 1024) for i in range(4)},
}


def recorded(dest: Path) -> tuple[set[str], int, int]:
    """The keys the batch records vouch for now, how many records are complete, and how many
    are interrupted with files in them."""
    keys: set[str] = set()
    complete = partial = 0
    batches = state_dir_of(dest) / BATCHES_DIR
    for path in sorted(batches.glob("*.jsonl")) if batches.is_dir() else []:
        record = read_batch_record(path, int(path.stem))
        if record is None:
            continue
        keys |= {r.key for r in record.records}
        if record.counts is None:
            partial += bool(record.records)
        else:
            complete += 1
    return keys, complete, partial


def command(
    mode: str, src: Path | str, dest: Path, scratch: Path, throttled: bool, processes: int = 1
) -> list[str]:
    if mode == "embedded":
        cmd = [STAGEGATE, "stage", str(src), "--to", str(dest), "--no-progress", "--json"]
        cmd += ["--processes", str(processes)]
        return [*cmd, "--bandwidth", str(BANDWIDTH)] if throttled else cmd
    cmd = [sys.executable, STEPS, str(src), str(dest), str(scratch), str(SERVICE_BATCH_FILES)]
    return [*cmd, str(BANDWIDTH if throttled else 0), str(processes)]


def far_enough(mode: str, dest: Path) -> bool:
    """Killed only once some files are durably recorded in a batch not yet complete (and, on
    the service, after a batch completed, so the rerun meets a done batch again)."""
    keys, complete, partial = recorded(dest)
    return len(keys) >= 20 and partial >= 1 and (mode == "embedded" or complete >= 1)


def copied_by(mode: str, stdout: str) -> tuple[int, int]:
    """(files copied by the rerun, batches the rerun found already done)."""
    if mode == "embedded":
        return int(json.loads(stdout)["files_copied"]), 0
    lines = [json.loads(line) for line in stdout.splitlines()]
    batches = [line for line in lines if "published" not in line]
    assert lines[-1]["published"]["files"] == len(FILES)
    done = [b for b in batches if b["already_done"]]
    return sum(b["files_copied"] for b in batches if not b["already_done"]), len(done)


@pytest.mark.parametrize(
    ("mode", "how"),
    [("embedded", signal.SIGKILL), ("service", signal.SIGKILL), ("embedded", signal.SIGINT)],
    ids=["embedded-kill-9", "service-kill-9", "embedded-ctrl-c"],
)
def test_killed_mid_batch_then_rerun_copies_only_what_was_not_durable(tmp_path, mode, how):
    src = write_tree(tmp_path / "src", {**FILES, ".classification": b"public\n"})
    kill_then_rerun(mode, how, src, tmp_path)


@pytest.mark.parametrize("mode", ["embedded", "service"])
def test_s3_source_killed_mid_batch_then_rerun_resumes(tmp_path, mode, s3_client, bucket, subprocess_env):
    """The same from S3, where the bodies come through the CRT's client (its native threads
    die with the process, mid-GET)."""
    objects = {**FILES, ".classification": b"public\n"}
    put_objects(s3_client, bucket, {f"ds/{key}": data for key, data in objects.items()})
    kill_then_rerun(mode, signal.SIGKILL, f"s3://{bucket}/ds", tmp_path, subprocess_env)


@pytest.mark.parametrize("mode", ["embedded", "service"])
def test_copy_processes_killed_with_their_parent_then_rerun_resumes(tmp_path, mode):
    """With two copy processes the small files are copied by children; a kill -9 of the
    parent takes them with it (none goes on writing into the dataset), and the rerun, with
    children again, resumes as a single process's would."""
    src = write_tree(tmp_path / "src", {**FILES, ".classification": b"public\n"})
    kill_then_rerun(mode, signal.SIGKILL, src, tmp_path, processes=2)


def copy_processes_of(group: int, leader: int) -> set[int]:
    """The copy processes in process group ``group``: children of the fork server that
    ``leader`` started (forked from it, they share its command line)."""
    procs = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[2]) == group:
            procs[int(entry.name)] = (int(fields[1]), cmdline)
    servers = {pid for pid, (ppid, cmdline) in procs.items() if ppid == leader and b"forkserver" in cmdline}
    return {pid for pid, (ppid, _) in procs.items() if ppid in servers}


def group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def kill_then_rerun(
    mode: str,
    how: signal.Signals,
    src: Path | str,
    tmp_path: Path,
    env: dict[str, str] | None = None,
    processes: int = 1,
) -> None:
    dest = tmp_path / "dest"
    scratch = tmp_path / "scratch"
    scratch.mkdir()

    proc = subprocess.Popen(
        command(mode, src, dest, scratch, throttled=True, processes=processes),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while not far_enough(mode, dest):
            assert proc.poll() is None, f"finished before it could be stopped: {proc.communicate()}"
            assert time.monotonic() < deadline, "nothing recorded within 60 s"
            time.sleep(0.05)
        children = copy_processes_of(proc.pid, proc.pid)
        assert len(children) == (processes if processes > 1 else 0), children
        os.kill(proc.pid, how)
        _, stderr = proc.communicate(timeout=60)
        while processes > 1 and group_alive(proc.pid):  # the copy processes die with it
            assert time.monotonic() < deadline + 60, f"left running: {copy_processes_of(proc.pid, proc.pid)}"
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=30)

    if how == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    else:
        assert proc.returncode == 130, stderr
        assert "To resume, run the same command again" in stderr, stderr
        assert f"stagegate stage {src} --to {dest}" in stderr, stderr
    assert not is_ready(dest)
    present = data_files(dest)
    assert 0 < len(present) < len(FILES)
    for key, data in present.items():
        assert data == FILES[key], f"{key}: a partial or wrong file is visible at its final path"
    durable, _, _ = recorded(dest)
    assert durable <= set(present)
    untouched = {key: os.stat(dest / key) for key in durable}

    rerun = subprocess.run(
        command(mode, src, dest, scratch, throttled=False, processes=processes),
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert rerun.returncode == 0, rerun.stderr
    copied, found_done = copied_by(mode, rerun.stdout)
    assert copied <= len(FILES) - len(durable), "a file recorded before the kill was copied again"
    assert copied < len(FILES)
    if mode == "service":
        assert found_done >= 1, "a batch completed before the kill was not found done"
    for key, before in untouched.items():
        after = os.stat(dest / key)
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns), key
    assert_staged(dest, FILES)
    assert not (state_dir_of(dest) / BATCHES_DIR).exists(), "batch records outlive publishing"


def test_a_state_dir_an_older_stagegate_left_is_ignored_and_every_file_checked_again(tmp_path):
    """An older stagegate kept embedded progress in journal generations, and the service's
    batch records in another format. Neither vouches for anything now: the rerun does not
    crash, removes the journal, copies every file again (the files it finds are replaced by
    verified copies), and publishes a whole, verified dataset."""
    files = {k: v for k, v in list(FILES.items())[:30]}
    src = write_tree(tmp_path / "src", files)
    dest = tmp_path / "dest"
    stage(open_source(str(src)), dest)
    state = state_dir_of(dest)
    manifest = (state / "manifest.jsonl").read_bytes()
    lines = manifest.splitlines(keepends=True)
    # As an older stagegate killed mid-run left it: no READY, no manifest, a journal
    # generation vouching for half the files, a batch record in the older format.
    (state / "READY").unlink()
    (state / "manifest.jsonl").unlink()
    write_tree(state / "journal", {"00000000000000000001/0000000000.jsonl": b"".join(lines[:15])})
    header = {"batch": 0, "files": 15, "bytes": 1, "files_skipped": 0, "bytes_skipped": 0, "seconds": 1}
    write_tree(state / BATCHES_DIR, {"0000000000.jsonl": json.dumps(header).encode() + b"\n" + lines[0]})

    result = stage(open_source(str(src)), dest)

    assert (result.files, result.files_copied, result.files_skipped) == (len(files), len(files), 0)
    assert not (state / "journal").exists()
    assert_staged(dest, files)
