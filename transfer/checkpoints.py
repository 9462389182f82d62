"""Find the checkpoints in a training run directory, and choose which ones to keep.

A run directory holds checkpoints as entries, files or directories, named after one of the
common conventions:

- Hugging Face Trainer: ``checkpoint-500/`` holding ``trainer_state.json`` (``global_step`` and a
  ``log_history`` whose entries carry metrics such as ``eval_loss`` at a ``step``);
- PyTorch Lightning: ``epoch=3-step=1000-val_loss=0.23.ckpt`` (also ``last.ckpt``, ``-v1`` copies,
  a free prefix such as ``mnist-epoch=3...``, and ``.ckpt`` directories of sharded strategies);
- plain names: ``step_1000/``, ``step-1000.pt``, ``ckpt-1000``, ``model_1000.safetensors``,
  ``global_step1000/`` (DeepSpeed).

Anything else (logs, TensorBoard event files, ``config.json``, a run-level ``metrics.json``) is
not a checkpoint. Entries that *look* like one (a weights suffix, "ckpt", "checkpoint" or "step"
in the name) but cannot be parsed are reported, so a dry run can say why they were left out.

Discovery (:func:`scan_run`, :func:`discover`) is the only I/O here and never follows a
symbolic link: a checkpoint that is a link is not a checkpoint (its bytes are elsewhere, maybe
outside the run directory), and links inside a checkpoint are neither followed nor counted.
Selection (:func:`select`) and its explanation (:func:`explain`) are pure.
"""

import difflib
import json
import math
import os
import re
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from stagegate.errors import InvalidInputError

Mode = Literal["min", "max"]

TRAINER_STATE = "trainer_state.json"
METRICS_FILE = "metrics.json"
# Suffixes of weights files; a file with one of these but no step in its name is reported, not taken.
WEIGHT_SUFFIXES = frozenset({".pt", ".pth", ".ckpt", ".safetensors", ".bin", ".h5", ".pkl", ".msgpack"})
MAX_JSON_BYTES = 64 << 20  # a trainer_state.json of a very long run is tens of MB; anything larger is not one
_SHOWN = 20  # names listed in one message before "... and N more"

_HF_NAME = re.compile(r"checkpoint-(\d+)")
_PLAIN_NAME = re.compile(
    r"(?:step|steps|ckpt|checkpoint|model|iter|iteration|global_step|global-step)[-_]?(\d+)(\.\w+)?",
    re.IGNORECASE,
)
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?|[-+]?(?:nan|inf)"
# Lightning joins "key=value" pairs with "-", and a metric name may itself hold "-" or "_". The
# first pair's key is taken as the text after the last "-" before its "=" (so a free prefix such
# as "mnist-" is dropped); later keys run from the "-" ending the previous value to their "=".
_FIRST_PAIR = re.compile(rf"(?:[^=]*-)?(?P<key>[^=\-]+)=(?P<value>{_NUMBER})(?=-|\Z)", re.IGNORECASE)
_NEXT_PAIR = re.compile(rf"-(?P<key>[^=]+)=(?P<value>{_NUMBER})(?=-|\Z)", re.IGNORECASE)
_LIGHTNING_VERSION = re.compile(r"-v\d+\Z")  # ModelCheckpoint's suffix for a name saved twice


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


# --- names (pure) -------------------------------------------------------------------------------


def parse_name(name: str, *, is_dir: bool) -> NameInfo | None:
    """What ``name`` says of a checkpoint, or None if it follows none of the conventions."""
    if is_dir and (m := _HF_NAME.fullmatch(name)):
        return NameInfo("huggingface", int(m.group(1)))
    if m := _PLAIN_NAME.fullmatch(name):
        suffix = (m.group(2) or "").lower()
        if not suffix or suffix in WEIGHT_SUFFIXES:  # not ckpt-1000.index: TensorFlow's files are not entries
            return NameInfo("plain", int(m.group(1)))
    if name.lower().endswith(".ckpt"):
        return _parse_lightning(name[: -len(".ckpt")])
    return None


def _parse_lightning(stem: str) -> NameInfo | None:
    stem = _LIGHTNING_VERSION.sub("", stem)
    if "=" not in stem:
        return NameInfo("lightning", None)  # last.ckpt, best.ckpt: a checkpoint without a step
    m = _FIRST_PAIR.match(stem)
    if m is None:
        return None
    pairs = [(m["key"], m["value"])]
    pos = m.end()
    while pos < len(stem):
        m = _NEXT_PAIR.match(stem, pos)
        if m is None:
            return None
        pairs.append((m["key"], m["value"]))
        pos = m.end()
    step: int | None = None
    metrics: dict[str, float] = {}
    notes: list[str] = []
    for key, text in pairs:
        value = float(text)
        if key == "step" and value.is_integer() and value >= 0:
            step = int(value)
        elif math.isnan(value):
            notes.append(f"{key} is NaN in the name; ignored")
        else:
            metrics[key] = value
    return NameInfo("lightning", step, metrics, tuple(notes))


