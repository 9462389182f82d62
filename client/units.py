"""Human sizes and durations for output (sizes are parsed by :mod:`stagegate.sizes`)."""


def format_bytes(n: float) -> str:
    """Decimal units, as throughput is quoted: ``1.2 GB``."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        text = f"{n:.0f}" if unit == "B" else f"{n:.1f}"
        # Decide the unit after rounding, so 999,950 B shows as 1.0 MB, not 1000.0 kB.
        if abs(float(text)) < 1000 or unit == "TB":
            return f"{text} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def format_duration(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
