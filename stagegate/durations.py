"""Durations as people write them (``90s``, ``30m``, ``4h``, ``2d``, ``1h30m``, ``3600``): one
parser for the command line (``--pin-ttl``) and the environment (``STAGEGATE_PIN_TTL``)."""

import math
import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_PLAIN = re.compile(r"^\d+(?:\.\d+)?$")
HINT = "try 3600, 90s, 30m, 4h, 2d or 1h30m"


def parse_duration(text: str) -> float:
    """Seconds: ``"4h"`` -> 14400.0, ``"1h30m"`` -> 5400.0, ``"90"`` -> 90.0. Refuses a sign, an
    unknown unit, an empty text and anything not finite."""
    compact = text.strip().lower().replace(" ", "")
    if _PLAIN.match(compact):
        seconds = float(compact)
    else:
        parts = _PART.findall(compact)
        if not compact or "".join(n + u for n, u in parts) != compact:
            raise ValueError(f"not a duration: {text!r} ({HINT})")
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if not math.isfinite(seconds):
        raise ValueError(f"not a duration: {text!r} ({HINT})")
    return seconds


def format_duration_short(seconds: float) -> str:
    """``14400`` -> ``4h``, ``5400`` -> ``1h30m``, ``45`` -> ``45s``: the largest whole units, two at most."""
    left = max(0, round(seconds))
    pieces: list[str] = []
    for unit in ("d", "h", "m", "s"):
        size = _UNITS[unit]
        if left >= size or (unit == "s" and not pieces):
            pieces.append(f"{left // size}{unit}")
            left %= size
        if len(pieces) == 2 or left == 0:
            break
    return "".join(pieces)
