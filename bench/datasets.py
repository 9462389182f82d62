"""Deterministic generated datasets, cached under bench/.data/ between invocations."""

from __future__ import annotations

import os
import random
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

DATA_ROOT = Path(__file__).resolve().parent / ".data"

# Leaf directories hold this many files; ten leaves share a parent, so trees stay shallow
# but no directory gets huge (a 200k-file tree is 20 x 10 x 1,000).
FILES_PER_DIR = 1000
DIRS_PER_PARENT = 10
CHUNK = 8 << 20

# Each dataset is labelled public the way a user would: one label file at its root. It is
# not a data file (stagegate reads it instead of staging it; peers copy it as one more file).
LABEL_FILE = ".classification"
LABEL = b"public\n"

# Every generated file matches this, so verification can ignore anything a tool adds
# of its own (manifests, logs) and count only the dataset's files.
DATA_FILE = re.compile(r"f\d{7}\.bin")


@dataclass(frozen=True)
class Dataset:
    """A tree of `count` files whose sizes are drawn uniformly from [min_size, max_size]."""

    count: int
    min_size: int
    max_size: int

    @property
    def name(self) -> str:
        if self.min_size == self.max_size:
            return f"{self.count}x{_human(self.min_size)}"
        return f"{self.count}x{_human(self.min_size)}-{_human(self.max_size)}"

    @property
    def path(self) -> Path:
        return DATA_ROOT / self.name

    def sizes(self) -> list[int]:
        # A separate seeded stream for sizes keeps the layout independent of the content.
        rng = random.Random(f"sizes-{self.name}")
        return [rng.randint(self.min_size, self.max_size) for _ in range(self.count)]

    @property
    def total_bytes(self) -> int:
        return sum(self.sizes())

    def files(self) -> Iterator[tuple[str, int]]:
        """Relative path and size of every file, in generation order."""
        for index, size in enumerate(self.sizes()):
            leaf = index // FILES_PER_DIR
            parent = leaf // DIRS_PER_PARENT
            yield f"p{parent:03d}/d{leaf % DIRS_PER_PARENT}/f{index:07d}.bin", size


def ensure(dataset: Dataset) -> Path:
    """Generate `dataset` unless a complete copy is already cached; return its directory."""
    marker = dataset.path.with_name(dataset.name + ".complete")
    if marker.exists():
        (dataset.path / LABEL_FILE).write_bytes(LABEL)  # caches made before labels existed
        return dataset.path
    # A marker-less directory is a generation that was interrupted: start over.
    shutil.rmtree(dataset.path, ignore_errors=True)
    rng = random.Random(f"content-{dataset.name}")
    for relative, size in dataset.files():
        target = dataset.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as out:
            for offset in range(0, size, CHUNK):
                out.write(rng.randbytes(min(CHUNK, size - offset)))
    (dataset.path / LABEL_FILE).write_bytes(LABEL)
    os.sync()
    marker.touch()
    return dataset.path


def count_files(root: Path) -> tuple[int, int]:
    """Number and total bytes of dataset files anywhere under `root`."""
    files = total = 0
    for dirpath, _dirnames, filenames in os.walk(root):
        for filename in filenames:
            if DATA_FILE.fullmatch(filename):
                files += 1
                total += os.stat(os.path.join(dirpath, filename)).st_size
    return files, total


def _human(size: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift and size % (1 << shift) == 0:
            return f"{size >> shift}{unit}"
    return f"{size}B"
