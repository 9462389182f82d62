"""The generic fsspec source (here fsspec's in-memory filesystem) fails closed on a label file
that is not a file."""

import uuid
from pathlib import Path

import fsspec
import pytest

from stagegate.transfer.errors import LabelSourceError
from stagegate.transfer.objects import LabelSpec
from stagegate.transfer.plan import plan_dataset
from stagegate.transfer.sources import open_source

LABELS = LabelSpec(tag="classification", xattr="user.classification", file_name=".classification")


@pytest.fixture
def root() -> str:
    return f"/sg-{uuid.uuid4().hex}"


def test_label_file_that_is_a_directory_is_refused(root: str, tmp_path: Path) -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe({f"{root}/.classification": b"public\n", f"{root}/sub/x.bin": b"x"})
    fs.makedirs(f"{root}/sub/.classification", exist_ok=True)
    source = open_source(f"memory://{root}", labels=LABELS)

    with pytest.raises(LabelSourceError, match=r"^sub/\.classification: a label file must be a regular file"):
        plan_dataset(source, tmp_path / "plan.jsonl", LABELS.file_name)


def test_regular_label_files_are_read(root: str, tmp_path: Path) -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe({f"{root}/.classification": b"public\n", f"{root}/sub/x.bin": b"x"})
    plan = plan_dataset(
        open_source(f"memory://{root}", labels=LABELS), tmp_path / "plan.jsonl", ".classification"
    )
    assert {d: f.content for d, f in plan.label_files.items()} == {"": b"public\n"}
    assert [o.key for o in plan.entries()] == ["sub/x.bin"]
