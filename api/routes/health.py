"""Liveness and readiness probes; no authentication.

/healthz says the process answers. /readyz says it can do its work: the ledger answers a query
and the broker accepts a connection. Failures are named, never explained: the reasons (hosts,
ports, driver messages) go to the log, not to an unauthenticated caller.
"""

import logging
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, status
from fastapi.responses import JSONResponse
from sqlalchemy import select

from stagegate.api.schemas import Health, Readiness
from stagegate.api.services import ServicesDep
from stagegate.ledger import Ledger
from stagegate.ledger.redact import redact_text

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])

BROKER_TIMEOUT_S = 2.0


def check_ledger(ledger: Ledger) -> None:
    with ledger.read_session() as session, session.begin():
        session.execute(select(1))


def check_broker(celery: Any) -> None:
    """Open (and close) one broker connection, trying once, for at most about two seconds."""
    timeouts = {"socket_connect_timeout": BROKER_TIMEOUT_S, "socket_timeout": BROKER_TIMEOUT_S}
    with celery.connection_for_write(connect_timeout=BROKER_TIMEOUT_S, transport_options=timeouts) as conn:
        conn.ensure_connection(
            max_retries=1, interval_start=0, interval_step=0.2, interval_max=0.2, timeout=BROKER_TIMEOUT_S
        )


@router.get("/healthz", summary="Liveness")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    summary="Readiness",
    responses={
        200: {"model": Readiness, "description": "Ready."},
        503: {"model": Readiness, "description": "The ledger or the broker is unreachable."},
    },
)
def readyz(services: ServicesDep) -> JSONResponse:
    """200 when the ledger database and the broker both answer; 503 naming the one that does not."""
    probes: dict[str, Callable[[], None]] = {
        "ledger": lambda: check_ledger(services.ledger),
        "broker": lambda: check_broker(services.celery),
    }
    checks: dict[str, str] = {}
    for name, probe in probes.items():
        try:
            probe()
            checks[name] = "ok"
        except Exception as exc:  # any failure means not ready; what it was goes to the log
            reason = redact_text(str(exc)) or type(exc).__name__
            log.warning("readiness: the %s is unavailable: %s", name, reason)
            checks[name] = "unavailable"
    ready = all(v == "ok" for v in checks.values())
    body = Readiness(status="ready" if ready else "unavailable", checks=checks)
    return JSONResponse(
        status_code=status.HTTP_200_OK if ready else status.HTTP_503_SERVICE_UNAVAILABLE,
        content=body.model_dump(mode="json"),
    )
