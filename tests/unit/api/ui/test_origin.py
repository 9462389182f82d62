"""The POST origin check and the after-sign-in redirect."""

import pytest

from stagegate.api.ui.origin import safe_next, same_origin


@pytest.mark.parametrize(
    ("origin", "referer", "ok"),
    [
        ("http://ui.example:8080", None, True),
        ("HTTP://UI.example:8080/", None, True),
        ("http://evil.example", None, False),
        ("https://ui.example:8080", None, False),  # another scheme is another origin
        ("http://ui.example", None, False),  # another port too
        (None, "http://ui.example:8080/ui/login?next=/ui/", True),
        (None, "http://evil.example/ui.example:8080", False),
        ("null", "http://ui.example:8080/ui/login", True),
        ("null", None, False),
        (None, None, False),
    ],
)
def test_same_origin(origin: str | None, referer: str | None, ok: bool) -> None:
    assert same_origin(origin, referer, "http", "ui.example:8080") is ok


@pytest.mark.parametrize(
    ("raw", "to"),
    [
        ("/ui/audit?user=sam", "/ui/audit?user=sam"),
        (None, "/ui/"),
        ("", "/ui/"),
        ("//evil.example/ui/", "/ui/"),
        ("/ui//evil.example", "/ui/"),
        ("/ui/\\evil", "/ui/"),
        ("https://evil.example/ui/", "/ui/"),
        ("/v1/stagings", "/ui/"),
        ("/ui/a\nSet-Cookie: x", "/ui/"),
    ],
)
def test_safe_next(raw: str | None, to: str) -> None:
    assert safe_next(raw) == to
