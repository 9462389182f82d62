"""Errors the policies package raises. All derive from :class:`stagegate.errors.InvalidInputError`.

Every one of them means "the input is wrong and a person must fix it" (a policy file, a
``.classification`` file, a level name), so callers can map them to a usage error.
"""

from typing import TYPE_CHECKING

from stagegate.errors import InvalidInputError, StagegateError

if TYPE_CHECKING:
    from stagegate.policies.decision import Decision


class LevelError(InvalidInputError):
    """A level name that is malformed, duplicated, reserved or not a level of the policy."""


class LabelFileError(InvalidInputError):
    """A ``.classification`` file whose content is not exactly one label word."""


class PolicyFileError(InvalidInputError):
    """A policy file that is not valid YAML or does not follow the schema."""


class PolicyDeniedError(StagegateError, PermissionError):
    """The policy refused a transfer; nothing moved. ``decision`` says why."""

    def __init__(self, decision: "Decision") -> None:
        more = decision.offending_count - len(decision.reasons)
        lines = [*decision.reasons, *([f"... and {more} more"] if more > 0 else []), *decision.consulted]
        super().__init__(
            f"denied by policy {decision.policy_version[:12]} for {decision.zone.describe()}:\n  "
            + "\n  ".join(lines)
        )
        self.decision = decision
