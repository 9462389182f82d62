"""Where the bytes of a manifest entry come from: the source, or a file already on this node.

A staging reads every object from its source unless the same bytes already lie on the node
(delta staging): a dataset cached here whose manifest holds an entry with the same bytes.
"The same bytes" is decided from what the two manifests say, never from the cached file
(which is hashed after it is taken, :mod:`transfer.local_take`):

- the same strong checksum the sources published (SHA-256: a CRC is no proof of identity);
- or the same revision and size, where a revision names content: an S3 ETag is derived from
  the object's bytes (or unique to the object), so it holds across keys and buckets; a POSIX
  revision is ``mtime_ns:size``, which two different files may share, so it counts only for
  the same file of the same source.

Pure: the caller (the node worker) looks the candidates up in the ledger and does the take.
A peer (another node's worker serving its verified files) would be a third origin here.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from stagegate.transfer.objects import SourceObject

# Checksums a source publishes that identify content (no forgery short of breaking the hash).
STRONG_CHECKSUMS = frozenset({"sha256"})
# Sources whose revision (the ETag) names the bytes, wherever the object lies.
CONTENT_REVISIONS = ("s3://",)


class Origin(StrEnum):
    SOURCE = "source"  # read from the staging's source
    CACHE = "cache"  # taken from a dataset already cached on this node


@dataclass(frozen=True, slots=True)
class CachedCopy:
    """A verified file of a ready dataset cached on this node, as its manifest records it."""

    digest: str  # the cached dataset's
    dataset: str  # the cached dataset's directory
    source: str  # the URL it was staged from
    key: str  # relative to that dataset (and to its source)
    size: int
    revision: str | None
    source_checksum: str | None  # "algorithm:hex", as that source published it
    blake3: str  # what the file must hash to
    verification: str  # how it was verified when it was copied


@dataclass(frozen=True, slots=True)
class Take:
    """One entry and where its bytes come from (``cached`` set when from the cache)."""

    obj: SourceObject
    origin: Origin
    cached: CachedCopy | None = None


def strong_checksum(checksum: str | None) -> str | None:
    """``checksum`` ("algorithm:hex") if its algorithm identifies content, else None."""
    if checksum is None or ":" not in checksum:
        return None
    algorithm, value = checksum.split(":", 1)
    return checksum if algorithm.lower() in STRONG_CHECKSUMS and value else None


def same_bytes(obj: SourceObject, checksum: str | None, source: str, cached: CachedCopy) -> bool:
    """True if the manifests say ``obj`` (of ``source``, published ``checksum``) and ``cached``
    hold the same bytes."""
    if obj.size != cached.size:
        return False
    mine = strong_checksum(checksum)
    if mine is not None and mine == strong_checksum(cached.source_checksum):
        return True
    if obj.revision is None or obj.revision != cached.revision:
        return False
    if source.startswith(CONTENT_REVISIONS) and cached.source.startswith(CONTENT_REVISIONS):
        return True
    return source.rstrip("/") == cached.source.rstrip("/") and obj.key == cached.key


def choose_origins(
    entries: Sequence[tuple[SourceObject, str | None]], source: str, candidates: Iterable[CachedCopy]
) -> list[Take]:
    """Where each of ``entries`` ((object, published checksum), in order) comes from: the first
    candidate holding the same bytes, else the source. A candidate at the same key is
    preferred (a new version of a dataset keeps most of its layout)."""
    by_revision: dict[tuple[str, int], list[CachedCopy]] = {}
    by_checksum: dict[str, list[CachedCopy]] = {}
    for c in candidates:
        if c.revision is not None:
            by_revision.setdefault((c.revision, c.size), []).append(c)
        strong = strong_checksum(c.source_checksum)
        if strong is not None:
            by_checksum.setdefault(strong, []).append(c)
    takes: list[Take] = []
    for obj, checksum in entries:
        found = [
            *by_checksum.get(strong_checksum(checksum) or "", ()),
            *(by_revision.get((obj.revision, obj.size), ()) if obj.revision is not None else ()),
        ]
        matching = [c for c in found if same_bytes(obj, checksum, source, c)]
        matching.sort(key=lambda c: c.key != obj.key)  # stable: the same key first
        if matching:
            takes.append(Take(obj, Origin.CACHE, matching[0]))
        else:
            takes.append(Take(obj, Origin.SOURCE))
    return takes
