"""API tokens: shown once when issued, stored only as a SHA-256 hash.

Tokens are 256 random bits, so a plain SHA-256 (no salt, no slow KDF) is enough: nobody can
guess one, and a fast hash lets every request be checked with one indexed lookup.
"""

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, get_args

from sqlalchemy import or_, select, update

from stagegate.errors import InvalidInputError, NotFoundError
from stagegate.ledger.database import Ledger
from stagegate.ledger.models import TokenRow

# steward: declassifies checkpoints (lowers a label, with a reason) and reads; submits nothing.
Role = Literal["job", "scientist", "steward", "auditor", "admin"]
ROLES: tuple[str, ...] = get_args(Role)
TOKEN_PREFIX = "sg_"  # noqa: S105 (a prefix, not a secret): recognisable in a leaked log or a secret scanner
# A token's last use is written at most this often: a row write per request would make every
# read a write, for a figure an admin reads in minutes or days (it may lag up to twice this).
LAST_USED_EVERY = timedelta(minutes=1)
# Who may see and revoke every token; anyone else only their own.
MANAGES_ALL = ("admin",)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request comes from: the token's user, role and project."""

    user: str
    role: str
    project: str | None
    token_id: str


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A new token. ``token`` is the secret: it exists only in this object and in the caller's hands."""

    id: str
    token: str
    user: str
    role: str
    project: str | None


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A token as ``token list`` shows it: never the secret, nor its hash."""

    id: str
    user: str
    role: str
    project: str | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def _info(row: TokenRow) -> TokenInfo:
    return TokenInfo(
        row.id, row.user, row.role, row.project, row.created_at, row.last_used_at, row.revoked_at
    )


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _check_name(what: str, value: str | None) -> None:
    if value is None:
        return
    if not value or len(value) > 200 or not value.isprintable() or value != value.strip():
        raise InvalidInputError(f"{what} must be 1-200 printable characters without surrounding spaces")


class Tokens:
    """The token store of one ledger."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        # token id -> when this process last wrote its use: within LAST_USED_EVERY of that the
        # conditional update would change nothing, so a burst of requests skips the write.
        self._touched: dict[str, datetime] = {}

    def create(self, user: str, role: str, project: str | None = None) -> IssuedToken:
        if role not in ROLES:
            raise InvalidInputError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        _check_name("user", user)
        _check_name("project", project)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = TokenRow(
            id=str(uuid.uuid4()),
            token_hash=hash_token(token),
            user=user,
            role=role,
            project=project,
            created_at=datetime.now(UTC),
            revoked_at=None,
        )
        with self._ledger.sessions.begin() as session:
            session.add(row)
        return IssuedToken(id=row.id, token=token, user=user, role=role, project=project)

    def authenticate(self, token: str) -> Principal | None:
        """The principal ``token`` stands for, or None if it is unknown or revoked."""
        if not token.startswith(TOKEN_PREFIX):
            return None
        with self._ledger.read_session() as session, session.begin():
            row = session.scalar(
                select(TokenRow).where(
                    TokenRow.token_hash == hash_token(token), TokenRow.revoked_at.is_(None)
                )
            )
            if row is None:
                return None
            principal = Principal(user=row.user, role=row.role, project=row.project, token_id=row.id)
        self._touch(principal.token_id)
        return principal

    def _touch(self, token_id: str) -> None:
        """Record the use, unless one was recorded within LAST_USED_EVERY (one conditional update)."""
        now = datetime.now(UTC)
        last = self._touched.get(token_id)
        if last is not None and last > now - LAST_USED_EVERY:
            return
        with self._ledger.sessions.begin() as session:
            session.execute(
                update(TokenRow)
                .where(
                    TokenRow.id == token_id,
                    or_(TokenRow.last_used_at.is_(None), TokenRow.last_used_at < now - LAST_USED_EVERY),
                )
                .values(last_used_at=now)
            )
        self._touched[token_id] = now

    def listed(self, who: Principal | None = None, include_revoked: bool = False) -> list[TokenInfo]:
        """Tokens, oldest first: every one for an admin (or ``who`` None: the ledger's owner at its
        console), else only ``who``'s own user's."""
        with self._ledger.read_session() as session, session.begin():
            statement = select(TokenRow).order_by(TokenRow.created_at, TokenRow.id)
            if who is not None and who.role not in MANAGES_ALL:
                statement = statement.where(TokenRow.user == who.user)
            if not include_revoked:
                statement = statement.where(TokenRow.revoked_at.is_(None))
            return [_info(row) for row in session.scalars(statement)]

    def revoke_as(self, who: Principal, token_id: str) -> TokenInfo:
        """Revoke ``token_id`` on behalf of ``who``: an admin any token, anyone else only their
        own user's (someone else's is NotFound, as one that does not exist)."""
        with self._ledger.read_session() as session, session.begin():
            row = session.get(TokenRow, token_id)
            mine = row is not None and (who.role in MANAGES_ALL or row.user == who.user)
        if not mine:
            raise NotFoundError(f"no active token {token_id}")
        self.revoke(token_id)
        with self._ledger.read_session() as session, session.begin():
            revoked = session.get(TokenRow, token_id)
            assert revoked is not None
            return _info(revoked)

    def revoke(self, token_id: str) -> None:
        with self._ledger.sessions.begin() as session:
            result = session.execute(
                update(TokenRow)
                .where(TokenRow.id == token_id, TokenRow.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            )
            if result.rowcount == 0:  # type: ignore[attr-defined]
                raise NotFoundError(f"no active token {token_id}")
