"""Tests for policies.labels: label files, and resolution checked against a brute-force reference."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stagegate.errors import InvalidInputError
from stagegate.policies.errors import LabelFileError
from stagegate.policies.labels import (
    LABEL_FILE_NAME,
    LABEL_TAG,
    LABEL_XATTR,
    LabelResolver,
    ResolvedLabel,
    label_file_key,
    parse_label_file,
)
from stagegate.policies.levels import DEFAULT_LEVELS, UNCLASSIFIED, Levels, normalize_label


def test_names_the_engine_reads() -> None:
    assert (LABEL_FILE_NAME, LABEL_TAG, LABEL_XATTR) == (
        ".classification",
        "classification",
        "user.classification",
    )
    assert label_file_key("") == ".classification"
    assert label_file_key("a/b") == "a/b/.classification"


@pytest.mark.parametrize(
    ("content", "label"),
    [
        (b"internal", "internal"),
        (b"internal\n", "internal"),
        (b"  Confidential \r\n", "confidential"),
        ("public", "public"),
    ],
)
def test_parse_label_file(content: bytes | str, label: str) -> None:
    assert parse_label_file(content) == label


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b" \n\t", "empty"),
        (b"top secret\n", "2 words"),
        (b"public\ninternal\n", "2 words"),
        (b"\xff\xfe", "not UTF-8"),
        (b"2nd", "not a label word"),
        (b"x" * 5000, "one word"),
    ],
)
def test_parse_label_file_errors(content: bytes, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        parse_label_file(content, "a/.classification")
    with pytest.raises(LabelFileError, match=r"^a/\.classification: "):
        parse_label_file(content, "a/.classification")


def test_resolver_reports_bad_label_file_by_its_key() -> None:
    with pytest.raises(LabelFileError, match=r"^x/y/\.classification: 2 words"):
        LabelResolver({"": "public", "x/y": "very secret"})


@pytest.mark.parametrize("directory", ["/a", "a/", "a//b", "/"])
def test_resolver_refuses_malformed_directory_keys(directory: str) -> None:
    with pytest.raises(LabelFileError, match="relative key"):
        LabelResolver({directory: "public"})


def test_resolution_examples() -> None:
    resolver = LabelResolver({"": "public", "a": "internal", "a/b": b"confidential\n"})
    assert resolver.resolve("top.txt", None) == ResolvedLabel("public", "file:.classification")
    assert resolver.resolve("a/x", None) == ResolvedLabel("internal", "file:a/.classification")
    assert resolver.resolve("a/b/c/d.bin", None) == ResolvedLabel("confidential", "file:a/b/.classification")
    # 'ab' is not under 'a': parents are whole segments.
    assert resolver.resolve("ab/x", None) == ResolvedLabel("public", "file:.classification")
    assert resolver.resolve("a/b/c/d.bin", " Restricted") == ResolvedLabel("restricted", "own")
    # An own label only raises: a file tagged public in a confidential directory is confidential.
    assert resolver.resolve("a/b/c/d.bin", "public") == ResolvedLabel(
        "confidential", "file:a/b/.classification"
    )
    assert resolver.resolve("a/x", "internal") == ResolvedLabel("internal", "own")  # a tie: its own
    # A label file is an object too; it takes its own directory's label.
    assert resolver.resolve("a/b/.classification", None).label == "confidential"


def test_no_label_files_means_unclassified() -> None:
    assert LabelResolver({}).resolve("a/b", None) == ResolvedLabel(UNCLASSIFIED, "none")
    assert LabelResolver({"b": "public"}).resolve("a/b", None) == ResolvedLabel(UNCLASSIFIED, "none")


def test_own_label_wins_even_when_empty_or_malformed() -> None:
    # No silent fall-back to a (possibly lower) directory label: the policy denies these.
    resolver = LabelResolver({"": "restricted"})
    assert resolver.resolve("x", "") == ResolvedLabel("", "own")
    assert resolver.resolve("x", "Top Secret") == ResolvedLabel("top secret", "own")
    assert resolver.resolve("x", "unclassified") == ResolvedLabel(UNCLASSIFIED, "own")


def test_label_file_word_that_is_no_level_wins_over_a_known_own_label() -> None:
    resolver = LabelResolver({"": "secret"})
    assert resolver.resolve("x", "restricted") == ResolvedLabel("secret", "file:.classification")


def test_ordering_follows_the_policys_levels() -> None:
    levels = Levels(["green", "amber", "red"])
    resolver = LabelResolver({"": "amber"}, levels)
    assert resolver.resolve("x", "green").label == "amber"
    assert resolver.resolve("x", "red").label == "red"
    # Under the default levels 'amber' is unknown: it is the result, for the policy to deny.
    assert LabelResolver({"": "amber"}).resolve("x", "public").label == "amber"


def brute_force(files: dict[str, str], key: str, own: str | None) -> ResolvedLabel:
    """The rule as stated: the deepest file whose directory contains the key, raised by the own
    label; an input that is not a level wins (own first), so the policy denies it."""
    containing = [d for d in files if d == "" or key.startswith(d + "/")]
    nearest = ResolvedLabel(UNCLASSIFIED, "none")
    if containing:
        deepest = max(containing, key=lambda d: 0 if d == "" else d.count("/") + 1)
        nearest = ResolvedLabel(files[deepest].strip().lower(), f"file:{label_file_key(deepest)}")
    if own is None:
        return nearest
    mine = ResolvedLabel(own.strip().lower(), "own")
    order = list(DEFAULT_LEVELS.names)
    if not containing or mine.label not in order:
        return mine
    if nearest.label not in order or order.index(nearest.label) > order.index(mine.label):
        return nearest
    return mine


segments = st.sampled_from(["a", "b", "ab", "c-1"])
directories = st.lists(segments, max_size=4).map("/".join)
keys = st.tuples(st.lists(segments, max_size=5), st.sampled_from(["f", "g.bin", ".classification"])).map(
    lambda t: "/".join([*t[0], t[1]])
)
labels = st.sampled_from(["public", "Internal", "confidential\n", "restricted", "custom_x"])
own_labels = st.none() | st.sampled_from(
    ["public", " Internal", "confidential", " Restricted ", "weird word", "", "unclassified", "custom_x"]
)


@given(files=st.dictionaries(directories, labels, max_size=8), key=keys, own=own_labels)
def test_resolution_matches_brute_force(files: dict[str, str], key: str, own: str | None) -> None:
    assert LabelResolver(files).resolve(key, own) == brute_force(files, key, own)


@given(files=st.dictionaries(directories, labels, max_size=8), key=keys, own=own_labels)
def test_resolved_label_is_never_below_either_input(files: dict[str, str], key: str, own: str | None) -> None:
    resolver = LabelResolver(files)
    result = resolver.resolve(key, own).label
    nearest = resolver.resolve(key, None)
    inputs = [nearest.label] if nearest.origin != "none" else []  # no label file is no input
    inputs += [normalize_label(own)] if own is not None else []
    if not inputs:
        assert result == UNCLASSIFIED
        return
    known = [label for label in inputs if DEFAULT_LEVELS.is_known(label)]
    if len(known) < len(inputs):
        # Some input is no level (unknown, malformed, unclassified): so is the result, and
        # every policy denies it.
        assert not DEFAULT_LEVELS.is_known(result)
    else:
        assert DEFAULT_LEVELS.rank(result) == max(DEFAULT_LEVELS.rank(label) for label in known)


@given(files=st.dictionaries(directories, labels, min_size=1, max_size=8), key=keys, label=labels)
def test_deeper_file_overrides_parent_and_root_applies_to_all(
    files: dict[str, str], key: str, label: str
) -> None:
    directory = key.rpartition("/")[0]
    with_own_dir = {**files, directory: label}
    assert LabelResolver(with_own_dir).resolve(key, None).label == label.strip().lower()
    only_root = {"": label}
    assert LabelResolver(only_root).resolve(key, None).origin == "file:.classification"


class _CountingDict(dict[str, object]):
    """Counts lookups, so the cost of a resolution is measured in steps, not seconds."""

    lookups = 0

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        _CountingDict.lookups += 1
        return super().get(key, default)


def test_resolution_cost_does_not_grow_with_the_number_of_label_files() -> None:
    # 100k label files: a resolution must look up one directory per level of the key,
    # never scan the files.
    files = {f"d{i}/e{i}": "internal" for i in range(100_000)}
    resolver = LabelResolver(files)
    resolver._by_directory = _CountingDict(resolver._by_directory)  # type: ignore[assignment]
    _CountingDict.lookups = 0
    assert resolver.resolve("x1/y/z/w.bin", None).label == UNCLASSIFIED
    assert _CountingDict.lookups == 4  # x1/y/z, x1/y, x1, ''
    _CountingDict.lookups = 0
    assert resolver.resolve("d7/e7/f.bin", None).label == "internal"
    assert _CountingDict.lookups == 1  # found in its own directory


def test_a_label_file_above_the_dataset_labels_what_none_inside_does() -> None:
    above = [("s3://b/mini/.classification", b"internal\n"), ("s3://b/.classification", "restricted")]
    resolver = LabelResolver({"val": "public"}, above=above)
    assert resolver.resolve("val/x.bin") == ResolvedLabel("public", "file:val/.classification")
    assert resolver.resolve("train/y.bin") == ResolvedLabel("internal", "file:s3://b/mini/.classification")
    assert resolver.resolve("z.bin", "confidential") == ResolvedLabel("confidential", "own")
    assert resolver.resolve("z.bin", "public").label == "internal"  # an own label only raises
    assert LabelResolver({}, above=above).resolve("a").origin == "file:s3://b/mini/.classification"


def test_a_malformed_label_file_above_fails_closed_even_behind_a_nearer_one() -> None:
    with pytest.raises(LabelFileError, match=r"s3://b/\.classification"):
        LabelResolver(
            {}, above=[("s3://b/mini/.classification", "public"), ("s3://b/.classification", "a b")]
        )
