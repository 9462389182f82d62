"""Errors the transfer engine raises. All derive from :class:`stagegate.errors.StagegateError`."""

from stagegate.errors import InvalidInputError, NotFoundError, StagegateError


class TransferError(StagegateError):
    """A transfer could not complete."""


class UnsafeKeyError(InvalidInputError):
    """An object key that would land outside the dataset root, or cannot be a safe path."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"unsafe key {key!r}: {reason}")
        self.key = key
        self.reason = reason


class SourceNotFoundError(NotFoundError):
    """The source URL names nothing: no bucket, no prefix, no path."""


class SourceChangedError(TransferError):
    """An object changed (version, ETag or size) between planning and copying."""


class LabelChangedError(SourceChangedError):
    """An object's classification label changed between planning and copying."""


class LabelSourceError(InvalidInputError):
    """A label source that cannot be trusted as one: a label file that is not a regular file
    (a link, a FIFO, a directory) or too big for one word. Label sources fail closed: the
    staging stops before a byte moves, and the person who labelled the data must fix it."""


class ChecksumMismatchError(TransferError):
    """The bytes received do not match the checksum the source published."""


class UnsafeDestinationError(TransferError):
    """Writing would follow a symlink or leave the destination root."""


class DestinationNotEmptyError(InvalidInputError):
    """The destination directory holds files that no earlier staging put there."""


class OtherDatasetError(DestinationNotEmptyError):
    """The destination holds (part of) another source's dataset; ``source`` names it."""

    def __init__(self, message: str, source: str) -> None:
        super().__init__(message)
        self.source = source


class StrayFilesError(DestinationNotEmptyError):
    """The destination holds files its new plan does not: gone from the source since the last
    staging, or put there by someone else. ``keys`` are the first few, ``count`` all of them."""

    def __init__(self, message: str, keys: list[str], count: int) -> None:
        super().__init__(message)
        self.keys = keys
        self.count = count


class DestinationBusyError(TransferError):
    """Another staging holds the destination's lock; ``pid`` is its process, when it recorded one."""

    def __init__(self, message: str, pid: int | None) -> None:
        super().__init__(message)
        self.pid = pid


class SourceReadError(TransferError):
    """Reading from the source failed in a way worth retrying (reset connection, timeout)."""


class PlanRejectedError(InvalidInputError):
    """The listing holds keys that cannot be staged safely; nothing was written."""

    def __init__(self, problems: list[str], count: int) -> None:
        shown = "\n  ".join(problems)
        more = f"\n  ... and {count - len(problems)} more" if count > len(problems) else ""
        super().__init__(f"{count} key(s) cannot be staged safely:\n  {shown}{more}")
        self.problems = problems
        self.count = count
