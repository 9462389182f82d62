"""Selection: which checkpoints ``--latest``, ``--best`` and ``--name`` choose, and why; pure."""

import difflib
import math
from collections.abc import Iterable, Sequence

from stagegate.checkpoints.checkpoint import Checkpoint, Mode, Selection
from stagegate.checkpoints.metric_direction import best_mode
from stagegate.checkpoints.metrics import METRICS_FILE, TRAINER_STATE
from stagegate.checkpoints.wording import SHOWN, listing, number, when
from stagegate.errors import InvalidInputError


def select(
    checkpoints: Sequence[Checkpoint],
    *,
    latest: int | None = None,
    best: str | None = None,
    mode: Mode | None = None,
    names: Sequence[str] = (),
) -> Selection:
    """Choose checkpoints; several criteria select the union of what each selects.

    ``latest``: the N newest, by step when every checkpoint has one, else by modification time
    for all (the reason says which). ``best``: the one checkpoint with the lowest (``mode="min"``)
    or highest value of that metric; those without it are passed over (and noted), a tie is an
    error. Without ``mode`` the metric's name must say which is better (``loss``, ``accuracy``:
    :func:`best_mode`). ``names``: exactly these entries.
    """
    items = list(checkpoints)
    if isinstance(names, str):
        names = (names,)  # one name, not its characters
    if latest is None and best is None and not names:
        raise InvalidInputError("no checkpoints chosen: pass --latest N, --best METRIC or --name NAME")
    if best is None and mode is not None:
        raise InvalidInputError("--mode goes with --best METRIC")
    if mode not in (None, "min", "max"):
        raise InvalidInputError(f"--mode must be min or max, not {mode!r}")
    if latest is not None and (isinstance(latest, bool) or latest < 1):
        raise InvalidInputError(f"--latest must be at least 1, not {latest!r}")
    if not items:
        raise InvalidInputError("there are no checkpoints to choose from")

    reasons: dict[str, list[str]] = {}
    notes: list[str] = []
    for name in _known_names(items, names):
        reasons.setdefault(name, []).append("named")
    if latest is not None:
        for checkpoint, why in _latest(items, latest, notes):
            reasons.setdefault(checkpoint.name, []).append(why)
    if best is not None:
        checkpoint, why = _best(items, best, mode, notes)
        reasons.setdefault(checkpoint.name, []).append(why)
    return Selection(
        selected=[c for c in items if c.name in reasons],
        unselected=[c for c in items if c.name not in reasons],
        reasons={c.name: "; ".join(reasons[c.name]) for c in items if c.name in reasons},
        notes=notes,
    )


def _known_names(items: Sequence[Checkpoint], names: Iterable[str]) -> list[str]:
    available = [c.name for c in items]
    wanted = list(dict.fromkeys(names))
    known = set(available)
    unknown = [n for n in wanted if n not in known]
    if unknown:
        hints = [_with_hint(n, available) for n in unknown]
        raise InvalidInputError(f"no checkpoint named {', '.join(hints)}; available: {listing(available)}")
    return wanted


def _with_hint(name: str, available: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, available, 1)
    return f"{name!r} (did you mean {close[0]!r}?)" if close else repr(name)


def _latest(items: Sequence[Checkpoint], count: int, notes: list[str]) -> list[tuple[Checkpoint, str]]:
    total = len(items)
    stepless = [c.name for c in items if c.step is None]
    if not stepless:
        order = sorted(items, key=lambda c: (c.step, c.mtime, c.name), reverse=True)
        return [(c, f"latest {i} of {total} by step (step {c.step})") for i, c in enumerate(order[:count], 1)]
    order = sorted(items, key=lambda c: (c.mtime, c.name), reverse=True)
    why = ""
    if len(stepless) < total:
        has = "has" if len(stepless) == 1 else "have"
        why = f"; not every checkpoint has a step: {listing(stepless, 3)} {has} none"
        notes.append(
            f"--latest ordered all checkpoints by modification time: {listing(stepless)} {has} no step"
        )
    return [
        (c, f"latest {i} of {total} by modification time ({when(c.mtime)}{why})")
        for i, c in enumerate(order[:count], 1)
    ]


def _best(
    items: Sequence[Checkpoint], metric: str, asked: Mode | None, notes: list[str]
) -> tuple[Checkpoint, str]:
    having = [c for c in items if metric in c.metrics and not math.isnan(c.metrics[metric])]
    if not having:
        raise InvalidInputError(_no_metric_message(items, metric))
    mode = best_mode(metric, asked)  # after the look-up: a misspelt metric is the error to show
    having_names = {c.name for c in having}
    missing = [c.name for c in items if c.name not in having_names]
    if missing:
        notes.append(
            f"--best {metric} passed over {len(missing)} of {len(items)} checkpoint(s) "
            f"without that metric: {listing(missing)}"
        )
    values = [c.metrics[metric] for c in having]
    value = min(values) if mode == "min" else max(values)
    winners = [c for c in having if c.metrics[metric] == value]
    if len(winners) > 1:
        raise InvalidInputError(
            f"{len(winners)} checkpoints tie for the best {metric} ({mode}) at {number(value)}: "
            f"{listing([c.name for c in winners])}; choose one with --name instead of --best"
        )
    winner = winners[0]
    source = winner.sources.get(metric, "its metrics")
    return winner, f"best {metric}={number(value)} ({mode}) from {source}"


def _no_metric_message(items: Sequence[Checkpoint], metric: str) -> str:
    counts: dict[str, int] = {}
    for c in items:
        for key, value in c.metrics.items():
            if not math.isnan(value):
                counts[key] = counts.get(key, 0) + 1
    if not counts:
        return (
            f"no checkpoint has a metric {metric!r}, nor any other: none was found in the names, "
            f"in {METRICS_FILE} inside checkpoints or in {TRAINER_STATE}; use --latest or --name"
        )
    ranked = sorted(counts, key=lambda k: (-counts[k], k))
    close = difflib.get_close_matches(metric, ranked, 1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    available = ", ".join(f"{k} ({counts[k]} of {len(items)})" for k in ranked[:SHOWN])
    more = f", ... and {len(ranked) - SHOWN} more" if len(ranked) > SHOWN else ""
    return f"no checkpoint has a metric {metric!r}{hint}; available metrics: {available}{more}"
