"""What a checkpoint is, what a run directory holds, and what a selection chose: plain values."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Mode = Literal["min", "max"]


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """One checkpoint entry of a run directory.

    ``metrics`` come from (later ones win, the more precise over the rounded): the entry's name,
    ``trainer_state.json`` (the ``log_history`` entries at this step; the checkpoint's own, else
    the run directory's), and a ``metrics.json`` inside a checkpoint directory. ``sources`` says,
    per metric, where its value came from, in words ("the file name", "checkpoint-5/metrics.json").
    """

    name: str  # the entry's name in the run directory
    path: Path
    is_dir: bool
    step: int | None
    mtime: float  # for a directory, the newest modification in its tree
    size: int  # bytes of regular files; a directory's whole tree; symlinks not followed nor counted
    metrics: dict[str, float] = field(default_factory=dict, hash=False)
    sources: dict[str, str] = field(default_factory=dict, hash=False)
    convention: str = "plain"  # "huggingface", "lightning", "plain" or "trainer_state"
    notes: tuple[str, ...] = ()  # what discovery could not use (an unreadable metrics.json...)


@dataclass(frozen=True, slots=True)
class NameInfo:
    """What an entry's name alone says."""

    convention: str
    step: int | None
    metrics: dict[str, float] = field(default_factory=dict, hash=False)
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RunScan:
    """A run directory's checkpoints, and the entries that look like checkpoints but are not."""

    run_dir: Path
    checkpoints: list[Checkpoint]
    skipped: dict[str, str]  # entry name -> why it is not taken as a checkpoint
    notes: list[str]  # about the run as a whole (an unreadable run-level trainer_state.json)


@dataclass(frozen=True, slots=True)
class Selection:
    """The outcome of :func:`select`; both lists keep the order the checkpoints were given in."""

    selected: list[Checkpoint]
    unselected: list[Checkpoint]
    reasons: dict[str, str]  # selected checkpoint name -> why ("latest 1 of 5 by step (step 1000)")
    notes: list[str] = field(default_factory=list)  # e.g. checkpoints --best had to pass over
