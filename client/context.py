"""What every command needs from its surroundings: who is asking, the policy, the ledger.

The environment is read here (and, for the ledger's location, in ``ledger.settings``).
"""

import getpass
import os
from pathlib import Path

from ledger import Ledger, open_ledger
from policies import Policy
from workers.staging import Requester

POLICY_ENV = "STAGEGATE_POLICY"
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
