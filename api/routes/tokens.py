"""/v1/tokens: list and revoke bearer tokens. Never the secret, nor its hash.

An admin sees and revokes every token; anyone else only the tokens of their own user (to
revoke one that leaked, say). Someone else's token is 404, exactly as one that does not
exist, so ids do not leak. Issuing stays `stagegate token create` at the ledger: a token
that could mint tokens over HTTP would be worth stealing.
"""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from stagegate.api.auth import Authenticated
from stagegate.api.schemas import ErrorOut
from stagegate.api.services import ServicesDep
from stagegate.ledger.tokens import TokenInfo

router = APIRouter(prefix="/v1/tokens", tags=["tokens"])

TokenId = Annotated[str, Path(min_length=1, max_length=200, description="The token's id (not the token).")]


class TokenOut(BaseModel):
    id: str
    user: str
    role: str
    project: str | None
    created_at: datetime
    last_used_at: datetime | None = Field(description="When a request last presented it (to the minute).")
    revoked_at: datetime | None


class TokenList(BaseModel):
    tokens: list[TokenOut]


def token_out(info: TokenInfo) -> TokenOut:
    return TokenOut(
        id=info.id,
        user=info.user,
        role=info.role,
        project=info.project,
        created_at=info.created_at,
        last_used_at=info.last_used_at,
        revoked_at=info.revoked_at,
    )


@router.get("", summary="List tokens", responses={401: {"model": ErrorOut}})
def list_tokens(
    who: Authenticated,
    services: ServicesDep,
    revoked: Annotated[bool, Query(description="Include revoked tokens.")] = False,
) -> TokenList:
    """Your user's tokens (an admin's: everyone's), oldest first: id, user, role, project,
    created, last used, revoked."""
    return TokenList(tokens=[token_out(t) for t in services.tokens.listed(who, include_revoked=revoked)])


@router.delete(
    "/{token_id}",
    summary="Revoke a token",
    responses={
        401: {"model": ErrorOut},
        404: {"model": ErrorOut, "description": "No such token, or not yours."},
    },
)
def revoke_token(token_id: TokenId, who: Authenticated, services: ServicesDep) -> TokenOut:
    """Revoke the token: it is refused (401) from its next request on. Your own user's, or any
    as an admin. Revoking the token you call with works, and is the last thing it does."""
    return token_out(services.tokens.revoke_as(who, token_id))
