"""The lines ``--dry-run`` prints: what would be selected and why, what left, what skipped; pure."""

from collections.abc import Sequence

from stagegate.checkpoints.checkpoint import Checkpoint, RunScan, Selection
from stagegate.checkpoints.wording import when
from stagegate.sizes import format_bytes


def explain(selection: Selection, scan: RunScan | None = None) -> list[str]:
    """Lines for ``--dry-run``: what would be selected and why, left, skipped and why."""
    chosen, left = selection.selected, selection.unselected
    total = len(chosen) + len(left)
    lines = [f"would select {len(chosen)} of {total} checkpoint(s), {_total(chosen)}:"]
    lines += [f"  {c.name} ({_describe(c)}): {selection.reasons.get(c.name, 'selected')}" for c in chosen]
    if left:
        lines.append(f"would leave {len(left)} unselected, {_total(left)}:")
        lines += [f"  {c.name} ({_describe(c)})" for c in left]
    else:
        lines.append("would leave none unselected")
    lines += [f"note: {note}" for note in selection.notes]
    lines += [f"note: {c.name}: {note}" for c in (*chosen, *left) for note in c.notes]
    if scan is not None:
        lines += [f"note: {note}" for note in scan.notes]
        lines += [f"skipped {name}: {why}" for name, why in scan.skipped.items()]
    return lines


def _total(checkpoints: Sequence[Checkpoint]) -> str:
    return format_bytes(sum(c.size for c in checkpoints), binary=True)


def _describe(c: Checkpoint) -> str:
    step = f"step {c.step}" if c.step is not None else "no step"
    return f"{step}, {format_bytes(c.size, binary=True)}, modified {when(c.mtime)}"
