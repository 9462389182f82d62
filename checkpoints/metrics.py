"""Metrics out of parsed JSON: a flat ``metrics.json`` and ``trainer_state.json``'s history; pure."""

import math
from collections.abc import Mapping
from typing import Any

TRAINER_STATE = "trainer_state.json"
METRICS_FILE = "metrics.json"


def numbers(values: Mapping[str, Any], label: str, notes: list[str] | None = None) -> dict[str, float]:
    """The finite-or-infinite numeric entries of a flat JSON object; NaN and booleans are not metrics."""
    out: dict[str, float] = {}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if math.isnan(value):
            if notes is not None:
                notes.append(f"{key} is NaN in {label}; ignored")
            continue
        out[key] = float(value)
    return out


def history_by_step(state: Any) -> dict[int, dict[str, float]]:
    """trainer_state.json's ``log_history`` merged per step (a step has a train and an eval entry).

    ``best_metric`` is not used: it is the best value so far, not this checkpoint's, and the
    file does not say which metric it measures.
    """
    history = state.get("log_history") if isinstance(state, dict) else None
    by_step: dict[int, dict[str, float]] = {}
    if not isinstance(history, list):
        return by_step
    for entry in history:
        if not isinstance(entry, dict):
            continue
        step = entry.get("step")
        if isinstance(step, int) and not isinstance(step, bool):
            values = numbers({k: v for k, v in entry.items() if k != "step"}, TRAINER_STATE)
            by_step.setdefault(step, {}).update(values)
    return by_step
