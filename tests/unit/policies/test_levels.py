"""Tests for policies.levels: ordering, normalisation, and the lineage rule for combining labels."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stagegate.errors import InvalidInputError
from stagegate.policies.errors import LevelError
from stagegate.policies.levels import (
    DEFAULT_LEVELS,
    UNCLASSIFIED,
    Levels,
    highest_label,
    is_label_word,
    normalize_label,
)

NAMES = DEFAULT_LEVELS.names


def test_default_order_lowest_first() -> None:
    assert NAMES == ("public", "internal", "confidential", "restricted")
    assert [DEFAULT_LEVELS.rank(n) for n in NAMES] == [0, 1, 2, 3]


@pytest.mark.parametrize("raw", ["Public", " public\n", "PUBLIC", "\tpublic "])
def test_labels_are_normalised(raw: str) -> None:
    assert normalize_label(raw) == "public"
    assert DEFAULT_LEVELS.is_known(raw)
    assert DEFAULT_LEVELS.rank(raw) == 0


def test_look_alike_unicode_is_not_lowercased_into_a_level() -> None:
    # U+212A KELVIN SIGN lowercases to ASCII 'k'; a label must not become a level that way.
    levels = Levels(["kept", "secret"])
    assert not levels.is_known("\u212aept")
    assert normalize_label("\u212aept") == "\u212aept"


@pytest.mark.parametrize("word", ["public", "a", "tier-2", "pii_eu", "x9"])
def test_label_words(word: str) -> None:
    assert is_label_word(word)


@pytest.mark.parametrize("word", ["", "2nd", "top secret", "Public", "pub.lic", "-x", "public\n", "ünï"])
def test_not_label_words(word: str) -> None:
    assert not is_label_word(word)


def test_unclassified_is_not_a_level() -> None:
    assert not DEFAULT_LEVELS.is_known(UNCLASSIFIED)
    with pytest.raises(LevelError, match="not a level"):
        DEFAULT_LEVELS.rank(UNCLASSIFIED)


def test_rank_of_unknown_label_names_it() -> None:
    with pytest.raises(InvalidInputError, match="unknown label 'secret'"):
        DEFAULT_LEVELS.rank("secret")


@pytest.mark.parametrize(
    ("names", "message"),
    [
        ([], "at least one level"),
        (["public", "Public"], "'public' is listed twice"),
        (["public", "unclassified"], "reserved"),
        (["public", "top secret"], "invalid level name 'top secret'"),
        (["public", "2"], "invalid level name '2'"),
    ],
)
def test_bad_level_lists_are_refused(names: list[str], message: str) -> None:
    with pytest.raises(LevelError, match=message):
        Levels(names)


def test_custom_levels_rename_and_extend() -> None:
    levels = Levels(["open", "team", "secret", "top-secret", "eyes_only"])
    assert levels.rank("eyes_only") == 4
    assert not levels.is_known("public")
    assert levels.highest(["team", "open"]) == "team"


def test_highest_examples() -> None:
    assert highest_label(["internal", "public", "confidential"]) == "confidential"
    assert highest_label(["Restricted "]) == "restricted"
    # Fails closed: anything derived from unlabelled data, or from nothing known, is unclassified.
    assert highest_label(["restricted", "unclassified"]) == UNCLASSIFIED
    assert highest_label([]) == UNCLASSIFIED
    with pytest.raises(LevelError, match="unknown label 'secret'"):
        highest_label(["public", "secret"])


@given(st.lists(st.sampled_from(NAMES), min_size=1))
def test_highest_is_the_max_by_rank(labels: list[str]) -> None:
    assert highest_label(labels) == max(labels, key=NAMES.index)


@given(st.lists(st.sampled_from(NAMES)), st.lists(st.sampled_from(NAMES)))
def test_highest_with_unclassified_anywhere_is_unclassified(before: list[str], after: list[str]) -> None:
    assert highest_label([*before, UNCLASSIFIED, *after]) == UNCLASSIFIED
