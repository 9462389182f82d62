"""Which tags and extended attributes hold an object's own label, and what they say together.

Pure rules, shared by every source. A label must not be lost to spelling: a tag
``Classification`` or `` classification `` and an xattr ``user.Classification`` all count as
the label, so that mislabelled-by-case data is refused or labelled, never staged as if it
had no label. Several such tags that disagree are not resolved here (the engine does not
know the policy's order of levels): they are reported together, a value that is no label
word, which every policy denies, naming them.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from stagegate.transfer.errors import LabelSourceError

CONFLICT_SEPARATOR = ", "  # joins disagreeing values: never part of a label word


def _fold(name: str) -> str:
    # Casefold, not lower: a look-alike that folds to the name (U+017F, long s) counts too.
    return ".".join(part.strip() for part in name.split(".")).casefold()


def is_label_name(name: str, wanted: str) -> bool:
    """True if the tag key or xattr ``name`` is ``wanted``, ignoring case and the whitespace
    around it and around each '.'-separated part (``user. Classification`` is
    ``user.classification``)."""
    return _fold(name) == _fold(wanted)


def combined_label(values: Iterable[str]) -> str | None:
    """The own label that the values of every matching tag or xattr make, or None if none.

    Values are stripped; values equal but for case are one. Values that disagree come back
    sorted and joined by ``", "`` (``"confidential, public"``): not a label word, so the
    policy denies the object and its reason shows every value.
    """
    distinct: dict[str, str] = {}
    for value in values:
        word = value.strip()
        key = word.casefold()
        distinct[key] = min(distinct.get(key, word), word)  # the same spelling in any tag order
    if not distinct:
        return None
    return CONFLICT_SEPARATOR.join(distinct[k] for k in sorted(distinct))


def not_a_label_file(key: str, what: str) -> LabelSourceError:
    """The error for the label file at ``key`` that is ``what`` (``"a symlink"``,
    ``"a directory"``): skipping it would leave its directory unlabelled, or under a parent's
    lower label, so it is refused instead."""
    return LabelSourceError(
        f"{key}: a label file must be a regular file holding one word, but this is {what}; "
        "replace it with a file such as 'public'"
    )


def too_big_a_label_file(where: str, size: int, limit: int) -> LabelSourceError:
    """The error for the label file at ``where`` of ``size`` bytes, more than ``limit``."""
    return LabelSourceError(
        f"{where}: {size} bytes, more than the {limit} a label file may hold; "
        "it must hold one word such as 'public'"
    )


@dataclass(frozen=True, slots=True)
class LabelFileAbove:
    """A place a label file was looked for above a source, in a directory (or S3 folder) that
    holds the source: ``where`` names the file as people write it
    (``s3://datasets/mini/.classification``, ``/mnt/nfs/alice/.classification``), ``content`` is
    what it holds, or None where there is none."""

    where: str
    content: bytes | None


def directories_above(path: str) -> list[str]:
    """The directories holding ``path`` (``/``-separated, no leading or trailing ``/``),
    nearest first, the root (``''``) last: ``a/b/c`` -> ``['a/b', 'a', '']``; none for ``''``."""
    found = []
    while path:
        path = path.rpartition("/")[0]
        found.append(path)
    return found
