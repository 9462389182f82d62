"""The staged directory holds exactly the dataset: `stagegate stage --to DIR` as a user runs
it, with a loader's eye (torchvision's ImageFolder takes every sub-directory of DIR, found by
os.scandir and is_dir(), as a class) and du's (every byte under DIR)."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from integration.helpers import STAGEGATE, assert_staged, payload, write_tree
from stagegate.transfer.layout import LEGACY_STATE_DIR, state_dir_of

pytestmark = pytest.mark.integration

IMAGES = {"cats/a.jpg": payload("cat", 70_001), "dogs/b.jpg": payload("dog", 30_007)}
NO_BAR = ["--no-progress"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([STAGEGATE, *args], capture_output=True, text=True, timeout=120)


def image_folder_classes(root: Path) -> list[str]:
    """What ImageFolder would take as the classes: its find_classes, exactly."""
    return sorted(entry.name for entry in os.scandir(root) if entry.is_dir())


def du_bytes(root: Path) -> int:
    """Every byte of every file below ``root``, hidden ones included."""
    return sum(
        (Path(dirpath) / name).lstat().st_size for dirpath, _, files in os.walk(root) for name in files
    )


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "src", {**IMAGES, ".classification": b"public\n"})


def test_a_two_class_image_folder_stages_as_exactly_two_classes(source: Path, tmp_path: Path) -> None:
    dest = tmp_path / "data" / "pets"
    proc = run("stage", str(source), "--to", str(dest), "--json", *NO_BAR)
    assert proc.returncode == 0, proc.stderr

    assert sorted(entry.name for entry in os.scandir(dest)) == ["cats", "dogs"]
    assert image_folder_classes(dest) == ["cats", "dogs"]
    assert du_bytes(dest) == sum(len(v) for v in IMAGES.values())
    summary = json.loads(proc.stdout)
    assert summary["state_dir"] == str(tmp_path / "data" / ".stagegate-pets")
    assert (Path(summary["state_dir"]) / "READY").is_file()
    assert_staged(dest, IMAGES)


def test_two_datasets_under_one_parent_keep_apart(source: Path, tmp_path: Path) -> None:
    other = write_tree(tmp_path / "src2", {"birds/c.jpg": b"tweet", ".classification": b"public\n"})
    parent = tmp_path / "data"
    for src, name in ((source, "pets"), (other, "birds")):
        proc = run("stage", str(src), "--to", str(parent / name), *NO_BAR)
        assert proc.returncode == 0, proc.stderr
    assert_staged(parent / "pets", IMAGES)
    assert_staged(parent / "birds", {"birds/c.jpg": b"tweet"})
    assert sorted(p.name for p in parent.iterdir()) == [
        ".stagegate-birds",
        ".stagegate-pets",
        "birds",
        "pets",
    ]


def test_a_directory_named_like_a_state_dir_is_refused(source: Path, tmp_path: Path) -> None:
    proc = run("stage", str(source), "--to", str(tmp_path / ".stagegate-pets"), *NO_BAR)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "reserved" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / ".stagegate-pets").exists()


def _as_an_older_stagegate_left_it(dest: Path) -> None:
    """The state inside the dataset, in the formats it still has."""
    state_dir_of(dest).rename(dest / LEGACY_STATE_DIR)
    assert (dest / LEGACY_STATE_DIR / "READY").is_file()


def test_a_rerun_moves_an_older_layouts_state_out_and_resumes(source: Path, tmp_path: Path) -> None:
    dest = tmp_path / "pets"
    assert run("stage", str(source), "--to", str(dest), *NO_BAR).returncode == 0
    _as_an_older_stagegate_left_it(dest)

    proc = run("stage", str(source), "--to", str(dest), *NO_BAR)
    assert proc.returncode == 0, proc.stderr
    assert "already present and verified 2" in proc.stdout  # resumed from the moved manifest
    assert image_folder_classes(dest) == ["cats", "dogs"]
    assert not (dest / LEGACY_STATE_DIR).exists()
    assert_staged(dest, IMAGES)


def test_a_stale_older_layout_beside_a_current_state_dir_is_cleared(source: Path, tmp_path: Path) -> None:
    dest = tmp_path / "pets"
    assert run("stage", str(source), "--to", str(dest), *NO_BAR).returncode == 0
    write_tree(dest / LEGACY_STATE_DIR, {"READY": b"{}", "journal/0/0.jsonl": b"stale\n"})

    proc = run("stage", str(source), "--to", str(dest), *NO_BAR)
    assert proc.returncode == 0, proc.stderr
    assert "already present and verified 2" in proc.stdout
    assert sorted(entry.name for entry in os.scandir(dest)) == ["cats", "dogs"]
    assert_staged(dest, IMAGES)


def test_files_without_a_state_dir_beside_them_are_still_refused(source: Path, tmp_path: Path) -> None:
    dest = write_tree(tmp_path / "pets", {"cats/mine.jpg": b"my own cat"})
    proc = run("stage", str(source), "--to", str(dest), *NO_BAR)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert str(state_dir_of(dest)) in proc.stderr and "choose an empty or new directory" in proc.stderr
    assert not state_dir_of(dest).exists()
    assert (dest / "cats" / "mine.jpg").read_bytes() == b"my own cat"
