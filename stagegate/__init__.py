"""stagegate: verified staging of datasets onto node-local NVMe, and audited egress.

The Python API (README "Python API")::

    import stagegate

    staged = stagegate.stage("s3://datasets/mini", to="/nvme/mini", progress=print)
    with stagegate.Client() as service:  # $STAGEGATE_URL, $STAGEGATE_TOKEN
        staging = service.stage("s3://datasets/mini", nodes=["gpu-01"])
        ...
        service.release(staging.id)

``stagegate.stage``, ``egress``, ``Client``, their results and the client's errors live in the
client layer (``stagegate.client.python_api`` gathers them) and load on first use, through the
module ``__getattr__`` below (PEP 562). The modules beside this file are the shared kernel,
which imports no layer (import-linter's contract lists them one by one); importing one of them,
or ``stagegate`` itself, still loads no layer: ``tests/unit/test_python_api_exports.py`` checks
that in a fresh interpreter. This file is the one edge from the package root to a layer, and
import-linter sees it: a layer that imported the root (``import stagegate``) would reach the
client through it and break its own contract, so layers read the version from
``stagegate.version``.
"""

from typing import TYPE_CHECKING

from stagegate.errors import ExistsError, InvalidInputError, NotFoundError, StagegateError, TooLargeError
from stagegate.progress import Progress, ProgressCallback
from stagegate.version import __version__

if TYPE_CHECKING:  # what type checkers see; at run time __getattr__ imports the same names
    from stagegate.client.python_api import (
        AuthenticationError,
        Client,
        EgressDeniedError,
        Egressed,
        EgressFailedError,
        Node,
        PermissionDeniedError,
        PolicyDeniedError,
        ServiceError,
        ServiceUnavailableError,
        Staged,
        Staging,
        StagingDeniedError,
        StagingFailedError,
        WaitTimeoutError,
        egress,
        stage,
    )

# Every name below but the kernel's (imported above) comes from the client layer, on first use;
# a unit test keeps that part equal to stagegate.client.python_api.__all__.
__all__ = [
    "AuthenticationError",
    "Client",
    "EgressDeniedError",
    "EgressFailedError",
    "Egressed",
    "ExistsError",
    "InvalidInputError",
    "Node",
    "NotFoundError",
    "PermissionDeniedError",
    "PolicyDeniedError",
    "Progress",
    "ProgressCallback",
    "ServiceError",
    "ServiceUnavailableError",
    "Staged",
    "StagegateError",
    "Staging",
    "StagingDeniedError",
    "StagingFailedError",
    "TooLargeError",
    "WaitTimeoutError",
    "__version__",
    "egress",
    "stage",
]


def __getattr__(name: str) -> object:
    if name in __all__:  # not bound yet (the kernel's names are): one of the client layer's
        from stagegate.client import python_api

        return getattr(python_api, name)
    raise AttributeError(f"module 'stagegate' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
