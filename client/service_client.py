"""A Python client for the stagegate service's HTTP API (synchronous, over httpx).

    with ServiceClient("http://stagegate:8080", os.environ["STAGEGATE_TOKEN"]) as service:
        staging = service.submit_staging("s3://datasets/imagenet", ["gpu-01", "gpu-02"])
        staging = service.wait(staging.id)

Errors are typed (``client/errors.py``): 401 is :class:`AuthenticationError`, a policy
denial :class:`StagingDeniedError` (with the staging and the reasons), another 403
:class:`PermissionDeniedError`, 404 :class:`stagegate.errors.NotFoundError`, 400 and 422
:class:`stagegate.errors.InvalidInputError` with the server's message, and a server that
cannot be reached :class:`ServiceUnavailableError`, naming the URL.

The token is sent only in the Authorization header: it is not kept in an attribute, not in
``repr``, and never in a message (httpx masks it in its own reprs and logs no headers).
"""

import ipaddress
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, cast
from urllib.parse import quote

import httpx

from stagegate.client.errors import (
    AuthenticationError,
    PermissionDeniedError,
    ServiceError,
    ServiceProtocolError,
    ServiceUnavailableError,
    StagingDeniedError,
    WaitTimeoutError,
)
from stagegate.client.service_models import Node, Staging, audit_event, token_info, usage_row
from stagegate.errors import InvalidInputError, NotFoundError
from stagegate.ledger import AuditEvent
from stagegate.ledger.chain import format_head, parse_head
from stagegate.owners import OwnerRef
from stagegate.requests import EgressRequest, StagingMode, StagingRequest
from stagegate.states import EGRESS_TERMINAL
from stagegate.urls import has_credentials
from stagegate.version import __version__

if TYPE_CHECKING:  # the ledger's queries and tables, which parsing a staging never needs
    from stagegate.ledger.tokens import TokenInfo
    from stagegate.ledger.usage import UsageRow

log = logging.getLogger(__name__)

RETRIES = 3  # further attempts of a request that is safe to repeat
BACKOFF = 0.5  # seconds before the first retry; doubled each time
RETRY_STATUSES = frozenset({502, 503, 504})  # a proxy or a restarting server: worth another try
AUDIT_FILTERS = frozenset({"actor", "action", "job", "since", "until", "limit"})


def display_url(url: httpx.URL) -> str:
    """``url`` without user info, query or fragment: safe for a message."""
    return str(url.copy_with(username=None, password=None, query=None, fragment=None)).rstrip("/")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_base_url(base_url: str) -> httpx.URL:
    if has_credentials(base_url):  # before parsing: httpx's host ends at a "/" inside a password
        raise InvalidInputError("the service URL may not hold credentials: put the token in STAGEGATE_TOKEN")
    try:
        url = httpx.URL(base_url)
    except (httpx.InvalidURL, TypeError):
        raise InvalidInputError("the service URL is not a URL (try http://host:8080)") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise InvalidInputError(
            f"the service URL must be http(s)://host[:port], not {display_url(url) or 'empty'!r}"
        )
    if url.username or url.password:
        raise InvalidInputError("the service URL may not hold credentials: put the token in STAGEGATE_TOKEN")
    return url


def _check_token(token: str | None) -> str | None:
    if token is None:
        return None
    token = token.strip()
    # Never echo the token: httpx's own errors on a bad header value would quote it.
    if not token or not token.isascii() or not token.isprintable() or " " in token:
        raise InvalidInputError("STAGEGATE_TOKEN is not a token: it must be printable ASCII without spaces")
    return token


def detail_message(detail: object) -> str:
    """The human part of an error body's ``detail``: a string, ``{"message": ...}``, or
    FastAPI's validation list ``[{"loc": [...], "msg": ...}]``."""
    if isinstance(detail, str):
        return detail
    if isinstance(detail, Mapping) and isinstance(detail.get("message"), str):
        return str(detail["message"])
    if isinstance(detail, list) and detail:
        parts = []
        for item in detail:
            if not isinstance(item, Mapping):
                parts.append(str(item))
                continue
            loc = [str(p) for p in item.get("loc") or ()]
            if loc and loc[0] in ("body", "query", "path"):
                loc = loc[1:]
            msg = str(item.get("msg", "invalid"))
            parts.append(f"{'.'.join(loc)}: {msg}" if loc else msg)
        return "; ".join(parts)
    return ""


