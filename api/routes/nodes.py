"""/v1/nodes: the nodes workers registered, and what their caches hold."""

from fastapi import APIRouter

from stagegate.api.auth import Authenticated
from stagegate.api.schemas import ErrorOut, NodeList, node_out
from stagegate.api.services import ServicesDep

router = APIRouter(prefix="/v1/nodes", tags=["nodes"])


@router.get("", summary="List nodes", responses={401: {"model": ErrorOut}})
def list_nodes(_who: Authenticated, services: ServicesDep) -> NodeList:
    """Every node whose worker ever heartbeated, with capacity, use, pins and cached datasets."""
    return NodeList(nodes=[node_out(n) for n in services.nodes.all()])
