"""Cross-site request checks for the pages' POSTs (sign-in, sign-out), and where to go next.

The cookie is SameSite=Strict, so another site's form never carries it; the origin check
also stops a login CSRF (a hostile page signing the browser in as someone else), which
SameSite cannot, since sign-in has no cookie yet.
"""

from urllib.parse import urlsplit

UI_PREFIX = "/ui/"


def same_origin(origin: str | None, referer: str | None, scheme: str, host: str) -> bool:
    """True if the request says it comes from this server's own pages. Chromium, Firefox and
    Safari send ``Origin`` on every POST; a request with neither header is refused."""
    own = f"{scheme}://{host}".lower()
    if origin is not None and origin != "null":
        return origin.lower().rstrip("/") == own
    if referer:
        parts = urlsplit(referer)
        return f"{parts.scheme}://{parts.netloc}".lower() == own
    return False


def safe_next(raw: str | None) -> str:
    """Where to send the browser after sign-in: a page of ours, never another site (``//evil``,
    ``/ui/\\evil`` and full URLs fall back to the start page)."""
    if not raw or not raw.startswith(UI_PREFIX) or "\\" in raw or "//" in raw or not raw.isprintable():
        return UI_PREFIX
    return raw