def _look_alike_reason(name: str, *, is_dir: bool) -> str | None:
    """Why an unparsed entry is not a checkpoint, if it looks like one; None if it does not."""
    lower = name.lower()
    if lower.startswith("tmp-checkpoint-"):
        return "an unfinished save (the Trainer renames tmp-checkpoint-N when it is complete)"
    if lower.endswith(".ckpt"):
        return "a .ckpt name with key=value parts that could not be parsed"
    suffix = Path(lower).suffix
    if suffix in WEIGHT_SUFFIXES and not is_dir:
        return f"a {suffix} file without a step in its name (final weights, or an unknown convention)"
    if any(word in lower for word in ("ckpt", "checkpoint", "step")):
        return "the name mentions checkpoints but follows no known convention"
    return None


# --- discovery (I/O) ----------------------------------------------------------------------------


def discover(run_dir: Path) -> list[Checkpoint]:
    """The checkpoints in ``run_dir``, ordered by step (those without one last, by time)."""
    return scan_run(run_dir).checkpoints


def scan_run(run_dir: Path) -> RunScan:
    """Like :func:`discover`, also returning the look-alike entries that were left out, and why.

    Raises :class:`InvalidInputError` if ``run_dir`` is missing, not a directory, unreadable, or
    holds no checkpoint.
    """
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise InvalidInputError(f"run directory {run_dir} does not exist")
    if not run_dir.is_dir():
        raise InvalidInputError(f"run directory {run_dir} is not a directory")
    try:
        with os.scandir(run_dir) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        raise InvalidInputError(f"cannot list run directory {run_dir}: {exc.strerror or exc}") from None

    notes: list[str] = []
    run_state = _read_json(run_dir / TRAINER_STATE, "the run's trainer_state.json", notes)
    run_history = _history_by_step(run_state)
    checkpoints: list[Checkpoint] = []
    skipped: dict[str, str] = {}
    for entry in entries:
        if entry.name.startswith("."):
            continue  # .stagegate, .ipynb_checkpoints, editor droppings: never checkpoints
        try:
            found = _scan_entry(run_dir, entry, run_history)
        except FileNotFoundError:
            found = "it disappeared while the run directory was read (deleted by the trainer?)"
        except OSError as exc:
            raise InvalidInputError(f"cannot read {entry.path}: {exc.strerror or exc}") from None
        if isinstance(found, Checkpoint):
            checkpoints.append(found)
        elif found is not None:
            skipped[entry.name] = found
    if not checkpoints:
        raise InvalidInputError(_no_checkpoint_message(run_dir, skipped))
    checkpoints.sort(key=_discovery_order)
    return RunScan(run_dir, checkpoints, skipped, notes)


def _discovery_order(c: Checkpoint) -> tuple[bool, int, float, str]:
    return (c.step is None, c.step if c.step is not None else 0, c.mtime, c.name)


def _no_checkpoint_message(run_dir: Path, skipped: Mapping[str, str]) -> str:
    message = (
        f"no checkpoints in {run_dir}: expected entries such as checkpoint-500/ (Hugging Face), "
        "epoch=3-step=1000.ckpt (Lightning), step_1000/ or step-1000.pt"
    )
    if skipped:
        lines = [f"{name}: {why}" for name, why in list(skipped.items())[:_SHOWN]]
        more = f"\n  ... and {len(skipped) - _SHOWN} more" if len(skipped) > _SHOWN else ""
        message += "; these look like checkpoints but were left out:\n  " + "\n  ".join(lines) + more
    return message


