"""RequestGuard as plain ASGI: what reaches the app, and what is answered without it."""

import asyncio
import json
from typing import Any

from stagegate.api.edge import RequestGuard

LIMIT = 100


class App:
    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        self.bodies.append(b"".join(chunks))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def call(
    messages: list[dict[str, Any]], headers: list[tuple[bytes, bytes]] | None = None, **scope: Any
) -> tuple[App, list[dict[str, Any]]]:
    app = App()
    sent: list[dict[str, Any]] = []
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    full = {"type": "http", "method": "POST", "path": "/v1/x", "raw_path": b"/v1/x", "query_string": b"",
            "headers": headers or [], **scope}  # fmt: skip
    asyncio.run(RequestGuard(app, max_body_bytes=LIMIT)(full, receive, send))
    return app, sent


def status(sent: list[dict[str, Any]]) -> int | None:
    return next((m["status"] for m in sent if m["type"] == "http.response.start"), None)


def detail(sent: list[dict[str, Any]]) -> str:
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return str(json.loads(body)["detail"])


def chunk(data: bytes, more: bool) -> dict[str, Any]:
    return {"type": "http.request", "body": data, "more_body": more}


def test_a_body_in_chunks_reaches_the_app_whole() -> None:
    app, sent = call([chunk(b'{"a": ', True), chunk(b'"b"}', False)])
    assert app.bodies == [b'{"a": "b"}'] and status(sent) == 204


def test_streamed_bytes_past_the_limit_are_413_without_the_app() -> None:
    app, sent = call([chunk(b"x" * 60, True), chunk(b"x" * 60, True), chunk(b"x", False)])
    assert app.bodies == [] and status(sent) == 413
    assert str(LIMIT) in detail(sent)


def test_a_declared_length_past_the_limit_is_413_before_reading() -> None:
    app, sent = call([], headers=[(b"content-length", b"101")])
    assert app.bodies == [] and status(sent) == 413


def test_exactly_the_limit_is_accepted() -> None:
    app, sent = call([chunk(b"x" * LIMIT, False)], headers=[(b"content-length", str(LIMIT).encode())])
    assert app.bodies == [b"x" * LIMIT] and status(sent) == 204


def test_a_client_gone_mid_body_reaches_nothing_and_gets_nothing() -> None:
    app, sent = call([chunk(b"{", True), {"type": "http.disconnect"}])
    assert app.bodies == [] and sent == []


def test_nul_anywhere_is_400_naming_where() -> None:
    for scope, where in [
        ({"path": "/v1/a\x00", "raw_path": b"/v1/a%00"}, "the path"),
        ({"query_string": b"actor=a%00b"}, "a query parameter"),
        ({"query_string": b"actor=a\x00"}, "a query parameter"),
    ]:
        app, sent = call([chunk(b"", False)], **scope)
        assert app.bodies == [] and status(sent) == 400 and detail(sent).startswith(where), scope
    for body in (b'{"k": "a\\u0000"}', b'{"k": "\\\\\\u0000"}', b'{"k": "\\U0000"}', b"\x00"):
        app, sent = call([chunk(body, False)])
        assert app.bodies == [] and status(sent) == 400 and detail(sent).startswith("the body"), body


def test_an_escaped_backslash_before_u0000_is_text() -> None:
    app, sent = call([chunk(b'{"k": "\\\\u0000"}', False)])
    assert app.bodies == [b'{"k": "\\\\u0000"}'] and status(sent) == 204
