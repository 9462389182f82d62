"""Discovery: the checkpoints of a run directory, and the look-alike entries left out, and why.

The only I/O of the package (with :mod:`checkpoints.run_files`); it never follows a symbolic
link: a checkpoint that is a link is not a checkpoint (its bytes are elsewhere, maybe outside
the run directory), and links inside a checkpoint are neither followed nor counted.
"""

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from stagegate.checkpoints.checkpoint import Checkpoint, NameInfo, RunScan
from stagegate.checkpoints.metrics import METRICS_FILE, TRAINER_STATE, history_by_step, numbers
from stagegate.checkpoints.names import look_alike_reason, parse_name
from stagegate.checkpoints.run_files import inside, read_json, tree_size_mtime
from stagegate.checkpoints.wording import SHOWN
from stagegate.errors import InvalidInputError


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
    run_state = read_json(run_dir / TRAINER_STATE, "the run's trainer_state.json", notes)
    run_history = history_by_step(run_state)
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


def _unparsed_reason(name: str, is_dir: bool, state: object, notes: list[str]) -> str | None:
    """Why an entry whose name is no checkpoint's is left out; None if nothing suggests it is one.

    A directory holding a trainer_state.json is one by its content (the Trainer's ``best/``), so
    a broken or stepless one is reported even under a name that says nothing.
    """
    reasons = [why] if (why := look_alike_reason(name, is_dir=is_dir)) else []
    if notes:  # the trainer_state.json is there but could not be read
        reasons += notes
    elif state is not None:
        reasons.append(f"its {TRAINER_STATE} has no integer global_step")
    return "; ".join(reasons) or None


def _no_checkpoint_message(run_dir: Path, skipped: Mapping[str, str]) -> str:
    message = (
        f"no checkpoints in {run_dir}: expected entries such as checkpoint-500/ (Hugging Face), "
        "epoch=3-step=1000.ckpt (Lightning), step_1000/ or step-1000.pt"
    )
    if skipped:
        lines = [f"{name}: {why}" for name, why in list(skipped.items())[:SHOWN]]
        more = f"\n  ... and {len(skipped) - SHOWN} more" if len(skipped) > SHOWN else ""
        message += "; these look like checkpoints but were left out:\n  " + "\n  ".join(lines) + more
    return message


def _scan_entry(
    run_dir: Path, entry: os.DirEntry[str], run_history: Mapping[int, dict[str, float]]
) -> Checkpoint | str | None:
    """A checkpoint, a reason it looks like one but is not, or None for an unrelated entry."""
    name = entry.name
    if entry.is_symlink():
        if not any(parse_name(name, is_dir=d) or look_alike_reason(name, is_dir=d) for d in (False, True)):
            return None
        target = Path(entry.path).readlink()
        if inside(run_dir, entry.path):
            return f"a symbolic link to {target}, an alias of another entry; links are not followed"
        return f"a symbolic link to {target}, outside the run directory; links are not followed"
    st = entry.stat(follow_symlinks=False)
    is_dir = stat.S_ISDIR(st.st_mode)
    if not is_dir and not stat.S_ISREG(st.st_mode):
        return None  # sockets, FIFOs, devices
    path = run_dir / name
    info = parse_name(name, is_dir=is_dir)
    notes: list[str] = []
    state = read_json(path / TRAINER_STATE, f"{name}/{TRAINER_STATE}", notes) if is_dir else None
    if info is None:
        global_step = state.get("global_step") if isinstance(state, dict) else None
        if not (isinstance(global_step, int) and not isinstance(global_step, bool)):
            return _unparsed_reason(name, is_dir, state, notes)
        info = NameInfo("trainer_state", global_step)  # e.g. best/ or final/ saved by the Trainer
    elif info.step is not None and isinstance(state, dict):
        global_step = state.get("global_step")
        if isinstance(global_step, int) and global_step != info.step:
            notes.append(f"{TRAINER_STATE} has global_step {global_step}; using the name's step {info.step}")
    notes.extend(info.notes)

    size, mtime = tree_size_mtime(entry.path, st.st_mtime) if is_dir else (st.st_size, st.st_mtime)
    metrics: dict[str, float] = {}
    sources: dict[str, str] = {}

    def layer(values: Mapping[str, float], source: str) -> None:
        metrics.update(values)
        sources.update(dict.fromkeys(values, source))

    layer(info.metrics, "the directory name" if is_dir else "the file name")
    if state is not None:
        if info.step is not None:
            layer(history_by_step(state).get(info.step, {}), f"{name}/{TRAINER_STATE}")
    elif info.step is not None and info.step in run_history:
        layer(run_history[info.step], f"the run's {TRAINER_STATE}")
    if is_dir:
        found = read_json(path / METRICS_FILE, f"{name}/{METRICS_FILE}", notes)
        if found is not None:
            if isinstance(found, dict):
                layer(numbers(found, f"{name}/{METRICS_FILE}", notes), f"{name}/{METRICS_FILE}")
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
