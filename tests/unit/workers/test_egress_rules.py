"""Pure rules of a confined egress: path segments, containment by whole components, the
highest of a checkpoint's labels, and worker roots that must not overlap."""

from pathlib import Path

import pytest

from stagegate.errors import InvalidInputError
from stagegate.paths import is_within, plain_segments
from stagegate.policies import Policy
from stagegate.workers.egress_labels import highest
from stagegate.workers.settings import WorkerSettings, user_segment


@pytest.mark.parametrize("path", ["/a/../b", "/a/./b", "//a", "/a//b", "relative/x", "/a\0b"])
def test_a_path_that_is_not_written_plainly_is_refused(path: str) -> None:
    with pytest.raises(InvalidInputError):
        plain_segments(path)


def test_plain_paths_split_into_their_segments() -> None:
    assert plain_segments("/") == ()
    assert plain_segments("/data/pub/") == ("data", "pub")


def test_containment_is_by_whole_components() -> None:
    assert is_within(("data", "pub", "x"), ("data", "pub"))
    assert is_within(("data", "pub"), ("data", "pub"))
    assert not is_within(("data", "public"), ("data", "pub"))
    assert not is_within(("data",), ("data", "pub"))


def test_the_highest_label_wins_and_an_unknown_word_fails_closed() -> None:
    policy = Policy.default()
    assert highest(policy, [("xattr", "public"), ("lineage:t", "confidential")]) == (
        "confidential",
        "lineage:t",
    )
    assert highest(policy, [("file", "restricted"), ("lineage:t", "internal")]) == ("restricted", "file")
    assert highest(policy, [("xattr", "public"), ("file", "Sekrit")]) == ("sekrit", "file")
    assert highest(policy, []) == ("unclassified", "none")


@pytest.mark.parametrize("user", ["", ".", "..", "a/b", "a\0"])
def test_a_user_name_that_is_not_one_segment_has_no_directory(user: str) -> None:
    with pytest.raises(PermissionError):
        user_segment(user)


@pytest.mark.parametrize(
    ("runs", "egress"),
    [("/n/datasets/runs", "/n/egress"), ("/n/runs", "/n/datasets"), ("/n/runs", "/n/runs/out"), ("/n", "/x")],
)
def test_worker_roots_that_overlap_are_refused(runs: str, egress: str) -> None:
    settings = WorkerSettings("a", Path("/n"), 1, runs_root=Path(runs), egress_root=Path(egress))
    with pytest.raises(InvalidInputError, match="overlap"):
        settings.checked()


def test_separate_worker_roots_are_accepted() -> None:
    settings = WorkerSettings("a", Path("/n"), 1, runs_root=Path("/n/runs"), egress_root=Path("/n/egress"))
    assert settings.checked().user_egress("alice") == Path("/n/egress/alice")
