"""Honest destinations: a directory holds one source's dataset, and its READY and manifest
describe exactly what is in it, whatever happened before (another source staged there, files
gone from the source, files planted by someone else), with and without ``replace``/``sync``.

After every scenario the directory is walked and compared with its manifest
(``assert_staged``): a ready dataset never claims a file that is not there, nor leaves out
one that is."""

import json
import os
from pathlib import Path
from typing import Any

import pytest

from integration.helpers import (
    assert_staged,
    dataset_and_state,
    is_ready,
    put_objects,
    read_manifest,
    small_config,
    snapshot,
    write_tree,
)
from stagegate.key_filters import KeyFilter
from stagegate.transfer import open_source, stage
from stagegate.transfer.dataset_source import SOURCE_RECORD
from stagegate.transfer.errors import (
    DestinationNotEmptyError,
    OtherDatasetError,
    SourceChangedError,
    StrayFilesError,
    TransferError,
    UnsafeDestinationError,
)
from stagegate.transfer.layout import state_dir_of
from stagegate.transfer.plan import Plan
from stagegate.transfer.sink import DatasetDir
from stagegate.transfer.staging_steps import StageResult

pytestmark = pytest.mark.integration

OLD = {"train/a.bin": b"a" * 300, "train/b.bin": b"b" * 200, "val/c.bin": b"c" * 100, "README": b"old"}
NEW = {"train/a.bin": b"A" * 301, "test/d.bin": b"d" * 50, "README": b"new"}


def _stage(src: Path | str, dest: Path, **flags: bool) -> StageResult:
    return stage(open_source(str(src)), dest, small_config(concurrency=2), **flags)


@pytest.fixture
def old_src(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "old-src", OLD)


@pytest.fixture
def new_src(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "new-src", NEW)


