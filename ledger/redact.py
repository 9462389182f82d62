"""Keeping credentials out of the ledger.

The ledger outlives every credential it might see and is read by auditors, so nothing
secret may reach it: URLs lose their user-info and any query parameter that carries a
credential or a presigned signature, and detail fields whose names look secret keep their
name (what happened stays visible) but lose their value.
"""

import re
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit, urlunsplit

REDACTED = "[redacted]"

# Names that carry secrets: passwords, tokens, signatures, credentials and key material.
# A bare "key" is not here on purpose: in stagegate it names an object, not a secret.
_SECRET_NAME = re.compile(
    r"passw(?:or)?d|\bpwd\b|secret|token|signature|\bsig\b|credential|authori[sz]ation|\bauth\b"
    r"|cookie|api[-_ ]?key|access[-_ ]?key|private[-_ ]?key|signing[-_ ]?key|encryption[-_ ]?key"
    r"|customer[-_ ]?key|\bsse[-_ ]?c\b|session[-_ ]?key",
    re.IGNORECASE,
)
# Presigned-URL parameter families (AWS SigV4, GCS V4): the algorithm, date and signed headers
# are not secret alone, but a presigned URL stripped of only its signature is still noise.
_PRESIGN_PREFIXES = ("x-amz-", "x-goog-")
# scp-style "user:password@host:path", which urlsplit does not see as having user-info.
_SCP_USERINFO = re.compile(r"^[^/\s@]+@(?=[^/\s@]+:)")


def _camel_to_words(name: str) -> str:
    # "AWSAccessKeyId" -> "AWS Access Key Id", so the patterns see the words in camelCase names.
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)


def looks_secret(name: str) -> bool:
    """Whether a field or query-parameter name suggests its value is a credential."""
    words = _camel_to_words(unquote(name))
    return _SECRET_NAME.search(words) is not None


def _drop_param(name: str) -> bool:
    return looks_secret(name) or unquote(name).lower().startswith(_PRESIGN_PREFIXES)


def _filter_params(text: str) -> str:
    # Filter the raw "&"-separated segments rather than re-encoding a parsed query, so what is
    # kept stays byte-for-byte what the caller wrote (object keys may hold "?" or "#").
    kept = [seg for seg in text.split("&") if not _drop_param(seg.partition("=")[0])]
    return "&".join(kept)


def redact_url(url: str) -> str:
    """``url`` without credentials: no user-info and no secret or presign parameters in the
    query or the fragment (OAuth puts tokens there). Plain paths pass through unchanged."""
    if "://" not in url:
        return _SCP_USERINFO.sub("", url)
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit(
        (parts.scheme, netloc, parts.path, _filter_params(parts.query), _filter_params(parts.fragment))
    )


def redact_details(details: Mapping[str, object]) -> dict[str, object]:
    """A copy of ``details`` with secret-named values replaced and URLs redacted, at any depth."""
    return {str(k): REDACTED if looks_secret(str(k)) else _redact_value(v) for k, v in details.items()}


def _redact_value(value: object) -> object:
    if isinstance(value, Mapping):
        return redact_details(value)
    if isinstance(value, list | tuple):
        return [_redact_value(v) for v in value]
    if isinstance(value, str) and "://" in value:
        return redact_url(value)
    return value


# Anything URL-shaped inside free text (error messages quote the URLs they failed on), and
# scp-style "user:password@host:" at the start of a word.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
_SCP_IN_TEXT = re.compile(r"(?<![^\s'\"(])[^/\s@'\"]+@(?=[^/\s@'\"]+:)")


def redact_text(text: str) -> str:
    """``text`` with every URL in it redacted and scp-style user-info removed: for reasons
    and error messages, which quote whatever input they failed on."""
    return _SCP_IN_TEXT.sub("", _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text))
