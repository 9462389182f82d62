"""The pure parts of the node's cache checks (workers.cache_integrity)."""

from hypothesis import given
from hypothesis import strategies as st

from stagegate.ledger import BatchRange, ManifestEntry
from stagegate.workers.cache_integrity import batches_of, first_mismatch

MANIFEST = [("a", "h1"), ("b/c", "h2"), ("d", "h3")]


def test_identical_trees_match() -> None:
    assert first_mismatch(iter(MANIFEST), iter(MANIFEST)) is None


def test_each_difference_is_named_by_its_key() -> None:
    assert first_mismatch([("a", "h1"), ("b/c", "XX"), ("d", "h3")], MANIFEST) == (
        "b/c: its BLAKE3 differs from the manifest's"
    )
    assert (
        first_mismatch([("a", "h1"), ("d", "h3")], MANIFEST) == "b/c: in the manifest but missing on the node"
    )
    assert first_mismatch([*MANIFEST, ("e", "h4")], MANIFEST) == "e: on the node but not in the manifest"
    assert first_mismatch([("a", None), ("b/c", "h2"), ("d", "h3")], MANIFEST) == "a: not a regular file"


@given(
    sizes=st.lists(st.integers(0, 50), max_size=60),
    max_files=st.integers(1, 7),
    max_bytes=st.integers(1, 120),
)
def test_batches_cover_every_entry_once_in_order_within_the_limits(
    sizes: list[int], max_files: int, max_bytes: int
) -> None:
    entries = [ManifestEntry(f"k{i:03d}", s) for i, s in enumerate(sizes)]
    batches = list(batches_of(entries, max_files, max_bytes))
    assert sum(b.files for b in batches) == len(entries)
    assert sum(b.bytes for b in batches) == sum(sizes)
    start = 0
    for batch in batches:
        members = entries[start : start + batch.files]
        assert batch == BatchRange(
            members[0].key, members[-1].key, len(members), sum(e.size for e in members)
        )
        assert batch.files <= max_files and (batch.bytes <= max_bytes or batch.files == 1)
        start += batch.files
