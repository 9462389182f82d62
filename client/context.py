"""What every command needs from its surroundings: who is asking, the policy, the ledger.

The environment is read here (and, for the ledger's location, in ``ledger.settings``).
"""

import getpass
import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ledger import Ledger, open_ledger
from policies import Policy
from workers.staging import Requester

if TYPE_CHECKING:  # httpx is imported only by commands that talk to the service
    from client.service_client import ServiceClient

POLICY_ENV = "STAGEGATE_POLICY"
SERVER_ENV = "STAGEGATE_URL"
TOKEN_ENV = "STAGEGATE_TOKEN"  # noqa: S105  # the variable's name, not a secret
EMBEDDED_ROLE = "local"


def load_policy(path: Path | None) -> Policy:
    """``--policy FILE``, else ``$STAGEGATE_POLICY``, else the shipped default (public only)."""
    chosen = path or (Path(os.environ[POLICY_ENV]) if os.environ.get(POLICY_ENV) else None)
    return Policy.from_file(chosen) if chosen else Policy.default()


def local_requester() -> Requester:
    """In embedded mode the actor is the operating-system user."""
    return Requester(actor=getpass.getuser(), role=EMBEDDED_ROLE)


def ledger() -> Ledger:
    return open_ledger()


def service(server: str | None) -> "ServiceClient":
    """A client for the service at ``server`` (``--server``, which click fills from
    $STAGEGATE_URL), authenticated by $STAGEGATE_TOKEN. The token is read from the
    environment only, never from a flag, so it stays out of shell history and ``ps``."""
    from client.service_client import ServiceClient

    if not server:
        raise click.UsageError(f"no server: pass --server URL or set {SERVER_ENV}")
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise click.UsageError(
            f"the service needs a token: set {TOKEN_ENV} (an admin issues one with `stagegate token create`)"
        )
    return ServiceClient(server, token)
