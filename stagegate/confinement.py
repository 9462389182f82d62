"""Which sources a service staging may read: the requester's, never merely the worker's.

A node worker reads with its own rights, which are wider than any one user's. So on the
service a local path (a plain path or ``file://``) is read only under a source root the
operator configured (none by default), each root a path template with ``{user}`` and
``{project}`` filled in from the requester's token: ``/mnt/nfs/home/{user}`` lets alice read
``/mnt/nfs/home/alice/...`` and nothing of bob's. Every other scheme but ``s3`` (fsspec's
``local://``, ``zip://``, ``memory://``, chained ``a::b`` URLs...) is refused unless the
operator lists it. Paths are compared segment by segment, never as text, and a path with
``.``, ``..`` or empty segments is refused outright rather than normalised.

Pure rules: the API applies them at submit, the worker again before it opens anything (and
then walks the path without following links, which only it can do).
"""

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from stagegate.errors import InvalidInputError, StagegateError
from stagegate.paths import plain_segments

# The settings these rules are parsed from (read by stagegate.settings), named in errors.
SOURCE_ROOTS_ENV = "STAGEGATE_SOURCE_ROOTS"
SOURCE_SCHEMES_ENV = "STAGEGATE_SOURCE_SCHEMES"
ALWAYS_ALLOWED = frozenset({"s3"})
LOCAL_SCHEMES = frozenset({"", "file", "local"})  # fsspec's local:// and file:: are local paths too
PLACEHOLDERS = ("user", "project")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")


class SourceNotPermittedError(StagegateError, PermissionError):
    """The requester may not have the service read this source."""


@dataclass(frozen=True, slots=True)
class LocalSourcePath:
    """A local source, split into its segments (absolute, none empty, ``.`` or ``..``)."""

    path: str
    segments: tuple[str, ...]


def _safe_segment(value: str) -> bool:
    return value not in ("", ".", "..") and "/" not in value and "\0" not in value


def split_local(path: str) -> tuple[str, ...]:
    """The segments of an absolute local source path, refused if it needs normalising."""
    return plain_segments(path, "the source path")


def local_path_of(url: str) -> LocalSourcePath | None:
    """The local path ``url`` names (as the worker's source opener reads it), or None if it is
    not a local source."""
    scheme = urlsplit(url).scheme if "://" in url else ""
    if scheme == "":
        return LocalSourcePath(url, split_local(url))
    if scheme == "file":
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise InvalidInputError(
                "a file:// URL with a remote host is not supported; mount it and give the path"
            )
        path = unquote(parts.path)
        return LocalSourcePath(path, split_local(path))
    return None


def _protocols(url: str) -> list[str]:
    """The protocols of an fsspec URL, each member of a chained ``a::b::c`` URL; a member with
    no ``://`` that is not a bare protocol name is a local path."""
    protocols = []
    for member in url.split("::"):
        if "://" in member:
            protocols.append(member.split("://", 1)[0].lower())
        elif _SCHEME.match(member):
            protocols.append(member.lower())
        else:
            protocols.append("")
    return protocols


def permitted_everywhere(url: str) -> bool:
    """Whether every worker lets every requester read ``url`` (a plain ``s3://`` URL): its
    check needs no node's settings or filesystem, so the API may act on it alone."""
    return _protocols(url) == ["s3"]


