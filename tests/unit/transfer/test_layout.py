"""Where a dataset's state lives (transfer.layout.state_dir_of): pure path rules."""

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stagegate.errors import InvalidInputError
from stagegate.transfer.layout import STATE_PREFIX, state_dir_of


def test_the_state_lies_beside_the_dataset_in_the_same_parent() -> None:
    assert state_dir_of("/nvme/imagenet") == Path("/nvme/.stagegate-imagenet")
    assert state_dir_of(Path("/nvme/imagenet/")) == Path("/nvme/.stagegate-imagenet")


def test_every_spelling_of_one_directory_names_one_state_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    monkeypatch.chdir(dest)
    expected = tmp_path / ".stagegate-dest"
    assert state_dir_of(".") == expected
    assert state_dir_of("../dest") == expected
    monkeypatch.chdir(tmp_path)
    assert state_dir_of("dest") == expected
    assert state_dir_of("./dest/") == expected


@pytest.mark.parametrize("path", ["", "  ", "/"])
def test_a_path_without_a_name_of_its_own_is_refused(path: str) -> None:
    with pytest.raises(InvalidInputError, match=r"empty|no parent"):
        state_dir_of(path)


def test_a_dataset_named_like_a_state_dir_is_refused() -> None:
    # Else staging into /p/.stagegate-x would share /p/x's state directory's name space.
    with pytest.raises(InvalidInputError, match="reserved"):
        state_dir_of("/p/.stagegate-x")


def test_a_name_too_long_for_its_state_dir_is_refused_naming_the_limit() -> None:
    assert state_dir_of("/p/" + "a" * (255 - len(STATE_PREFIX))).name == STATE_PREFIX + "a" * 244
    with pytest.raises(InvalidInputError, match="at most 244 bytes"):
        state_dir_of("/p/" + "a" * (256 - len(STATE_PREFIX)))


names = st.text(
    st.characters(blacklist_characters="/\0", blacklist_categories=("Cs",)), min_size=1, max_size=40
)


@given(st.lists(names, min_size=2, max_size=5, unique=True))
def test_datasets_under_one_parent_never_share_a_state_dir_nor_name_one(dataset_names: list[str]) -> None:
    usable = [n for n in dataset_names if n not in (".", "..") and not n.startswith(STATE_PREFIX)]
    states = [state_dir_of(Path("/p") / n) for n in usable]
    assert len(set(states)) == len(states)
    assert all(s.parent == Path("/p") for s in states)
    assert not {s.name for s in states} & set(usable)  # a state dir is never another dataset


def test_the_result_is_absolute_even_for_a_relative_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert state_dir_of("data").is_absolute()
    assert os.fspath(state_dir_of("data")) == os.fspath(tmp_path / ".stagegate-data")
