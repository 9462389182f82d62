"""``--include`` / ``--exclude``: which keys of a source a staging or an egress takes, with
rclone's filter semantics, so a rule written for ``rclone copy`` selects the same files here.

Pure: patterns in, a predicate on keys out. It lives in the kernel because a request
(:mod:`stagegate.requests`) refuses a bad pattern on construction, in every layer alike.

The rules, as rclone's ``fs/filter`` applies them to files:

- ``*`` matches within one path segment, ``**`` across ``/``, ``?`` one character but ``/``,
  ``[...]`` a character class (``[^...]`` negated, ``[[:alpha:]]`` named), ``{a,b}``
  alternatives, ``\\c`` the character ``c`` itself;
- a pattern starting with ``/`` is anchored at the source's root, any other must match a whole
  trailing part of the key (``file.jpg`` matches ``file.jpg`` and ``dir/file.jpg``, not
  ``afile.jpg``);
- every include is tried first, in the order given, then every exclude; the first rule that
  matches decides; if any include was given, a key no rule matched is excluded (rclone's
  implied ``- **``), else it is included. So beside an include an exclude changes nothing:
  :meth:`KeyFilter.of` refuses the mix (rclone runs it, logging an error that the order is
  indeterminate), rather than stage files the user meant to leave out;
- an exclude ending in ``/`` excludes that directory's whole content (``dir/`` is ``dir/**``).

Refused, with an error naming the pattern, where rclone's meaning cannot be kept or the
pattern could only be a mistake: an include ending in ``/`` (in rclone it selects no file),
``{{regexp}}`` sections (Go's RE2 is not Python's ``re``), a ``..`` or ``.`` segment (a key
never has one, so it could only be an attempt to reach above the source), empty patterns,
control characters, and more rules or longer patterns than :mod:`stagegate.limits` allows.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from stagegate.errors import InvalidInputError
from stagegate.limits import MAX_FILTER_PATTERN_CHARS, MAX_FILTER_RULES

__all__ = ["KeyFilter", "glob_to_regex"]

# The ASCII classes RE2 knows by name, spelt for Python's re (which knows none).
_NAMED_CLASSES = {
    "alnum": "0-9A-Za-z",
    "alpha": "A-Za-z",
    "ascii": "\\x00-\\x7f",
    "blank": "\\t ",
    "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9",
    "graph": "!-~",
    "lower": "a-z",
    "print": " -~",
    "punct": "!-/:-@\\[-`{-~",
    "space": "\\t\\n\\v\\f\\r ",
    "upper": "A-Z",
    "word": "0-9A-Za-z_",
    "xdigit": "0-9A-Fa-f",
}
_ESCAPED = set(".+()|^$")  # regexp metacharacters a glob takes literally
# Inside a class, Python warns of (and will change) the meaning of these; a glob means them literally.
_ESCAPED_IN_CLASS = set("[&~|")


def _bad(pattern: str, why: str) -> InvalidInputError:
    return InvalidInputError(f"bad filter pattern {pattern!r}: {why}")


def _dead_excludes(rules: "KeyFilter") -> InvalidInputError:
    # With an include, rclone tries every include first and leaves out whatever none matches, so
    # an exclude can only leave out what is left out anyway: `--include '/val/**' --exclude
    # '*.tmp'` takes val/x.tmp (rclone copies it too, logging that the order is indeterminate).
    # Refused rather than staging files the user asked to leave out.
    return InvalidInputError(
        f"--exclude {rules.exclude[0]!r} would change nothing beside --include {rules.include[0]!r}: "
        "rclone's rules try every include first and leave out what none matches, so a file an "
        "include takes is taken whatever the excludes say. Narrow the includes instead (e.g. "
        "'/val/**/*.jpg'), or leave them out and list only excludes"
    )


def _class(pattern: str, i: int, out: list[str]) -> int:
    """Translate the character class starting at ``pattern[i] == '['``; the index after it."""
    out.append("[")
    i += 1
    start = i
    while i < len(pattern):
        c = pattern[i]
        if c == "]" and i > start:
            out.append("]")
            return i + 1
        if c == "\\" and i + 1 < len(pattern):
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if pattern.startswith("[:", i):
            end = pattern.find(":]", i + 2)
            name = pattern[i + 2 : end] if end >= 0 else ""
            if name not in _NAMED_CLASSES:
                raise _bad(pattern, f"unknown character class [:{name}:]")
            out.append(_NAMED_CLASSES[name])
            i = end + 2
            continue
        if pattern.startswith("--", i):  # RE2 refuses it; Python would read a set difference
            raise _bad(pattern, "bad character range")
        out.append("\\" + c if c in _ESCAPED_IN_CLASS else c)
        i += 1
    raise _bad(pattern, "mismatched '[' and ']'")


def glob_to_regex(pattern: str) -> str:
    """The regular expression (for Python's ``re.search``; it carries its own anchors) that
    rclone's ``GlobPathToRegexp`` makes of ``pattern``.

    Raises :class:`InvalidInputError` naming the pattern for what rclone refuses (``***``,
    unbalanced ``[]`` or ``{}``, a bad class) and for ``{{regexp}}``.
    """
    out = ["^"] if pattern.startswith("/") else ["(?:^|/)"]
    i = 1 if pattern.startswith("/") else 0
    depth = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            stars = len(pattern[i:]) - len(pattern[i:].lstrip("*"))
            if stars > 2:
                raise _bad(pattern, "too many stars (at most '**')")
            out.append("[^/]*" if stars == 1 else ".*")
            i += stars
            continue
        if c == "\\":
            if i + 1 == len(pattern):
                raise _bad(pattern, "a trailing '\\' escapes nothing")
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if c == "[":
            i = _class(pattern, i, out)
            continue
        if c == "{":
            if pattern.startswith("{{", i):
                raise _bad(pattern, "{{regexp}} sections are not supported; use glob syntax")
            depth += 1
            out.append("(?:")
        elif c == "}":
            if depth == 0:
                raise _bad(pattern, "mismatched '{' and '}'")
            depth -= 1
            out.append(")")
        elif c == "," and depth:
            out.append("|")
        elif c == "?":
            out.append("[^/]")
        elif c == "]":
            raise _bad(pattern, "mismatched ']'")
        else:
            out.append("\\" + c if c in _ESCAPED else c)
        i += 1
    if depth:
        raise _bad(pattern, "mismatched '{' and '}'")
    out.append("\\Z")
    return "".join(out)


def _checked(pattern: str, include: bool) -> str:
    """``pattern`` as it is compiled, after the refusals that are not the glob's own."""
    if not isinstance(pattern, str) or not pattern:
        raise InvalidInputError(f"a filter pattern must be a non-empty string, not {pattern!r}")
    if len(pattern) > MAX_FILTER_PATTERN_CHARS:
        raise _bad(pattern[:80] + "...", f"longer than {MAX_FILTER_PATTERN_CHARS} characters")
    if any(not ch.isprintable() for ch in pattern):
        raise _bad(pattern, "control characters cannot be part of a key")
    if any(segment in (".", "..") for segment in pattern.split("/")):
        raise _bad(pattern, "'.' and '..' never occur in a key: a filter cannot reach above the source")
    if pattern.endswith("/"):
        if include:
            raise _bad(
                pattern, f"an include ending in '/' selects no file (as in rclone): use {pattern + '**'!r}"
            )
        return pattern + "**"  # rclone: excluding dir/ is excluding dir/**
    return pattern


@dataclass(frozen=True, slots=True)
class KeyFilter:
    """The include and exclude rules of one request, compiled; call it with a key (relative to
    the source, no leading ``/``) to learn whether the key is taken."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    _rules: tuple[tuple[bool, re.Pattern[str]], ...] = field(
        default=(), init=False, repr=False, compare=False
    )

    @classmethod
    def of(cls, include: Iterable[str] = (), exclude: Iterable[str] = ()) -> "KeyFilter":
        """A filter from any iterables of patterns (a bare string is refused, not split)."""
        for what, given in (("include", include), ("exclude", exclude)):
            if isinstance(given, str):
                raise InvalidInputError(f"{what} must be a list of patterns, not the string {given!r}")
        made = cls(tuple(include), tuple(exclude))
        if made.include and made.exclude:
            raise _dead_excludes(made)
        return made

    def __post_init__(self) -> None:
        if len(self.include) + len(self.exclude) > MAX_FILTER_RULES:
            raise InvalidInputError(f"at most {MAX_FILTER_RULES} --include/--exclude rules may be given")
        rules = []
        for taken, patterns in ((True, self.include), (False, self.exclude)):
            for pattern in patterns:
                regex = glob_to_regex(_checked(pattern, taken))
                try:
                    rules.append((taken, re.compile(regex, re.DOTALL)))
                except re.error as exc:
                    raise _bad(pattern, str(exc)) from None
        object.__setattr__(self, "_rules", tuple(rules))

    @property
    def active(self) -> bool:
        """True if any rule was given (without one, every key is taken)."""
        return bool(self._rules)

    def __call__(self, key: str) -> bool:
        for taken, regex in self._rules:
            if regex.search(key):
                return taken
        return not self.include  # rclone's implied "- **" after any include

    def describe(self) -> str:
        """The rules as a command line gives them (``--include 'a/**' --exclude '*.tmp'``)."""
        words = [f"--include {p!r}" for p in self.include] + [f"--exclude {p!r}" for p in self.exclude]
        return " ".join(words)
