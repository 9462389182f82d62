"""Classification levels: an ordered list of label words, lowest first.

The default order is ``public < internal < confidential < restricted``; a policy file may
rename or extend it. ``unclassified`` is not a level: it is what an object without any
label resolves to, and it is never allowed anywhere.

A label word is normalised by stripping surrounding whitespace and lowercasing; the result
must match ``^[a-z][a-z0-9_-]*$``. Raw non-ASCII text is never lowercased into a level name
(the Kelvin sign lowercases to ``k``), so a look-alike label stays unknown and is denied.
"""

import re
from collections.abc import Iterable

from stagegate.policies.errors import LevelError

UNCLASSIFIED = "unclassified"
DEFAULT_LEVEL_NAMES = ("public", "internal", "confidential", "restricted")

_WORD = re.compile(r"[a-z][a-z0-9_-]*")


def normalize_label(raw: str) -> str:
    """Strip whitespace and lowercase ASCII text; non-ASCII text is only stripped."""
    word = raw.strip()
    return word.lower() if word.isascii() else word


def is_label_word(word: str) -> bool:
    """True if ``word`` (already normalised) has the shape of a label: ``[a-z][a-z0-9_-]*``."""
    return _WORD.fullmatch(word) is not None


class Levels:
    """An ordered set of level names, lowest first. Immutable.

    Methods taking a label normalise it first, so ``rank(" Public")`` is ``rank("public")``.
    """

    __slots__ = ("_names", "_rank")

    def __init__(self, names: Iterable[str]) -> None:
        """Raise :class:`LevelError` unless ``names`` are distinct, well-formed and not reserved."""
        normalised: list[str] = []
        for raw in names:
            if not isinstance(raw, str):
                raise LevelError(f"level names must be strings, got {raw!r}")
            word = normalize_label(raw)
            if not is_label_word(word):
                raise LevelError(
                    f"invalid level name {raw!r}: a level is one word of a-z, 0-9, '_' or '-', "
                    "starting with a letter"
                )
            if word == UNCLASSIFIED:
                raise LevelError(
                    f"{UNCLASSIFIED!r} is reserved for objects without a label; it cannot be a level"
                )
            if word in normalised:
                raise LevelError(f"level {word!r} is listed twice")
            normalised.append(word)
        if not normalised:
            raise LevelError("at least one level is needed")
        self._names = tuple(normalised)
        self._rank = {name: i for i, name in enumerate(normalised)}

    @property
    def names(self) -> tuple[str, ...]:
        """The level names, lowest first."""
        return self._names

    def __repr__(self) -> str:
        return f"Levels({list(self._names)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Levels) and other._names == self._names

    def __hash__(self) -> int:
        return hash(self._names)

    def describe(self) -> str:
        """``public < internal < ...``: for messages."""
        return " < ".join(self._names)

    def is_known(self, label: str) -> bool:
        """True if ``label`` names one of the levels (``unclassified`` never does)."""
        return normalize_label(label) in self._rank

    def rank_or_none(self, label: str) -> int | None:
        """The position of ``label`` (0 is lowest), or None if it is not a level."""
        return self._rank.get(normalize_label(label))

    def rank(self, label: str) -> int:
        """The position of ``label`` (0 is lowest); :class:`LevelError` if it is not a level."""
        rank = self.rank_or_none(label)
        if rank is None:
            raise LevelError(self.unknown_message(label))
        return rank

    def check(self, label: str) -> str:
        """The normalised ``label`` if it is a level, else :class:`LevelError`."""
        return self._names[self.rank(label)]

    def unknown_message(self, label: str) -> str:
        """Why ``label`` is not a level, worded for the person who must fix it."""
        word = normalize_label(label)
        if word == UNCLASSIFIED:
            return f"{UNCLASSIFIED!r} is not a level (it means no label was found)"
        return f"unknown label {word!r}: not one of {self.describe()}"

    def highest(self, labels: Iterable[str]) -> str:
        """The label governing data combined from ``labels`` (lineage: a checkpoint's datasets).

        That is the highest level among them, except that the result is ``unclassified`` if
        any label is ``unclassified`` or there are no labels at all: data derived from data
        of unknown sensitivity has unknown sensitivity, and ``unclassified`` is never allowed,
        so the combination fails closed. A label that is neither a level nor ``unclassified``
        raises :class:`LevelError` (in lineage it can only be a bug).
        """
        top = -1
        for label in labels:
            word = normalize_label(label)
            if word == UNCLASSIFIED:
                return UNCLASSIFIED
            top = max(top, self.rank(word))
        return self._names[top] if top >= 0 else UNCLASSIFIED


DEFAULT_LEVELS = Levels(DEFAULT_LEVEL_NAMES)


def highest_label(labels: Iterable[str], levels: Levels = DEFAULT_LEVELS) -> str:
    """:meth:`Levels.highest` on ``levels`` (the default levels unless given)."""
    return levels.highest(labels)