class ClosedOnExit:
    """``with thing:`` closes the thing at the end, however the block ends."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class ServiceClient(ClosedOnExit):
    """One connection pool to the service at ``base_url``, authenticated by ``token``.

    GET and DELETE requests (and a submission with an idempotency key, which the server
    deduplicates) are retried on connection errors and on 502/503/504, ``retries`` times
    with exponential backoff; any request is retried when the connection could not even be
    opened, since then nothing was sent. Use it as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        base_url: str,
        token: str | None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        *,
        retries: int = RETRIES,
        backoff: float = BACKOFF,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        url = _check_base_url(base_url)
        token = _check_token(token)
        self.base_url = display_url(url)
        self._has_token = token is not None
        self._timeout = timeout
        self._retries = max(0, retries)
        self._backoff = backoff
        self._sleep = sleep
        self._clock = clock
        if token is not None and url.scheme == "http" and not _is_loopback(url.host):
            log.warning("the token goes over plain http to %s: use https outside a trusted network", url.host)
        headers = {"User-Agent": f"stagegate/{__version__}", "Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=timeout,
            transport=transport,
            follow_redirects=False,  # a redirect to another host would carry the token there
        )

    def __repr__(self) -> str:
        return f"ServiceClient({self.base_url!r})"

    def close(self) -> None:
        self._http.close()

    # -- the API ---------------------------------------------------------------------------

    def submit_staging(
        self,
        source: str,
        nodes: Iterable[str],
        mode: str = "replicate",
        job: str | None = None,
        idempotency_key: str | None = None,
        pin_ttl: float | None = None,
        include: Iterable[str] = (),
        exclude: Iterable[str] = (),
        owner: OwnerRef | None = None,
    ) -> Staging:
        """Ask for ``source`` to be staged onto ``nodes``. Returns at once (the staging runs
        on the service), except that a policy denial raises :class:`StagingDeniedError`.
        The same ``idempotency_key`` again returns the first staging instead of a new one.
        ``pin_ttl`` (seconds) is how long the nodes hold it before the service releases it
        (default: the service's ``STAGEGATE_PIN_TTL``); :meth:`renew` extends it.
        ``include``/``exclude``: which keys of the source, as for ``stagegate stage``. ``owner``:
        the Kubernetes Pod or Job whose end releases it."""
        request = StagingRequest(  # refuses here what the service would refuse (credentials too)
            source,
            nodes=tuple(nodes),
            mode=cast(StagingMode, mode),
            job_ref=job,
            idempotency_key=idempotency_key,
            include=tuple(include),
            exclude=tuple(exclude),
            owner=owner,
        )
        body: dict[str, Any] = {
            "source": request.source,
            "nodes": list(request.nodes),
            "mode": request.mode,
            "job": request.job_ref,
            "idempotency_key": request.idempotency_key,
        }
        if request.include or request.exclude:  # a service from before filters refuses the fields
            body["include"], body["exclude"] = list(request.include), list(request.exclude)
        if pin_ttl is not None:
            body["pin_ttl_seconds"] = pin_ttl
        if request.owner is not None:
            body["owner"] = request.owner.to_json()
        data = self._request("POST", "/v1/stagings", json=body, idempotent=idempotency_key is not None)
        return Staging.from_json(data)

    def submit_egress(self, request: EgressRequest) -> str:
        """Ask the node ``request.node`` to egress checkpoints of ``request.run_dir`` to
        ``request.destination``. Returns the egress id at once; follow it with :meth:`egress`."""
        body = {
            "run_dir": request.run_dir,
            "node": request.node,
            "destination": request.destination,
            "latest": request.latest,
            "best": request.best,
            "mode": request.mode,
            "names": list(request.names),
            "job": request.job_ref,
            "delete_unselected": request.delete_unselected,
        }
        if request.include or request.exclude:  # a service from before filters refuses the fields
            body["include"], body["exclude"] = list(request.include), list(request.exclude)
        data = self._request("POST", "/v1/egress", json=body, idempotent=False)
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            raise ServiceError("the service answered POST /v1/egress without an id")
        return str(data["id"])

    def declassify(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Record a declassification (node, run_dir, checkpoint, label, reason); returns it."""
        data = self._request("POST", "/v1/declassifications", json=dict(body), idempotent=False)
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            raise ServiceError("the service answered POST /v1/declassifications without an id")
        return data

    def egress(self, id: str) -> dict[str, Any]:
        """The egress ``id``: {id, state, selected, bytes, files, errors, reasons, ...}."""
        data = self._request("GET", f"/v1/egress/{quote(id, safe='')}")
        if not isinstance(data, dict):
            raise ServiceError("the service answered GET /v1/egress/{id} with something else than an object")
        return data

    def staging(self, id: str) -> Staging:
        """The staging ``id`` as it is now."""
        return Staging.from_json(self._request("GET", _staging_path(id)))

    def stagings(self, state: str | None = None, limit: int | None = None) -> list[Staging]:
        """Your stagings (an auditor's or admin's: everyone's), newest first as the server orders them."""
        params = {k: v for k, v in (("state", state), ("limit", limit)) if v is not None}
        data = self._request("GET", "/v1/stagings", params=params)
        return [Staging.from_json(s) for s in _list_field(data, "stagings")]

    def release(self, id: str) -> Staging:
        """Release the staging ``id``: its pins are dropped and the nodes may evict it."""
        return Staging.from_json(self._request("DELETE", _staging_path(id)))

    def renew(self, id: str, pin_ttl: float | None = None) -> Staging:
        """Extend the staging's pin lease to now + ``pin_ttl`` seconds (default: the TTL it had)."""
        body = {} if pin_ttl is None else {"pin_ttl_seconds": pin_ttl}
        # Safe to repeat: a second renewal sets the same expiry, give or take the delay.
        path = _staging_path(id) + "/renew"
        return Staging.from_json(self._request("POST", path, json=body, idempotent=True))

    def tokens(self, include_revoked: bool = False) -> list["TokenInfo"]:
        """Your user's tokens (an admin's: everyone's), without their secrets."""
        data = self._request("GET", "/v1/tokens", params={"revoked": "true"} if include_revoked else None)
        return [token_info(t, f"tokens[{i}]") for i, t in enumerate(_list_field(data, "tokens"))]

    def revoke_token(self, token_id: str) -> "TokenInfo":
        """Revoke a token of your user's (an admin: anyone's) by its id."""
        if not token_id.strip():
            raise InvalidInputError("a token id must not be empty")
        return token_info(self._request("DELETE", "/v1/tokens/" + quote(token_id, safe="")), "token")

    def nodes(self) -> list[Node]:
        """Every node that ever registered, with its cache."""
        return [Node.from_json(n) for n in _list_field(self._request("GET", "/v1/nodes"), "nodes")]

    def audit(self, **filters: str | int | datetime | None) -> list[AuditEvent]:
        """Audit events (auditor or admin) matching ``actor``, ``action``, ``job``, ``since``,
        ``until`` (datetimes or ISO strings) and ``limit``, oldest first."""
        unknown = set(filters) - AUDIT_FILTERS
        if unknown:
            raise InvalidInputError(
                f"unknown audit filter(s): {', '.join(sorted(unknown))}; "
                f"known: {', '.join(sorted(AUDIT_FILTERS))}"
            )
        params = {
            k: v.isoformat() if isinstance(v, datetime) else v for k, v in filters.items() if v is not None
        }
        events = _list_field(self._request("GET", "/v1/audit", params=params), "events")
        return [audit_event(event, f"events[{i}]") for i, event in enumerate(events)]

    def usage(
        self, by: str, period: str, since: datetime | None = None, until: datetime | None = None
    ) -> list["UsageRow"]:
        """Chargeback rows (auditor or admin), as ``stagegate usage`` computes them locally."""
        params = {"by": by, "period": period}
        params |= {k: v.isoformat() for k, v in (("since", since), ("until", until)) if v is not None}
        rows = _list_field(self._request("GET", "/v1/usage", params=params), "rows")
        return [usage_row(row, f"rows[{i}]") for i, row in enumerate(rows)]

    def audit_head(self) -> tuple[int, str] | None:
        """The newest event's (seq, hash) on the server (auditor or admin); None for an empty trail."""
        data = self._request("GET", "/v1/audit/head")
        if not isinstance(data, dict) or "head" not in data:
            raise ServiceProtocolError("unexpected answer from the server: no 'head' in its answer")
        head = data["head"]
        if head is None:
            return None
        try:
            return parse_head(str(head))
        except InvalidInputError:
            raise ServiceProtocolError(f"unexpected answer from the server: a head {head!r}") from None

    def latest_checkpoint_note(self) -> str | None:
        """The newest signed checkpoint of the server's trail, as its signed note (auditor or
        admin); None before the first. Check it with a key you hold (``audit verify --checkpoint``)."""
        data = self._request("GET", "/v1/audit/checkpoint")
        if not isinstance(data, dict) or "checkpoint" not in data:
            raise ServiceProtocolError("unexpected answer from the server: no 'checkpoint' in its answer")
        latest = data["checkpoint"]
        if latest is None:
            return None
        if not isinstance(latest, dict) or not isinstance(latest.get("note"), str):
            raise ServiceProtocolError("unexpected answer from the server: a checkpoint without its note")
        return str(latest["note"])

    def verify_audit(self, expected_head: tuple[int, str] | None = None) -> dict[str, Any]:
        """The server's walk of the whole audit chain: ``{"ok", "checked", "head", "problem"}``;
        with ``expected_head`` (a head kept earlier) events cut off the end are caught too."""
        params = None if expected_head is None else {"head": format_head(expected_head)}
        data = self._request("GET", "/v1/audit/verify", params=params)
        if not isinstance(data, dict) or not isinstance(data.get("ok"), bool):
            raise ServiceProtocolError("unexpected answer from the server: no 'ok' in the audit verdict")
        return data

    def wait(
        self,
        id: str,
        on_update: Callable[[Staging], None] | None = None,
        poll: float = 1.0,
        timeout: float | None = None,
    ) -> Staging:
        """Poll the staging ``id`` every ``poll`` seconds until it is ready, failed, denied or
        released, and return it; ``on_update`` sees every state fetched, the last included.
        After ``timeout`` seconds raise :class:`WaitTimeoutError` (the staging goes on)."""
        if poll <= 0:
            raise InvalidInputError("poll must be positive")
        deadline = None if timeout is None else self._clock() + timeout
        while True:
            staging = self.staging(id)
            if on_update is not None:
                on_update(staging)
            if staging.terminal:
                return staging
            if deadline is not None:
                left = deadline - self._clock()
                if left <= 0:
                    raise WaitTimeoutError(
                        f"staging {id} is still {staging.state} after {timeout:g} s; it continues",
                        staging,
                    )
                self._sleep(min(poll, left))
            else:
                self._sleep(poll)

    def wait_egress(self, id: str, poll: float = 1.0, timeout: float | None = None) -> dict[str, Any]:
        """Poll the egress ``id`` every ``poll`` seconds until it is completed, failed or denied,
        and return it. After ``timeout`` seconds raise :class:`WaitTimeoutError` (it goes on)."""
        if poll <= 0:
            raise InvalidInputError("poll must be positive")
        deadline = None if timeout is None else self._clock() + timeout
        while True:
            view = self.egress(id)
            if view.get("state") in EGRESS_TERMINAL:
                return view
            left = poll if deadline is None else deadline - self._clock()
            if left <= 0:
                raise WaitTimeoutError(
                    f"egress {id} is still {view.get('state')} after {timeout:g} s; it continues"
                )
            self._sleep(min(poll, left))

    # -- transport -------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        idempotent: bool | None = None,
    ) -> Any:
        repeatable = method in ("GET", "DELETE") if idempotent is None else idempotent
        attempt = 0
        while True:
            try:
                response = self._http.request(method, path, params=params, json=json)
            except httpx.TransportError as exc:
                # A connection never opened sent nothing: safe to try again whatever the method.
                sent = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                if (sent and not repeatable) or attempt >= self._retries:
                    raise self._unreachable(exc, method, sent) from None
                log.info("%s %s: %s; trying again", method, path, type(exc).__name__)
            else:
                if not (repeatable and response.status_code in RETRY_STATUSES and attempt < self._retries):
                    return self._decode(response)
                log.info("%s %s: HTTP %d; trying again", method, path, response.status_code)
            self._sleep(self._backoff * 2**attempt)
            attempt += 1

    def _unreachable(self, exc: httpx.TransportError, method: str, sent: bool) -> ServiceUnavailableError:
        if isinstance(exc, httpx.TimeoutException):
            why = f"no answer within {self._timeout:g} s"
        else:
            why = str(exc) or type(exc).__name__
        message = f"cannot reach the stagegate service at {self.base_url}: {why}"
        if sent and method == "POST":
            message += " (it may have accepted the request: the same --idempotency-key again finds out)"
        return ServiceUnavailableError(message)

    def _decode(self, response: httpx.Response) -> Any:
        if response.is_success:
            try:
                return response.json()
            except ValueError:
                raise ServiceProtocolError(
                    f"unexpected answer from {self.base_url}: HTTP {response.status_code} but not JSON"
                ) from None
        raise self._error(response)

    def _error(self, response: httpx.Response) -> Exception:
        try:
            body = response.json()
        except ValueError:
            body = None
        path = response.request.url.path
        return error_for(response.status_code, body, self.base_url, path, self._has_token)


def error_for(status: int, body: object, base_url: str, path: str, has_token: bool) -> Exception:
    """The exception for an error answer: HTTP ``status`` with the JSON ``body`` (None if it
    was not JSON) to a request for ``path``. Pure, so the mapping is tested on its own."""
    detail = body.get("detail") if isinstance(body, Mapping) else None
    message = detail_message(detail)
    if status == 401:
        if not has_token:
            return AuthenticationError("no token: set STAGEGATE_TOKEN (an admin issues one)", status)
        return AuthenticationError(
            f"the service refused the token in STAGEGATE_TOKEN: {message or 'unknown or revoked'}", status
        )
    if status == 403:
        if isinstance(detail, Mapping) and "reasons" in detail:
            reasons = [str(r) for r in detail.get("reasons") or ()]
            staging = Staging.from_json(detail["staging"]) if detail.get("staging") else None
            return StagingDeniedError(message or "denied by the classification policy", staging, reasons)
        return PermissionDeniedError(f"not permitted: {message or 'your role may not do this'}", status)
    if status == 404:
        return NotFoundError(message or f"not found: {path}")
    if status in (400, 422):
        return InvalidInputError(message or f"the service refused the request (HTTP {status})")
    suffix = f": {message}" if message else ""
    if status in RETRY_STATUSES:
        return ServiceUnavailableError(
            f"the service at {base_url} is unavailable (HTTP {status}){suffix}", status
        )
    return ServiceError(f"the service at {base_url} answered HTTP {status}{suffix}", status)


def _staging_path(id: str) -> str:
    if not id or not id.strip():
        raise InvalidInputError("a staging id must not be empty")
    return "/v1/stagings/" + quote(id, safe="")


def _list_field(data: Any, key: str) -> list[Any]:
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, list):
        raise ServiceProtocolError(f"unexpected answer from the server: no list {key!r}")
    return value
