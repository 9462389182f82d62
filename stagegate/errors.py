"""The root of stagegate's errors.

Every layer raises subclasses of :class:`StagegateError`, subclassing a built-in where one
fits, so callers can catch by meaning. HTTP status codes are chosen only in ``api/`` and
exit codes only in ``client/``.
"""


class StagegateError(Exception):
    """Base of every error stagegate raises on purpose."""


class InvalidInputError(StagegateError, ValueError):
    """The request itself is wrong: a bad URL, an unsafe key, an unknown option value."""


class NotFoundError(StagegateError, LookupError):
    """A named thing (bucket, prefix, path, job) does not exist."""


class ExistsError(StagegateError):
    """A thing that must be new already exists."""


class TooLargeError(InvalidInputError):
    """An input is larger than stagegate accepts (a request body, a file that should be small)."""
