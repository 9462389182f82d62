"""The ``/ui/`` routes: sign-in and sign-out, and one read-only page per view of the ledger.

Every page goes through :func:`viewer`, which finds the browser's session and re-checks its
token, so the API's role rules hold here as they do for ``/v1``: a scientist sees their own
stagings and egresses and no trail, an auditor sees everything and changes nothing, and a
job token cannot sign in at all. Pages the caller's role may not see are 403.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Depends, FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response, StreamingResponse

from stagegate.actions import AuditAction
from stagegate.api.services import ServicesDep
from stagegate.api.ui import read_model
from stagegate.api.ui.chart import bar_chart_svg
from stagegate.api.ui.csv_export import csv_chunks, csv_filename
from stagegate.api.ui.filters import USAGE_METRICS, parse_trail_filter, parse_trail_query, parse_usage_query
from stagegate.api.ui.origin import safe_next, same_origin
from stagegate.api.ui.render import HEADERS, HERE, human_bytes, page
from stagegate.api.ui.sessions import SessionStore, UiSession
from stagegate.errors import InvalidInputError, NotFoundError
from stagegate.ledger import Principal

log = logging.getLogger(__name__)
router = APIRouter(prefix="/ui", include_in_schema=False)

COOKIE = "stagegate_ui"
COOKIE_PATH = "/ui"
MAX_FORM_FIELDS = 5
MAX_ID = 200
UI_ROLES = ("scientist", "steward", "auditor", "admin")  # a job token gets nothing of the UI
TRAIL_READERS = read_model.TRAIL_READERS
ACTIONS = tuple(AuditAction)  # the trail filter's choices


class SignInRequired(Exception):
    def __init__(self, next_path: str) -> None:
        super().__init__("sign in first")
        self.next_path = next_path


class UiError(Exception):
    """A page's refusal, shown as a page (not the API's JSON)."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


@dataclass(frozen=True, slots=True)
class Viewer:
    principal: Principal
    session: UiSession

    @property
    def reads_trail(self) -> bool:
        return self.principal.role in TRAIL_READERS


def _store(request: Request) -> SessionStore:
    store: SessionStore = request.app.state.ui_sessions
    return store


def viewer(request: Request, services: ServicesDep) -> Viewer:
    """The signed-in caller. A plain ``def``: the token check is a query (run in the threadpool)."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    session_id = request.cookies.get(COOKIE)
    session = _store(request).get(session_id) if session_id else None
    if session is None:
        raise SignInRequired(here)
    principal = services.tokens.authenticate(session.token)
    if principal is None or principal.role not in UI_ROLES:  # revoked since sign-in
        _store(request).close(session.id)
        raise SignInRequired(here)
    return Viewer(principal, session)


ViewerDep = Annotated[Viewer, Depends(viewer)]


def _only(who: Viewer, roles: tuple[str, ...], what: str) -> None:
    if who.principal.role not in roles:
        raise UiError(
            403, f"{what} is for the role {' or '.join(roles)}; you are signed in as {who.principal.role}"
        )


@contextmanager
def _as_pages() -> Iterator[None]:
    """The ledger's refusals as pages: bad input 400, not found (or not yours) 404."""
    try:
        yield
    except InvalidInputError as exc:
        raise UiError(400, str(exc)) from exc
    except NotFoundError as exc:
        raise UiError(404, str(exc)) from exc


def _params(request: Request) -> dict[str, str]:
    # The last value of each; repeated parameters are not meaningful on these pages.
    return dict(request.query_params)


# -- signing in and out -------------------------------------------------------------------


def _check_origin(request: Request) -> None:
    host = request.headers.get("host", "")
    if not same_origin(
        request.headers.get("origin"), request.headers.get("referer"), request.url.scheme, host
    ):
        raise UiError(403, "this form must be sent from this server's own page (cross-site request refused)")


async def _form(request: Request) -> dict[str, str]:
    body = await request.body()
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except (UnicodeDecodeError, ValueError) as exc:
        raise UiError(400, "the form could not be read") from exc
    return {k: v[-1] for k, v in fields.items()}


@router.get("/login")
def login_form(request: Request) -> Response:
    return page("login.html", next=safe_next(request.query_params.get("next")), error=None, viewer=None)


@router.post("/login")
async def login(request: Request, services: ServicesDep) -> Response:
    _check_origin(request)
    form = await _form(request)
    token = form.get("token", "").strip()
    next_path = safe_next(form.get("next"))
    principal = await run_in_threadpool(services.tokens.authenticate, token) if token else None
    if principal is None:
        log.info("ui sign-in refused: unknown or revoked token")
        return page("login.html", 401, next=next_path, error="Unknown or revoked token.", viewer=None)
    if principal.role not in UI_ROLES:
        log.info("ui sign-in refused: user %s has role %s", principal.user, principal.role)
        message = f"A {principal.role} token cannot sign in here: the pages are for people, not jobs."
        return page("login.html", 403, next=next_path, error=message, viewer=None)
    if (previous := request.cookies.get(COOKIE)) is not None:
        _store(request).close(previous)  # signing in again replaces the browser's session
    session = _store(request).open(token, principal)
    log.info("ui sign-in: user %s, role %s", principal.user, principal.role)
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        COOKIE,
        session.id,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    _check_origin(request)
    form = await _form(request)
    session_id = request.cookies.get(COOKIE)
    session = _store(request).get(session_id) if session_id else None
    if session is not None:
        if form.get("csrf") != session.csrf:
            raise UiError(403, "the sign-out form is stale: reload the page and sign out again")
        _store(request).close(session.id)
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(
        COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )
    return response


