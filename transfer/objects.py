"""What a source says about one object, and what the engine recorded after copying it."""

from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class SourceObject:
    """One object as the source listed it.

    ``key`` is relative to the source prefix and '/'-separated. ``revision`` identifies the
    exact bytes: the S3 ETag (plus ``version`` on versioned buckets), a POSIX file's
    ``mtime_ns:size``, or what an fsspec backend offers. ``checksum_algorithm`` names a
    full-object checksum the source publishes for it (S3 lists the algorithm, the value
    arrives with the object), if any. ``label`` is the object's own classification label
    as the source stores it (an S3 object tag, a POSIX extended attribute), raw and
    unvalidated: what it means is the policy's business, not the engine's.
    """

    key: str
    size: int
    revision: str | None = None
    version: str | None = None
    mtime: float | None = None
    checksum_algorithm: str | None = None
    label: str | None = None


@dataclass(frozen=True, slots=True)
class LabelSpec:
    """Where sources find labels: the S3 tag and POSIX xattr holding an object's own label,
    and the name of the files whose content labels their directory. Label files are read
    while planning and never staged as data."""

    tag: str
    xattr: str
    file_name: str


class Verification(StrEnum):
    """How strongly a copied file is known to equal the source object."""

    SOURCE = "source"  # matched a checksum the source published
    LOCAL = "local"  # hashed while written; the source published nothing to compare with


@dataclass(frozen=True, slots=True)
class CopiedFile:
    """The record of one verified file in the dataset: the manifest line."""

    key: str
    size: int
    revision: str | None
    version: str | None
    blake3: str
    verification: Verification
    source_checksum: str | None  # "algorithm:hex", the value the source published
    mtime_ns: int  # of the written file, to recognise it untouched on resume
    # "algorithm:hex" the destination reported for what it stored (egress), when it reads back
    destination_checksum: str | None = None
    # the effective label decided at copy time, where the object's own label was read only
    # then (S3 tags, see transfer.sources.s3); None where the plan's label stands
    label: str | None = None

    def to_json(self) -> dict[str, object]:
        # Optional fields only when set: staging journals stay as they were.
        extra: dict[str, object] = {}
        if self.destination_checksum is not None:
            extra["destination_checksum"] = self.destination_checksum
        if self.label is not None:
            extra["label"] = self.label
        return {
            "key": self.key,
            "size": self.size,
            "revision": self.revision,
            "version": self.version,
            "blake3": self.blake3,
            "verification": self.verification.value,
            "source_checksum": self.source_checksum,
            "mtime_ns": self.mtime_ns,
            **extra,
        }

    @classmethod
    def from_json(cls, d: dict[str, object]) -> "CopiedFile":
        return cls(
            key=str(d["key"]),
            size=int(d["size"]),  # type: ignore[call-overload]
            revision=None if d.get("revision") is None else str(d["revision"]),
            version=None if d.get("version") is None else str(d["version"]),
            blake3=str(d["blake3"]),
            verification=Verification(str(d["verification"])),
            source_checksum=None if d.get("source_checksum") is None else str(d["source_checksum"]),
            mtime_ns=int(d["mtime_ns"]),  # type: ignore[call-overload]
            destination_checksum=_optional(d.get("destination_checksum")),
            label=_optional(d.get("label")),
        )

    def matches(self, obj: SourceObject) -> bool:
        """True if this record was made from exactly ``obj``'s bytes."""
        return (
            self.key == obj.key
            and self.size == obj.size
            and self.revision == obj.revision
            and self.version == obj.version
        )


def _optional(value: object) -> str | None:
    return None if value is None else str(value)
