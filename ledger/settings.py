"""Where the ledger lives, and who may change its schema: ``STAGEGATE_DATABASE_URL``,
``STAGEGATE_HOME`` and ``STAGEGATE_DB_RUNTIME_ROLE``, as :mod:`stagegate.settings` reads them.

A deployment points every node and the API at one PostgreSQL database; a single workstation
needs nothing configured and gets a SQLite file in its data directory.
"""

from pathlib import Path

from stagegate.settings import env_name, load_settings

DATABASE_URL_ENV = env_name("database_url")
HOME_ENV = env_name("home")
RUNTIME_ROLE_ENV = env_name("db_runtime_role")
SQLITE_FILE = "ledger.db"


def stagegate_home() -> Path:
    """The data directory, created (owner-only: the ledger names every dataset moved) if missing."""
    home = load_settings().home.expanduser()
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    return home


def ledger_url() -> str:
    """The SQLAlchemy URL of the ledger database."""
    url = load_settings().database_url
    if url is not None:
        return url.get_secret_value()
    return f"sqlite:///{stagegate_home() / SQLITE_FILE}"


def runtime_role() -> str | None:
    """The PostgreSQL role the API and workers connect as, which ``stagegate db upgrade``
    grants to; None when not configured."""
    return load_settings().db_runtime_role