def _scan_entry(
    run_dir: Path, entry: os.DirEntry[str], run_history: Mapping[int, dict[str, float]]
) -> Checkpoint | str | None:
    """A checkpoint, a reason it looks like one but is not, or None for an unrelated entry."""
    name = entry.name
    if entry.is_symlink():
        if not any(parse_name(name, is_dir=d) or _look_alike_reason(name, is_dir=d) for d in (False, True)):
            return None
        target = Path(entry.path).readlink()
        if _inside(run_dir, entry.path):
            return f"a symbolic link to {target}, an alias of another entry; links are not followed"
        return f"a symbolic link to {target}, outside the run directory; links are not followed"
    st = entry.stat(follow_symlinks=False)
    is_dir = stat.S_ISDIR(st.st_mode)
    if not is_dir and not stat.S_ISREG(st.st_mode):
        return None  # sockets, FIFOs, devices
    path = run_dir / name
    info = parse_name(name, is_dir=is_dir)
    notes: list[str] = []
    state = _read_json(path / TRAINER_STATE, f"{name}/{TRAINER_STATE}", notes) if is_dir else None
    if info is None:
        global_step = state.get("global_step") if isinstance(state, dict) else None
        if not (isinstance(global_step, int) and not isinstance(global_step, bool)):
            return _look_alike_reason(name, is_dir=is_dir)
        info = NameInfo("trainer_state", global_step)  # e.g. best/ or final/ saved by the Trainer
    elif info.step is not None and isinstance(state, dict):
        global_step = state.get("global_step")
        if isinstance(global_step, int) and global_step != info.step:
            notes.append(f"{TRAINER_STATE} has global_step {global_step}; using the name's step {info.step}")
    notes.extend(info.notes)

    size, mtime = _tree_size_mtime(entry.path, st.st_mtime) if is_dir else (st.st_size, st.st_mtime)
    metrics: dict[str, float] = {}
    sources: dict[str, str] = {}

    def layer(values: Mapping[str, float], source: str) -> None:
        metrics.update(values)
        sources.update(dict.fromkeys(values, source))

    layer(info.metrics, "the directory name" if is_dir else "the file name")
    if state is not None:
        if info.step is not None:
            layer(_history_by_step(state).get(info.step, {}), f"{name}/{TRAINER_STATE}")
    elif info.step is not None and info.step in run_history:
        layer(run_history[info.step], f"the run's {TRAINER_STATE}")
    if is_dir:
        found = _read_json(path / METRICS_FILE, f"{name}/{METRICS_FILE}", notes)
        if found is not None:
            if isinstance(found, dict):
                layer(_numbers(found, f"{name}/{METRICS_FILE}", notes), f"{name}/{METRICS_FILE}")
            else:
                notes.append(f"{name}/{METRICS_FILE} is not a JSON object; ignored")
    return Checkpoint(
        name=name,
        path=path,
        is_dir=is_dir,
        step=info.step,
        mtime=mtime,
        size=size,
        metrics=metrics,
        sources=sources,
        convention=info.convention,
        notes=tuple(notes),
    )


def _inside(run_dir: Path, path: str) -> bool:
    root = os.path.realpath(run_dir)
    return os.path.commonpath([root, os.path.realpath(path)]) == root


def _tree_size_mtime(root: str, root_mtime: float) -> tuple[int, float]:
    """Bytes of the regular files below ``root`` and its newest mtime; symlinks are skipped.

    The newest mtime, not the directory's own: files rewritten in place do not touch it.
    """
    size, mtime = 0, root_mtime
    pending = [root]
    while pending:
        with os.scandir(pending.pop()) as it:
            for entry in it:
                if entry.is_symlink():
                    continue  # its bytes live elsewhere, perhaps outside the run directory
                st = entry.stat(follow_symlinks=False)
                mtime = max(mtime, st.st_mtime)
                if stat.S_ISDIR(st.st_mode):
                    pending.append(entry.path)
                elif stat.S_ISREG(st.st_mode):
                    size += st.st_size
    return size, mtime


