"""Planning tells how far the listing is: every LISTED_EVERY objects and once at the end, with
the bytes listed so far (label files and directory markers count: they were listed too)."""

import uuid
from pathlib import Path

import fsspec

from stagegate.progress import Listed
from stagegate.transfer.objects import LabelSpec
from stagegate.transfer.plan import LISTED_EVERY, plan_dataset
from stagegate.transfer.sources import open_source

LABELS = LabelSpec(tag="classification", xattr="user.classification", file_name=".classification")


def test_the_listing_is_reported_as_it_goes_and_when_done(tmp_path: Path) -> None:
    root = f"/sg-{uuid.uuid4().hex}"
    count = 2 * LISTED_EVERY + 7
    fsspec.filesystem("memory").pipe(
        {**{f"{root}/f{i:05d}": b"x" * 3 for i in range(count)}, f"{root}/.classification": b"public\n"}
    )
    heard: list[Listed] = []
    plan = plan_dataset(
        open_source(f"memory://{root}", labels=LABELS),
        tmp_path / "plan.jsonl",
        ".classification",
        heard.append,
    )
    assert plan.files == count
    assert [h.objects for h in heard] == [LISTED_EVERY, 2 * LISTED_EVERY, count + 1]
    assert [h.done for h in heard] == [False, False, True]
    assert heard[-1].bytes == 3 * count + len(b"public\n")
    assert heard[0].bytes <= heard[1].bytes <= heard[2].bytes


def test_without_a_callback_nothing_is_asked(tmp_path: Path) -> None:
    root = f"/sg-{uuid.uuid4().hex}"
    fsspec.filesystem("memory").pipe({f"{root}/a": b"1"})
    plan = plan_dataset(open_source(f"memory://{root}", labels=LABELS), tmp_path / "plan.jsonl")
    assert plan.files == 1
