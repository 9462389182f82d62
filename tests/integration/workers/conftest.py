"""The ledger fixtures (a real SQLite file and a real PostgreSQL database), for the worker
steps that are tested against the ledger alone."""

from integration.ledger.conftest import ledger, ledger_url, pg_url  # noqa: F401
