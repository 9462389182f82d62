"""Where the ledger lives, and who may change its schema. The only reader of
``STAGEGATE_DATABASE_URL``, ``STAGEGATE_HOME`` and ``STAGEGATE_DB_RUNTIME_ROLE``.

A deployment points every node and the API at one PostgreSQL database; a single workstation
needs nothing configured and gets a SQLite file in its data directory.
"""

import os
from pathlib import Path

DATABASE_URL_ENV = "STAGEGATE_DATABASE_URL"
HOME_ENV = "STAGEGATE_HOME"
RUNTIME_ROLE_ENV = "STAGEGATE_DB_RUNTIME_ROLE"
DEFAULT_HOME = Path("~/.local/share/stagegate")
SQLITE_FILE = "ledger.db"


def stagegate_home() -> Path:
    """The data directory, created (owner-only: the ledger names every dataset moved) if missing."""
    home = Path(os.environ.get(HOME_ENV) or DEFAULT_HOME).expanduser()
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    return home


def ledger_url() -> str:
    """The SQLAlchemy URL of the ledger database."""
    url = os.environ.get(DATABASE_URL_ENV)
    if url:
        return url
    return f"sqlite:///{stagegate_home() / SQLITE_FILE}"


def runtime_role() -> str | None:
    """The PostgreSQL role the API and workers connect as, which ``stagegate db upgrade``
    grants to; None when not configured."""
    return os.environ.get(RUNTIME_ROLE_ENV) or None
