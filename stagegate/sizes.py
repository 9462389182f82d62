"""Byte sizes as people write and read them: one parser for every place a size comes in (the
command line and the environment alike: ``600KB``, ``64MiB``, ``1.5G``), and one formatter for
every place one goes out (the client's summaries, checkpoint listings, the ledger's messages)."""

import re
from decimal import Decimal

_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "ki": 2**10,
    "kib": 2**10,
    "mi": 2**20,
    "mib": 2**20,
    "gi": 2**30,
    "gib": 2**30,
    "ti": 2**40,
    "tib": 2**40,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str) -> int:
    """``"64MiB"`` -> 67108864, ``"1.5G"`` -> 1500000000, ``"4096"`` -> 4096."""
    match = _SIZE.match(text)
    if not match or match.group(2).lower() not in _UNITS:
        raise ValueError(f"not a size: {text!r} (try 4096, 64MiB, 1.5GB)")
    return int(Decimal(match.group(1)) * _UNITS[match.group(2).lower()])  # exact, unlike float


_DECIMAL = (1000, ("B", "kB", "MB", "GB", "TB"))
_BINARY = (1024, ("B", "KiB", "MiB", "GiB", "TiB"))


def format_bytes(n: float, *, binary: bool = False) -> str:
    """``1.2 GB``: decimal units, as throughput is quoted; with ``binary``, ``2.9 MiB``, as
    file sizes and disk capacities are read. Whole bytes below the first unit, one decimal
    above it, the largest unit in which the number stays below 1000 (1024)."""
    step, units = _BINARY if binary else _DECIMAL
    for unit in units:
        text = f"{n:.0f}" if unit == "B" else f"{n:.1f}"
        # Decide the unit after rounding, so 999,950 B shows as 1.0 MB, not 1000.0 kB.
        if abs(float(text)) < step or unit == units[-1]:
            return f"{text} {unit}"
        n /= step
    raise AssertionError("unreachable")
