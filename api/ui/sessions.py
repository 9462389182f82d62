"""Signed-in browsers: an opaque random id in the cookie, everything else in this process.

The cookie carries 256 random bits and nothing else, so it says nothing if it leaks from a
browser profile and cannot be forged. The token stays here, in memory only (never written,
never logged), so that each request re-checks it: revoking a token ends its sessions at once.
A session ends when idle for ``idle_seconds``, after ``max_seconds`` whatever, or on sign-out.
"""

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from stagegate.ledger import Principal

IDLE_SECONDS = 30 * 60
MAX_SECONDS = 8 * 60 * 60


@dataclass(slots=True)
class UiSession:
    id: str = field(repr=False)
    token: str = field(repr=False)
    csrf: str = field(repr=False)  # the sign-out form's token
    user: str
    role: str
    started: float
    last_seen: float


class SessionStore:
    """Sessions of one API process, safe to use from the threadpool's threads."""

    def __init__(
        self,
        idle_seconds: float = IDLE_SECONDS,
        max_seconds: float = MAX_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idle_seconds = idle_seconds
        self.max_seconds = max_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: dict[str, UiSession] = {}

    def open(self, token: str, principal: Principal) -> UiSession:
        now = self._clock()
        made = UiSession(
            id=secrets.token_urlsafe(32),
            token=token,
            csrf=secrets.token_urlsafe(32),
            user=principal.user,
            role=principal.role,
            started=now,
            last_seen=now,
        )
        with self._lock:
            self._drop_expired(now)
            self._sessions[made.id] = made
        return made

    def get(self, session_id: str) -> UiSession | None:
        """The live session of ``session_id`` (its idle time restarts), else None."""
        now = self._clock()
        with self._lock:
            found = self._sessions.get(session_id)
            if found is None:
                return None
            if self._expired(found, now):
                del self._sessions[session_id]
                return None
            found.last_seen = now
            return found

    def close(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    def _expired(self, session: UiSession, now: float) -> bool:
        return now - session.last_seen >= self.idle_seconds or now - session.started >= self.max_seconds

    def _drop_expired(self, now: float) -> None:
        # On each sign-in: memory stays bounded by the sessions alive, without a sweeper thread.
        for gone in [k for k, s in self._sessions.items() if self._expired(s, now)]:
            del self._sessions[gone]
