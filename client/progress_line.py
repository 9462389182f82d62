"""The text of one progress line, laid out for a terminal's width. Pure: the bar's state and
the width come in, a string goes out.

A narrow terminal loses whole fields, least useful first (the note, the file count, the ETA,
the rate, the byte counts), and the bar shrinks; a field is never cut mid-word, and the line
always fits in ``width - 1`` columns (the last column would wrap on some terminals).
"""

from dataclasses import dataclass

MIN_BAR = 10  # narrower than this, a bar says less than the percentage beside it
GAP = "  "


@dataclass(frozen=True, slots=True)
class Fields:
    """What a progress line may show, already formatted; ``None`` leaves a field out."""

    percent: str
    sizes: str | None = None
    rate: str | None = None
    eta: str | None = None
    files: str | None = None
    note: str | None = None


# Shown in this order; when the width is short, dropped in _DROP_ORDER (the note first).
_ORDER = ("percent", "sizes", "rate", "eta", "files", "note")
_DROP_ORDER = ("note", "files", "eta", "rate", "sizes")


def layout(fields: Fields, fraction: float, width: int) -> str:
    """``[#####.....]  66.1%  41.3 GB / 62.5 GB  1.1 GB/s  ETA 0:19  files 845/1281`` in at most
    ``width - 1`` columns; ``fraction`` (0..1) fills the bar."""
    room = max(1, width - 1)
    shown = {name: getattr(fields, name) for name in _ORDER if getattr(fields, name)}
    drops = [name for name in _DROP_ORDER if name in shown]
    while True:
        text = GAP.join(shown[name] for name in _ORDER if name in shown)
        bar_width = room - len(text) - len(GAP) - 2  # the brackets
        if bar_width >= MIN_BAR or not drops:
            break
        del shown[drops.pop(0)]
    if bar_width >= 3:
        filled = min(bar_width, max(0, int(bar_width * fraction)))
        return f"[{'#' * filled}{'.' * (bar_width - filled)}]{GAP}{text}"
    return text if len(text) <= room else fields.percent[:room]
