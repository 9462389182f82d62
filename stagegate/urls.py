"""Credentials in URLs: the one detector every layer refuses them with, and the redaction of
whatever text might still quote one.

A secret in a URL would outlive the request in the ledger, the audit trail, logs and error
messages, so a URL that carries one is refused everywhere (``refuse_credentials``), and text
is redacted before it is stored or shown (``redact_url``, ``redact_text``).

User-info is found by the *last* ``@`` after ``scheme://``, not by the host that a URL parser
sees: a secret key may hold ``/``, ``?``, ``#``, ``%`` or spaces, and ``urlsplit`` ends the
authority at the first of those, leaving the rest of the secret in the "path". Once a secret
may hold ``/``, an ``@`` in a path cannot be told from the one ending user-info, so any
``@`` after ``scheme://`` counts as credentials: refused, and redacted up to the last one.
Over-redaction is the price of never leaking.
"""

import re
from urllib.parse import unquote

from stagegate.errors import InvalidInputError

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
# Not after a letter, digit or ":", so "user:pass://x@host:" inside text is scp-style user-info.
_SCHEME = re.compile(r"(?<![A-Za-z0-9+.:-])[A-Za-z][A-Za-z0-9+.-]*://")
# Where a query or fragment starts, and what separates its parameters.
_PARAM_START = re.compile(r"[?#]")
_PARAM_SEP = re.compile(r"[?#&;]")
# scp-style user-info in a plain (scheme-less) string: "user@host:path", and
# "user:password@..." where the password may hold anything, up to the last "@".
_SCP_USER = re.compile(r"^[^/@]*@(?=[^/@]*:)")
_SCP_PASSWORD = re.compile(r"^[^/@:]*:.*@", re.DOTALL)
# The same inside free text, at the start of a word (a password with spaces is beyond it).
_SCP_USER_IN_TEXT = re.compile(r"(?<![^\s'\"(])[^/\s@'\"]+@(?=[^/\s@'\"]+:)")
_SCP_PASSWORD_IN_TEXT = re.compile(r"(?<![^\s'\"(])[^/\s@'\":]+:\S*@")
# What follows "scheme://" in free text, up to the end of the word.
_URL_REST_IN_TEXT = re.compile(r"[^\s'\"<>]*")

_HOW_TO_FIX = (
    "stagegate never takes credentials in a URL (they would be kept in the ledger and the audit "
    "trail): the workers use their own (the AWS_* environment, instance roles), so leave them out"
)


def _camel_to_words(name: str) -> str:
    # "AWSAccessKeyId" -> "AWS Access Key Id", so the patterns see the words in camelCase names.
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)


def looks_secret(name: str) -> bool:
    """Whether a field or query-parameter name suggests its value is a credential."""
    words = _camel_to_words(unquote(name))
    return _SECRET_NAME.search(words) is not None


def _secret_param(segment: str) -> bool:
    name = segment.partition("=")[0]
    return looks_secret(name) or unquote(name).strip().lower().startswith(_PRESIGN_PREFIXES)


def _secret_param_at(text: str) -> int | None:
    """Where in ``text`` (what follows ``scheme://``, user-info gone) the separator before its
    first secret or presign parameter is, if it has one."""
    start = _PARAM_START.search(text)
    if start is None:
        return None
    pos = start.start()
    while pos < len(text):
        following = _PARAM_SEP.search(text, pos + 1)
        end = following.start() if following else len(text)
        if _secret_param(text[pos + 1 : end]):
            return pos
        pos = end
    return None


def _has_secret_param(text: str) -> bool:
    return _secret_param_at(text) is not None


def _strip_secret_params(text: str) -> str:
    # Everything from the first secret parameter on goes: a value may hold "&" or "#".
    cut = _secret_param_at(text)
    return text if cut is None else text[:cut]


def _scp_userinfo(text: str) -> re.Match[str] | None:
    return _SCP_PASSWORD.match(text) or _SCP_USER.match(text)


