"""What a per-owner view costs: a read-only bind mount per dataset against a hard link per file.

    unshare --user --map-root-user --mount python -m bench.views [--files 100 1000 10000] [--runs 7]

(The ``unshare`` gives the run a mount namespace of its own: the machine's mounts are untouched.)
Builds a sealed dataset of N small files (1,000 per directory, as ``bench.fingerprint``), then,
alternating the two ways run by run, times making a view of it and removing it again:
``workers.views.NodeViews`` (bind, remount read-only; unmount) against a tree of hard links
(mkdir per directory, ``os.link`` per file; unlink). Also reports whether each way leaves the
dataset's tamper fingerprint as it was: a link changes each file's ctime, which it covers.
Prints medians and the spread (min-max) per size, in milliseconds.
"""

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.fingerprint import build
from stagegate.transfer.sealed import fingerprint, seal
from stagegate.workers.views import LinuxMounter, NodeViews, View

UID = "0b7e3f0c-5d2a-4c1e-9f0a-2b3c4d5e6f70"


def link_tree(dataset: Path, target: Path) -> None:
    for directory, _dirs, files in os.walk(dataset):
        here = target / Path(directory).relative_to(dataset)
        here.mkdir(parents=True, exist_ok=True)
        for name in files:
            os.link(Path(directory) / name, here / name)


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000


def measure(root: Path, files: int, runs: int) -> tuple[dict[str, list[float]], dict[str, bool]]:
    """Times (ms) of each step over ``runs`` alternating runs, and whether each way kept the fingerprint."""
    dataset = root / "datasets" / ("a" * 64)
    build(dataset, files)
    seal(dataset)
    before = fingerprint(dataset)
    views = NodeViews(root, LinuxMounter())
    want = [View(UID, "job", dataset)]
    links = root / "links"
    times: dict[str, list[float]] = {"bind": [], "unmount": [], "links": [], "unlink": []}
    kept = {"bind": True, "links": True}
    for run in range(runs):
        for way in ("bind", "links") if run % 2 == 0 else ("links", "bind"):
            if way == "bind":
                times["bind"].append(timed(lambda: views.sync(want)))
                kept["bind"] &= fingerprint(dataset) == before
                times["unmount"].append(timed(lambda: views.sync([])))
            else:
                times["links"].append(timed(lambda: link_tree(dataset, links / UID / "job")))
                times["unlink"].append(timed(lambda: shutil.rmtree(links)))
                kept["links"] &= fingerprint(dataset) == before
                before = fingerprint(dataset)  # the next run starts from the tree as it is now
    return times, kept


def cell(times: list[float]) -> str:
    return f"{statistics.median(times):7.2f} ({min(times):.2f}-{max(times):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    header = ("files", "bind+ro ms", "unmount ms", "links ms", "unlink ms")
    print(f"{header[0]:>7} {header[1]:>16} {header[2]:>16} {header[3]:>20} {header[4]:>20}  fingerprint kept")
    for files in args.files:
        root = Path(tempfile.mkdtemp(dir=args.dir, prefix="views-bench-"))
        try:
            times, kept = measure(root, files, args.runs)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        cells = [cell(times[k]) for k in ("bind", "unmount", "links", "unlink")]
        print(
            f"{files:>7} {cells[0]:>16} {cells[1]:>16} {cells[2]:>20} {cells[3]:>20}  "
            f"bind {kept['bind']}, links {kept['links']}"
        )


if __name__ == "__main__":
    main()
