"""Tests for Policy.decide: zones, reasons, the reason cap, and agreement with a brute-force rule."""

import json
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stagegate.errors import InvalidInputError
from stagegate.policies.decision import MAX_REASONS
from stagegate.policies.levels import UNCLASSIFIED
from stagegate.policies.policy import EgressRule, Policy
from stagegate.policies.zones import Zone

POLICY = Policy.parse(
    b"""\
version: 1
staging: internal
egress:
  - {prefix: "s3://", max_level: public}
  - {prefix: "s3://models", max_level: confidential}
  - {prefix: "s3://models/secret/", max_level: restricted}
  - {prefix: "/", max_level: public}
"""
)
LEVELS = POLICY.levels.names
ALL_LABELS = [*LEVELS, UNCLASSIFIED, "secret", "Top Secret", ""]


def test_staging_allowed() -> None:
    decision = POLICY.decide(Zone.staging(), [("a", "public"), ("b/c", "Internal")])
    assert decision.allowed
    assert decision.reasons == ()
    assert (decision.offending_count, decision.object_count) == (0, 2)
    assert (decision.max_level, decision.highest_label, decision.egress_rule) == (
        "internal",
        "internal",
        None,
    )
    assert decision.policy_version == POLICY.version


def test_staging_denied_reasons_name_object_and_label() -> None:
    decision = POLICY.decide(
        Zone.staging(),
        [
            ("a/b.bin", "confidential"),
            ("ok", "public"),
            ("c.txt", UNCLASSIFIED),
            ("d", "secret"),
            ("e", "Top Secret"),
        ],
    )
    assert not decision.allowed
    assert decision.reasons == (
        "a/b.bin is confidential; staging accepts at most internal",
        "c.txt is unclassified: add a .classification file or a classification tag",
        "d has unknown label 'secret': not one of public < internal < confidential < restricted",
        "e has invalid label 'Top Secret': a label is one word of a-z, 0-9, '_' or '-', "
        "starting with a letter",
    )
    assert decision.offending_count == 4
    assert decision.highest_label == UNCLASSIFIED


def test_unprintable_keys_are_escaped_in_reasons() -> None:
    decision = POLICY.decide(Zone.staging(), [("bad\nname", "restricted")])
    assert decision.reasons == ("'bad\\nname' is restricted; staging accepts at most internal",)


def test_empty_dataset_is_allowed() -> None:
    decision = POLICY.decide(Zone.staging(), [])
    assert decision.allowed
    assert decision.highest_label is None
    assert decision.object_count == 0


@pytest.mark.parametrize(
    ("url", "prefix", "max_level"),
    [
        ("s3://data/x", "s3://", "public"),
        ("s3://models", "s3://models", "confidential"),
        ("s3://models/run-7/ckpt", "s3://models", "confidential"),
        ("s3://models-public/x", "s3://", "public"),  # prefixes match at a path boundary
        ("s3://models/secret/x", "s3://models/secret/", "restricted"),
        ("s3://models/secret", "s3://models", "confidential"),
        ("/mnt/out", "/", "public"),
    ],
)
def test_longest_covering_prefix_wins(url: str, prefix: str, max_level: str) -> None:
    decision = POLICY.decide(Zone.egress(url), [("k", max_level)])
    assert decision.allowed
    assert (decision.egress_rule, decision.max_level) == (prefix, max_level)
    higher = LEVELS[LEVELS.index(max_level) + 1 :]
    if higher:
        denied = POLICY.decide(Zone.egress(url), [("k", higher[0])])
        assert denied.reasons == (f"k is {higher[0]}; egress to {url} accepts at most {max_level}",)


def test_egress_no_rule_covers() -> None:
    consumed = []

    def objects() -> Iterator[tuple[str, str]]:
        consumed.append(True)
        yield ("k", "public")

    decision = POLICY.decide(Zone.egress("gs://bucket/x"), objects())
    assert not decision.allowed
    assert decision.reasons == ("no egress rule covers gs://bucket/x",)
    assert decision.max_level is None
    assert consumed == []


