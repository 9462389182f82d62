"""The writing half of an endpoint: what the copy engine needs of any destination.

Reading is :class:`transfer.sources.base.Source` (list, open a range, own label, published
checksum). Writing is this: create a temporary object, write it (in order, or at offsets
where the writer is ``positional``), commit it atomically under its final name with the
checksum the engine computed while reading, or discard it. A writer that can read back
what it stored (``read_back_algorithm``) checks that checksum in ``commit`` and leaves
nothing at the final name when it differs. Every writer is used by the one
:class:`transfer.engine.CopyEngine`: staging writes a node-local dataset
(:class:`transfer.sink.DatasetDir`), egress a confined directory
(:class:`transfer.endpoints.path.ConfinedDir`) or S3 (:class:`transfer.endpoints.s3.S3Writer`).
"""

from dataclasses import dataclass
from typing import Protocol, TypeVar

from stagegate.transfer.parts import PartRule


class TempObject(Protocol):
    """One object being written, not yet visible under its final name."""

    @property
    def fd(self) -> int | None:
        """A descriptor of the temporary file (to fsync, or to hash after ranged writes), or
        None where the object is not a local file (an S3 upload)."""
        ...

    def write(self, data: bytes | memoryview, /) -> None:
        """Append ``data``."""
        ...

    def write_at(self, offset: int, data: bytes | memoryview, /) -> None:
        """Write ``data`` at ``offset`` (``positional`` writers only)."""
        ...


@dataclass(frozen=True, slots=True)
class Present:
    """An object already at a final name: its size and, where the writer can tell, its
    checksum (``read_back_algorithm``, lowercase hex)."""

    size: int
    checksum: str | None


T = TypeVar("T", bound=TempObject)


class Writer(Protocol[T]):
    @property
    def where(self) -> str:
        """The destination, for messages."""
        ...

    @property
    def positional(self) -> bool:
        """True where temporary objects take writes at any offset (local files), so a big
        object may be filled by parallel ranged reads."""
        ...

    @property
    def read_back_algorithm(self) -> str | None:
        """The checksum the writer reads back from what it stored (``blake3``, ``crc64nvme``),
        or None where it trusts the bytes it wrote (the node-local dataset: its bytes were
        checked against the source's checksum on the way in)."""
        ...

    @property
    def part_rule(self) -> PartRule:
        """The part sizes it accepts (S3's minimum and maximum count)."""
        ...

    def open_temp(self, parts: tuple[str, ...], size: int, part_size: int) -> T:
        """A new temporary object for ``size`` bytes, to be committed at ``parts``; a
        streaming writer uploads it in parts of ``part_size`` (chosen under :attr:`part_rule`)."""
        ...

    def commit(self, temp: T, parts: tuple[str, ...], checksum: str | None) -> int:
        """Publish ``temp`` atomically at ``parts``; returns the final file's ``mtime_ns``
        (0 where there is none). With ``read_back_algorithm``, ``checksum`` is the value the
        engine computed while reading, and the stored object must have it, else
        :class:`transfer.errors.ChecksumMismatchError` and nothing stays at ``parts``."""
        ...

    def discard(self, temp: T) -> None:
        """Drop a temporary object that will not be committed."""
        ...


class EgressWriter(Writer[T], Protocol[T]):
    """A writer egress publishes into: it can say what is already at a final name, so a rerun
    recognises what an interrupted egress verified there, and it makes its commits durable
    once at the end."""

    @property
    def overwrites(self) -> bool:
        """False where an existing object is never replaced (a directory); True on S3, where
        the policy's egress rules govern the prefix."""
        ...

    def present(self, parts: tuple[str, ...]) -> Present | None:
        """What is at ``parts`` now, or None. Anything there that is not a regular file (a
        directory, a symlink) is reported with ``checksum`` None: it never matches."""
        ...

    def finish(self) -> None:
        """Make every commit durable (the directory entries of a path destination)."""
        ...

    def close(self) -> None: ...

    def prepare(self, keys: list[str]) -> None:
        """Before a byte moves: refuse keys the destination keeps for itself, clear what an
        interrupted egress left that is not visible (S3's abandoned multipart uploads)."""
        ...
