"""Tests for the checkpoints package: real run directories in each convention, and what gets selected."""

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stagegate.checkpoints import (
    Checkpoint,
    Mode,
    Selection,
    discover,
    explain,
    parse_name,
    scan_run,
    select,
)
from stagegate.errors import InvalidInputError

T0 = 1_700_000_000.0  # a fixed epoch so mtime orderings do not depend on the clock


def write(path: Path, data: bytes | str = b"x", mtime: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def write_json(path: Path, obj: Any, mtime: float | None = None) -> Path:
    return write(path, json.dumps(obj), mtime)


def age_tree(root: Path, mtime: float) -> None:
    """Give every file and directory under ``root`` (and root) the same mtime."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*filenames, *dirnames]:
            os.utime(Path(dirpath) / name, (mtime, mtime), follow_symlinks=False)
    os.utime(root, (mtime, mtime))


def trainer_state(step: int, evals: dict[int, float], best: float | None = None) -> dict[str, Any]:
    """A trainer_state.json as the HF Trainer writes it at ``step``: train and eval logs up to it."""
    history: list[dict[str, Any]] = []
    for s, loss in sorted(evals.items()):
        if s > step:
            break
        history.append({"epoch": s / 500, "grad_norm": 1.5, "learning_rate": 5e-05, "loss": 2.0, "step": s})
        history.append({"epoch": s / 500, "eval_loss": loss, "eval_accuracy": 1 - loss, "step": s})
    return {"best_metric": best, "best_model_checkpoint": None, "global_step": step, "log_history": history}


def by_name(checkpoints: list[Checkpoint]) -> dict[str, Checkpoint]:
    return {c.name: c for c in checkpoints}


def selected_names(selection: Selection) -> list[str]:
    return [c.name for c in selection.selected]


def error(run: Any, **kwargs: Any) -> str:
    with pytest.raises(InvalidInputError) as info:
        select(run, **kwargs)
    return str(info.value)


EVALS = {500: 0.42, 1000: 0.19, 1500: 0.27}


@pytest.fixture
def hf_run(tmp_path: Path) -> Path:
    """A Hugging Face Trainer output directory, with the junk that lives next to checkpoints."""
    run = tmp_path / "hf"
    for i, step in enumerate(EVALS):
        ckpt = run / f"checkpoint-{step}"
        write(ckpt / "model.safetensors", b"w" * (100 + step))
        write(ckpt / "optimizer.pt", b"o" * 10)
        write_json(ckpt / "trainer_state.json", trainer_state(step, EVALS, best=min(EVALS.values())))
        age_tree(ckpt, T0 + i * 60)
    write_json(run / "trainer_state.json", trainer_state(1500, EVALS))
    write_json(run / "config.json", {"model_type": "bert"})
    write_json(run / "all_results.json", {"eval_loss": 0.27})
    write(run / "runs" / "May01_12-00-00" / "events.out.tfevents.1714564800.host.1.0", b"tb")
    write(run / "train.log", "step 1500 done\n")
    write(run / "tmp-checkpoint-2000" / "model.safetensors", b"half")  # a save in progress
    write(run / ".ipynb_checkpoints" / "x.ipynb", "{}")
    return run


@pytest.fixture
def lightning_run(tmp_path: Path) -> Path:
    run = tmp_path / "lightning" / "checkpoints"
    names = [
        "epoch=0-step=100-val_loss=0.50.ckpt",
        "epoch=1-step=200-val_loss=0.31-val_acc=0.88.ckpt",
        "epoch=2-step=300-val_loss=0.35-val_acc=0.91.ckpt",
        "last.ckpt",  # written after every epoch: the newest
    ]
    for i, name in enumerate(names):
        write(run / name, b"c" * (i + 1), mtime=T0 + i * 60)
    write(run.parent / "lightning_logs" / "version_0" / "hparams.yaml", "lr: 0.1\n")
    write(run / "hparams.yaml", "lr: 0.1\n")
    return run


# --- Hugging Face -------------------------------------------------------------------------------


def test_hf_checkpoints_are_found_with_steps_metrics_and_sizes(hf_run: Path) -> None:
    found = by_name(discover(hf_run))
    assert list(found) == ["checkpoint-500", "checkpoint-1000", "checkpoint-1500"]
    c = found["checkpoint-1000"]
    assert (c.step, c.is_dir, c.convention, c.path) == (1000, True, "huggingface", hf_run / "checkpoint-1000")
    assert c.size == (100 + 1000) + 10 + (hf_run / "checkpoint-1000" / "trainer_state.json").stat().st_size
    assert c.mtime == T0 + 60
    # The eval and the train entries at step 1000 are merged; entries of other steps are not used.
    assert c.metrics["eval_loss"] == 0.19
    assert c.metrics["loss"] == 2.0
    assert c.sources["eval_loss"] == "checkpoint-1000/trainer_state.json"
    # best_metric is the best so far, not this checkpoint's value: it is not a metric.
    assert "best_metric" not in c.metrics


def test_hf_junk_is_ignored_and_only_look_alikes_are_reported(hf_run: Path) -> None:
    scan = scan_run(hf_run)
    assert [c.name for c in scan.checkpoints] == ["checkpoint-500", "checkpoint-1000", "checkpoint-1500"]
    assert list(scan.skipped) == ["tmp-checkpoint-2000"]
    assert "unfinished" in scan.skipped["tmp-checkpoint-2000"]


def test_hf_latest_by_step(hf_run: Path) -> None:
    selection = select(discover(hf_run), latest=1)
    assert selected_names(selection) == ["checkpoint-1500"]
    assert selection.reasons == {"checkpoint-1500": "latest 1 of 3 by step (step 1500)"}
    assert [c.name for c in selection.unselected] == ["checkpoint-500", "checkpoint-1000"]


def test_hf_best_min_and_max_from_trainer_state(hf_run: Path) -> None:
    run = discover(hf_run)
    low = select(run, best="eval_loss", mode="min")
    assert selected_names(low) == ["checkpoint-1000"]
    why = "best eval_loss=0.19 (min) from checkpoint-1000/trainer_state.json"
    assert low.reasons == {"checkpoint-1000": why}
    high = select(run, best="eval_accuracy", mode="max")
    assert selected_names(high) == ["checkpoint-1000"]
    worst = select(run, best="eval_loss", mode="max")
    assert selected_names(worst) == ["checkpoint-500"]


def test_hf_falls_back_to_the_run_level_trainer_state(tmp_path: Path) -> None:
    run = tmp_path / "run"
    for step in EVALS:
        write(run / f"checkpoint-{step}" / "pytorch_model.bin", b"w")
    write_json(run / "trainer_state.json", trainer_state(1500, EVALS))
    found = by_name(discover(run))
    assert found["checkpoint-1500"].metrics["eval_loss"] == 0.27
    assert found["checkpoint-1500"].sources["eval_loss"] == "the run's trainer_state.json"
    selection = select(list(found.values()), best="eval_loss")
    why = "best eval_loss=0.19 (min) from the run's trainer_state.json"
    assert selection.reasons == {"checkpoint-1000": why}


def test_own_trainer_state_wins_over_the_run_level_one(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_json(run / "checkpoint-10" / "trainer_state.json", trainer_state(10, {10: 0.5}))
    write_json(run / "trainer_state.json", trainer_state(10, {10: 0.9}))
    (c,) = discover(run)
    assert c.metrics["eval_loss"] == 0.5
    assert c.sources["eval_loss"] == "checkpoint-10/trainer_state.json"


def test_a_directory_with_trainer_state_but_another_name_is_a_checkpoint(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_json(run / "best" / "trainer_state.json", trainer_state(700, {700: 0.1}))
    write(run / "step-100.pt")
    found = by_name(discover(run))
    assert (found["best"].step, found["best"].convention) == (700, "trainer_state")
    assert found["best"].metrics["eval_loss"] == 0.1


def test_broken_trainer_state_is_noted_not_fatal(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write(run / "checkpoint-5" / "trainer_state.json", "{not json")
    (c,) = discover(run)
    assert c.step == 5
    assert c.metrics == {}
    assert any("not valid JSON" in note for note in c.notes)
    assert any("not valid JSON" in line for line in explain(select([c], latest=1)))


def test_a_directory_with_an_unusable_trainer_state_is_skipped_and_says_why(tmp_path: Path) -> None:
    """A trainer_state.json makes a directory look like a checkpoint whatever its name, so a
    broken or stepless one is reported, naming the file, instead of silently ignored."""
    run = tmp_path / "run"
    write_json(run / "checkpoint-5" / "trainer_state.json", {"global_step": 5})
    write(run / "best" / "trainer_state.json", "{not json")
    write_json(run / "checkpoint-final" / "trainer_state.json", {"log_history": []})
    write_json(run / "logs" / "events.json", {"global_step": 5})  # no trainer_state.json: unrelated
    scan = scan_run(run)
    assert [c.name for c in scan.checkpoints] == ["checkpoint-5"]
    assert sorted(scan.skipped) == ["best", "checkpoint-final"]
    assert scan.skipped["best"].startswith("best/trainer_state.json is not valid JSON")
    assert scan.skipped["checkpoint-final"] == (
        "the name mentions checkpoints but follows no known convention; "
        "its trainer_state.json has no integer global_step"
    )
    lines = explain(select(scan.checkpoints, latest=1), scan)
    assert "skipped best: best/trainer_state.json is not valid JSON" in "\n".join(lines)


# --- Lightning ----------------------------------------------------------------------------------


def test_lightning_names_give_steps_and_metrics(lightning_run: Path) -> None:
    scan = scan_run(lightning_run)
    found = by_name(scan.checkpoints)
    assert set(found) == {
        "epoch=0-step=100-val_loss=0.50.ckpt",
        "epoch=1-step=200-val_loss=0.31-val_acc=0.88.ckpt",
        "epoch=2-step=300-val_loss=0.35-val_acc=0.91.ckpt",
        "last.ckpt",
    }
    c = found["epoch=1-step=200-val_loss=0.31-val_acc=0.88.ckpt"]
    assert (c.step, c.is_dir, c.convention) == (200, False, "lightning")
    assert c.metrics == {"epoch": 1.0, "val_loss": 0.31, "val_acc": 0.88}
    assert c.sources["val_acc"] == "the file name"
    assert found["last.ckpt"].step is None
    assert scan.skipped == {}  # hparams.yaml is not a look-alike


def test_lightning_best_min_and_max_from_the_name(lightning_run: Path) -> None:
    run = discover(lightning_run)
    low = select(run, best="val_loss", mode="min")
    why = "best val_loss=0.31 (min) from the file name"
    assert low.reasons == {"epoch=1-step=200-val_loss=0.31-val_acc=0.88.ckpt": why}
    high = select(run, best="val_acc", mode="max")
    assert selected_names(high) == ["epoch=2-step=300-val_loss=0.35-val_acc=0.91.ckpt"]
    # Checkpoints without val_acc were passed over, and the selection says so.
    assert any("passed over 2 of 4" in note and "last.ckpt" in note for note in high.notes)


def test_lightning_latest_orders_by_time_when_a_checkpoint_has_no_step(lightning_run: Path) -> None:
    selection = select(discover(lightning_run), latest=2)
    assert selected_names(selection) == ["epoch=2-step=300-val_loss=0.35-val_acc=0.91.ckpt", "last.ckpt"]
    reason = selection.reasons["last.ckpt"]
    assert reason.startswith("latest 1 of 4 by modification time (")
    assert "last.ckpt has none" in reason
    assert any("modification time" in note and "last.ckpt" in note for note in selection.notes)


def test_union_of_criteria(lightning_run: Path) -> None:
    run = discover(lightning_run)
    first = "epoch=0-step=100-val_loss=0.50.ckpt"
    selection = select(run, latest=1, best="val_loss", names=[first])
    assert selected_names(selection) == [
        first,
        "epoch=1-step=200-val_loss=0.31-val_acc=0.88.ckpt",
        "last.ckpt",
    ]
    assert selection.reasons[first] == "named"
    assert len(selection.unselected) == 1
    # A checkpoint chosen twice says both reasons.
    both = select(run, names=[first], best="val_loss", mode="max")
    assert both.reasons[first] == "named; best val_loss=0.5 (max) from the file name"


def test_lightning_metric_names_with_dashes_prefix_and_version(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write(run / "mnist-epoch=3-step=1000-val-loss=0.23-v1.ckpt")
    write(run / "epoch=3-step=1000.ckpt")
    found = by_name(discover(run))
    c = found["mnist-epoch=3-step=1000-val-loss=0.23-v1.ckpt"]
    assert (c.step, c.metrics) == (1000, {"epoch": 3.0, "val-loss": 0.23})
    assert found["epoch=3-step=1000.ckpt"].metrics == {"epoch": 3.0}


def test_sharded_lightning_checkpoint_directory(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shards = run / "epoch=1-step=20-val_loss=0.40.ckpt" / "checkpoint"
    write(shards / "mp_rank_00_model_states.pt", b"m" * 7)
    write(shards / "zero_pp_rank_0_optim_states.pt", b"o" * 5)
    (c,) = discover(run)
    assert (c.is_dir, c.step, c.size, c.sources["val_loss"]) == (True, 20, 12, "the directory name")


# --- plain names and metrics.json ---------------------------------------------------------------


def test_step_dirs_with_metrics_json(tmp_path: Path) -> None:
    run = tmp_path / "run"
    for step, acc in [(1000, 0.7), (2000, 0.9), (3000, 0.8)]:
        write(run / f"step_{step}" / "model.pt", b"m" * step)
        write_json(run / f"step_{step}" / "metrics.json", {"accuracy": acc, "note": "text", "ok": True})
    write_json(run / "metrics.json", {"accuracy": 0.8})  # the run's own: not a checkpoint
    found = by_name(discover(run))
    assert list(found) == ["step_1000", "step_2000", "step_3000"]
    assert found["step_2000"].metrics == {"accuracy": 0.9}  # text and booleans are not metrics
    assert found["step_2000"].size == 2000 + (run / "step_2000" / "metrics.json").stat().st_size
    selection = select(list(found.values()), best="accuracy", mode="max")
    assert selection.reasons == {"step_2000": "best accuracy=0.9 (max) from step_2000/metrics.json"}
    assert selected_names(select(list(found.values()), latest=2)) == ["step_2000", "step_3000"]


def test_metrics_json_wins_over_the_rounded_name(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_json(run / "epoch=1-step=20-val_loss=0.40.ckpt" / "metrics.json", {"val_loss": 0.40123})
    (c,) = discover(run)
    assert c.metrics["val_loss"] == 0.40123
    assert c.sources == {
        "epoch": "the directory name",
        "val_loss": "epoch=1-step=20-val_loss=0.40.ckpt/metrics.json",
    }


def test_step_files_among_junk(tmp_path: Path) -> None:
    run = tmp_path / "run"
    for step in (100, 2000, 300):
        write(run / f"step-{step}.pt", b"p" * step)
    write(run / "ckpt-50")
    write(run / "model_400.safetensors")
    write(run / "global_step700" / "mp_rank_00_model_states.pt")
    junk = ["config.json", "train.log", "events.out.tfevents.1.host", "notes.txt", "latest", "wandb/run.log"]
    for name in junk:
        write(run / name)
    write(run / "model.safetensors")  # final weights: looks like a checkpoint, has no step
    write(run / "ckpt-1000.index")  # TensorFlow's checkpoint files are not entries of their own
    scan = scan_run(run)
    assert [(c.name, c.step) for c in scan.checkpoints] == [
        ("ckpt-50", 50),
        ("step-100.pt", 100),
        ("step-300.pt", 300),
        ("model_400.safetensors", 400),
        ("global_step700", 700),
        ("step-2000.pt", 2000),
    ]
    assert set(scan.skipped) == {"model.safetensors", "ckpt-1000.index"}
    assert "without a step" in scan.skipped["model.safetensors"]
    assert selected_names(select(scan.checkpoints, latest=2)) == ["global_step700", "step-2000.pt"]


def test_latest_by_modification_time_when_nothing_has_a_step(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write(run / "best.ckpt", mtime=T0 + 300)
    write(run / "last.ckpt", mtime=T0 + 100)
    write(run / "final.ckpt", mtime=T0 + 200)
    selection = select(discover(run), latest=2)
    assert selected_names(selection) == ["final.ckpt", "best.ckpt"]  # in discovery order, oldest first
    assert selection.reasons["best.ckpt"] == "latest 1 of 3 by modification time (2023-11-14 22:18:20 UTC)"
    assert selection.notes == []  # nothing had a step: nothing to explain


def test_a_directory_mtime_is_the_newest_in_its_tree(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write(run / "step_1" / "a.pt", mtime=T0)
    write(run / "step_2" / "a.pt", mtime=T0)
    age_tree(run / "step_1", T0)
    age_tree(run / "step_2", T0)
    os.utime(run / "step_1" / "a.pt", (T0 + 500, T0 + 500))  # rewritten in place: the dir's mtime stays
    found = by_name(discover(run))
    assert found["step_1"].mtime == T0 + 500
    assert found["step_2"].mtime == T0


# --- errors -------------------------------------------------------------------------------------


def test_tie_for_the_best_is_an_error_naming_the_tied(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write(run / "epoch=1-step=10-val_loss=0.20.ckpt")
    write(run / "epoch=2-step=20-val_loss=0.20.ckpt")
    write(run / "epoch=3-step=30-val_loss=0.30.ckpt")
    message = error(discover(run), best="val_loss")
    assert "2 checkpoints tie for the best val_loss (min) at 0.2" in message
    assert "epoch=1-step=10-val_loss=0.20.ckpt, epoch=2-step=20-val_loss=0.20.ckpt" in message
    assert "--name" in message
    # The other direction has a single best.
    highest = select(discover(run), best="val_loss", mode="max")
    assert selected_names(highest) == ["epoch=3-step=30-val_loss=0.30.ckpt"]


def test_missing_metric_lists_what_is_available(lightning_run: Path) -> None:
    message = error(discover(lightning_run), best="val_los")
    assert "no checkpoint has a metric 'val_los'" in message
    assert "did you mean 'val_loss'?" in message
    assert "epoch (3 of 4), val_loss (3 of 4), val_acc (2 of 4)" in message


def test_no_metrics_at_all(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write(run / "step-1.pt")
    message = error(discover(run), best="loss")
    assert "nor any other" in message
    assert "--latest or --name" in message


def test_unknown_name_lists_the_available(hf_run: Path) -> None:
    message = error(discover(hf_run), names=["checkpoint-1000", "checkpoint-100"])
    assert "no checkpoint named 'checkpoint-100'" in message
    assert "available: checkpoint-500, checkpoint-1000, checkpoint-1500" in message


def test_by_name(hf_run: Path) -> None:
    run = discover(hf_run)
    selection = select(run, names=["checkpoint-500", "checkpoint-1500", "checkpoint-500"])
    assert selected_names(selection) == ["checkpoint-500", "checkpoint-1500"]
    assert selection.reasons == {"checkpoint-500": "named", "checkpoint-1500": "named"}
    assert selected_names(select(run, names="checkpoint-1000")) == ["checkpoint-1000"]  # a str is one name


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, "pass --latest N, --best METRIC or --name NAME"),
        ({"latest": 0}, "--latest must be at least 1"),
        ({"best": "eval_loss", "mode": "median"}, "--mode must be min or max"),
    ],
)
def test_bad_criteria(hf_run: Path, kwargs: dict[str, Any], expected: str) -> None:
    assert expected in error(discover(hf_run), **kwargs)


def test_run_dir_missing_or_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="does not exist"):
        discover(tmp_path / "nope")
    with pytest.raises(InvalidInputError, match="not a directory"):
        discover(write(tmp_path / "file"))


def test_run_dir_without_checkpoints_says_what_was_expected(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write(run / "config.json")
    write(run / "pytorch_model.bin")
    with pytest.raises(InvalidInputError) as info:
        discover(run)
    message = str(info.value)
    assert "no checkpoints in" in message
    assert "checkpoint-500/" in message
    assert "pytorch_model.bin: a .bin file without a step" in message
    assert "config.json" not in message
    with pytest.raises(InvalidInputError, match="no checkpoints"):
        (tmp_path / "empty").mkdir()
        discover(tmp_path / "empty")


# --- symlinks -----------------------------------------------------------------------------------


def test_symlinks_are_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    write(outside / "huge.bin", b"h" * 10_000)
    write_json(outside / "trainer_state.json", trainer_state(10, {10: 0.01}))
    write(outside / "model.safetensors", b"m" * 5000)
    run = tmp_path / "run"
    write(run / "checkpoint-10" / "model.safetensors", b"m" * 10)
    (run / "checkpoint-10" / "extra.bin").symlink_to(outside / "huge.bin")
    (run / "checkpoint-10" / "trainer_state.json").symlink_to(outside / "trainer_state.json")
    (run / "checkpoint-20").symlink_to(outside, target_is_directory=True)
    (run / "last.ckpt").symlink_to(run / "checkpoint-10", target_is_directory=True)
    (run / "notes").symlink_to(outside)  # not a look-alike: silently not an entry

    scan = scan_run(run)
    (c,) = scan.checkpoints
    assert c.name == "checkpoint-10"
    assert c.size == 10  # the linked 10 kB outside is not counted
    assert c.metrics == {}  # the linked trainer_state.json outside was not read
    assert any("symlinks are not followed" in note for note in c.notes)
    assert set(scan.skipped) == {"checkpoint-20", "last.ckpt"}
    assert "outside the run directory" in scan.skipped["checkpoint-20"]
    assert "alias of another entry" in scan.skipped["last.ckpt"]


def test_a_fifo_named_metrics_json_does_not_hang(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write(run / "step_1" / "model.pt")
    os.mkfifo(run / "step_1" / "metrics.json")
    (c,) = discover(run)
    assert c.metrics == {}
    assert any("not a regular file" in note for note in c.notes)


# --- explanation --------------------------------------------------------------------------------


def test_explain_says_what_would_be_selected_left_and_ignored(hf_run: Path) -> None:
    scan = scan_run(hf_run)
    lines = explain(select(scan.checkpoints, latest=1, best="eval_loss"), scan)
    text = "\n".join(lines)
    assert lines[0].startswith("would select 2 of 3 checkpoint(s), ")
    assert "  checkpoint-1000 (step 1000, " in text
    assert "best eval_loss=0.19 (min) from checkpoint-1000/trainer_state.json" in text
    assert "latest 1 of 3 by step (step 1500)" in text
    assert "would leave 1 unselected" in text
    assert "  checkpoint-500 (step 500, " in text
    assert "skipped tmp-checkpoint-2000: an unfinished save" in text
    assert "config.json" not in text


def test_explain_when_everything_is_selected(lightning_run: Path) -> None:
    run = discover(lightning_run)
    lines = explain(select(run, names=[c.name for c in run]))
    assert lines[0] == "would select 4 of 4 checkpoint(s), 10 B:"
    assert "would leave none unselected" in lines


# --- properties ---------------------------------------------------------------------------------


def checkpoint(name: str, step: int | None, mtime: float = T0, **metrics: float) -> Checkpoint:
    return Checkpoint(
        name=name,
        path=Path("/run") / name,
        is_dir=True,
        step=step,
        mtime=mtime,
        size=1,
        metrics=dict(metrics),
        sources=dict.fromkeys(metrics, "the directory name"),
    )


@given(steps=st.sets(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=30), data=st.data())
def test_latest_n_returns_the_n_highest_steps(steps: set[int], data: st.DataObject) -> None:
    n = data.draw(st.integers(min_value=1, max_value=len(steps) + 3))
    order = data.draw(st.permutations(sorted(steps)))
    run = [checkpoint(f"step_{s}", s, mtime=T0 - s) for s in order]  # mtime disagrees with step
    selection = select(run, latest=n)
    assert {c.step for c in selection.selected} == set(sorted(steps, reverse=True)[:n])
    assert len(selection.selected) + len(selection.unselected) == len(steps)
    assert [c.name for c in selection.selected] == [c.name for c in run if c in selection.selected]


@given(
    values=st.lists(st.floats(allow_nan=False, width=32), min_size=1, max_size=20, unique=True),
    mode=st.sampled_from(["min", "max"]),
)
def test_best_is_the_extreme_value(values: list[float], mode: Mode) -> None:
    run = [checkpoint(f"c{i}", i, loss=v) for i, v in enumerate(values)]
    (winner,) = select(run, best="loss", mode=mode).selected
    assert winner.metrics["loss"] == (min(values) if mode == "min" else max(values))


metric_names = st.from_regex(r"[a-z][a-z0-9_\-]{0,11}", fullmatch=True).filter(lambda k: k != "step")


@given(
    epoch=st.integers(min_value=0, max_value=999),
    step=st.integers(min_value=0, max_value=10**7),
    metrics=st.dictionaries(metric_names, st.floats(allow_nan=False, allow_infinity=False), max_size=3),
)
def test_lightning_names_round_trip(epoch: int, step: int, metrics: dict[str, float]) -> None:
    metrics = {k: v for k, v in metrics.items() if k != "epoch" and not k.endswith("-") and "--" not in k}
    name = "-".join([f"epoch={epoch}", f"step={step}", *(f"{k}={v!r}" for k, v in metrics.items())]) + ".ckpt"
    info = parse_name(name, is_dir=False)
    assert info is not None
    assert info.step == step
    assert info.metrics == {"epoch": float(epoch), **metrics}
