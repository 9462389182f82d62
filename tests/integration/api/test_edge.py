"""Hostile input at the API's edge: oversized bodies are refused before authentication, and a
NUL anywhere in a request is a clear 400, never a 500 from deep inside (PostgreSQL refuses NUL)."""

import json
from collections.abc import Iterator

import pytest

from stagegate.ledger import AuditTrail

from .conftest import SOURCE, World

pytestmark = pytest.mark.integration

BIG = 50 * (1 << 20)


def test_a_50_mb_body_without_a_token_is_413_not_parsed_for_a_401(world: World) -> None:
    body = b'{"source": "' + b"a" * BIG + b'", "nodes": ["gpu-01"]}'
    response = world.client.post("/v1/stagings", content=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 413, response.text
    assert "larger than 1048576 bytes" in response.json()["detail"]


def test_a_streamed_body_without_content_length_is_cut_off_at_the_limit(world: World) -> None:
    def chunks() -> Iterator[bytes]:  # sent chunked: no Content-Length to refuse it by
        yield b'{"source": "'
        for _ in range(BIG // (1 << 16)):
            yield b"a" * (1 << 16)
        yield b'"}'

    response = world.client.post(
        "/v1/stagings",
        content=chunks(),
        headers={**world.headers("scientist"), "Content-Type": "application/json"},
    )
    assert response.status_code == 413, response.text
    assert AuditTrail(world.ledger).query() == []


def test_a_body_under_the_limit_still_works(world: World) -> None:
    assert world.post("scientist", job="j" * 200).status_code == 202


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/audit", {"actor": "sam\x00"}),
        ("/v1/audit", {"job": "\x00"}),
        ("/v1/stagings/abc%00def", {}),
        ("/v1/egress/abc%00", {}),
    ],
    ids=["query NUL", "query NUL alone", "path NUL", "egress path NUL"],
)
def test_nul_in_the_path_or_query_is_a_400(world: World, path: str, params: dict[str, str]) -> None:
    response = world.get("admin", path, **params)

    assert response.status_code == 400, response.text
    assert "NUL" in response.json()["detail"]


def test_a_raw_nul_in_the_query_string_is_a_400(world: World) -> None:
    response = world.client.get("/v1/audit?actor=a%00b", headers=world.headers("auditor"))
    assert response.status_code == 400, response.text


@pytest.mark.parametrize(
    "body",
    [
        {"source": SOURCE + "\x00x", "nodes": ["gpu-01"]},
        {"source": SOURCE, "nodes": ["gpu-01"], "job": "job\x00"},
        {"source": SOURCE, "nodes": ["gpu-01"], "idempotency_key": "\x00"},
    ],
    ids=["source", "job", "idempotency key"],
)
def test_nul_in_a_json_string_is_a_400_and_records_nothing(world: World, body: dict[str, object]) -> None:
    response = world.client.post(
        "/v1/stagings",
        content=json.dumps(body),
        headers={**world.headers("scientist"), "Content-Type": "application/json"},
    )

    assert response.status_code == 400, response.text
    assert "NUL" in response.json()["detail"]
    assert AuditTrail(world.ledger).query() == []
    assert world.plan_queue() == 0


def test_an_escaped_backslash_before_u0000_is_not_a_nul(world: World) -> None:
    # The JSON text \\u0000 is a backslash and "u0000", which a job reference may hold.
    response = world.post("scientist", job="a\\u0000b")
    assert response.status_code == 202, response.text
    assert response.json()["job"] == "a\\u0000b"