@router.get("/static/ui.css")
def stylesheet() -> Response:
    css = (HERE / "static" / "ui.css").read_text()
    return Response(css, media_type="text/css", headers={**HEADERS, "Cache-Control": "max-age=3600"})


@router.get("")
@router.get("/")
def start(who: ViewerDep) -> Response:
    return RedirectResponse("/ui/audit" if who.reads_trail else "/ui/stagings", status_code=303)


# -- the audit trail ----------------------------------------------------------------------


@router.get("/audit")
def trail(request: Request, who: ViewerDep, services: ServicesDep) -> Response:
    _only(who, TRAIL_READERS, "the audit trail")
    with _as_pages():
        query = parse_trail_query(_params(request))
        shown = read_model.trail_page(services.ledger, query.filter, query.after, query.size)
    params = query.filter.to_params()
    size = {} if query.size == 50 else {"size": str(query.size)}
    next_link = None
    if shown.next_after is not None:
        next_link = "/ui/audit?" + urlencode({**params, **size, "after": str(shown.next_after)})
    return page(
        "trail.html",
        viewer=who,
        filter=query.filter,
        actions=ACTIONS,
        events=shown.items,
        after=query.after,
        next_link=next_link,
        first_link="/ui/audit?" + urlencode({**params, **size}),
        csv_link="/ui/audit.csv?" + urlencode(params),
    )


@router.get("/audit.csv")
def trail_csv(request: Request, who: ViewerDep, services: ServicesDep) -> Response:
    _only(who, TRAIL_READERS, "the audit trail")
    with _as_pages():
        flt = parse_trail_filter(_params(request))
    name = csv_filename(flt.to_params())
    return StreamingResponse(
        csv_chunks(read_model.matching_events(services.ledger, flt)),
        media_type="text/csv; charset=utf-8",
        headers={**HEADERS, "Content-Disposition": f'attachment; filename="{name}"'},
    )


# -- stagings and egresses ----------------------------------------------------------------


def _known_length(job_id: str) -> None:
    # As the API's path parameters: an id longer than any the ledger makes names nothing.
    if len(job_id) > MAX_ID:
        raise UiError(404, "no such staging or egress")


@router.get("/stagings")
def stagings(who: ViewerDep, services: ServicesDep) -> Response:
    return page("stagings.html", viewer=who, stagings=read_model.stagings_of(services.ledger, who.principal))


@router.get("/stagings/{staging_id}")
def staging(staging_id: str, who: ViewerDep, services: ServicesDep) -> Response:
    _known_length(staging_id)
    with _as_pages():
        story = read_model.staging_story(services.ledger, who.principal, staging_id)
    return page("staging.html", viewer=who, story=story, s=story.staging)


@router.get("/egress")
def egresses(who: ViewerDep, services: ServicesDep) -> Response:
    return page("egresses.html", viewer=who, egresses=read_model.egresses_of(services.ledger, who.principal))


@router.get("/egress/{egress_id}")
def egress(egress_id: str, who: ViewerDep, services: ServicesDep) -> Response:
    _known_length(egress_id)
    with _as_pages():
        story = read_model.egress_story(services.ledger, who.principal, egress_id)
    return page("egress.html", viewer=who, story=story, e=story.egress)


# -- usage, nodes, integrity --------------------------------------------------------------


def _metric_text(metric: str, value: float) -> str:
    # Three significant digits: a short test staging's GB-hours must not read as 0.00.
    return f"{value:.3g} GB-h" if metric == "nvme_gb_hours" else human_bytes(value)


@router.get("/usage")
def usage(request: Request, who: ViewerDep, services: ServicesDep) -> Response:
    _only(who, TRAIL_READERS, "usage")
    with _as_pages():
        query = parse_usage_query(_params(request))
        rows = read_model.usage_rows(services.ledger, query.by, query.since, query.until)
    bars = [(f"{r.period} {r.key}", float(getattr(r, query.metric))) for r in rows]
    chart = bar_chart_svg(
        bars, f"{query.metric} per {query.by} and month", lambda v: _metric_text(query.metric, v)
    )
    return page("usage.html", viewer=who, query=query, rows=rows, chart=chart, metrics=USAGE_METRICS)


@router.get("/nodes")
def nodes(who: ViewerDep, services: ServicesDep) -> Response:
    return page("nodes.html", viewer=who, nodes=read_model.nodes(services.ledger))


@router.get("/integrity")
def integrity(who: ViewerDep, services: ServicesDep) -> Response:
    _only(who, TRAIL_READERS, "the trail's integrity")
    return page("integrity.html", viewer=who, integrity=read_model.integrity(services.ledger))


# -- wiring -------------------------------------------------------------------------------


async def _sign_in_first(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInRequired)
    return RedirectResponse("/ui/login?" + urlencode({"next": safe_next(exc.next_path)}), status_code=303)


async def _refused(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, UiError)
    return page("error.html", exc.status_code, viewer=None, status=exc.status_code, message=exc.message)


def install_ui(app: FastAPI, sessions: SessionStore | None = None) -> None:
    """Serve the pages from ``app``, with their sessions kept in this process."""
    app.state.ui_sessions = sessions or SessionStore()
    app.add_exception_handler(SignInRequired, _sign_in_first)
    app.add_exception_handler(UiError, _refused)
    app.include_router(router)
