"""Alembic migrations of the ledger schema (run by :func:`ledger.migrate.upgrade_to_head`)."""