@pytest.fixture
def staged(old_src: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "dest"
    _stage(old_src, dest)
    assert_staged(dest, OLD)
    return dest


# -- another source --------------------------------------------------------------------


def test_another_sources_dataset_is_refused_naming_it_and_the_flag(
    staged: Path, old_src: Path, new_src: Path
) -> None:
    before = dataset_and_state(staged)
    with pytest.raises(OtherDatasetError) as refused:
        _stage(new_src, staged)
    message = str(refused.value)
    assert str(old_src) in message and str(new_src) in message and "--replace" in message
    assert refused.value.source == str(old_src)
    assert isinstance(refused.value, DestinationNotEmptyError)  # the CLI's exit 2
    assert dataset_and_state(staged) == before, "nothing changed, READY included"
    assert_staged(staged, OLD)


def test_another_spelling_of_the_same_source_is_a_rerun(
    staged: Path, old_src: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(old_src.parent)
    for spelling in (f"{old_src}/", f"file://{old_src}", old_src.name, f"./{old_src.name}/"):
        result = _stage(spelling, staged)
        assert result.files_skipped == len(OLD), spelling
        assert_staged(staged, OLD)


def test_replace_leaves_nothing_of_the_old_dataset(staged: Path, new_src: Path) -> None:
    result = _stage(new_src, staged, replace=True)
    assert_staged(staged, NEW)  # val/ and train/b.bin gone, train/a.bin and README the new bytes
    assert not (staged / "val").exists(), "a directory left empty goes too"
    assert result.files_removed == 2
    assert result.files_copied == len(NEW)
    assert read_manifest(staged).keys() == NEW.keys()
    # The dataset is now the new source's: a plain rerun of it is a rerun, the old one is refused.
    assert _stage(new_src, staged).files_skipped == len(NEW)
    with pytest.raises(OtherDatasetError, match="new-src"):
        _stage(staged.parent / "old-src", staged)


def test_replace_takes_over_a_directory_stagegate_did_not_fill(new_src: Path, tmp_path: Path) -> None:
    dest = write_tree(tmp_path / "scratch", {"notes.txt": b"mine", "deep/er/x": b"x"})
    with pytest.raises(DestinationNotEmptyError, match="choose an empty or new directory"):
        _stage(new_src, dest)
    result = _stage(new_src, dest, replace=True)
    assert_staged(dest, NEW)
    assert result.files_removed == 2
    assert not (dest / "deep").exists()


def test_a_replace_that_fails_midway_is_clearly_not_ready_and_a_rerun_finishes_it(
    staged: Path, old_src: Path, new_src: Path
) -> None:
    def lose_a_file(_plan: Plan) -> None:
        (new_src / "test" / "d.bin").unlink()  # after planning: the copy of it fails

    with pytest.raises((TransferError, FileNotFoundError, SourceChangedError)):
        stage(
            open_source(str(new_src)), staged, small_config(concurrency=1), on_plan=lose_a_file, replace=True
        )
    assert not is_ready(staged), "a half-replaced directory must not look ready"
    assert json.loads((state_dir_of(staged) / SOURCE_RECORD).read_text())["source"] == str(new_src)
    assert (staged / "val" / "c.bin").exists(), "nothing of the old goes before the new set is verified"
    with pytest.raises(OtherDatasetError, match="an unfinished staging of"):
        _stage(old_src, staged)  # the old dataset is half gone: staging it again needs --replace

    write_tree(new_src, {"test/d.bin": NEW["test/d.bin"]})
    _stage(new_src, staged, replace=True)
    assert_staged(staged, NEW)


def test_a_replace_the_policy_refuses_changes_nothing(staged: Path, new_src: Path) -> None:
    before = dataset_and_state(staged)

    def deny(_plan: Plan) -> None:
        raise PermissionError("denied by the policy")

    with pytest.raises(PermissionError):
        stage(open_source(str(new_src)), staged, small_config(), on_plan=deny, replace=True, sync=True)
    assert dataset_and_state(staged) == before
    assert_staged(staged, OLD)


# -- files gone from the source, and strays --------------------------------------------


def test_a_rerun_after_a_source_deletion_refuses_and_the_old_dataset_stays_ready(
    staged: Path, old_src: Path
) -> None:
    (old_src / "val" / "c.bin").unlink()
    before = dataset_and_state(staged)
    with pytest.raises(StrayFilesError) as refused:
        _stage(old_src, staged)
    assert "val/c.bin" in str(refused.value) and "--sync" in str(refused.value)
    assert refused.value.keys == ["val/c.bin"] and refused.value.count == 1
    assert dataset_and_state(staged) == before
    assert_staged(staged, OLD)  # READY still describes exactly what is there: the old set


def test_sync_removes_what_the_source_lost_after_the_new_set_is_verified(staged: Path, old_src: Path) -> None:
    (old_src / "val" / "c.bin").unlink()
    (old_src / "train" / "b.bin").write_bytes(b"B" * 7)  # changed: copied again
    write_tree(old_src, {"train/e.bin": b"e"})  # new: copied
    result = _stage(old_src, staged, sync=True)
    expected = {
        "train/a.bin": OLD["train/a.bin"],
        "README": b"old",
        "train/b.bin": b"B" * 7,
        "train/e.bin": b"e",
    }
    assert_staged(staged, expected)
    assert result.files_removed == 1
    assert (result.files_copied, result.files_skipped) == (2, 2)
    assert not (staged / "val").exists()
    assert _stage(old_src, staged).files_removed == 0  # in sync now: a plain rerun is fine


def test_a_file_someone_else_put_there_is_reported_and_only_sync_removes_it(
    staged: Path, old_src: Path
) -> None:
    write_tree(staged, {"train/mine.txt": b"planted", ".hidden": b"x"})
    with pytest.raises(StrayFilesError) as refused:
        _stage(old_src, staged)
    assert refused.value.keys == [".hidden", "train/mine.txt"]
    assert (staged / "train" / "mine.txt").read_bytes() == b"planted"
    assert is_ready(staged)
    assert _stage(old_src, staged, sync=True).files_removed == 2
    assert_staged(staged, OLD)


def test_sync_removes_a_planted_symlink_never_what_it_points_to(
    staged: Path, old_src: Path, tmp_path: Path
) -> None:
    outside = write_tree(tmp_path / "outside", {"precious.txt": b"keep me", "sub/also.txt": b"me too"})
    before = snapshot(outside)
    (staged / "train" / "to-dir").symlink_to(outside)
    (staged / "to-file").symlink_to(outside / "precious.txt")
    (staged / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(StrayFilesError, match="to-dir \\(not a regular file\\)"):
        _stage(old_src, staged)
    result = _stage(old_src, staged, sync=True)
    assert result.files_removed == 3
    assert_staged(staged, OLD)  # fails on any symlink left in the dataset
    assert snapshot(outside) == before


def test_a_symlink_in_place_of_a_dataset_directory_is_refused_without_sync_and_removed_with_it(
    staged: Path, old_src: Path, tmp_path: Path
) -> None:
    outside = write_tree(tmp_path / "outside", {"a.bin": b"not the dataset's", "zzz.bin": b"keep"})
    before = snapshot(outside)
    for name in os.listdir(staged / "train"):
        (staged / "train" / name).unlink()
    (staged / "train").rmdir()
    (staged / "train").symlink_to(outside)  # train/a.bin, train/b.bin would land outside
    with pytest.raises(UnsafeDestinationError, match="symlink"):
        _stage(old_src, staged)
    assert not is_ready(staged)
    result = _stage(old_src, staged, sync=True)
    assert snapshot(outside) == before, "the link went, never what it points to"
    assert_staged(staged, OLD)
    assert result.files_removed == 1


def test_replace_clears_what_stands_where_the_new_layout_needs_room(tmp_path: Path) -> None:
    old = {"a": b"a file", "d/x": b"x", "d/y/z": b"z", "keep": b"k"}
    new = {"a/b": b"now a directory", "d": b"now a file", "keep": b"k"}
    old_src, new_src = write_tree(tmp_path / "o", old), write_tree(tmp_path / "n", new)
    dest = tmp_path / "dest"
    _stage(old_src, dest)
    with pytest.raises(OtherDatasetError):
        _stage(new_src, dest)
    result = _stage(new_src, dest, replace=True)
    assert_staged(dest, new)
    assert result.files_removed == 3  # a, d/x, d/y/z
    assert result.files_copied == 3  # keep too: another source's file is another object


def test_the_walk_is_in_the_plans_key_order(tmp_path: Path) -> None:
    keys = ["a", "a!", "a.txt", "ab/c", "b/a/x", "b/a.x", "b/a0", "é", "z/é/\u00ff"]
    dest = write_tree(tmp_path / "order", dict.fromkeys(keys, b""))
    with DatasetDir(dest) as dataset:
        walked = [e.key for e in dataset.walk()]
    assert walked == sorted(keys)


# -- the scenario, on a real S3 server -----------------------------------------


def test_s3_another_prefix_is_refused_a_deleted_object_refuses_and_sync_removes_it(
    s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    train = {f"train/{i:03d}.bin": bytes([i]) * 100 for i in range(30)}
    put_objects(s3_client, bucket, {f"mini/{k}": v for k, v in train.items()})
    put_objects(s3_client, bucket, {"other/x.bin": b"x", "other/y.bin": b"y"})
    dest = tmp_path / "dest"
    _stage(f"s3://{bucket}/mini", dest)
    assert_staged(dest, train)

    with pytest.raises(OtherDatasetError, match=f"s3://{bucket}/mini"):
        _stage(f"s3://{bucket}/other", dest)  # once "succeeded", leaving 32 files under a READY of 2
    assert_staged(dest, train)
    assert _stage(f"s3://{bucket}/mini/", dest).files_skipped == len(train)  # the same folder

    s3_client.delete_object(Bucket=bucket, Key="mini/train/007.bin")
    with pytest.raises(StrayFilesError, match=r"train/007\.bin"):
        _stage(f"s3://{bucket}/mini", dest)
    assert_staged(dest, train)  # untouched, and READY still true
    result = _stage(f"s3://{bucket}/mini", dest, sync=True)
    del train["train/007.bin"]
    assert_staged(dest, train)
    assert (result.files_removed, result.files_copied) == (1, 0)

    result = _stage(f"s3://{bucket}/other", dest, replace=True)
    assert_staged(dest, {"x.bin": b"x", "y.bin": b"y"})
    assert result.files_removed == len(train)
    assert not (dest / "train").exists()


def test_the_python_api_refuses_and_syncs_as_the_cli_does(staged: Path, old_src: Path) -> None:
    import stagegate
    from stagegate.errors import InvalidInputError

    (old_src / "val" / "c.bin").unlink()
    # The shipped policy stages public data only: label the source as a user would.
    (old_src / ".classification").write_bytes(b"public\n")
    with pytest.raises(InvalidInputError, match="--sync"):
        stagegate.stage(str(old_src), staged)
    assert_staged(staged, OLD)
    staged_again = stagegate.stage(str(old_src), staged, sync=True)
    assert staged_again.files_removed == 1
    assert_staged(staged, {k: v for k, v in OLD.items() if k != "val/c.bin"})


def test_ready_names_the_source_whatever_its_spelling_and_the_rules_of_a_subset(
    old_src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """READY alone says whose files, and which of them, the directory holds: a relative
    spelling is recorded as the source it means, and a subset's rules beside it."""
    monkeypatch.chdir(old_src.parent)
    dest = tmp_path / "subset"
    stage(open_source(old_src.name), dest, small_config(), key_filter=KeyFilter.of(include=["/train/**"]))
    ready = json.loads((state_dir_of(dest) / "READY").read_text())
    assert ready["source"] == old_src.name, "the result as typed, as the summary prints it"
    assert ready["source_identity"] == str(old_src)
    assert (ready["include"], ready["exclude"]) == (["/train/**"], [])
    assert read_manifest(dest).keys() == {"train/a.bin", "train/b.bin"}
