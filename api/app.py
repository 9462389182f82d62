"""The FastAPI application: the control plane's HTTP face.

``create_app()`` with no arguments is what ``stagegate serve`` runs: it opens the ledger named
by ``STAGEGATE_DATABASE_URL`` (bringing its schema up to date) and a Celery client for
``STAGEGATE_BROKER_URL``, and closes both when the server shuts down. Tests pass their own
ledger and dispatcher, which stay theirs to close.
"""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from stagegate.api.decision_waits import DecisionWaits
from stagegate.api.edge import DEFAULT_MAX_BODY_BYTES, RequestGuard
from stagegate.api.errors import install_error_handlers
from stagegate.api.metrics import build_registry
from stagegate.api.metrics import router as metrics_router
from stagegate.api.routes import audit, declassifications, egress, health, nodes, stagings, tokens, usage
from stagegate.api.services import Services
from stagegate.api.ui import install_ui
from stagegate.confinement import SourceRules
from stagegate.ledger import AuditTrail, Ledger, Nodes, StagingRequests, StagingViews, Tokens, open_ledger
from stagegate.ledger.checkpoints import Checkpoints
from stagegate.ledger.owners import PinOwners
from stagegate.ledger.pins import PinLeases
from stagegate.ledger.plan_shares import PlanCut
from stagegate.policies import Policy
from stagegate.queues import Dispatcher, make_celery
from stagegate.settings import load_settings
from stagegate.version import __version__

DESCRIPTION = """\
Stages datasets from S3 and on-prem storage onto GPU nodes' local NVMe, verified, under a
classification policy, with every decision in a tamper-evident audit trail.

**Flow.** `POST /v1/stagings` records a staging and queues its plan; a node worker lists the
source, the policy decides, and the nodes copy. The call waits briefly for the policy's
decision: a denial is a 403 with the reasons, otherwise 202 with the staging. Poll
`GET /v1/stagings/{id}` until it is `ready` (or `failed`), and `DELETE` it when the job is done
so the nodes may evict the data.

**Authentication.** Every `/v1` call needs `Authorization: Bearer <token>`; an admin issues
tokens with `stagegate token create --user USER --role ROLE`. Roles: `job` and `scientist`
submit, see and release their own stagings; `auditor` reads everything (stagings, nodes, the
audit trail) and changes nothing; `steward` declassifies checkpoints and reads every egress;
`admin` does everything. Someone else's staging is a 404.

**Errors.** `{"detail": ...}`: 400 bad input, 401 no or unknown token, 403 role not allowed or
policy denied, 404 not found, 413 a body over 1 MiB, 422 a body not of the documented shape,
503 a dependency down. A NUL character anywhere (path, query, JSON string) is a 400.
"""


def create_app(
    ledger: Ledger | None = None,
    dispatcher: Dispatcher | None = None,
    *,
    lease_seconds: float | None = None,
    decision_wait: float | None = None,
    source_rules: SourceRules | None = None,
    plans: PlanCut | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> FastAPI:
    """The API app. Unset arguments come from the environment: ``STAGEGATE_DATABASE_URL``,
    ``STAGEGATE_BROKER_URL``, ``STAGEGATE_LEASE_SECONDS`` (120), ``STAGEGATE_DECISION_WAIT`` (10) and
    ``STAGEGATE_SOURCE_ROOTS`` / ``STAGEGATE_SOURCE_SCHEMES`` (none: S3 sources only), and
    ``plans``, how the workers cut shared plans, from ``STAGEGATE_POLICY`` and the batch and
    freshness settings they read too (a submission follows a fresh plan itself only where
    the API cuts as they do: ``ledger.submit_follow``).
    Request bodies over ``max_body_bytes`` are refused before any route or token check."""
    env = load_settings()
    if lease_seconds is None:
        lease_seconds = env.lease_seconds
    if decision_wait is None:
        decision_wait = env.decision_wait
    if source_rules is None:
        source_rules = env.source_rules()
    if plans is None:
        policy = Policy.from_file(env.policy) if env.policy else Policy.default()
        # The fields of settings.PLAN_CUT_FIELDS: a deployment gives the workers the same.
        plans = PlanCut(policy.version, env.batch_max_bytes, env.batch_max_files, env.plan_fresh_seconds)
    owned: list[Callable[[], object]] = []  # what this app opened, closed in reverse at shutdown
    if ledger is None:
        ledger = open_ledger()
        owned.append(ledger.close)
    if dispatcher is None:
        celery_app = make_celery(env.broker_url.get_secret_value())
        owned.append(celery_app.close)
        dispatcher = Dispatcher(celery_app)
    staging_views = StagingViews(ledger)
    services = Services(
        ledger=ledger,
        dispatcher=dispatcher,
        # Dispatcher keeps its Celery app private; readiness needs it to open a connection.
        celery=dispatcher.app,
        stagings=StagingRequests(ledger, lease_seconds, source_rules, plans),
        staging_views=staging_views,
        nodes=Nodes(ledger),
        audit=AuditTrail(ledger),
        checkpoints=Checkpoints(ledger, origin=env.checkpoint_origin),
        tokens=Tokens(ledger),
        pins=PinLeases(ledger),
        owners=PinOwners(ledger),
        pin_ttl=env.pin_ttl,
        pin_ttl_max=env.pin_ttl_max,
        decision_wait=decision_wait,
        decision_waits=DecisionWaits(staging_views.views),
        lease_seconds=lease_seconds,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await services.decision_waits.close()  # its reads use the ledger closed below
            for close in reversed(owned):
                close()

    # Swagger UI and ReDoc from assets the app serves itself (under /static-offline-docs), not
    # from a CDN: clusters are often air-gapped, and a page pulling scripts from outside is a
    # supply-chain risk on the auditor's own browser.
    app = FastAPIOffline(
        title="stagegate",
        summary="Verified dataset staging onto GPU nodes' NVMe, under a classification policy.",
        description=DESCRIPTION,
        version=__version__,
        lifespan=lifespan,
    )
    app.state.services = services
    app.state.metrics_registry = build_registry(ledger)  # GET /metrics, read at scrape time
    install_error_handlers(app)
    app.add_middleware(RequestGuard, max_body_bytes=max_body_bytes)  # outermost of ours: runs first
    for module in (stagings, nodes, audit, health, usage, egress, declassifications, tokens):
        app.include_router(module.router)
    app.include_router(metrics_router)
    install_ui(app)  # the read-only pages under /ui/
    return app
