"""Where an entry's bytes come from: the pure rules of delta staging (transfer.origins)."""

from hypothesis import given
from hypothesis import strategies as st

from stagegate.transfer.objects import SourceObject
from stagegate.transfer.origins import CachedCopy, Origin, choose_origins, same_bytes, strong_checksum

S3_V1, S3_V2 = "s3://data/ds/v1", "s3://data/ds/v2"


def cached(
    key: str, size: int = 10, revision: str | None = '"e1"', source: str = S3_V1, checksum=None
) -> CachedCopy:  # type: ignore[no-untyped-def]
    return CachedCopy("d1", "/nvme/datasets/d1", source, key, size, revision, checksum, "b" * 64, "local")


def test_an_s3_etag_and_size_name_the_bytes_across_prefixes() -> None:
    obj = SourceObject("a.bin", 10, '"e1"')
    assert same_bytes(obj, None, S3_V2, cached("other/a.bin"))
    assert not same_bytes(SourceObject("a.bin", 11, '"e1"'), None, S3_V2, cached("a.bin")), "size differs"
    assert not same_bytes(SourceObject("a.bin", 10, '"e2"'), None, S3_V2, cached("a.bin")), "revision differs"
    assert not same_bytes(SourceObject("a.bin", 10, None), None, S3_V2, cached("a.bin", revision=None))


def test_a_posix_revision_counts_only_for_the_same_file_of_the_same_source() -> None:
    posix = "file:///mnt/nfs/ds"
    obj = SourceObject("a.bin", 10, "1700000000:10")
    same = cached("a.bin", revision="1700000000:10", source=posix)
    assert same_bytes(obj, None, posix + "/", same)
    # Another file (or another source) with the same mtime and size is not the same bytes.
    assert not same_bytes(obj, None, posix, cached("b.bin", revision="1700000000:10", source=posix))
    assert not same_bytes(obj, None, "file:///mnt/other", same)
    assert not same_bytes(obj, None, S3_V2, same), "an ETag never matches a POSIX revision's meaning"


def test_only_a_strong_checksum_proves_identity() -> None:
    obj = SourceObject("x", 10, "rev-a")
    sha = "sha256:" + "ab" * 32
    assert same_bytes(obj, sha, "file:///a", cached("y", revision="rev-b", source="file:///b", checksum=sha))
    crc = "crc32:deadbeef"
    assert strong_checksum(crc) is None
    assert not same_bytes(
        obj, crc, "file:///a", cached("y", revision="rev-b", source="file:///b", checksum=crc)
    )


def test_choose_prefers_the_same_key_and_falls_back_to_the_source() -> None:
    entries = [(SourceObject("a", 10, '"e1"'), None), (SourceObject("b", 10, '"new"'), None)]
    takes = choose_origins(entries, S3_V2, [cached("z"), cached("a")])
    assert [t.origin for t in takes] == [Origin.CACHE, Origin.SOURCE]
    assert takes[0].cached is not None and takes[0].cached.key == "a"
    assert takes[1].cached is None


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c", "d"]), st.integers(0, 3), st.sampled_from(['"e1"', '"e2"', None])
        ),
        max_size=8,
    ),
    st.lists(st.tuples(st.integers(0, 3), st.sampled_from(['"e1"', '"e2"', None])), max_size=6),
)
def test_a_cache_origin_is_always_a_matching_copy(objs, cands) -> None:  # type: ignore[no-untyped-def]
    entries = [(SourceObject(k, size, rev), None) for k, size, rev in dict.fromkeys(objs)]
    candidates = [cached(f"k{i}", size, rev) for i, (size, rev) in enumerate(cands)]
    takes = choose_origins(entries, S3_V2, candidates)
    assert [t.obj for t in takes] == [o for o, _ in entries]
    for take in takes:
        matching = [c for c in candidates if same_bytes(take.obj, None, S3_V2, c)]
        assert (take.origin is Origin.CACHE) == bool(matching)
        if take.cached is not None:
            assert take.cached in matching
