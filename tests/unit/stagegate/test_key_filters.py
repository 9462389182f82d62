"""--include/--exclude follow rclone's filter rules; the cases are rclone's own
(fs/filter/filter_test.go TestFilterMatchesFromDocs, TestNewFilterMatches, glob_test.go)."""

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stagegate.errors import InvalidInputError
from stagegate.key_filters import KeyFilter, glob_to_regex
from stagegate.limits import MAX_FILTER_RULES

# (glob, included, key): rclone adds the glob as an include, then "- *".
FROM_DOCS = [
    ("file.jpg", True, "file.jpg"),
    ("file.jpg", True, "directory/file.jpg"),
    ("file.jpg", False, "afile.jpg"),
    ("file.jpg", False, "directory/afile.jpg"),
    ("/file.jpg", True, "file.jpg"),
    ("/file.jpg", False, "afile.jpg"),
    ("/file.jpg", False, "directory/file.jpg"),
    ("*.jpg", True, "file.jpg"),
    ("*.jpg", True, "directory/file.jpg"),
    ("*.jpg", False, "file.jpg/anotherfile.png"),
    ("dir/**", True, "dir/file.jpg"),
    ("dir/**", True, "dir/dir1/dir2/file.jpg"),
    ("dir/**", False, "directory/file.jpg"),
    ("dir/**", False, "adir/file.jpg"),
    ("l?ss", True, "less"),
    ("l?ss", True, "lass"),
    ("l?ss", False, "floss"),
    ("h[ae]llo", True, "hello"),
    ("h[ae]llo", True, "hallo"),
    ("h[ae]llo", False, "hullo"),
    ("{one,two}_potato", True, "one_potato"),
    ("{one,two}_potato", True, "two_potato"),
    ("{one,two}_potato", False, "three_potato"),
    ("{one,two}_potato", False, "_potato"),
    ("\\*.jpg", True, "*.jpg"),
    ("\\\\.jpg", True, "\\.jpg"),
    ("\\[one\\].jpg", True, "[one].jpg"),
    ("potato", True, "potato"),
    ("potato", False, "POTATO"),
]


@pytest.mark.parametrize(("glob", "included", "key"), FROM_DOCS)
def test_rclone_documented_examples(glob: str, included: bool, key: str) -> None:
    # rclone's test adds the glob as an include and "- *" after it; the implied "- **" of
    # --include gives the same answer for these keys.
    assert KeyFilter.of(include=[glob])(key) is included
    assert KeyFilter(include=(glob,), exclude=("*",))(key) is included


def test_star_stays_in_one_segment_and_double_star_crosses() -> None:
    f = KeyFilter.of(include=["/sausage2*", "/sausage3**"])
    assert f("sausage2potato")
    assert not f("sausage2/potato")
    assert f("sausage3/potato")
    assert f("sausage3/a/b/c")


def test_ordered_rules_from_rclone_matches_test() -> None:
    # TestNewFilterMatches' file rules: first match wins. --include rules come before --exclude
    # rules in rclone whatever the command line's order, so each block keeps its own order.
    f = KeyFilter.of(include=["/file2.png", "/*.jpg", "/sausage1", "/sausage2*", "/sausage3**", "/a/*.jpg"])
    assert f("file2.png")
    assert not f("FILE2.png")
    assert not f("afile2.png")
    assert f("file3.jpg")
    assert not f("file4.png")
    assert f("sausage1")
    assert not f("sausage1/potato")
    assert f("a/one.jpg")
    assert not f("a/one.png")
    assert not f("unicorn")


def test_includes_are_tried_before_excludes() -> None:
    f = KeyFilter(include=("*.jpg",), exclude=("secret/**",))
    assert f("secret/face.jpg")  # the include matched first, as in rclone
    assert not f("secret/notes.txt")  # the implied "- **"


@given(
    st.lists(st.sampled_from(["*.jpg", "/val/**", "a/*", "**/b?", "{x,y}.bin"]), min_size=1, max_size=3),
    st.lists(st.sampled_from(["*.tmp", "secret/**", "*.jpg", "/val/x*"]), min_size=1, max_size=3),
    st.lists(
        st.sampled_from(["a/b.jpg", "val/x.tmp", "secret/face.jpg", "x.bin", "q/bb", "c.tmp"]), max_size=6
    ),
)
def test_beside_an_include_an_exclude_changes_nothing_so_the_mix_is_refused(
    include: list[str], exclude: list[str], keys: list[str]
) -> None:
    # Why KeyFilter.of refuses the mix: with the includes alone every key gets the same answer.
    both, alone = KeyFilter(tuple(include), tuple(exclude)), KeyFilter(tuple(include))
    assert [both(k) for k in keys] == [alone(k) for k in keys]
    with pytest.raises(InvalidInputError, match=r"--exclude .* would change nothing beside --include"):
        KeyFilter.of(include, exclude)


