"""Keeping credentials out of the ledger.

The ledger outlives every credential it might see and is read by auditors, so nothing
secret may reach it: URLs and the text quoting them are redacted (``stagegate.urls``: user-info
up to the last ``@``, secret and presign query parameters), and detail fields whose names look
secret keep their name (what happened stays visible) but lose their value.
"""

import re
from collections.abc import Mapping

from stagegate.urls import REDACTED, looks_secret, redact_text, redact_url

__all__ = ["REDACTED", "looks_secret", "redact_details", "redact_text", "redact_url"]

_URL_START = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def redact_details(details: Mapping[str, object]) -> dict[str, object]:
    """A copy of ``details`` with secret-named values replaced and URLs redacted, at any depth."""
    return {str(k): REDACTED if looks_secret(str(k)) else _redact_value(v) for k, v in details.items()}


def _redact_value(value: object) -> object:
    if isinstance(value, Mapping):
        return redact_details(value)
    if isinstance(value, list | tuple):
        return [_redact_value(v) for v in value]
    if isinstance(value, str):
        # A URL (the whole value is one), or a message that may quote one.
        return redact_url(value) if _URL_START.match(value) else redact_text(value)
    return value
