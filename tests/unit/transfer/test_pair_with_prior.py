"""Tests for transfer.stage.pair_with_prior: the merge-join of a plan with earlier records."""

from collections.abc import Iterator

from hypothesis import given, settings
from hypothesis import strategies as st

from stagegate.transfer.objects import CopiedFile, SourceObject, Verification
from stagegate.transfer.staging_steps import pair_with_prior


def copied(key: str) -> CopiedFile:
    return CopiedFile(key, 1, None, None, f"b3:{key}", Verification.LOCAL, None, 0)


def test_examples() -> None:
    entries = [SourceObject(k, 1) for k in ["a", "b", "d", "f"]]
    prior = [copied(k) for k in ["0", "b", "c", "d", "e", "z"]]
    pairs = list(pair_with_prior(iter(entries), iter(prior)))
    assert [(o.key, r.key if r else None) for o, r in pairs] == [
        ("a", None),
        ("b", "b"),
        ("d", "d"),
        ("f", None),
    ]


def test_no_prior_records() -> None:
    entries = [SourceObject("a", 1), SourceObject("b", 2)]
    assert list(pair_with_prior(iter(entries), iter([]))) == [(entries[0], None), (entries[1], None)]


def test_no_entries() -> None:
    assert list(pair_with_prior(iter([]), iter([copied("a")]))) == []


def test_streams_are_consumed_lazily() -> None:
    pulled: list[str] = []

    def prior() -> Iterator[CopiedFile]:
        for key in ["a", "b", "c", "d"]:
            pulled.append(key)
            yield copied(key)

    pairs = pair_with_prior(iter([SourceObject("b", 1), SourceObject("d", 1)]), prior())
    _, rec = next(pairs)
    assert rec is not None and rec.key == "b"
    assert pulled == ["a", "b"]


keys = st.text(st.sampled_from("ab-/.0\u00e9\U0001f600"), min_size=1, max_size=4)


@settings(max_examples=300)
@given(st.sets(keys, max_size=30), st.sets(keys, max_size=30))
def test_matches_a_dict_lookup(entry_keys: set[str], prior_keys: set[str]) -> None:
    entries = [SourceObject(k, len(k)) for k in sorted(entry_keys)]
    prior = [copied(k) for k in sorted(prior_keys)]
    by_key = {r.key: r for r in prior}
    pairs = list(pair_with_prior(iter(entries), iter(prior)))
    assert pairs == [(obj, by_key.get(obj.key)) for obj in entries]