def _read_json(path: Path, label: str, notes: list[str]) -> Any:
    """The parsed JSON at ``path``, or None (with a note) if absent, a link, not a file or invalid."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # NONBLOCK: a FIFO must not hang us
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as exc:
        why = exc.strerror or exc
        notes.append(f"{label} could not be opened ({why}; symlinks are not followed); ignored")
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            notes.append(f"{label} is not a regular file; ignored")
            return None
        if st.st_size > MAX_JSON_BYTES:
            notes.append(f"{label} is larger than {MAX_JSON_BYTES >> 20} MiB; ignored")
            return None
        data = f.read()
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        notes.append(f"{label} is not valid JSON ({exc}); ignored")
        return None


def _numbers(values: Mapping[str, Any], label: str, notes: list[str] | None = None) -> dict[str, float]:
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


def _history_by_step(state: Any) -> dict[int, dict[str, float]]:
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
            values = _numbers({k: v for k, v in entry.items() if k != "step"}, TRAINER_STATE)
            by_step.setdefault(step, {}).update(values)
    return by_step


# --- selection (pure) ---------------------------------------------------------------------------


def select(
    checkpoints: Sequence[Checkpoint],
    *,
    latest: int | None = None,
    best: str | None = None,
    mode: Mode = "min",
    names: Sequence[str] = (),
) -> Selection:
    """Choose checkpoints; several criteria select the union of what each selects.

    ``latest``: the N newest, by step when every checkpoint has one, else by modification time
    for all (the reason says which). ``best``: the one checkpoint with the lowest (``mode="min"``)
    or highest value of that metric; those without it are passed over (and noted), a tie is an
    error. ``names``: exactly these entries.
    """
    items = list(checkpoints)
    if isinstance(names, str):
        names = (names,)  # one name, not its characters
    if latest is None and best is None and not names:
        raise InvalidInputError("no checkpoints chosen: pass --latest N, --best METRIC or --name NAME")
    if mode not in ("min", "max"):
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
        raise InvalidInputError(f"no checkpoint named {', '.join(hints)}; available: {_listing(available)}")
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
        why = f"; not every checkpoint has a step: {_listing(stepless, 3)} {has} none"
        notes.append(
            f"--latest ordered all checkpoints by modification time: {_listing(stepless)} {has} no step"
        )
    return [
        (c, f"latest {i} of {total} by modification time ({_when(c.mtime)}{why})")
        for i, c in enumerate(order[:count], 1)
    ]


def _best(items: Sequence[Checkpoint], metric: str, mode: Mode, notes: list[str]) -> tuple[Checkpoint, str]:
    having = [c for c in items if metric in c.metrics and not math.isnan(c.metrics[metric])]
    if not having:
        raise InvalidInputError(_no_metric_message(items, metric))
    having_names = {c.name for c in having}
    missing = [c.name for c in items if c.name not in having_names]
    if missing:
        notes.append(f"--best {metric} passed over {len(missing)} of {len(items)} checkpoint(s) "
                     f"without that metric: {_listing(missing)}")
    values = [c.metrics[metric] for c in having]
    value = min(values) if mode == "min" else max(values)
    winners = [c for c in having if c.metrics[metric] == value]
    if len(winners) > 1:
        raise InvalidInputError(
            f"{len(winners)} checkpoints tie for the best {metric} ({mode}) at {_number(value)}: "
            f"{_listing([c.name for c in winners])}; choose one with --name instead of --best"
        )
    winner = winners[0]
    source = winner.sources.get(metric, "its metrics")
    return winner, f"best {metric}={_number(value)} ({mode}) from {source}"


def _no_metric_message(items: Sequence[Checkpoint], metric: str) -> str:
    counts: dict[str, int] = {}
    for c in items:
        for key, value in c.metrics.items():
            if not math.isnan(value):
                counts[key] = counts.get(key, 0) + 1
    if not counts:
        return (f"no checkpoint has a metric {metric!r}, nor any other: none was found in the names, "
                f"in {METRICS_FILE} inside checkpoints or in {TRAINER_STATE}; use --latest or --name")
    ranked = sorted(counts, key=lambda k: (-counts[k], k))
    close = difflib.get_close_matches(metric, ranked, 1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    available = ", ".join(f"{k} ({counts[k]} of {len(items)})" for k in ranked[:_SHOWN])
    more = f", ... and {len(ranked) - _SHOWN} more" if len(ranked) > _SHOWN else ""
    return f"no checkpoint has a metric {metric!r}{hint}; available metrics: {available}{more}"


# --- explanation (pure) -------------------------------------------------------------------------


def explain(selection: Selection, scan: RunScan | None = None) -> list[str]:
    """Lines for ``--dry-run``: what would be selected and why, what would be left, what was ignored."""
    chosen, left = selection.selected, selection.unselected
    total = len(chosen) + len(left)
    lines = [f"would select {len(chosen)} of {total} checkpoint(s), {_size(sum(c.size for c in chosen))}:"]
    lines += [f"  {c.name} ({_describe(c)}): {selection.reasons.get(c.name, 'selected')}" for c in chosen]
    if left:
        lines.append(f"would leave {len(left)} unselected, {_size(sum(c.size for c in left))}:")
        lines += [f"  {c.name} ({_describe(c)})" for c in left]
    else:
        lines.append("would leave none unselected")
    lines += [f"note: {note}" for note in selection.notes]
    lines += [f"note: {c.name}: {note}" for c in (*chosen, *left) for note in c.notes]
    if scan is not None:
        lines += [f"note: {note}" for note in scan.notes]
        if scan.skipped:
            lines.append(f"not taken as checkpoints ({len(scan.skipped)}):")
            lines += [f"  {name}: {why}" for name, why in scan.skipped.items()]
    return lines


def _describe(c: Checkpoint) -> str:
    step = f"step {c.step}" if c.step is not None else "no step"
    return f"{step}, {_size(c.size)}, modified {_when(c.mtime)}"


def _listing(names: Sequence[str], shown: int = _SHOWN) -> str:
    more = f", ... and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _number(value: float) -> str:
    return f"{value:.10g}"


def _when(mtime: float) -> str:
    return datetime.fromtimestamp(mtime, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    size = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024
        if size < 1024:
            return f"{size:.1f} {unit}"
    return f"{size / 1024:.1f} TiB"
