"""What the handlers work with, built once per app: the ledger's stores, the dispatcher, settings.

Handlers get it through :data:`ServicesDep`, so a test builds an app around its own ledger
and broker and nothing reads globals.
"""

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from stagegate.api.decision_waits import DecisionWaits
from stagegate.ledger import AuditTrail, Ledger, Nodes, StagingRequests, StagingViews, Tokens
from stagegate.ledger.checkpoints import Checkpoints
from stagegate.ledger.owners import PinOwners
from stagegate.ledger.pins import PinLeases
from stagegate.queues import Dispatcher


@dataclass(frozen=True, slots=True)
class Services:
    ledger: Ledger
    dispatcher: Dispatcher
    celery: Any  # the dispatcher's Celery app (untyped library), for the readiness check
    stagings: StagingRequests  # submit, release
    staging_views: StagingViews  # view, list
    nodes: Nodes
    audit: AuditTrail
    checkpoints: Checkpoints  # read only: the API signs none (node workers do)
    tokens: Tokens
    pins: PinLeases
    owners: PinOwners  # the Pod or Job whose end releases a staging
    pin_ttl: float  # seconds a staging's pins last unless it asks otherwise (STAGEGATE_PIN_TTL)
    pin_ttl_max: float  # the longest TTL a request may ask for (STAGEGATE_PIN_TTL_MAX)
    decision_wait: float  # seconds POST /v1/stagings waits for the plan step's decision
    decision_waits: DecisionWaits  # the submissions waiting for it, watched by one loop
    lease_seconds: float  # how long a task's lease lasts before the reconciler re-sends it


async def get_services(request: Request) -> Services:
    # async: no I/O here, so no hop through the threadpool.
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
