"""Where an object's label comes from: the higher of its own label and the nearest
``.classification`` file.

For an object with key ``a/b/c.bin`` two sources count:

1. its own label: the S3 object tag ``classification`` or the POSIX xattr
   ``user.classification`` (the transfer engine reads it and passes the raw string, or None);
2. the word in the nearest label file: ``a/b/.classification``, then ``a/.classification``,
   then ``.classification`` at the dataset root, then those of the directories above the
   dataset (``s3://bucket/mini/.classification`` for a staging of ``s3://bucket/mini/val``),
   nearest first.

A deeper file overrides a shallower one (the directory's owner refines its label), but an
own label only ever raises the file's: labels only rise, so tagging one file ``public``
cannot carry it out of a ``confidential`` directory. Ordering uses the policy's levels.
With neither, the label is ``unclassified``, which every policy denies.

The own label is passed through normalised but not validated: a malformed or unknown own
label (or label file word) is the result, for the policy to deny with a reason, never
dropped in favour of a lower known one. Label files are few and parsed up front, so a
malformed one is reported at once as :class:`LabelFileError` naming the file.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from stagegate.limits import MAX_LABEL_FILE_BYTES
from stagegate.policies.errors import LabelFileError
from stagegate.policies.levels import DEFAULT_LEVELS, UNCLASSIFIED, Levels, is_label_word, normalize_label

LABEL_FILE_NAME = ".classification"
LABEL_TAG = "classification"  # S3 object tag key
LABEL_XATTR = "user.classification"  # POSIX extended attribute

ORIGIN_OWN = "own"
ORIGIN_NONE = "none"


def parse_label_file(content: bytes | str, where: str = LABEL_FILE_NAME) -> str:
    """The normalised label word in a ``.classification`` file's ``content``.

    Surrounding whitespace (a trailing newline) is ignored. Raises :class:`LabelFileError`,
    naming ``where``, if the content is not UTF-8, is empty, holds more than one word, or the
    word is not of the form ``[a-z][a-z0-9_-]*`` after lowercasing.
    """
    if isinstance(content, bytes):
        if len(content) > MAX_LABEL_FILE_BYTES:
            raise LabelFileError(f"{where}: {len(content)} bytes; a label file holds one word")
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError:
            raise LabelFileError(
                f"{where}: not UTF-8 text; it must hold one word such as 'internal'"
            ) from None
    else:
        text = content
    words = text.split()
    if not words:
        raise LabelFileError(f"{where}: empty; it must hold one word such as 'internal'")
    if len(words) > 1:
        raise LabelFileError(f"{where}: {len(words)} words ({text.strip()[:80]!r}); it must hold exactly one")
    word = normalize_label(words[0])
    if not is_label_word(word):
        raise LabelFileError(
            f"{where}: {words[0][:80]!r} is not a label word (one word of a-z, 0-9, '_' or '-', "
            "starting with a letter)"
        )
    return word


def label_file_key(directory: str) -> str:
    """The key of the label file in ``directory`` ('' is the dataset root)."""
    return f"{directory}/{LABEL_FILE_NAME}" if directory else LABEL_FILE_NAME


@dataclass(frozen=True, slots=True)
class ResolvedLabel:
    """An object's label and where it came from.

    ``origin`` is ``"own"`` (tag or xattr), ``"file:<key of the label file>"`` such as
    ``"file:a/b/.classification"``, or ``"none"`` (the label is then ``unclassified``).
    """

    label: str
    origin: str


_NO_LABEL = ResolvedLabel(UNCLASSIFIED, ORIGIN_NONE)


class LabelResolver:
    """Resolves object labels from own labels and a dataset's label files, ordered by ``levels``
    (the policy's).

    ``label_files`` maps a directory key (``''`` for the dataset root, ``'a/b'`` for a
    subdirectory; no leading, trailing or doubled ``/``) to the content of the
    ``.classification`` file in it (text, or raw bytes as read). ``above``: the label files
    found above the dataset root, nearest first, as (where it is, content): the nearest one
    labels what no label file in the dataset does. Every file is parsed once here;
    :meth:`resolve` then costs one dict lookup per directory level of the key.
    """

    __slots__ = ("_above", "_by_directory", "_levels")

    def __init__(
        self,
        label_files: Mapping[str, str | bytes],
        levels: Levels = DEFAULT_LEVELS,
        above: Sequence[tuple[str, str | bytes]] = (),
    ) -> None:
        """Raise :class:`LabelFileError` for a malformed directory key or label file."""
        by_directory: dict[str, ResolvedLabel] = {}
        for directory, content in label_files.items():
            if directory and (directory.startswith("/") or directory.endswith("/") or "//" in directory):
                raise LabelFileError(
                    f"label file directory {directory!r} must be a relative key like 'a/b' ('' for the root)"
                )
            where = label_file_key(directory)
            by_directory[directory] = ResolvedLabel(parse_label_file(content, where), f"file:{where}")
        self._by_directory = by_directory
        self._levels = levels
        # Every one is parsed, so a malformed file above fails closed even where a nearer one rules.
        parsed = [ResolvedLabel(parse_label_file(text, where), f"file:{where}") for where, text in above]
        self._above = parsed[0] if parsed else _NO_LABEL

    def resolve(self, key: str, own: str | None = None) -> ResolvedLabel:
        """The label of the object at ``key`` whose own label (tag or xattr) is ``own``.

        The nearest label file in the key's directory or an ancestor applies, unless ``own``
        (normalised: stripped, lowercased) is a higher level; with neither, ``unclassified``.
        An own label or label file word that is not a level wins over a known one, even if
        empty or malformed, so that the policy denies it rather than the object falling back
        to a lower label: the result is never below either input.
        """
        nearest = self._nearest(key)
        if own is None:
            return nearest
        mine = ResolvedLabel(normalize_label(own), ORIGIN_OWN)
        if nearest is _NO_LABEL:
            return mine
        my_rank = self._levels.rank_or_none(mine.label)
        if my_rank is None:
            return mine
        file_rank = self._levels.rank_or_none(nearest.label)
        if file_rank is None or file_rank > my_rank:
            return nearest
        return mine

    def _nearest(self, key: str) -> ResolvedLabel:
        """The label of the nearest label file above ``key``, or ``unclassified``."""
        if not self._by_directory:
            return self._above
        # Walk up the parents: 'a/b/c.bin' looks in 'a/b', then 'a', then '', then above.
        directory = key
        while directory:
            cut = directory.rfind("/")
            directory = directory[:cut] if cut >= 0 else ""
            found = self._by_directory.get(directory)
            if found is not None:
                return found
        return self._above
