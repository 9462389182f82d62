"""Errors to HTTP answers: the only place status codes are chosen for our exceptions.

No answer carries a traceback, a SQL statement, a connection URL or the caller's input echoed
back (pydantic's validation errors normally quote the offending input, which may be a URL
with a password in it). What went wrong inside stays in the server's log.
"""

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError

from stagegate.confinement import SourceNotPermittedError
from stagegate.errors import ExistsError, InvalidInputError, NotFoundError, TooLargeError
from stagegate.ledger.pins import PinReleasedError
from stagegate.ledger.redact import redact_text

log = logging.getLogger(__name__)

# Validation errors about a *value* the request carries (too long, not a known mode, a repeated
# node...) are 400, like every other refusal of bad input. Any other kind (an unknown or missing
# field, a string where a list belongs, JSON that does not parse) means the request does not
# have the documented shape at all: 422.
VALUE_ERRORS = frozenset(
    {
        "string_too_short",
        "string_too_long",
        "string_pattern_mismatch",
        "literal_error",
        "enum",
        "too_short",
        "too_long",
        "value_error",
        "assertion_error",
        "greater_than",
        "greater_than_equal",
        "less_than",
        "less_than_equal",
        "duplicate_nodes",
        "timezone_aware",
        "timezone_naive",
    }
)
RETRY_AFTER_S = "5"


def _where(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts)


def _describe(errors: Sequence[Any]) -> str:
    described = []
    for error in errors:
        where = _where(error.get("loc") or ())
        message = str(error.get("msg", "invalid"))
        described.append(f"{where}: {message}" if where else message)
    return "; ".join(described)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if errors and all(e.get("type") in VALUE_ERRORS for e in errors):
        return JSONResponse(status_code=status.HTTP_400_BAD_REQUEST, content={"detail": _describe(errors)})
    # FastAPI's usual list, minus "input" and "ctx": they quote what the caller sent.
    detail = [
        {"type": e.get("type"), "loc": list(e.get("loc") or ()), "msg": str(e.get("msg", ""))} for e in errors
    ]
    return JSONResponse(status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, content={"detail": detail})


def _status_of(exc: Exception) -> int:
    if isinstance(exc, TooLargeError):
        return status.HTTP_413_CONTENT_TOO_LARGE
    if isinstance(exc, InvalidInputError):
        return status.HTTP_400_BAD_REQUEST
    if isinstance(exc, NotFoundError):
        return status.HTTP_404_NOT_FOUND
    if isinstance(exc, SourceNotPermittedError):
        return status.HTTP_403_FORBIDDEN
    if isinstance(exc, ExistsError | PinReleasedError):
        return status.HTTP_409_CONFLICT
    return status.HTTP_500_INTERNAL_SERVER_ERROR


def error_response(exc: Exception) -> JSONResponse:
    """The answer for one of our errors; also for the ASGI guard in front of the app, which
    answers before any exception handler could."""
    # Our own errors' messages are written for the caller (and the ledger redacts URLs in them).
    return JSONResponse(status_code=_status_of(exc), content={"detail": str(exc)})


async def _stagegate_error(_request: Request, exc: Exception) -> JSONResponse:
    return error_response(exc)


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # The message may quote a statement and its parameters: summarised here, logged redacted.
    log.warning(
        "%s %s: the ledger database failed: %s",
        request.method,
        request.url.path,
        redact_text(str(exc).splitlines()[0] if str(exc) else type(exc).__name__),
    )
    return JSONResponse(
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        content={"detail": "the ledger database is unavailable; try again shortly"},
        headers={"Retry-After": RETRY_AFTER_S},
    )


async def _internal_error(_request: Request, exc: Exception) -> JSONResponse:
    # Starlette re-raises the exception after this answer, so the server logs the traceback.
    return JSONResponse(
        status_code=status.HTTP_500_INTERNAL_SERVER_ERROR,
        content={"detail": "internal error; the service's log has the details"},
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    for error in (InvalidInputError, NotFoundError, ExistsError, SourceNotPermittedError, PinReleasedError):
        app.add_exception_handler(error, _stagegate_error)
    app.add_exception_handler(OperationalError, _database_unavailable)
    app.add_exception_handler(Exception, _internal_error)
