"""What ``import stagegate`` offers a training script: the names ``stagegate.<name>`` resolves
to (``stagegate/__init__.py`` loads this module on first use), gathered from the modules that
define them. The reference is in their docstrings; README "Python API" has an example."""

from stagegate.client.embedded_api import Egressed, Staged, egress, stage
from stagegate.client.errors import (
    AuthenticationError,
    EgressDeniedError,
    EgressFailedError,
    PermissionDeniedError,
    ServiceError,
    ServiceUnavailableError,
    StagingDeniedError,
    StagingFailedError,
    WaitTimeoutError,
)
from stagegate.client.service_api import Client
from stagegate.client.service_models import Node, Staging
from stagegate.policies import PolicyDeniedError

__all__ = [
    "AuthenticationError",
    "Client",
    "EgressDeniedError",
    "EgressFailedError",
    "Egressed",
    "Node",
    "PermissionDeniedError",
    "PolicyDeniedError",
    "ServiceError",
    "ServiceUnavailableError",
    "Staged",
    "Staging",
    "StagingDeniedError",
    "StagingFailedError",
    "WaitTimeoutError",
    "egress",
    "stage",
]
