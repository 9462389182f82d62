"""Jinja2 templates with autoescape always on, and the formatting the pages share."""

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.responses import HTMLResponse

from stagegate.sizes import format_bytes

HERE = Path(__file__).parent
# No script runs on these pages and nothing is fetched from elsewhere: air-gapped clusters,
# and an XSS that slipped past escaping would still have nothing to run.
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


def human_bytes(n: int | float) -> str:
    """The one byte formatter every output uses (:func:`stagegate.sizes.format_bytes`), so the
    pages say what the CLI says (999,950 bytes is 1.0 MB in both, not 1000.0 kB here)."""
    return format_bytes(n)


def when(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def as_json(value: object) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every template, whatever its name
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(human_bytes=human_bytes, when=when, as_json=as_json)
    return env


ENV = _environment()


def page(name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = ENV.get_template(name).render(**context)
    return HTMLResponse(html, status_code=status_code, headers=HEADERS)
