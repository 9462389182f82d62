"""What every request must pass before any route, token check or parser sees it.

``RequestGuard`` is plain ASGI, outermost of the app: a body over the limit is refused from
its ``Content-Length`` or, when that is missing or lies, as soon as the streamed bytes pass
the limit, so an unauthenticated caller cannot make the server parse 50 MB before its 401.
A NUL in the path, the query or a JSON string is refused too: nothing downstream (PostgreSQL
least of all) accepts one, and what would fail deep inside is bad input at the edge.
"""

import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote_to_bytes

from stagegate.api.errors import error_response
from stagegate.errors import InvalidInputError, TooLargeError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_MAX_BODY_BYTES = 1 << 20  # the largest valid body (64 nodes, 4 KiB source) is ~10 KiB
# "\u0000" in JSON text: an escape (an odd run of backslashes), not a literal "\\u0000".
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000", re.IGNORECASE)


def _nul_in_request(scope: Scope) -> str | None:
    """Which part of the request line holds a NUL, if any."""
    raw_path = scope.get("raw_path") or scope.get("path", "").encode()
    if b"\x00" in unquote_to_bytes(raw_path) or "\x00" in scope.get("path", ""):
        return "the path"
    if b"\x00" in unquote_to_bytes(scope.get("query_string", b"").replace(b"+", b" ")):
        return "a query parameter"
    return None


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class RequestGuard:
    """Refuses bodies over ``max_body_bytes`` (413) and NUL characters anywhere (400)
    before the wrapped app runs."""

    def __init__(self, app: ASGIApp, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        where = _nul_in_request(scope)
        if where is not None:
            await self._refuse(InvalidInputError(_nul_message(where)), scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await self._refuse(self._too_large(), scope, receive, send)
            return
        body, tail = await self._read_body(receive)
        if tail is not None:
            return  # the client went away mid-body: nothing to answer, a partial body to drop
        if body is None:
            await self._refuse(self._too_large(), scope, receive, send)
            return
        if b"\x00" in body or _JSON_NUL.search(body):
            await self._refuse(InvalidInputError(_nul_message("the body")), scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read_body(self, receive: Receive) -> tuple[bytes | None, Message | None]:
        """The whole body, or None once it passes the limit; and the message that ended it
        early (a disconnect), if one did."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks), message
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None, None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), None

    def _too_large(self) -> TooLargeError:
        return TooLargeError(
            f"the request body is larger than {self.max_body_bytes} bytes; no stagegate request "
            "needs that much (send the dataset's URL, not its content)"
        )

    async def _refuse(self, exc: Exception, scope: Scope, receive: Receive, send: Send) -> None:
        await error_response(exc)(scope, receive, send)


def _nul_message(where: str) -> str:
    return f"{where} holds a NUL character (\\x00 or %00); remove it: no name, URL or key may contain one"


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` for the app: the body read already, then whatever comes next (a disconnect)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
