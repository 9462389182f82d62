"""The pure rule of which sources a service staging may read (stagegate.confinement)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stagegate.confinement import SourceNotPermittedError, SourceRules
from stagegate.errors import InvalidInputError

RULES = SourceRules.parse("/mnt/nfs/home/{user}:/mnt/nfs/projects/{project}")


@pytest.mark.parametrize(
    ("url", "root", "below"),
    [
        ("/mnt/nfs/home/alice/ds", "/mnt/nfs/home/alice", ("ds",)),
        ("/mnt/nfs/home/alice/", "/mnt/nfs/home/alice", ()),
        ("file:///mnt/nfs/home/alice/a/b", "/mnt/nfs/home/alice", ("a", "b")),
        ("file://localhost/mnt/nfs/projects/vision/x", "/mnt/nfs/projects/vision", ("x",)),
        ("file:///mnt/nfs/home/alice/sp%20ace", "/mnt/nfs/home/alice", ("sp ace",)),
    ],
)
def test_paths_under_the_requesters_roots_are_permitted(url: str, root: str, below: tuple[str, ...]) -> None:
    assert RULES.local_root(url, "alice", "vision") == (root, below)


@pytest.mark.parametrize(
    "url",
    [
        "/mnt/nfs/home/bob/ds",  # another user's home
        "/mnt/nfs/home/alicex/ds",  # a prefix as text, not as a segment
        "/mnt/nfs/home",
        "/mnt/nfs/projects/audio/x",  # another project
        "/etc/passwd",
        "file:///mnt/nfs/home/bob",
    ],
)
def test_anything_else_local_is_refused_naming_only_the_requesters_roots(url: str) -> None:
    with pytest.raises(SourceNotPermittedError) as error:
        RULES.check(url, "alice", "vision")
    message = str(error.value)
    assert "/mnt/nfs/home/alice" in message and "/mnt/nfs/projects/vision" in message
    assert "bob" not in message and "{user}" not in message


@pytest.mark.parametrize(
    "url",
    [
        "/mnt/nfs/home/alice/../bob",
        "/mnt/nfs/home/alice/./x",
        "/mnt/nfs/home//alice",
        "mnt/nfs/home/alice",  # relative: to the worker's working directory
        "file::/mnt/nfs/home/alice",  # fsspec's chained local spelling, a relative path to open_source
        "/mnt/nfs/home/alice/\0x",
    ],
)
def test_paths_that_need_normalising_are_bad_input(url: str) -> None:
    with pytest.raises(InvalidInputError):
        RULES.check(url, "alice", "vision")


@pytest.mark.parametrize(
    "url",
    [
        "memory://x",
        "local:///mnt/nfs/home/alice",
        "zip://inner.csv::file:///mnt/nfs/home/alice/a.zip",
        "simplecache::s3://bucket/key",
        "gcs://bucket/key",
        "http://example.com/x",
    ],
)
def test_other_schemes_are_refused_unless_allowed(url: str) -> None:
    with pytest.raises(SourceNotPermittedError):
        RULES.check(url, "alice", "vision")


def test_s3_is_always_permitted_and_listed_schemes_too() -> None:
    RULES.check("s3://bucket/prefix", "alice", None)
    rules = SourceRules.parse(None, "gcs,simplecache")
    rules.check("gcs://bucket/key", "alice", None)
    rules.check("simplecache::s3://bucket/key", "alice", None)
    with pytest.raises(SourceNotPermittedError):
        rules.check("simplecache::file:///etc", "alice", None)


def test_no_roots_by_default_means_no_local_path() -> None:
    with pytest.raises(SourceNotPermittedError, match="no source root"):
        SourceRules().check("/anything", "alice", "vision")


def test_a_root_needing_a_project_does_not_apply_without_one() -> None:
    with pytest.raises(SourceNotPermittedError):
        RULES.check("/mnt/nfs/projects/None/x", "alice", None)
    assert RULES.roots_for("alice", None) == ["/mnt/nfs/home/alice"]


@pytest.mark.parametrize("user", ["..", ".", "", "a/b", "x\0"])
def test_a_placeholder_never_matches_dot_segments_or_slashes(user: str) -> None:
    assert SourceRules.parse("/home/{user}").roots_for(user, None) == []


@pytest.mark.parametrize(
    ("roots", "schemes"),
    [("/home/{uid}", None), ("/home/{user", None), ("/", None), ("relative/{user}", None), (None, "file")],
)
def test_bad_operator_settings_are_refused_with_the_setting_named(
    roots: str | None, schemes: str | None
) -> None:
    with pytest.raises(InvalidInputError, match="STAGEGATE_SOURCE"):
        SourceRules.parse(roots, schemes)


segment = st.text(st.characters(blacklist_characters="/\0", blacklist_categories=("Cs",)), min_size=1).filter(
    lambda s: s not in (".", "..")
)


@given(user=segment, other=segment, below=st.lists(segment, max_size=4))
def test_one_users_root_never_admits_another_users_path(user: str, other: str, below: list[str]) -> None:
    rules = SourceRules.parse("/home/{user}")
    path = "/home/" + "/".join([other, *below])
    if other == user:
        assert rules.local_root(path, user, None) == (f"/home/{user}", tuple(below))
    else:
        with pytest.raises(SourceNotPermittedError):
            rules.check(path, user, None)