def test_excludes_alone_keep_the_rest() -> None:
    f = KeyFilter.of(exclude=["*.tmp", "/cache/"])
    assert f("a/b.bin")
    assert not f("a/b.tmp")
    assert not f("cache/x/y")  # excluding dir/ excludes dir/**
    assert f("a/cache/x")  # anchored at the root only


def test_no_rules_takes_everything() -> None:
    f = KeyFilter()
    assert not f.active
    assert f("anything/at/all")


def test_character_classes() -> None:
    assert KeyFilter.of(include=["*.p[lm]"])("x/a.pl")
    assert not KeyFilter.of(include=["*.p[lm]"])("a.py")
    assert KeyFilter.of(include=["[[:digit:]][[:alpha:]]"])("7z")
    assert not KeyFilter.of(include=["[[:digit:]][[:alpha:]]"])("zz")
    assert KeyFilter.of(include=["*.\\d\\d\\d"])("dir/file.345")
    assert not KeyFilter.of(include=["*.\\d\\d\\d"])("file.abc")
    assert KeyFilter.of(include=["[^a]b"])("cb")
    assert not KeyFilter.of(include=["[^a]b"])("ab")
    assert KeyFilter.of(include=["[\\[\\]]"])("[")
    assert KeyFilter.of(include=["a{b,{c,d}}e"])("ace")


def test_regex_metacharacters_are_literal() -> None:
    f = KeyFilter.of(include=["'.' '+' '(' ')' '|' '^' '$'"])
    assert f("'.' '+' '(' ')' '|' '^' '$'")
    assert not f("'x' '+' '(' ')' '|' '^' '$'")
    assert not KeyFilter.of(include=["a.b"])("axb")


def test_glob_regexes_match_rclones_translation() -> None:
    # glob_test.go TestGlobPathToRegexp, in Python's spelling of the same expressions.
    assert glob_to_regex("potato") == "(?:^|/)potato\\Z"
    assert glob_to_regex("/potato") == "^potato\\Z"
    assert glob_to_regex("*.jpg") == "(?:^|/)[^/]*\\.jpg\\Z"
    assert glob_to_regex("potato**sausage") == "(?:^|/)potato.*sausage\\Z"
    assert glob_to_regex("a{b,c,d}e") == "(?:^|/)a(?:b|c|d)e\\Z"
    assert glob_to_regex("potato?sausage") == "(?:^|/)potato[^/]sausage\\Z"


@pytest.mark.parametrize(
    ("pattern", "says"),
    [
        ("***potato", "too many stars"),
        ("***", "too many stars"),
        ("ab]c", "mismatched ']'"),
        ("ab[c", "mismatched '[' and ']'"),
        ("ab{x{cd", "mismatched '{' and '}'"),
        ("ab{}}cd", "mismatched '{' and '}'"),
        ("ab}c", "mismatched '{' and '}'"),
        ("ab{c", "mismatched '{' and '}'"),
        ("[a--b]", "bad character range"),
        ("a{{.*}}b", "{{regexp}}"),
        ("[[:nope:]]", "unknown character class"),
        ("../**", "'..'"),
        ("a/../b", "'..'"),
        ("/./x", "'..'"),
        ("dir/", "selects no file"),
        ("", "non-empty"),
        ("a\x00b", "control characters"),
        ("a\nb", "control characters"),
        ("x" * 600, "longer than"),
    ],
)
def test_bad_patterns_are_refused_naming_them(pattern: str, says: str) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(says)) as caught:
        KeyFilter.of(include=[pattern])
    if pattern and len(pattern) < 80 and pattern.isprintable():
        assert repr(pattern) in str(caught.value)


def test_climbing_excludes_are_refused_too() -> None:
    with pytest.raises(InvalidInputError, match="above the source"):
        KeyFilter.of(exclude=["../secret/**"])


def test_a_bare_string_is_not_split_into_letters() -> None:
    with pytest.raises(InvalidInputError, match="list of patterns"):
        KeyFilter.of(include="*.jpg")


def test_the_number_of_rules_is_bounded() -> None:
    with pytest.raises(InvalidInputError, match=str(MAX_FILTER_RULES)):
        KeyFilter.of(exclude=[f"x{i}" for i in range(MAX_FILTER_RULES + 1)])


_segment = st.text(st.sampled_from("ab.-_"), min_size=1, max_size=4).filter(lambda s: s not in (".", ".."))
_keys = st.lists(_segment, min_size=1, max_size=4).map("/".join)


@given(_keys)
def test_double_star_takes_every_key_and_an_anchored_key_only_itself(key: str) -> None:
    assert KeyFilter.of(include=["**"])(key)
    assert not KeyFilter.of(exclude=["**"])(key)
    escaped = "".join("\\" + c if c in "*?[]{}\\" else c for c in key)
    assert KeyFilter.of(include=["/" + escaped])(key)
    assert not KeyFilter.of(include=["/" + escaped])("x/" + key)
    assert KeyFilter.of(include=[escaped])("x/" + key)  # unanchored: matches at the end
