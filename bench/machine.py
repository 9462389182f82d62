"""A description of the machine the numbers were taken on."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path


def describe(runs_dir: Path) -> dict[str, str]:
    runs_dir.mkdir(parents=True, exist_ok=True)
    return {
        "CPUs (nproc)": str(os.cpu_count()),
        "CPU model": _cpu_model(),
        "memory": f"{_mem_total_kib() / (1 << 20):.1f} GiB",
        "kernel": platform.release(),
        # `stat -f` names ext4 "ext2/ext3" (same magic number), so findmnt's answer goes too.
        "filesystem of bench/.runs": (
            f"{_command('stat', '-f', '-c', '%T', str(runs_dir))} (stat -f), "
            f"{_command('findmnt', '-n', '-o', 'FSTYPE,SOURCE', '-T', str(runs_dir))} (findmnt)"
        ),
        "python": platform.python_version(),
        "proactive reclaim (DAMON)": _damon(),
    }


def _damon() -> str:
    """The DAMON schemes that are running: they page out memory on their own schedule."""
    found = []
    for kdamond in Path("/sys/kernel/mm/damon/admin/kdamonds").glob("[0-9]*"):
        if (kdamond / "state").read_text().strip() != "on":
            continue
        for context in kdamond.glob("contexts/[0-9]*"):
            aggregation_s = int((context / "monitoring_attrs/intervals/aggr_us").read_text()) / 1e6
            for scheme in context.glob("schemes/[0-9]*"):
                action = (scheme / "action").read_text().strip()
                min_age = int((scheme / "access_pattern/age/min").read_text())
                found.append(f"{action} of memory idle >= {min_age * aggregation_s:.0f} s")
    return ", ".join(found) or "none"


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def _mem_total_kib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return 0


def _command(*argv: str) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "unknown"
    return " ".join(done.stdout.split()) or "unknown"
