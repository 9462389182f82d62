"""Tests for transfer.manifest: the streaming digest is RFC 6962's Merkle Tree Hash."""

import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stagegate.transfer.errors import TransferError
from stagegate.transfer.manifest import ManifestDigest, entry_bytes
from stagegate.transfer.objects import SourceObject


def reference_mth(leaves: list[bytes]) -> bytes:
    """RFC 6962, section 2.1, written straight from the definition (recursive)."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < n:  # the largest power of two smaller than n
        k *= 2
    left, right = reference_mth(leaves[:k]), reference_mth(leaves[k:])
    return hashlib.sha256(b"\x01" + left + right).digest()


def digest_of(objects: list[SourceObject]) -> str:
    digest = ManifestDigest()
    for obj in objects:
        digest.add(obj)
    assert digest.count == len(objects)
    return digest.hexdigest()


def numbered(n: int) -> list[SourceObject]:
    return [SourceObject(f"k{i:04d}", size=i * 7, revision=f"r{i}") for i in range(n)]


def test_reference_matches_rfc6962_known_shape() -> None:
    """Sanity check of the reference itself on three leaves: node(node(a, b), c)."""
    a, b, c = (hashlib.sha256(b"\x00" + x).digest() for x in (b"a", b"b", b"c"))
    ab = hashlib.sha256(b"\x01" + a + b).digest()
    assert reference_mth([b"a", b"b", b"c"]) == hashlib.sha256(b"\x01" + ab + c).digest()


@pytest.mark.parametrize("n", range(71))
def test_digest_equals_reference_for_every_small_count(n: int) -> None:
    objects = numbered(n)
    expected = reference_mth([entry_bytes(o) for o in objects]).hex()
    assert digest_of(objects) == expected


def test_empty_digest_is_sha256_of_nothing() -> None:
    assert ManifestDigest().hexdigest() == hashlib.sha256(b"").hexdigest()
    assert ManifestDigest().count == 0


entries = st.builds(
    SourceObject,
    key=st.just(""),  # replaced by sorted unique keys below
    size=st.integers(0, 2**50),
    revision=st.none() | st.text(max_size=8),
    version=st.none() | st.text(max_size=8),
)
listings = st.tuples(
    st.lists(
        st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=6),
        unique=True,
        max_size=40,
    ),
    st.lists(entries, min_size=40, max_size=40),
).map(
    lambda t: [
        SourceObject(k, e.size, e.revision, e.version) for k, e in zip(sorted(t[0]), t[1], strict=False)
    ]
)


@settings(max_examples=200)
@given(listings)
def test_digest_equals_reference_for_generated_listings(objects: list[SourceObject]) -> None:
    expected = reference_mth([entry_bytes(o) for o in objects]).hex()
    assert digest_of(objects) == expected


def test_entry_bytes_is_canonical_json() -> None:
    obj = SourceObject("caf\u00e9/x", 12, "etag", None, mtime=1.5, checksum_algorithm="crc32")
    data = entry_bytes(obj)
    assert json.loads(data) == {
        "key": "caf\u00e9/x",
        "label": None,
        "revision": "etag",
        "size": 12,
        "version": None,
    }
    assert "caf\u00e9".encode() in data  # not \u-escaped
    # mtime and checksum_algorithm are not part of what the digest commits to
    assert entry_bytes(SourceObject("caf\u00e9/x", 12, "etag")) == data
    # the object's own label is: a relabelled dataset is a different dataset
    assert entry_bytes(SourceObject("caf\u00e9/x", 12, "etag", label="public")) != data


@pytest.mark.parametrize(
    "keys",
    [["b", "a"], ["a", "a"], ["a", "c", "b"], ["a/b", "a-c"], ["a", "b", "b"]],
)
def test_unsorted_or_duplicate_keys_are_refused(keys: list[str]) -> None:
    digest = ManifestDigest()
    with pytest.raises(TransferError):
        for key in keys:
            digest.add(SourceObject(key, 1))


def test_strictly_ascending_keys_by_code_point_are_accepted() -> None:
    digest_of([SourceObject(k, 0) for k in ["a", "a-c", "a.txt", "a/b", "a0", "\u00e9", "\U0001f600"]])


@settings(max_examples=100)
@given(st.integers(1, 40), st.data())
def test_changing_one_entry_changes_the_digest(n: int, data: st.DataObject) -> None:
    objects = numbered(n)
    original = digest_of(objects)
    i = data.draw(st.integers(0, n - 1), label="index")
    field = data.draw(st.sampled_from(["size", "revision", "version", "key"]), label="field")
    obj = objects[i]
    if field == "size":
        changed = SourceObject(obj.key, obj.size + 1, obj.revision)
    elif field == "revision":
        changed = SourceObject(obj.key, obj.size, obj.revision + "x")
    elif field == "version":
        changed = SourceObject(obj.key, obj.size, obj.revision, version="v2")
    else:
        changed = SourceObject(obj.key + "~", obj.size, obj.revision)  # still sorts in place
    objects[i] = changed
    assert digest_of(objects) != original


def test_dropping_or_adding_an_entry_changes_the_digest() -> None:
    objects = numbered(8)
    full = digest_of(objects)
    assert digest_of(objects[:-1]) != full
    assert digest_of(objects[1:]) != full
    assert digest_of([*objects, SourceObject("z", 0)]) != full


def test_revision_none_differs_from_empty_revision() -> None:
    assert digest_of([SourceObject("a", 1, None)]) != digest_of([SourceObject("a", 1, "")])
