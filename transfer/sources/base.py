"""The interface every source implements, and the sorted walk the tree-shaped ones share.

A source lists objects in ascending key order (as S3 does) and opens one object, or a
byte range of it, for streaming. Listings are generators: nothing holds a whole listing.
"""

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from stagegate.transfer.label_sources import LabelFileAbove
from stagegate.transfer.objects import SourceObject


@dataclass(frozen=True, slots=True)
class PublishedChecksum:
    """A full-object checksum the source published: algorithm and lowercase hex digest."""

    algorithm: str
    hexdigest: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hexdigest}"


class ObjectReader(Protocol):
    """An open object, or a byte range of one."""

    published: PublishedChecksum | None
    """The checksum published for the whole object, if this reader read it whole."""

    def read(self, n: int, /) -> bytes:
        """Up to ``n`` bytes; ``b""`` at the end."""
        ...

    def own_label(self) -> str | None:
        """The object's own label as it is now (asked as cheaply as the source allows)."""
        ...

    def close(self) -> None: ...


class Source(Protocol):
    url: str
    prefers_ranged_reads: bool
    """True where one stream per object is slower than several ranged reads (object
    stores); big objects from such a source are read in parallel parts."""
    labels_listed: bool
    """True if :meth:`list` gives every object's own label; False where reading them costs a
    request per object (S3 tags), so they are asked for only at copy time, as each object
    is opened (:meth:`ObjectReader.own_label`)."""

    def list(self) -> Iterator[SourceObject]:
        """Every object under the source, keys relative to it, in ascending key order."""
        ...

    def open(self, obj: SourceObject, offset: int = 0, length: int | None = None) -> ObjectReader:
        """Stream ``obj`` (or ``length`` bytes of it from ``offset``).

        Raises :class:`transfer.errors.SourceChangedError` if the object is no longer the
        revision that was listed.
        """
        ...

    def published_checksum(self, obj: SourceObject) -> PublishedChecksum | None:
        """The whole-object checksum the source publishes for ``obj``, asked separately
        (used when the object is read in ranged parts)."""
        ...

    def own_label(self, obj: SourceObject) -> str | None:
        """``obj``'s own label as it is now (None without a label spec)."""
        ...

    def find(self, key: str) -> SourceObject | None:
        """The object at ``key`` (relative to the source) as it is now, or None."""
        ...

    def label_files_above(self, name: str) -> tuple[LabelFileAbove, ...]:
        """The label file ``name`` of each directory above the source, nearest first (for a
        source that is one object, its own directory first, since its listing holds nothing
        beside it), as high as this source may look: S3 up to the bucket's root, POSIX up to
        the mount's root, or on the service up to the requester's source root and no higher.

        Raises :class:`transfer.errors.LabelSourceError` for one that is not a regular file
        or is too big: skipped, it would leave the data under it unlabelled.
        """
        ...


@dataclass(frozen=True, slots=True)
class DirEntry:
    name: str
    is_dir: bool
    payload: object  # what the backend needs to describe the entry as an object


def walk_sorted(
    list_dir: Callable[[str], Iterable[DirEntry]], top: str = ""
) -> Iterator[tuple[str, DirEntry]]:
    """Yield ``(key, entry)`` for every non-directory under ``top`` in ascending key order.

    Byte order of whole keys puts ``a-c`` before ``a/b`` ('-' < '/'), so siblings sort by
    name with a trailing '/' on directories. Only one directory's entries are held per level.
    """
    entries = sorted(list_dir(top), key=lambda e: e.name + "/" if e.is_dir else e.name)
    for entry in entries:
        key = f"{top}/{entry.name}" if top else entry.name
        if entry.is_dir:
            yield from walk_sorted(list_dir, key)
        else:
            yield key, entry
