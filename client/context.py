"""What every command needs from its surroundings: who is asking, the policy, the ledger.

Settings from the environment come from :mod:`stagegate.settings`, the only reader of it.
"""

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from stagegate.settings import env_name, load_settings

# Every command module imports this one, `stagegate --help` and the service commands included:
# what only some commands use is imported where it is used (the ledger's ORM and tables, the
# checkpoint signer and its cryptography, the policy's YAML, the engine behind Requester).
if TYPE_CHECKING:  # httpx is imported only by commands that talk to the service
    from stagegate.client.service_client import ServiceClient
    from stagegate.ledger import Ledger
    from stagegate.policies import Policy
    from stagegate.workers.staging import Requester

POLICY_ENV = env_name("policy")
SERVER_ENV = env_name("url")
TOKEN_ENV = env_name("token")
EMBEDDED_ROLE = "local"


def load_policy(path: Path | None) -> "Policy":
    """``--policy FILE``, else ``$STAGEGATE_POLICY``, else the shipped default (public only)."""
    from stagegate.policies import Policy

    chosen = path or load_settings().policy
    return Policy.from_file(chosen) if chosen else Policy.default()


def local_requester() -> "Requester":
    """In embedded mode the actor is the operating-system user."""
    from stagegate.workers.staging import Requester

    return Requester(actor=getpass.getuser(), role=EMBEDDED_ROLE)


@contextmanager
def ledger(sign_when_due: bool = True) -> Iterator["Ledger"]:
    """The ledger, for one command. In embedded mode (SQLite) a command that ends well signs an
    audit checkpoint if one is due (``STAGEGATE_CHECKPOINT_EVENTS``/``_SECONDS``): there is no
    service there to do it. A failure to sign is a warning: the command itself succeeded."""
    from stagegate.ledger import open_ledger

    opened = open_ledger()
    try:
        yield opened
        if sign_when_due and opened.dialect == "sqlite":
            from stagegate.ledger.checkpoint_due import due_by_settings

            try:
                if due_by_settings(opened, load_settings()):  # rarely: only then load the signer
                    from stagegate.ledger.checkpoints import Checkpoints

                    Checkpoints.from_settings(opened).sign_if_due()
            except Exception as exc:  # the command's work is done and recorded; say why, go on
                click.echo(f"stagegate: warning: no audit checkpoint signed: {exc}", err=True)
    finally:
        opened.close()


def service(server: str | None) -> "ServiceClient":
    """A client for the service at ``server`` (``--server``, which click fills from
    $STAGEGATE_URL), authenticated by $STAGEGATE_TOKEN. The token is read from the
    environment only, never from a flag, so it stays out of shell history and ``ps``."""
    from stagegate.client.service_client import ServiceClient

    if not server:
        raise click.UsageError(f"no server: pass --server URL or set {SERVER_ENV}")
    secret = load_settings().token
    if secret is None:
        raise click.UsageError(
            f"the service needs a token: set {TOKEN_ENV} (an admin issues one with `stagegate token create`)"
        )
    return ServiceClient(server, secret.get_secret_value())
