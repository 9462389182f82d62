"""How long a cache hit's check takes: the fingerprint of a sealed dataset of many small files.

    python -m bench.fingerprint [--files 100000 1000000] [--dir /tmp/...]

Builds a tree of N small files (1,000 per directory, 16 bytes each), seals it as finalize
does, then times ``transfer.sealed.fingerprint`` three times (warm: the inodes in the
dentry/inode cache, as on a node that just served the dataset) and once after dropping the
caches when run as root (cold). Prints one line per size.
"""

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from stagegate.transfer.sealed import fingerprint, seal, unseal

PER_DIR = 1000


def build(root: Path, files: int) -> None:
    for i in range(files):
        d = root / f"d{i // PER_DIR:05d}"
        if i % PER_DIR == 0:
            d.mkdir(parents=True)
        (d / f"f{i:07d}.bin").write_bytes(b"0123456789abcdef")


def drop_caches() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("2\n")
        return True
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    for files in args.files:
        base = Path(tempfile.mkdtemp(prefix="sg-fp-", dir=args.dir))
        root = base / "dataset"
        try:
            started = time.perf_counter()
            build(root, files)
            seal(root)
            built = time.perf_counter() - started
            warm = []
            for _ in range(3):
                started = time.perf_counter()
                fingerprint(root)
                warm.append(time.perf_counter() - started)
            cold = None
            if drop_caches():
                started = time.perf_counter()
                fingerprint(root)
                cold = time.perf_counter() - started
            cold_text = f"{cold:.2f} s" if cold is not None else "n/a (not root)"
            print(
                f"{files:>9,} files: fingerprint warm {min(warm):.2f} s (best of 3; "
                f"{1e6 * min(warm) / files:.1f} us/file), cold {cold_text}; "
                f"tree built and sealed in {built:.0f} s"
            )
        finally:
            unseal(root)
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
