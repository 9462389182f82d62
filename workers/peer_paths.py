"""The wire contract between a peer server and its clients: a request names identifiers only,
``/v1/peer/<job>/<batch>/<key>``, each one quoted path segment (a key's '/' included)."""

from urllib.parse import quote, unquote

PREFIX = "/v1/peer/"


class NotAPeerPathError(ValueError):
    """The request path is not one :func:`peer_path` makes."""


def peer_path(job_id: str, idx: int, key: str) -> str:
    """The request path of ``key`` of batch ``idx`` of ``job_id``."""
    return f"{PREFIX}{quote(job_id, safe='')}/{idx}/{quote(key, safe='')}"


def parse_peer_path(path: str) -> tuple[str, int, str]:
    """(job id, batch, key) of a request path; raises :class:`NotAPeerPathError` for any other."""
    if "?" in path or "#" in path or not path.startswith(PREFIX):
        raise NotAPeerPathError(path)
    segments = path[len(PREFIX) :].split("/")
    if len(segments) != 3 or not segments[1].isdigit():
        raise NotAPeerPathError(path)
    return unquote(segments[0]), int(segments[1]), unquote(segments[2])