def has_credentials(url: str) -> bool:
    """Whether ``url`` carries, or may carry, a credential: any ``@`` after ``scheme://``
    (user-info, whatever the secret holds), a secret or presign query parameter, or scp-style
    ``user[:password]@host:`` before a plain path."""
    scheme = _SCHEME.match(url)
    if scheme is None:
        return _scp_userinfo(url) is not None
    rest = url[scheme.end() :]
    return "@" in rest or _has_secret_param(rest)


def refuse_credentials(url: str, what: str) -> None:
    """Raise :class:`InvalidInputError` if ``url`` carries credentials (``has_credentials``).
    ``what`` names the input ("source URL", "--to"); the message never repeats the URL."""
    scheme = _SCHEME.match(url)
    if scheme is None:
        if _scp_userinfo(url) is not None:
            raise InvalidInputError(
                f"the {what} starts with user-info (USER[:PASSWORD]@HOST:); {_HOW_TO_FIX} (a "
                "local directory named like that is refused too: rename it)"
            )
        return
    rest = url[scheme.end() :]
    if "@" in rest:
        raise InvalidInputError(
            f"the {what} contains '@', read as credentials (user-info such as KEY:SECRET@ before "
            f"the host); {_HOW_TO_FIX}. An '@' inside a bucket key cannot be told apart from one "
            "ending a secret, so such URLs are refused too; a local path holding '@' is given as "
            "a plain absolute path"
        )
    if _has_secret_param(rest):
        raise InvalidInputError(
            f"the {what} carries a token, a signature or another secret query parameter (a "
            f"presigned URL, say); {_HOW_TO_FIX}"
        )


def _redact_plain(text: str) -> str:
    userinfo = _scp_userinfo(text)
    return text[userinfo.end() :] if userinfo else text


def redact_url(url: str) -> str:
    """``url`` without credentials: everything up to the last ``@`` after ``scheme://`` is
    dropped, and the query or fragment is cut before its first secret or presign parameter
    (OAuth puts tokens in the fragment). Plain paths lose only scp-style user-info."""
    scheme = _SCHEME.match(url)
    if scheme is None:
        return _redact_plain(url)
    rest = url[scheme.end() :]
    cut, at, after = rest.rpartition("@")
    if at and _has_secret_param(cut):
        # The "@" may sit inside a secret parameter's value: nothing after it is known to be safe.
        return scheme.group() + REDACTED
    return scheme.group() + _strip_secret_params(after)


def redact_text(text: str) -> str:
    """``text`` with every URL in it redacted and scp-style user-info removed: for reasons and
    error messages, which quote whatever input they failed on. A URL's user-info ends at the
    last ``@`` anywhere after its ``scheme://``, since a secret may hold spaces and quotes; a
    secret query parameter takes the rest of its line with it, for the same reason."""
    out: list[str] = []
    pos = 0
    while (scheme := _SCHEME.search(text, pos)) is not None:
        out.append(text[pos : scheme.end()])
        rest = scheme.end()
        at = text.rfind("@", rest)
        if at >= 0 and _has_secret_param(text[rest:at]):
            rest, cut = at + 1, 0  # the "@" may sit inside a secret value: nothing after it is safe
        else:
            rest = at + 1 if at >= 0 else rest
            word = _URL_REST_IN_TEXT.match(text, rest)
            assert word is not None  # the pattern matches the empty string
            found = _secret_param_at(word.group())
            if found is None:
                out.append(word.group())
                pos = word.end()
                continue
            cut = found + 1
        out.append(text[rest : rest + cut] + REDACTED)
        line_end = text.find("\n", rest)
        pos = len(text) if line_end < 0 else line_end
    out.append(text[pos:])
    joined = "".join(out)
    return _SCP_USER_IN_TEXT.sub("", _SCP_PASSWORD_IN_TEXT.sub("", joined))