@dataclass(frozen=True, slots=True)
class RootTemplate:
    """One configured source root, e.g. ``/mnt/nfs/home/{user}``."""

    text: str
    segments: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> "RootTemplate":
        try:
            segments = split_local(text)
        except InvalidInputError as exc:
            raise InvalidInputError(f"{SOURCE_ROOTS_ENV}: bad root {text!r}: {exc}") from None
        if not segments:
            raise InvalidInputError(f"{SOURCE_ROOTS_ENV}: '/' cannot be a source root (name a directory)")
        for name in _PLACEHOLDER.findall(text):
            if name not in PLACEHOLDERS:
                raise InvalidInputError(
                    f"{SOURCE_ROOTS_ENV}: unknown placeholder {{{name}}} in {text!r}; "
                    f"only {{user}} and {{project}} are filled in"
                )
        if "{" in _PLACEHOLDER.sub("", text) or "}" in _PLACEHOLDER.sub("", text):
            raise InvalidInputError(f"{SOURCE_ROOTS_ENV}: unbalanced braces in {text!r}")
        return cls(text, segments)

    def expand(self, user: str, project: str | None) -> tuple[str, ...] | None:
        """The root's segments for this requester, or None if it does not apply to them (it
        needs a project they have not, or a value that is not one plain path segment)."""
        values = {"user": user, "project": project}
        out = []
        for segment in self.segments:
            names = _PLACEHOLDER.findall(segment)
            if any(values[n] is None or not _safe_segment(str(values[n])) for n in names):
                return None
            filled = _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), segment)
            if not _safe_segment(filled):
                return None
            out.append(filled)
        return tuple(out)


@dataclass(frozen=True, slots=True)
class SourceRules:
    """What a service staging may read. The default permits S3 only."""

    roots: tuple[RootTemplate, ...] = ()
    schemes: frozenset[str] = frozenset()  # besides s3; never a local one

    @classmethod
    def parse(cls, roots: str | None, schemes: str | None = None) -> "SourceRules":
        """From the operator's settings: roots separated by ``:``, schemes by ``,``."""
        templates = tuple(RootTemplate.parse(r) for r in (roots or "").split(":") if r.strip())
        names = frozenset(s.strip().lower() for s in (schemes or "").split(",") if s.strip())
        local = sorted(n for n in names if n in LOCAL_SCHEMES)
        if local:
            raise InvalidInputError(
                f"{SOURCE_SCHEMES_ENV}: {', '.join(local)} would read local paths unconfined; "
                f"list local directories in {SOURCE_ROOTS_ENV} instead"
            )
        return cls(templates, names)

    def roots_for(self, user: str, project: str | None) -> list[str]:
        """The roots that apply to this requester, as paths: what an error may show them."""
        expanded = (t.expand(user, project) for t in self.roots)
        return ["/" + "/".join(e) for e in expanded if e is not None]

    def local_root(self, url: str, user: str, project: str | None) -> tuple[str, tuple[str, ...]] | None:
        """For a permitted local source: (its root for this requester, the segments below it);
        None for a permitted non-local source. Raises :class:`SourceNotPermittedError` (or
        :class:`InvalidInputError` for a malformed path) otherwise."""
        local = local_path_of(url)
        if local is None:
            self._check_scheme(url)
            return None
        for template in self.roots:
            root = template.expand(user, project)
            if root is not None and local.segments[: len(root)] == root:
                return "/" + "/".join(root), local.segments[len(root) :]
        mine = self.roots_for(user, project)
        where = (
            f"under your source roots ({', '.join(mine)})"
            if mine
            else f"here: the operator has configured no source root for you ({SOURCE_ROOTS_ENV})"
        )
        raise SourceNotPermittedError(
            "the service reads local paths with the worker's rights, so only paths "
            f"{where}; this source is outside them. Stage from S3, or ask the operator for a root"
        )

    def check(self, url: str, user: str, project: str | None) -> None:
        """Raise unless ``user`` (of ``project``) may have the service read ``url``."""
        self.local_root(url, user, project)

    def _check_scheme(self, url: str) -> None:
        protocols = _protocols(url)
        allowed = ALWAYS_ALLOWED | self.schemes
        if len(protocols) > 1 and any(p in LOCAL_SCHEMES for p in protocols):
            raise SourceNotPermittedError(
                "a chained URL reading a local path is not permitted on the service; "
                f"list the directory in {SOURCE_ROOTS_ENV} and give its path"
            )
        refused = sorted({p for p in protocols if p not in allowed})
        if refused:
            raise SourceNotPermittedError(
                f"the service does not read {', '.join(refused)}:// sources; it reads "
                f"{', '.join(sorted(allowed))}:// and local paths under the configured source roots "
                f"(an operator may allow more schemes in {SOURCE_SCHEMES_ENV})"
            )
