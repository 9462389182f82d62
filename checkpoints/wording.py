"""How names, numbers and times read in the package's messages (sizes: ``stagegate.sizes``); pure."""

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
