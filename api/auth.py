"""Bearer-token authentication and role checks.

A missing, malformed or unknown token is 401 (with ``WWW-Authenticate: Bearer`` and how to get
a token); a known token whose role may not do this is 403, naming the roles that may. The
token itself is never logged or echoed: only the principal it stands for travels on.
"""

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from stagegate.api.services import ServicesDep
from stagegate.ledger import ROLES, Principal

ISSUE_HINT = "an admin issues one with `stagegate token create --user USER --role ROLE`"

# auto_error=False: FastAPI's own error would be a bare 401/403 without our hint.
bearer = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="A stagegate API token (`sg_...`) from `stagegate token create`.",
)


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=message,
        headers={"WWW-Authenticate": "Bearer"},
    )


def current_principal(
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The caller, from ``Authorization: Bearer <token>``. A plain ``def``: the token lookup is
    a database query, so FastAPI runs it in its threadpool."""
    if credentials is None:
        raise _unauthorized(
            f"missing bearer token: send the header 'Authorization: Bearer <token>'; {ISSUE_HINT}"
        )
    principal = services.tokens.authenticate(credentials.credentials)
    if principal is None:
        raise _unauthorized(f"unknown or revoked token; {ISSUE_HINT}")
    return principal


Authenticated = Annotated[Principal, Depends(current_principal)]


def require(*roles: str) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that lets only ``roles`` through (403 otherwise) and returns the caller."""
    unknown = [r for r in roles if r not in ROLES]
    if not roles or unknown:
        raise ValueError(f"roles must be some of {', '.join(ROLES)}, not {roles!r}")
    allowed = " or ".join(roles)

    async def dependency(principal: Authenticated) -> Principal:
        if principal.role not in roles:
            raise HTTPException(
                status_code=status.HTTP_403_FORBIDDEN,
                detail=f"this needs a token with the role {allowed}; this token's role is {principal.role}",
            )
        return principal

    return dependency


# Roles that change stagings (submit, release); auditors only read.
Submitter = Annotated[Principal, Depends(require("job", "scientist", "admin"))]
# Roles that read the audit trail.
Auditor = Annotated[Principal, Depends(require("auditor", "admin"))]
