"""Absolute paths in one spelling: what a request names is exactly what a worker opens.

Every layer that takes a local path from a requester (a service source, an egress run
directory or destination, a declassified checkpoint's run directory) refuses a path that
would need normalising instead of normalising it: ``/data/./x``, ``/data//x`` and
``/data/a/../x`` could each be checked against one name and opened as another. Paths are then
compared segment by segment, never as text, so ``/data/pub`` does not contain ``/data/public``.
"""

from stagegate.errors import InvalidInputError


def plain_segments(path: str, what: str = "the path") -> tuple[str, ...]:
    """The segments of the absolute ``path`` (``()`` for ``/``).

    Raises :class:`InvalidInputError` naming ``what`` for a relative path, a NUL, or an empty,
    ``.`` or ``..`` segment. One trailing ``/`` is allowed: ``/out/`` names ``/out``.
    """
    if "\0" in path:
        raise InvalidInputError(f"{what} contains a NUL character")
    if not path.startswith("/"):
        raise InvalidInputError(f"{what} must be an absolute path (start with /), not {path[:200]!r}")
    body = path[1:].removesuffix("/")
    segments = tuple(body.split("/")) if body else ()
    if any(s in ("", ".", "..") for s in segments):
        raise InvalidInputError(
            f"{what} {path[:200]!r} has an empty, '.' or '..' segment; give it in its plain form"
        )
    return segments


def plain_path(path: str, what: str = "the path") -> str:
    """``path`` in its one spelling (no trailing ``/``), or :class:`InvalidInputError`."""
    return "/" + "/".join(plain_segments(path, what))


def is_within(path: tuple[str, ...], root: tuple[str, ...]) -> bool:
    """True if ``path`` is ``root`` or below it, compared segment by segment."""
    return path[: len(root)] == root
