"""Alembic's entry point. Runs only online, on the connection ``ledger.migrate`` lends, which
already holds the writer lock inside an open transaction."""

from alembic import context
from sqlalchemy.engine import Connection

from stagegate.ledger.models import Base

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("ledger migrations run through ledger.migrate.upgrade_to_head, not the alembic CLI")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
)
with context.begin_transaction():
    context.run_migrations()
