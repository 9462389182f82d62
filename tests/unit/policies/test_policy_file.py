"""Tests for policies.policy parsing: the schema, its error messages, and the version digest."""

import hashlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stagegate.errors import InvalidInputError, NotFoundError
from stagegate.policies.errors import PolicyFileError
from stagegate.policies.policy import EgressRule, Policy
from stagegate.policies.zones import Zone

SHIPPED = Path(__file__).parents[3] / "policies" / "default_policy.yaml"

GOOD = b"""\
version: 1
levels: [open, team, secret]
staging: team
egress:
  - prefix: "s3://"
    max_level: open
  - prefix: "s3://models"
    max_level: team
  - prefix: "/mnt/vault/"
    max_level: secret
"""


def test_default_policy_is_the_shipped_file() -> None:
    policy = Policy.default()
    assert policy.version == hashlib.sha256(SHIPPED.read_bytes()).hexdigest()
    assert policy.levels.names == ("public", "internal", "confidential", "restricted")
    assert policy.staging == "public"
    assert set(policy.egress) == {EgressRule("s3://", "public"), EgressRule("/", "public")}


def test_parse_good_policy() -> None:
    policy = Policy.parse(GOOD)
    assert policy.version == hashlib.sha256(GOOD).hexdigest()
    assert policy.levels.names == ("open", "team", "secret")
    assert policy.staging == "team"
    assert [r.prefix for r in policy.egress] == ["s3://models", "/mnt/vault/", "s3://"]


def test_minimal_policy_has_default_levels_and_no_egress() -> None:
    policy = Policy.parse(b"version: 1\nstaging: Internal\n")
    assert policy.levels.names[0] == "public"
    assert policy.staging == "internal"
    assert policy.egress == ()
    assert policy.max_level(Zone.egress("s3://anything")) is None


def test_object_tags_are_read_at_copy_time_unless_the_policy_asks_for_the_plan() -> None:
    assert not Policy.default().tags_at_plan
    assert not Policy.parse(b"version: 1\nstaging: public\nobject_tags: at_copy\n").tags_at_plan
    assert Policy.parse(b"version: 1\nstaging: public\nobject_tags: at_plan\n").tags_at_plan


def test_from_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_bytes(GOOD)
    assert Policy.from_file(path) == Policy.parse(GOOD)
    assert Policy.from_file(str(path)).version == hashlib.sha256(GOOD).hexdigest()


def test_from_file_errors_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"missing\.yaml does not exist"):
        Policy.from_file(tmp_path / "missing.yaml")
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"version: 1\nstaging: secret\n")
    with pytest.raises(PolicyFileError, match=r"bad\.yaml: staging: 'secret' is not one of the levels"):
        Policy.from_file(path)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"version: 1\nstaging: public\negress: [\n", "not valid YAML"),
        (b"version: 1\nstaging: public\n\tbad: tab\n", "not valid YAML"),
        (b"\xff\xfeversion: 1", "not UTF-8"),
        (b"", "must be a YAML mapping"),
        (b"- public\n", "must be a YAML mapping"),
        (b"version: 1\nstaging: public\nstagin: internal\n", r"unknown key\(s\) 'stagin'; allowed keys are"),
        (b"version: 2\nstaging: public\n", "version must be 1"),
        (b"version: 1\nstaging: public\nobject_tags: always\n", "object_tags must be one of at_copy"),
        (b"version: true\nstaging: public\n", "version must be 1"),
        (b"staging: public\n", "version must be 1"),
        (b"version: 1\n", "staging is required"),
        (b"version: 1\nstaging: secret\n", r"staging: 'secret' is not one of the levels \(public < internal"),
        (b"version: 1\nstaging: no\n", "staging must be a level name, got False .*quote it"),
        (b"version: 1\nstaging: public\nstaging: restricted\n", "line 3: key 'staging' appears twice"),
        (b"version: 1\nlevels: public\nstaging: public\n", "levels must be a list"),
        (b"version: 1\nlevels: []\nstaging: public\n", "at least one level"),
        (b"version: 1\nlevels: [a, b, A]\nstaging: a\n", "level 'a' is listed twice"),
        (b"version: 1\nlevels: [a, unclassified]\nstaging: a\n", "reserved"),
        (b"version: 1\nlevels: [a, on]\nstaging: a\n", "every level must be a name, got True"),
        (b"version: 1\nlevels: [a, 'b c']\nstaging: a\n", "invalid level name 'b c'"),
        (b"version: 1\nstaging: public\negress: {prefix: s3://}\n", "egress must be a list"),
        (b"version: 1\nstaging: public\negress: [s3://]\n", r"egress\[0\] must be a mapping"),
        (b"version: 1\nstaging: public\negress: [{prefix: s3://}]\n", r"egress\[0\]: max_level is required"),
        (
            b"version: 1\nstaging: public\negress: [{prefix: s3://, max_level: top}]\n",
            r"egress\[0\]\.max_level: 'top' is not one of the levels",
        ),
        (
            b"version: 1\nstaging: public\negress: [{prefix: s3://, max_level: public, max: x}]\n",
            r"egress\[0\]: unknown key\(s\) 'max'",
        ),
        (b"version: 1\nstaging: public\negress: [{prefix: '', max_level: public}]\n", "non-empty string"),
        (
            b"version: 1\nstaging: public\n"
            b"egress: [{prefix: /, max_level: public}, {prefix: /, max_level: public}]\n",
            r"egress\[1\]: prefix '/' has two rules",
        ),
    ],
)
def test_parse_errors_say_what_to_fix(data: bytes, message: str) -> None:
    with pytest.raises(PolicyFileError, match=message) as caught:
        Policy.parse(data)
    assert isinstance(caught.value, InvalidInputError)


def test_yaml_tags_that_build_objects_are_refused() -> None:
    with pytest.raises(PolicyFileError, match="not valid YAML"):
        Policy.parse(b"version: 1\nstaging: !!python/object/apply:os.system ['true']\n")


def test_parse_takes_bytes_only() -> None:
    with pytest.raises(PolicyFileError, match="from bytes"):
        Policy.parse("version: 1\nstaging: public\n")  # type: ignore[arg-type]


@given(st.binary(max_size=40))
def test_version_is_sha256_of_the_exact_bytes(comment: bytes) -> None:
    data = GOOD + b"# " + comment.replace(b"\n", b"").replace(b"\r", b"") + b"\n"
    try:
        policy = Policy.parse(data)
    except PolicyFileError:
        return  # the comment bytes were not UTF-8 (or not printable YAML)
    assert policy.version == hashlib.sha256(data).hexdigest()


@given(st.integers(0, len(GOOD) - 1), st.integers(1, 255))
def test_any_changed_byte_changes_the_version_or_fails(position: int, delta: int) -> None:
    changed = bytearray(GOOD)
    changed[position] = (changed[position] + delta) % 256
    try:
        policy = Policy.parse(bytes(changed))
    except PolicyFileError:
        return
    assert policy.version != Policy.parse(GOOD).version


def test_equivalent_files_are_different_versions() -> None:
    # The version identifies bytes, not meaning: a reformatted file is a new version, on purpose.
    assert (
        Policy.parse(b"version: 1\nstaging: public\n").version
        != Policy.parse(b"version: 1\nstaging:  public\n").version
    )
