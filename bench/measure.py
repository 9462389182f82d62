"""Run one tool once into a fresh directory and measure it."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.datasets import count_files
from stagegate.transfer.layout import state_dir_of

# GNU time reports the tool's peak RSS. Linux carries a process's RSS high-water mark over
# fork and exec, so a tool forked straight from this (100 MB) Python process would report
# at least our size; forked from `time` (about 1 MB), it reports its own.
GNU_TIME = "/usr/bin/time"


@dataclass
class Run:
    tool: str
    round: int
    ok: bool
    note: str = ""
    wall_s: float = 0.0  # until the tool exits
    sync_s: float = 0.0  # the `sync` right after it; peers' "+sync" wall is wall_s + sync_s
    cpu_s: float = 0.0  # user+sys of the tool and every descendant it waited for
    maxrss_mb: float = 0.0  # of the largest single process in the tree (ru_maxrss)
    server_cpu_s: float = 0.0  # S3 server CPU while the tool ran; 0 for POSIX
    # CPU the rest of the machine used while the tool ran (kernel writeback included):
    # the harness shares 2 cores with whatever else runs, and this shows when it did.
    other_cpu_s: float = 0.0
    # POSIX only: share of the source in the page cache as the timer started.
    source_cached: float | None = None
    files: int = 0
    bytes: int = 0
    stdout: str = ""  # kept raw: stagegate's JSON summary


@dataclass(frozen=True)
class _Exit:
    code: int
    timed_out: bool
    wall_s: float
    cpu_s: float
    maxrss_kib: int
    stdout: str
    stderr: str


def _clear(dest: Path) -> None:
    """Remove ``dest`` and stagegate's state beside it: a leftover would make the next round resume."""
    shutil.rmtree(dest, ignore_errors=True)
    shutil.rmtree(state_dir_of(dest), ignore_errors=True)


def run_once(
    tool: str,
    round_: int,
    argv: list[str],
    env: dict[str, str],
    dest: Path,
    expected: tuple[int, int],
    server_cpu: Callable[[], float] | None,
    timeout_s: float,
) -> Run:
    """Time `argv` copying into an empty `dest`, then check it copied `expected` (files, bytes)."""
    _clear(dest)
    dest.mkdir(parents=True)
    try:
        # Flush what earlier runs (and the rmtree above) left dirty, so it is not billed here.
        os.sync()
        server_before = server_cpu() if server_cpu else 0.0
        machine_before = _machine_busy_s()
        done = run_timed(argv, env, timeout_s)
        server_used = server_cpu() - server_before if server_cpu else 0.0
        machine_used = _machine_busy_s() - machine_before
        synced = time.perf_counter()
        os.sync()
        sync_s = time.perf_counter() - synced
        files, size = count_files(dest)
    finally:
        _clear(dest)

    run = Run(
        tool,
        round_,
        ok=True,
        wall_s=done.wall_s,
        sync_s=sync_s,
        cpu_s=done.cpu_s,
        maxrss_mb=done.maxrss_kib * 1024 / 1e6,
        server_cpu_s=server_used,
        other_cpu_s=max(0.0, machine_used - done.cpu_s - server_used),
        files=files,
        bytes=size,
        stdout=done.stdout.strip(),
    )
    if done.timed_out or done.code != 0:
        run.ok = False
        why = f"timed out after {timeout_s:.0f} s" if done.timed_out else f"exit {done.code}"
        run.note = f"{why}: {_tail(done.stderr or done.stdout)}"
    elif (files, size) != expected:
        run.ok = False
        run.note = f"incomplete copy: {files} files / {size} bytes, expected {expected[0]} / {expected[1]}"
    return run


def run_timed(argv: list[str], env: dict[str, str], timeout_s: float) -> _Exit:
    """Run `argv` under GNU time in its own session, killing the session on timeout."""
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile("r") as rss,
    ):
        started = time.perf_counter()
        process = subprocess.Popen(
            [GNU_TIME, "-o", rss.name, "-f", "%M", *argv],
            env=env,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        fired = threading.Event()
        timer = threading.Timer(timeout_s, _kill, (process.pid, fired))
        timer.start()
        # wait4 (not Popen.wait) returns the rusage of the child and of every descendant it
        # waited for: `time` waits for the tool, which waits for its own children.
        try:
            _pid, status, usage = os.wait4(process.pid, 0)
        except BaseException:  # Ctrl-C: the tool is in its own session and would live on
            timer.cancel()
            _kill(process.pid, fired)
            process.wait()
            raise
        wall = time.perf_counter() - started
        timer.cancel()
        process.returncode = os.waitstatus_to_exitcode(status)
        # On failure `time` writes a status line first; the format's %M is always the last.
        last = (rss.read().strip().splitlines() or ["0"])[-1]
        out.seek(0)
        err.seek(0)
        return _Exit(
            code=process.returncode,
            timed_out=fired.is_set(),
            wall_s=wall,
            cpu_s=usage.ru_utime + usage.ru_stime,
            maxrss_kib=int(last) if last.isdigit() else 0,
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
        )


def _kill(pid: int, fired: threading.Event) -> None:
    fired.set()
    # The session may be gone already: the tool can exit just as the timer fires.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _machine_busy_s() -> float:
    """Non-idle CPU seconds of all cores since boot, from the first line of /proc/stat."""
    with open("/proc/stat") as stat:
        ticks = [int(field) for field in stat.readline().split()[1:]]
    # Fields: user nice system idle iowait irq softirq steal guest guest_nice; guest time
    # is already counted in user, and idle and iowait are not busy.
    busy = sum(ticks[:8]) - ticks[3] - ticks[4]
    return busy / os.sysconf("SC_CLK_TCK")


def _tail(text: str, limit: int = 300) -> str:
    """The last lines of a tool's output, on one line, for a note."""
    flat = " | ".join(line.strip() for line in text.strip().splitlines()[-3:])
    return flat[-limit:] or "(no output)"
