"""Errors the policies package raises. All derive from :class:`stagegate.errors.InvalidInputError`.

Every one of them means "the input is wrong and a person must fix it" (a policy file, a
``.classification`` file, a level name), so callers can map them to a usage error.
"""

from stagegate.errors import InvalidInputError


class LevelError(InvalidInputError):
    """A level name that is malformed, duplicated, reserved or not a level of the policy."""


class LabelFileError(InvalidInputError):
    """A ``.classification`` file whose content is not exactly one label word."""


class PolicyFileError(InvalidInputError):
    """A policy file that is not valid YAML or does not follow the schema."""