@pytest.mark.parametrize("url", ["", "/public/../secret", "s3://b/./x", "s3://b/x\n"])
def test_bad_egress_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidInputError):
        Zone.egress(url)


def test_rule_covers_boundary() -> None:
    rule = EgressRule("s3://models", "public")
    assert rule.covers("s3://models") and rule.covers("s3://models/a")
    assert not rule.covers("s3://models2") and not rule.covers("s3://mode")


def test_streaming_many_objects_keeps_twenty_reasons() -> None:
    def listing() -> Iterator[tuple[str, str]]:
        for i in range(300_000):
            yield (f"k{i}", "restricted" if i % 3 == 0 else "public")

    decision = POLICY.decide(Zone.staging(), listing())
    assert decision.offending_count == 100_000
    assert decision.object_count == 300_000
    assert len(decision.reasons) == MAX_REASONS
    assert decision.reasons_truncated
    assert decision.reasons[1].startswith("k3 is restricted")


def test_to_json_is_canonical_and_complete() -> None:
    decision = POLICY.decide(Zone.egress("s3://models/x"), [("a", "restricted")])
    record = json.loads(decision.to_json())
    assert record == {
        "allowed": False,
        "policy_version": POLICY.version,
        "zone": {"kind": "egress", "url": "s3://models/x"},
        "max_level": "confidential",
        "egress_rule": "s3://models",
        "highest_label": "restricted",
        "reasons": ["a is restricted; egress to s3://models/x accepts at most confidential"],
        "offending_count": 1,
        "object_count": 1,
        "consulted": [],
    }
    assert decision.to_json() == json.dumps(record, sort_keys=True, separators=(",", ":"))


zones = st.sampled_from(
    [
        Zone.staging(),
        Zone.egress("s3://x/y"),
        Zone.egress("s3://models/m"),
        Zone.egress("s3://models/secret/k"),
    ]
)
objects = st.lists(
    st.tuples(
        st.text(alphabet="ab/._-é", min_size=1, max_size=6).map(lambda k: "k" + k),
        st.sampled_from(ALL_LABELS),
    ),
    max_size=60,
)


def offends(label: str, max_level: str) -> bool:
    """The rule, stated directly: refused unless a known level no higher than the zone's maximum."""
    word = label.strip().lower()
    return word not in LEVELS or LEVELS.index(word) > LEVELS.index(max_level)


@given(zone=zones, items=objects)
def test_decide_matches_brute_force(zone: Zone, items: list[tuple[str, str]]) -> None:
    decision = POLICY.decide(zone, iter(items))
    max_level = POLICY.max_level(zone)
    assert max_level is not None
    offenders = [(k, label) for k, label in items if offends(label, max_level)]
    assert decision.allowed == (not offenders)
    assert decision.offending_count == len(offenders)
    assert decision.object_count == len(items)
    assert len(decision.reasons) == min(MAX_REASONS, len(offenders))
    for reason, (key, _) in zip(decision.reasons, offenders, strict=False):
        assert key in reason
    if items:
        words = [label.strip().lower() for _, label in items]
        expected = UNCLASSIFIED if any(w not in LEVELS for w in words) else max(words, key=LEVELS.index)
        assert decision.highest_label == expected


@given(zone=zones, items=objects, data=st.data())
def test_order_does_not_change_the_verdict(
    zone: Zone, items: list[tuple[str, str]], data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(items))
    a, b = POLICY.decide(zone, items), POLICY.decide(zone, shuffled)
    assert (a.allowed, a.offending_count, a.highest_label, a.object_count) == (
        b.allowed,
        b.offending_count,
        b.highest_label,
        b.object_count,
    )


@given(n=st.integers(0, 60))
def test_reasons_are_capped_with_a_correct_count(n: int) -> None:
    decision = POLICY.decide(Zone.staging(), ((f"k{i}", UNCLASSIFIED) for i in range(n)))
    assert decision.offending_count == n
    assert [r.split(" ")[0] for r in decision.reasons] == [f"k{i}" for i in range(min(n, MAX_REASONS))]
    assert decision.reasons_truncated == (n > MAX_REASONS)
