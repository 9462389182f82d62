"""Exit codes, chosen here and nowhere else, and the errors of talking to the service.

The service's errors map onto the same few codes as the embedded mode, by what the user
must do next:

- 2 (bad input): fix something first; retrying as is cannot help. Bad usage, a staging id
  or node that does not exist, a request the server refused as malformed, and a missing
  or invalid token (``STAGEGATE_TOKEN``).
- 3 (denied): refused. The policy denied the staging, or the token's role may not do this.
- 1 (failed): it did not work this time. A staging that failed or was released, an
  unreachable server, a server error; retrying later may succeed.
"""

import contextvars
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from stagegate.errors import StagegateError
from stagegate.states import STAGING_TERMINAL, StagingState

if TYPE_CHECKING:  # the models import nothing heavy, but errors.py stays a leaf at run time
    from stagegate.client.service_models import Staging

EXIT_OK = 0
EXIT_FAILED = 1  # the transfer failed; the service could not be reached or failed
EXIT_BAD_INPUT = 2  # bad usage or bad input: an unsafe key, a missing source, a bad policy file, a bad token
EXIT_DENIED = 3  # the policy refused (nothing moved), or the token's role may not do this
EXIT_TAMPERED = 4  # the audit chain is broken
EXIT_INTERRUPTED = 130

# Set by a command given --json: its errors are then printed on stdout as one JSON object too,
# so a program reading the JSON lines sees why it ended (the human message still goes to stderr).
_ERRORS_AS_JSON: contextvars.ContextVar[bool] = contextvars.ContextVar("errors_as_json", default=False)


def errors_as_json(wanted: bool = True) -> None:
    """Ask for this command's errors as a JSON line on stdout (``--json``)."""
    _ERRORS_AS_JSON.set(wanted)


def error_json(message: str, exit_code: int, reasons: Sequence[str] = ()) -> str | None:
    """The JSON line for an error ending the command, or None unless the command asked for it:
    ``{"event": "error", "error": ..., "exit_code": ..., "reasons": [...]}``."""
    if not _ERRORS_AS_JSON.get():
        return None
    event: dict[str, object] = {"event": "error", "error": message, "exit_code": exit_code}
    if reasons:
        event["reasons"] = list(reasons)
    return json.dumps(event)


# A staging in one of these states will not change any more.
TERMINAL_STATES = STAGING_TERMINAL


def state_exit_code(state: str) -> int:
    """The exit code for a staging last seen in ``state``: still running counts as ok."""
    if state == StagingState.DENIED:
        return EXIT_DENIED
    if state in (StagingState.FAILED, StagingState.RELEASED):
        return EXIT_FAILED
    return EXIT_OK


class ServiceError(StagegateError):
    """The service answered with an error, or not as its contract says. ``status`` is the
    HTTP status, when there was an answer."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AuthenticationError(ServiceError, PermissionError):
    """No token, or the server does not know it (HTTP 401)."""


class PermissionDeniedError(ServiceError, PermissionError):
    """The token's role may not do this (HTTP 403 without a policy decision)."""


class StagingDeniedError(ServiceError, PermissionError):
    """The classification policy denied the staging (HTTP 403 with reasons); nothing moved.
    ``staging`` is the denied staging when the server sent it."""

    def __init__(self, message: str, staging: "Staging | None", reasons: Sequence[str]) -> None:
        super().__init__(message, status=403)
        self.staging = staging
        self.reasons = tuple(reasons)


class ServiceUnavailableError(ServiceError, ConnectionError):
    """The server could not be reached, or said it cannot serve now (HTTP 502-504)."""


class ServiceProtocolError(ServiceError):
    """The server's answer is not what the contract describes (not JSON, a missing field)."""


class WaitTimeoutError(ServiceError, TimeoutError):
    """``ServiceClient.wait`` (or ``wait_egress``) gave up before the staging (the egress)
    finished; ``staging`` is the last state seen of a staging. It goes on."""

    def __init__(self, message: str, staging: "Staging | None" = None) -> None:
        super().__init__(message)
        self.staging = staging


class StagingFailedError(ServiceError):
    """A staging waited for ended failed or released, not ready; ``staging`` is how it ended."""

    def __init__(self, message: str, staging: "Staging") -> None:
        super().__init__(message)
        self.staging = staging


class EgressDeniedError(ServiceError, PermissionError):
    """The classification policy denied an egress on the service; nothing moved. ``egress`` is
    the service's view of it (with its ``reasons``)."""

    def __init__(self, message: str, egress: Mapping[str, Any]) -> None:
        super().__init__(message, status=None)
        self.egress = egress


class EgressFailedError(ServiceError):
    """An egress on the service failed; ``egress`` is the service's view of it (``errors``)."""

    def __init__(self, message: str, egress: Mapping[str, Any]) -> None:
        super().__init__(message)
        self.egress = egress


def service_exit_code(exc: ServiceError) -> int:
    """The exit code for an error of the service client (see the module docstring)."""
    if isinstance(exc, StagingDeniedError | PermissionDeniedError | EgressDeniedError):
        return EXIT_DENIED
    if isinstance(exc, AuthenticationError):
        return EXIT_BAD_INPUT
    return EXIT_FAILED
