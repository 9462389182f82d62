"""How names, numbers, times and sizes read in the package's messages; pure."""

from collections.abc import Sequence
from datetime import UTC, datetime

SHOWN = 20  # names listed in one message before "... and N more"


def listing(names: Sequence[str], shown: int = SHOWN) -> str:
    more = f", ... and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def number(value: float) -> str:
    return f"{value:.10g}"


def when(mtime: float) -> str:
    return datetime.fromtimestamp(mtime, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    size = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024
        if size < 1024:
            return f"{size:.1f} {unit}"
    return f"{size / 1024:.1f} TiB"
