"""Tests for transfer.label_sources: which tag keys and xattr names hold a label, and what
several of them say together."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stagegate.transfer.label_sources import combined_label, is_label_name


@pytest.mark.parametrize(
    ("name", "wanted"),
    [
        ("classification", "classification"),
        ("Classification", "classification"),
        (" CLASSIFICATION\t", "classification"),
        ("user.Classification", "user.classification"),
        ("user. classification ", "user.classification"),
        ("USER.classification", "user.classification"),
        ("cla\u017f\u017fification", "classification"),  # long s folds to s: counted, fail closed
    ],
)
def test_names_that_hold_the_label(name: str, wanted: str) -> None:
    assert is_label_name(name, wanted)


@pytest.mark.parametrize(
    ("name", "wanted"),
    [
        ("classification2", "classification"),
        ("class ification", "classification"),
        ("trusted.classification", "user.classification"),
        ("classification", "user.classification"),
    ],
)
def test_names_that_do_not(name: str, wanted: str) -> None:
    assert not is_label_name(name, wanted)


def test_combined_label() -> None:
    assert combined_label([]) is None
    assert combined_label([" public\n"]) == "public"
    assert combined_label(["Public", "public "]) == "Public"  # one label, spelt twice
    assert combined_label(["public", "Confidential", "public"]) == "Confidential, public"


words = st.text(alphabet="aAbBp ", max_size=6)


@given(st.lists(words, min_size=1, max_size=5))
def test_disagreeing_values_are_never_one_label_word(values: list[str]) -> None:
    combined = combined_label(values)
    assert combined is not None
    distinct = {v.strip().casefold() for v in values}
    if len(distinct) > 1:
        # Not a label word: every policy denies it, and it shows every value.
        assert ", " in combined
        assert {part.casefold() for part in combined.split(", ")} == distinct
    else:
        assert combined.casefold() == distinct.pop()
    assert combined_label(reversed(values)) == combined  # the order of tags does not matter


def test_directories_above_a_path_nearest_first() -> None:
    from stagegate.transfer.label_sources import directories_above

    assert directories_above("a/b/c") == ["a/b", "a", ""]
    assert directories_above("a") == [""]
    assert directories_above("") == []
